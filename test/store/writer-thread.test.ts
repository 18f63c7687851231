/**
 * When a run is written on a writer thread (store/threaded.ts): only where it writes more rows
 * than it reads, since on two cores a third busy thread slows a read-bound run (README, Benchmark).
 * The threaded writer's results and its roll-back are checked through the CLI in
 * test/commands/cli.test.ts and interrupt.test.ts (WATTRACE_THREADS=1).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { loadPipeline } from '../../src/core/pipeline.js';
import { loadProfile } from '../../src/core/profile.js';
import { writerThreadPays } from '../../src/replay/runner.js';

const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');

describe('writerThreadPays', () => {
  const p = loadPipeline(demo);
  const machine = loadProfile(p.profilePath);

  it('no for the demo: 10 s at 100 ms intervals write fewer rows than its 5,531 trace rows', () => {
    // 99.2 intervals × 5 consumers × (1 + 1 disk) × 2 kinds + 99.2 × 5 × 3 counters ≈ 3,500 rows,
    // against (326 + 29) KB / 64 ≈ 5,500 trace rows.
    expect(writerThreadPays(p, machine, {})).toBe(false);
  });

  it('yes at 1 ms intervals: a hundred times that, about 350,000 rows, from the same traces', () => {
    expect(writerThreadPays(loadPipeline(demo, { intervalMs: 1 }), machine, {})).toBe(true);
  });

  it('never with threads off', () => {
    expect(writerThreadPays(loadPipeline(demo, { intervalMs: 1 }), machine, { threads: false })).toBe(false);
  });
});
