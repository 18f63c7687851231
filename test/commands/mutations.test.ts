/**
 * The shipped pipelines' `expect` blocks catch a broken policy: each deliberate fault of the
 * test-only seam (src/stages/policy/mutations.ts: WATTRACE_TEST_MUTATION) makes `wattrace compare`
 * exit 1 on a pipeline whose expectations all hold without it (test/core/metrics.test.ts).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/commands/generate.js';
import { bufferIO } from '../../src/commands/io.js';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { tmpDir } from '../helpers.js';

const root = tmpDir('wattrace-mutations-');
const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');

function compare(pipeline: string, mutation?: string) {
  const env = { ...process.env, WATTRACE_TEST_MUTATION: mutation ?? '' };
  const db = path.join(root, `${pipeline}-${mutation ?? 'none'}.sqlite`);
  return spawnSync(process.execPath, [CLI, 'compare', path.join(root, 'pipelines', `${pipeline}.json`), '--db', db], { env, encoding: 'utf8' });
}

describe('the expectations of the shipped pipelines catch broken policies', () => {
  beforeAll(() => {
    fs.mkdirSync(path.join(root, 'pipelines'));
    for (const p of ['paper-fig8', 'paper-fig9', 'mixed-load']) fs.copyFileSync(path.join(PROJECT_ROOT, 'pipelines', `${p}.json`), path.join(root, 'pipelines', `${p}.json`));
    for (const s of ['paper-fig8', 'paper-fig9', 'mixed-load']) generate({ scenario: s, out: path.join(root, 'fixtures', s), seed: 1 }, bufferIO());
  }, 60_000);

  const cases: [string, string, RegExp][] = [
    ['disk-sign', 'paper-fig8', /BROKEN {2}disk\.vm2\.settled_mean_watts \(base\)/],
    ['truncate-closed', 'paper-fig8', /BROKEN {2}disk\.vm1\.demand/],
    ['stride-direction', 'paper-fig9', /BROKEN {2}cpu\.guest\.settled_mean_watts \(base\)/],
    ['stride-direction', 'mixed-load', /BROKEN {2}cpu\.db\.settled_mean_watts \(adaptive\)/],
    ['ignore-container-budgets', 'paper-fig9', /BROKEN {2}container\.guest\.bzip2-a\.mean_watts \(guest-level\)/],
  ];
  for (const [mutation, pipeline, broken] of cases) {
    it(`${mutation} breaks ${pipeline}: exit 1`, () => {
      const r = compare(pipeline, mutation);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stdout).toMatch(broken);
    }, 60_000);
  }
});
