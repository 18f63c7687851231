/**
 * Databases written by earlier layouts are migrated in place, in the transaction of the run that
 * opens them, never refused and never damaged (DESIGN §3). test/golden/stores/schema-v1.sqlite
 * was written by wattrace at schema 1 (commit 1bcdeca: two demo runs, variants coarse and
 * per-byte at 1 s intervals); schema-v2.sqlite by the last layout before labels (schema 2, commit
 * 9795853: demo runs base and per-byte at 100 ms). They are copied, never written.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { SCHEMA_VERSION } from '../../src/store/store.js';
import { cli, sha256File, tmpDir } from '../helpers.js';

const V1 = path.join(PROJECT_ROOT, 'test', 'golden', 'stores', 'schema-v1.sqlite');
const V2 = path.join(PROJECT_ROOT, 'test', 'golden', 'stores', 'schema-v2.sqlite');
const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');

/** `f` over the database opened read-only, closed after. */
function reading<T>(file: string, f: (d: Database.Database) => T): T {
  const d = new Database(file, { readonly: true });
  try {
    return f(d);
  } finally {
    d.close();
  }
}

/**
 * Every row of every run table for runs 1 and 2, in a stable order; of `runs` the columns of the
 * old layout (`runsColumns`), as a later one adds columns.
 */
const earlierRuns = (file: string, runsColumns = '*'): Record<string, unknown[]> =>
  reading(file, (d) => {
    const out: Record<string, unknown[]> = {};
    for (const t of ['runs', 'energy', 'metrics', 'virtual_counters', 'cpu_policy', 'disk_policy', 'containers']) {
      out[t] = d.prepare(`SELECT ${t === 'runs' ? runsColumns : '*'} FROM ${t} WHERE run_id <= 2 ORDER BY ${t === 'runs' ? 'run_id' : 'rowid'}`).all();
    }
    out['energy_matrix'] = d.prepare('SELECT * FROM energy_matrix WHERE run_id <= 2 ORDER BY run_id, consumer, via, device, kind').all();
    return out;
  });

/** The columns of `runs` in a database, comma-separated. */
const runsColumns = (file: string) => reading(file, (d) => (d.prepare("SELECT name FROM pragma_table_info('runs')").all() as { name: string }[]).map((r) => r.name).join(', '));

const labelsOf = (file: string) => reading(file, (d) => (d.prepare('SELECT labels FROM runs ORDER BY run_id').all() as { labels: string }[]).map((r) => JSON.parse(r.labels) as unknown));

const version = (file: string) =>
  reading(file, (d) => ({
    v: d.pragma('user_version', { simple: true }) as number,
    indexes: (d.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name),
  }));

describe('schema migration', () => {
  it('a schema-1 database gets a new run and is migrated, its earlier runs unchanged', async () => {
    const db = path.join(tmpDir(), 'old.sqlite');
    fs.copyFileSync(V1, db);
    expect(version(db)).toEqual({ v: 1, indexes: ['energy_by_key', 'virtual_counters_by_vm'] });
    const cols = runsColumns(db);
    const before = earlierRuns(db, cols);
    expect((before['energy'] as unknown[]).length).toBeGreaterThan(100);
    // Read-only commands read it as it is, without migrating.
    const m = await cli(['matrix', '--db', db, '--run', '1']);
    expect(m.code, m.err).toBe(0);
    expect(sha256File(db)).toBe(sha256File(V1));

    const r = await cli(['replay', demo, '--db', db, '--quiet']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^run 3: /);
    expect(version(db)).toEqual({ v: SCHEMA_VERSION, indexes: ['energy_by_time', 'virtual_counters_by_time'] });
    expect(earlierRuns(db, cols)).toEqual(before);
    expect(labelsOf(db)).toEqual([{}, {}, {}]);
    const m2 = await cli(['matrix', '--db', db, '--run', '1']);
    expect(m2.out).toBe(m.out);
  });

  it('a schema-2 database (the last layout before labels) takes a labelled run; its runs unchanged, with no labels', async () => {
    const db = path.join(tmpDir(), 'v2.sqlite');
    fs.copyFileSync(V2, db);
    expect(version(db).v).toBe(2);
    expect(runsColumns(db)).not.toContain('labels');
    const cols = runsColumns(db);
    const before = earlierRuns(db, cols);
    expect((before['energy'] as unknown[]).length).toBeGreaterThan(1000);
    const m = await cli(['matrix', '--db', db, '--run', '2']);
    expect(m.code, m.err).toBe(0);
    expect(sha256File(db)).toBe(sha256File(V2));

    const r = await cli(['replay', demo, '--db', db, '--quiet', '--label', 'host=node17', '--label', 'rack=b4']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^run 3: /);
    expect(version(db)).toEqual({ v: SCHEMA_VERSION, indexes: ['energy_by_time', 'virtual_counters_by_time'] });
    expect(earlierRuns(db, cols)).toEqual(before);
    expect(labelsOf(db)).toEqual([{}, {}, { host: 'node17', rack: 'b4' }]);
    expect((await cli(['matrix', '--db', db, '--run', '2'])).out).toBe(m.out);
    expect((await cli(['matrix', '--db', db, '--run', '3'])).out).toMatch(/^Energy matrix: run 3, pipeline 'demo', variant 'base', [\d.]+ s, labels host=node17, rack=b4\n/);
  });

  it('a run that fails on a schema-1 database leaves it byte for byte as it was, at schema 1', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'old.sqlite');
    fs.copyFileSync(V1, db);
    // The demo trace with a bad last line: the run has begun (and migrated) when it fails.
    const good = fs.readFileSync(path.join(PROJECT_ROOT, 'fixtures', 'demo', 'cswitch.csv'), 'utf8');
    const n = good.trimEnd().split('\n').length;
    fs.writeFileSync(path.join(dir, 'bad.csv'), `${good}99999999999999999999,0,nosuchvm,0,0,0\n`);
    const r = await cli(['replay', demo, '--db', db, '--trace', `cswitch=${path.join(dir, 'bad.csv')}`]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`bad.csv:${n + 1}:`);
    expect(sha256File(db)).toBe(sha256File(V1));
    expect(version(db).v).toBe(1);
  });
});
