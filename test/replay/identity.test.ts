/**
 * Every result identical across reader, runner and store changes (issue 17): the shipped
 * pipelines (demo with its variants, Figures 7–9, mixed-load) and the bench traces (full
 * accounting, and host-strides with limits) are replayed through the compiled CLI, and their
 * energy (summed per key and interval: rows of one key may be split), metrics and policy tables
 * are compared with snapshots taken from the code before the byte-level reader
 * (test/golden/identity/*.json.gz, commit 8e54580), to 1e-12 relative.
 *
 * The snapshots are a record of what an earlier implementation computed, not a definition of
 * right: the hand-derived tests elsewhere say what is right. A deliberate change of semantics
 * rewrites them: WATTRACE_WRITE_GOLDEN=1 npx vitest run test/replay/identity.test.ts, and the
 * commit says why.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/commands/generate.js';
import { bufferIO } from '../../src/commands/io.js';
import { FULL_ACCOUNTING, writeBenchCswitch, writeBenchDisk, writeBenchPipeline } from '../../src/bench/traces.js';
import { relDiff, tmpDir } from '../helpers.js';

const ROOT = path.resolve(__dirname, '..', '..');
const GOLDEN = path.join(ROOT, 'test', 'golden', 'identity');
const WRITE = process.env['WATTRACE_WRITE_GOLDEN'] === '1';
const dir = tmpDir('wattrace-identity-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

type Row = (string | number | null)[];
interface Dump {
  [table: string]: Row[];
}

/** The tables of one run, canonical: rows sorted by their key columns, energy summed per key. */
function dump(db: string, runId: number): Dump {
  const d = new Database(db, { readonly: true });
  try {
    const q = (sql: string) => (d.prepare(sql).raw(true).all(runId) as Row[]);
    return {
      energy: q(
        'SELECT t0_ns, t1_ns, consumer, container, via, device, kind, sum(joules) FROM energy WHERE run_id = ? GROUP BY t0_ns, t1_ns, consumer, container, via, device, kind ORDER BY t0_ns, t1_ns, consumer, container, via, device, kind',
      ),
      metrics: q('SELECT name, value FROM metrics WHERE run_id = ? ORDER BY name'),
      virtual_counters: q('SELECT t0_ns, t1_ns, vm, event, sum(advance) FROM virtual_counters WHERE run_id = ? GROUP BY t0_ns, t1_ns, vm, event ORDER BY t0_ns, t1_ns, vm, event'),
      cpu_policy: q('SELECT t_ns, vm, share, limit_watts, watts, work_s, backlog_s FROM cpu_policy WHERE run_id = ? ORDER BY t_ns, vm'),
      disk_policy: q('SELECT t_ns, vm, throttle, budget, limit_watts, watts, requests, bytes, backlog FROM disk_policy WHERE run_id = ? ORDER BY t_ns, vm'),
      containers: q('SELECT t_ns, vm, container, limit_watts, watts, work_s, preempted_ns FROM containers WHERE run_id = ? ORDER BY t_ns, vm, container'),
    };
  } finally {
    d.close();
  }
}

function replay(pipeline: string, db: string, variant?: string): number {
  execFileSync(process.execPath, [path.join(ROOT, 'dist', 'cli.js'), 'replay', pipeline, '--db', db, '--quiet', ...(variant ? ['--variant', variant] : [])], { encoding: 'utf8' });
  const d = new Database(db, { readonly: true });
  try {
    return (d.prepare('SELECT max(run_id) AS id FROM runs').get() as { id: number }).id;
  } finally {
    d.close();
  }
}

/**
 * cpu_policy rows of a VM with no limit, no work, no energy and no backlog in a period are no
 * longer written (store.sql, issue 17): the snapshots, taken before, have them.
 */
const silent = (r: Row) => r[3] === null && r[4] === 0 && r[5] === 0 && r[6] === 0;

/** Where `a` and `b` differ beyond 1e-12 relative (numbers) or at all (text, NULL), first few. */
function differences(before: Dump, b: Dump): string[] {
  const a: Dump = { ...before, cpu_policy: (before['cpu_policy'] ?? []).filter((r) => !silent(r)) };
  const out: string[] = [];
  if ((b['cpu_policy'] ?? []).some(silent)) out.push('cpu_policy has a row without limit, work, energy or backlog');
  for (const table of Object.keys(a)) {
    const ra = a[table]!;
    const rb = b[table] ?? [];
    if (ra.length !== rb.length) out.push(`${table}: ${ra.length} rows before, ${rb.length} now`);
    for (let i = 0; i < Math.min(ra.length, rb.length) && out.length < 10; i++) {
      const x = ra[i]!;
      const y = rb[i]!;
      const same = x.length === y.length && x.every((v, k) => (typeof v === 'number' && typeof y[k] === 'number' ? relDiff(v, y[k] as number) <= 1e-12 : v === y[k]));
      if (!same) out.push(`${table} row ${i + 1}: ${JSON.stringify(x)} before, ${JSON.stringify(y)} now`);
    }
  }
  return out;
}

