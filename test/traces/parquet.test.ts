/**
 * Parquet traces: the demo's traces written as Parquet by DuckDB replay to the same energy rows as
 * the CSV ones (timestamps above 2^53 too); the run records the Parquet file; a bad value is
 * located by row and column; a file that is not readable Parquet, or lacks a column, is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { cli, sha256File, tmpDir } from '../helpers.js';

const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');
const CSW = path.join(PROJECT_ROOT, 'fixtures', 'demo', 'cswitch.csv');
const DISK = path.join(PROJECT_ROOT, 'fixtures', 'demo', 'disk.csv');

function energy(db: string): unknown[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare('SELECT t0_ns, t1_ns, consumer, via, device, kind, joules FROM energy ORDER BY rowid').all();
  } finally {
    d.close();
  }
}

describe('Parquet traces', () => {
  const dir = tmpDir('wattrace-parquet-');
  const at = (f: string) => path.join(dir, f);
  let c: DuckDBConnection;
  const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

  beforeAll(async () => {
    c = await (await DuckDBInstance.create(':memory:')).connect();
    await c.run(`COPY (SELECT * FROM read_csv(${q(CSW)})) TO ${q(at('cswitch.parquet'))} (FORMAT parquet)`);
    await c.run(`COPY (SELECT * FROM read_csv(${q(DISK)})) TO ${q(at('disk.parquet'))} (FORMAT parquet)`);
  });

  it('replay the same energy rows as their CSV; the run records the Parquet files', async () => {
    const a = await cli(['replay', demo, '--db', at('csv.sqlite'), '--quiet']);
    expect(a.code, a.err).toBe(0);
    const b = await cli(['replay', demo, '--db', at('pq.sqlite'), '--quiet', '--trace', `cswitch=${at('cswitch.parquet')}`, '--trace', `disk=${at('disk.parquet')}`]);
    expect(b.code, b.err).toBe(0);
    expect(b.out).toMatch(/5,000 cswitch rows, 531 disk rows/);
    expect(energy(at('pq.sqlite'))).toEqual(energy(at('csv.sqlite')));
    const d = new Database(at('pq.sqlite'), { readonly: true });
    const inputs = JSON.parse((d.prepare('SELECT inputs FROM runs').get() as { inputs: string }).inputs) as Record<string, { path: string; sha256: string; bytes: number; rows: number }>;
    d.close();
    expect(inputs['cswitch']).toEqual({ path: at('cswitch.parquet'), sha256: sha256File(at('cswitch.parquet')), bytes: fs.statSync(at('cswitch.parquet')).size, rows: 5000 });
    expect(inputs['disk']!.path).toBe(at('disk.parquet'));
  });

  it('timestamps above 2^53 stay exact (INT64 and UINT64)', async () => {
    // Both traces shifted by 2^60 ns: only differences matter, so the energy rows are the same.
    const shift = '1152921504606846976';
    await c.run(`COPY (SELECT * REPLACE (ts_ns::UBIGINT + ${shift}::UBIGINT AS ts_ns) FROM read_csv(${q(CSW)})) TO ${q(at('big.parquet'))} (FORMAT parquet)`);
    await c.run(`COPY (SELECT * REPLACE (ts_ns + ${shift} AS ts_ns) FROM read_csv(${q(DISK)})) TO ${q(at('bigdisk.parquet'))} (FORMAT parquet)`);
    const r = await cli(['replay', demo, '--db', at('big.sqlite'), '--quiet', '--trace', `cswitch=${at('big.parquet')}`, '--trace', `disk=${at('bigdisk.parquet')}`]);
    expect(r.code, r.err).toBe(0);
    expect(energy(at('big.sqlite'))).toEqual(energy(at('csv.sqlite')));
  });

  it('a bad value is an error naming the Parquet file, the row and the column; nothing is stored', async () => {
    await c.run(`COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () = 17 THEN 'nosuchvm' ELSE vm END AS vm) FROM read_csv(${q(CSW)})) TO ${q(at('badvm.parquet'))} (FORMAT parquet)`);
    const r = await cli(['replay', demo, '--db', at('bad.sqlite'), '--trace', `cswitch=${at('badvm.parquet')}`]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/badvm\.parquet row 17 \(column vm\): unknown VM 'nosuchvm'/);
    expect(fs.existsSync(at('bad.sqlite'))).toBe(false);
    // Timestamps as doubles are not the integers a trace has.
    await c.run(`COPY (SELECT * REPLACE (ts_ns::DOUBLE / 3 AS ts_ns) FROM read_csv(${q(CSW)})) TO ${q(at('double.parquet'))} (FORMAT parquet)`);
    const d = await cli(['replay', demo, '--db', at('bad.sqlite'), '--trace', `cswitch=${at('double.parquet')}`]);
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/double\.parquet row 1 \(column ts_ns\)/);
  });

  it('a name with a comma or a line break is refused naming its row and column (it would split a row)', async () => {
    await c.run(`COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () = 5 THEN 'vm1,x' ELSE vm END AS vm) FROM read_csv(${q(CSW)})) TO ${q(at('comma.parquet'))} (FORMAT parquet)`);
    await c.run(`COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () = 7 THEN 'vm1' || chr(10) || '1,0,vm1,0,0,0' ELSE vm END AS vm) FROM read_csv(${q(CSW)})) TO ${q(at('newline.parquet'))} (FORMAT parquet)`);
    const a = await cli(['replay', demo, '--db', at('bad.sqlite'), '--trace', `cswitch=${at('comma.parquet')}`]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/comma\.parquet row 5 \(column vm\): 'vm1,x' holds a comma or a line break/);
    const b = await cli(['replay', demo, '--db', at('bad.sqlite'), '--trace', `cswitch=${at('newline.parquet')}`]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/newline\.parquet row 7 \(column vm\): 'vm1\\x0a1,0,vm1,0,0,0' holds/);
    expect(fs.existsSync(at('bad.sqlite'))).toBe(false);
  });

  it('a file that is not readable Parquet, or lacks a column, is refused naming it', async () => {
    fs.writeFileSync(at('junk.parquet'), Buffer.concat([Buffer.from('PAR1'), Buffer.alloc(100, 7)]));
    const j = await cli(['replay', demo, '--db', at('bad.sqlite'), '--trace', `cswitch=${at('junk.parquet')}`]);
    expect(j.code).toBe(2);
    expect(j.err).toMatch(/junk\.parquet: a Parquet trace that cannot be read/);
    await c.run(`COPY (SELECT * EXCLUDE (tsc) FROM read_csv(${q(CSW)})) TO ${q(at('notsc.parquet'))} (FORMAT parquet)`);
    const n = await cli(['replay', demo, '--db', at('bad.sqlite'), '--trace', `cswitch=${at('notsc.parquet')}`]);
    expect(n.code).toBe(2);
    expect(n.err).toMatch(/notsc\.parquet.*tsc/);
    expect(fs.existsSync(at('bad.sqlite'))).toBe(false);
  });
});
