/**
 * A signal that arrives while a run (or compare's import) commits. The commit is synchronous, so
 * the signal cannot be acted on during it; before, no handler was installed by then and the
 * default action killed the process mid-commit (a journal or a half-made new database left
 * behind). Now the handler stays installed through the commit: the commit completes, and the
 * process ends with 130 and a line that says what was stored.
 *
 * The signal is sent from inside the commit (the writer's `commit` wrapped in the child process),
 * so the timing is exact rather than a race with a 40 ms window.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { sha256File, tmpDir } from '../helpers.js';

const dist = (f: string) => pathToFileURL(path.join(PROJECT_ROOT, 'dist', f)).href;
const dir = tmpDir('wattrace-commit-signal-');
const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');

/**
 * A CLI whose `method` of `cls` (in dist/`module`) first sends the process SIGINT and spins 100 ms
 * (the signal is then pending), then does its work.
 */
function signalling(module: string, cls: string, method: string): string {
  const file = path.join(dir, `${cls}-${method}.mjs`);
  fs.writeFileSync(
    file,
    `import * as m from ${JSON.stringify(dist(module))};
import { main } from ${JSON.stringify(dist('cli.js'))};
const C = m[${JSON.stringify(cls)}];
const orig = C.prototype[${JSON.stringify(method)}];
C.prototype[${JSON.stringify(method)}] = function (...a) {
  process.kill(process.pid, 'SIGINT');
  const t = Date.now();
  while (Date.now() - t < 100);
  return orig.apply(this, a);
};
process.exitCode = await main(process.argv.slice(2));
`,
  );
  return file;
}

function runs(db: string): { run_id: number; finished: number }[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare('SELECT run_id, finished_at IS NOT NULL AS finished FROM runs ORDER BY run_id').all() as { run_id: number; finished: number }[];
  } finally {
    d.close();
  }
}

describe('a signal during the commit', () => {
  beforeAll(() => {
    expect(fs.existsSync(path.join(PROJECT_ROOT, 'dist', 'cli.js')), 'built CLI (npm run build)').toBe(true);
  });

  for (const [name, module, cls, env] of [
    ['on the main thread', 'store/store.js', 'RunWriter', { WATTRACE_THREADS: '0' }],
    ['on the writer thread', 'store/threaded.js', 'ThreadedRunWriter', { WATTRACE_THREADS: '1' }],
  ] as const) {
    it(`replay, ${name}: the commit completes, exit 130, the line says the run was stored, no journal`, () => {
      const db = path.join(dir, `replay-${cls}.sqlite`);
      const r = spawnSync(process.execPath, [signalling(module, cls, 'commit'), 'replay', demo, '--db', db, '--quiet'], { encoding: 'utf8', env: { ...process.env, ...env } });
      expect(r.status, r.stderr).toBe(130);
      expect(r.stderr.trim().split('\n')).toEqual([`wattrace: interrupted (SIGINT): run 1 was stored in ${db} before it`]);
      expect(runs(db)).toEqual([{ run_id: 1, finished: 1 }]);
      expect(fs.existsSync(`${db}-journal`)).toBe(false);
    }, 30_000);
  }

  it('compare, during the import into --db: rolled back, exit 130, no run added, no scratch left', () => {
    const db = path.join(dir, 'compare-import.sqlite');
    expect(spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'cli.js'), 'replay', demo, '--db', db, '--quiet']).status).toBe(0);
    const before = sha256File(db);
    const tmp = tmpDir('wattrace-compare-tmp-');
    const r = spawnSync(process.execPath, [signalling('store/store.js', 'RunImport', 'copy'), 'compare', demo, '--db', db], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });
    expect(r.status, r.stderr).toBe(130);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`wattrace: interrupted (SIGINT): no run was added; ${db} is as it was`);
    expect(sha256File(db)).toBe(before);
    expect(fs.existsSync(`${db}-journal`)).toBe(false);
    expect(fs.readdirSync(tmp)).toEqual([]);
  }, 60_000);

  it('compare, during the commit of the import: the runs are stored and the line says which', () => {
    const db = path.join(dir, 'compare-commit.sqlite');
    const tmp = tmpDir('wattrace-compare-tmp-');
    const r = spawnSync(process.execPath, [signalling('store/store.js', 'RunImport', 'commit'), 'compare', demo, '--db', db], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });
    expect(r.status, r.stderr).toBe(130);
    const ids = runs(db).map((x) => x.run_id);
    expect(ids.length).toBeGreaterThan(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`wattrace: interrupted (SIGINT): runs ${ids.join(', ')} were stored in ${db} before it`);
    expect(runs(db).every((x) => x.finished === 1)).toBe(true);
    expect(fs.existsSync(`${db}-journal`)).toBe(false);
    expect(fs.readdirSync(tmp)).toEqual([]);
  }, 60_000);
});
