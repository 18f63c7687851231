/** The README's quick-start output is what `npm start` prints: replayed here and compared line by line. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/core/json.js';
import { BENCH_JSON, benchBlock, readmeBenchBlock, type BenchResult } from '../src/bench/report.js';
import { FLEET_JSON, fleetBlock, readmeFleetBlock, type FleetBench } from '../src/bench/fleet-report.js';
import { cli, tmpDir } from './helpers.js';

describe('README', () => {
  it('shows the energy matrix npm start prints (pipelines/demo.json)', async () => {
    const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
    const block = /```\n(run 1: pipeline 'demo'[^`]*)```/.exec(readme);
    expect(block, 'the quick-start block').not.toBeNull();
    const db = path.join(tmpDir(), 'demo.sqlite');
    const r = await cli(['replay', path.join(PROJECT_ROOT, 'pipelines', 'demo.json'), '--db', db]);
    expect(r.code, r.err).toBe(0);
    expect(r.out.replace(db, 'demo.sqlite').trimEnd()).toBe(block![1]!.trimEnd());
  });

  it('shows the figures of the last `npm run bench` (docs/bench.json), as that run measured them', () => {
    const r = JSON.parse(fs.readFileSync(BENCH_JSON, 'utf8')) as BenchResult;
    expect(readmeBenchBlock()).toBe(benchBlock(r));
    // The run's own claims: DuckDB agreed with the replay, and the rows were those it names.
    expect(r.crossCheck).toBeLessThan(1e-9);
    expect(r.rows).toBeGreaterThanOrEqual(1_000_000);
  });

  it('shows the export sizes of the last `npm run bench:fleet` (docs/bench-fleet.json)', () => {
    const r = JSON.parse(fs.readFileSync(FLEET_JSON, 'utf8')) as FleetBench;
    expect(readmeFleetBlock()).toBe(fleetBlock(r));
    expect(r.fleet.hosts).toBe(20);
    expect(r.fleet.parquetMB).toBeLessThan(r.fleet.sqliteMB);
  });
});
