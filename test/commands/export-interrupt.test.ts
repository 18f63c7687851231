/**
 * Ctrl-C in the middle of `wattrace export`: a new dataset is not left behind, an earlier one is
 * as it was, file for file; the next export works.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/commands/generate.js';
import { bufferIO } from '../../src/commands/io.js';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { tmpDir, folderSnapshot } from '../helpers.js';

const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');
const dir = tmpDir('wattrace-export-interrupt-');
const big = path.join(dir, 'big.sqlite');
const small = path.join(dir, 'small.sqlite');

const snapshot = folderSnapshot;

/** Runs an export and sends SIGINT once its staging folder exists and it has gone on 300 ms. */
function interrupted(out: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'export', '--db', big, '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const started = Date.now();
    const poll = setInterval(() => {
      const staging = fs.existsSync(out) && fs.readdirSync(out).some((f) => f.startsWith('.export-'));
      if (staging || Date.now() - started > 10_000) {
        clearInterval(poll);
        setTimeout(() => child.kill('SIGINT'), 300);
      }
    }, 20);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('interrupted exports', () => {
  beforeAll(() => {
    // A minute of mixed-load at 1 ms intervals: 450,000 energy rows, an export of several seconds.
    const ml = path.join(dir, 'ml');
    generate({ scenario: 'mixed-load', out: ml, seed: 1, seconds: 60 }, bufferIO());
    const r = spawnSync(process.execPath, [CLI, 'replay', path.join(ml, 'pipeline.json'), '--db', big, '--quiet', '--interval-ms', '1'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const s = spawnSync(process.execPath, [CLI, 'replay', path.join(PROJECT_ROOT, 'pipelines', 'demo.json'), '--db', small, '--quiet'], { encoding: 'utf8' });
    expect(s.status, s.stderr).toBe(0);
  }, 60_000);

  it('into a new folder: exit 130, one line, no folder left', async () => {
    const out = path.join(dir, 'new');
    const r = await interrupted(out);
    expect(r.code).toBe(130);
    expect(r.stderr.trim().split('\n')).toEqual([`wattrace: interrupted (SIGINT): the export was undone; ${out} is as it was`]);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('during a COPY (DuckDB writes the partition folders on its own threads): stopped first, then undone, no folder left', () => {
    // The signal is sent as the energy table's COPY starts (DuckDB's `run` wrapped in the child),
    // so the timing is exact. Before, the undo ran while the COPY went on, and the COPY made its
    // folders again after it.
    const out = path.join(dir, 'copying');
    const child = path.join(dir, 'copy-signal.mjs');
    fs.writeFileSync(
      child,
      `import { createRequire } from 'node:module';
const { DuckDBConnection } = createRequire(${JSON.stringify(path.join(PROJECT_ROOT, 'package.json'))})('@duckdb/node-api');
import { main } from ${JSON.stringify(pathToFileURL(CLI).href)};
const run = DuckDBConnection.prototype.run;
DuckDBConnection.prototype.run = function (sql, ...a) {
  const p = run.call(this, sql, ...a);
  if (/^COPY t TO .*energy'/.test(sql)) process.kill(process.pid, 'SIGINT');
  return p;
};
process.exitCode = await main(['export', '--db', ${JSON.stringify(big)}, '--out', ${JSON.stringify(out)}]);
`,
    );
    const r = spawnSync(process.execPath, [child], { encoding: 'utf8', cwd: PROJECT_ROOT });
    expect(r.stderr.trim().split('\n')).toEqual([`wattrace: interrupted (SIGINT): the export was undone; ${out} is as it was`]);
    expect(r.status).toBe(130);
    expect(fs.existsSync(out) ? fs.readdirSync(out, { recursive: true }) : null).toBeNull();
  });

  it('appending to a dataset: exit 130, the dataset file for file as it was; then an export works', async () => {
    const out = path.join(dir, 'ds');
    expect(spawnSync(process.execPath, [CLI, 'export', '--db', small, '--out', out]).status).toBe(0);
    const before = snapshot(out);
    const r = await interrupted(out);
    expect(r.code).toBe(130);
    expect(snapshot(out)).toEqual(before);
    const again = spawnSync(process.execPath, [CLI, 'export', '--db', big, '--out', out], { encoding: 'utf8' });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^exported 1 run of 1 database/);
  });
});
