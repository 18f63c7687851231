/**
 * Databases written by earlier layouts are migrated in place, in the transaction of the run that
 * opens them, never refused and never damaged (DESIGN §3). test/golden/stores/schema-v1.sqlite
 * was written by wattrace at schema 1 (commit 1bcdeca: two demo runs, variants coarse and
 * per-byte at 1 s intervals); it is copied, never written.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { SCHEMA_VERSION } from '../../src/store/store.js';
import { cli, sha256File, tmpDir } from '../helpers.js';

const V1 = path.join(PROJECT_ROOT, 'test', 'golden', 'stores', 'schema-v1.sqlite');
const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');

/** Every row of every run table for runs 1 and 2, in a stable order. */
function earlierRuns(file: string): Record<string, unknown[]> {
  const d = new Database(file, { readonly: true });
  try {
    const out: Record<string, unknown[]> = {};
    for (const t of ['runs', 'energy', 'metrics', 'virtual_counters', 'cpu_policy', 'disk_policy', 'containers']) {
      out[t] = d.prepare(`SELECT * FROM ${t} WHERE run_id <= 2 ORDER BY ${t === 'runs' ? 'run_id' : 'rowid'}`).all();
    }
    out['energy_matrix'] = d.prepare('SELECT * FROM energy_matrix WHERE run_id <= 2 ORDER BY run_id, consumer, via, device, kind').all();
    return out;
  } finally {
    d.close();
  }
}

const version = (file: string) => {
  const d = new Database(file, { readonly: true });
  try {
    return { v: d.pragma('user_version', { simple: true }) as number, indexes: (d.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name) };
  } finally {
    d.close();
  }
};

describe('schema migration', () => {
  it('a schema-1 database gets a new run and is migrated, its earlier runs unchanged', async () => {
    const db = path.join(tmpDir(), 'old.sqlite');
    fs.copyFileSync(V1, db);
    expect(version(db)).toEqual({ v: 1, indexes: ['energy_by_key', 'virtual_counters_by_vm'] });
    const before = earlierRuns(db);
    expect((before['energy'] as unknown[]).length).toBeGreaterThan(100);
    // Read-only commands read it as it is, without migrating.
    const m = await cli(['matrix', '--db', db, '--run', '1']);
    expect(m.code, m.err).toBe(0);
    expect(sha256File(db)).toBe(sha256File(V1));

    const r = await cli(['replay', demo, '--db', db, '--quiet']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^run 3: /);
    expect(version(db)).toEqual({ v: SCHEMA_VERSION, indexes: ['energy_by_time', 'virtual_counters_by_time'] });
    expect(earlierRuns(db)).toEqual(before);
    const m2 = await cli(['matrix', '--db', db, '--run', '1']);
    expect(m2.out).toBe(m.out);
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