/**
 * Keys written in more than one row for one interval, beyond those the design splits (first few).
 */
function splitRows(db: string): string[] {
  const d = new Database(db, { readonly: true });
  try {
    const rows = d
      .prepare(
        `SELECT t0_ns, consumer, container, via, device, kind, count(*) AS n FROM energy WHERE run_id = (SELECT max(run_id) FROM runs)
         GROUP BY t0_ns, consumer, container, via, device, kind HAVING n > 1 ORDER BY n DESC LIMIT 20`,
      )
      .all() as { t0_ns: number; consumer: string; container: string | null; via: string | null; device: string; kind: string; n: number }[];
    return rows.map((r) => `${r.t0_ns} ${r.consumer} ${r.container} ${r.via} ${r.device} ${r.kind}: ${r.n} rows`);
  } finally {
    d.close();
  }
}

function check(name: string, pipeline: string, variant?: string): void {
  const db = path.join(dir, `${name}.sqlite`);
  const now = dump(db, replay(pipeline, db, variant));
  const file = path.join(GOLDEN, `${name}.json.gz`);
  if (WRITE) {
    fs.writeFileSync(file, zlib.gzipSync(JSON.stringify(now), { level: 9 }));
    return;
  }
  if (!fs.existsSync(file)) throw new Error(`no snapshot ${path.relative(ROOT, file)} (write it with WATTRACE_WRITE_GOLDEN=1)`);
  const before = JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString()) as Dump;
  expect(differences(before, now)).toEqual([]);
  expect(now['energy']!.length).toBeGreaterThan(0);
  expect(splitRows(db)).toEqual([]);
}

describe('results identical to the snapshots of the earlier implementation', () => {
  // The shipped pipelines over their fixtures (generated with the default seed, as
  // `npm run fixtures` does) in a scratch tree laid out like the repository.
  beforeAll(() => {
    fs.mkdirSync(path.join(dir, 'pipelines'));
    for (const p of ['demo', 'paper-fig7', 'paper-fig8', 'paper-fig9', 'mixed-load']) fs.copyFileSync(path.join(ROOT, 'pipelines', `${p}.json`), path.join(dir, 'pipelines', `${p}.json`));
    fs.cpSync(path.join(ROOT, 'fixtures', 'demo'), path.join(dir, 'fixtures', 'demo'), { recursive: true });
    for (const s of ['paper-fig7', 'paper-fig8', 'paper-fig9', 'mixed-load']) generate({ scenario: s, out: path.join(dir, 'fixtures', s), seed: 1 }, bufferIO());
  }, 120_000);

  const cases: [string, string, string?][] = [
    ['demo', 'demo.json'],
    ['demo-coarse', 'demo.json', 'coarse'],
    ['demo-per-byte', 'demo.json', 'per-byte'],
    ['paper-fig7', 'paper-fig7.json'],
    ['paper-fig8', 'paper-fig8.json'],
    ['paper-fig9', 'paper-fig9.json'],
    ['paper-fig9-guest-level', 'paper-fig9.json', 'guest-level'],
    ['mixed-load', 'mixed-load.json'],
  ];
  for (const [name, file, variant] of cases) {
    it(name, () => check(name, path.join(dir, 'pipelines', file), variant), 120_000);
  }

  it('the bench traces: full accounting and host-strides with limits', () => {
    const cswitch = path.join(dir, 'cswitch.csv');
    const disk = path.join(dir, 'disk.csv');
    writeBenchCswitch(cswitch, 150_000);
    writeBenchDisk(disk, 150_000);
    check('bench-full', writeBenchPipeline(dir, 'bench-full', { cswitch, disk, stages: FULL_ACCOUNTING }));
    const policy = { cpu: { period_ms: 100, start_s: 10, limits_watts: { vm1: 10, vm2: 5 } } };
    check('bench-strides', writeBenchPipeline(dir, 'bench-strides', { cswitch, stages: ['cpu-split', 'host-strides'], policy }));
  }, 300_000);
});
