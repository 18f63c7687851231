/**
 * A fleet of 20 generated hosts (paper-fig8 machines, seeds 1–20, labels host=h01…h20), each
 * replayed by its own `compare` process (base and `tight`), two at a time; the 20 stores exported
 * into one Parquet dataset (in two exports: the second appends). DuckDB, reading the dataset,
 * must give the fleet totals per VM and device that the 20 SQLite stores give (read with
 * better-sqlite3, summed here), and per host the same variant deltas as each host's `compare`.
 * hyparquet, a second Parquet reader, checks the files' types and values on its own. Then bad
 * input: labels, a folder holding something else, a failure half-way through moving files in.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFleet, type FleetHost } from '../../src/bench/fleet.js';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { cli, relDiff, tmpDir, folderSnapshot } from '../helpers.js';

const HOSTS = 20;

const snapshot = folderSnapshot;

describe('a fleet of 20 hosts: replayed in parallel, exported to Parquet, queried with DuckDB', () => {
  const root = tmpDir('wattrace-fleet-');
  const out = path.join(root, 'dataset');
  let fleet: FleetHost[] = [];
  let duck: DuckDBConnection;
  const rows = async (sql: string) => (await duck.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];
  const glob = (table: string) => `read_parquet('${path.join(out, table, '**', '*.parquet')}', hive_partitioning = true, union_by_name = true)`;

  beforeAll(async () => {
    fleet = await makeFleet(root, HOSTS, 6, 2);
    // Half first, then all: the second export appends the other half and skips the first.
    const first = await cli(['export', '--db', ...fleet.slice(0, 10).map((h) => h.db), '--out', out]);
    expect(first.code, first.err).toBe(0);
    expect(first.out).toMatch(/^exported 20 runs of 10 databases/);
    const before = snapshot(out);
    const all = await cli(['export', '--db', ...fleet.map((h) => h.db), '--out', out]);
    expect(all.code, all.err).toBe(0);
    expect(all.out).toMatch(/^exported 20 runs of 20 databases .*; 20 already in the dataset/);
    // Appending rewrote nothing: every earlier file is still there, byte for byte.
    const after = snapshot(out);
    for (const [f, b] of Object.entries(before)) expect(after[f], f).toBe(b);
    duck = await (await DuckDBInstance.create(':memory:')).connect();
  }, 300_000);

  it('fleet totals per VM and device, per variant, equal the sums over the 20 SQLite stores', async () => {
    const want = new Map<string, number>();
    for (const h of fleet) {
      const d = new Database(h.db, { readonly: true });
      for (const r of d.prepare('SELECT r.variant, e.consumer, e.device, sum(e.joules) AS j FROM energy e JOIN runs r USING (run_id) GROUP BY 1, 2, 3').all() as { variant: string; consumer: string; device: string; j: number }[]) {
        const k = `${r.variant}|${r.consumer}|${r.device}`;
        want.set(k, (want.get(k) ?? 0) + r.j);
      }
      d.close();
    }
    const got = await rows(`SELECT variant, consumer, device, sum(joules) AS j, count(DISTINCT host) AS hosts FROM ${glob('energy')} GROUP BY ALL`);
    expect(got.length).toBe(want.size);
    // Both devices and the driver's charged energy are there (the question a fleet asks).
    expect(new Set(got.map((r) => r['device']))).toEqual(new Set(['cpu', 'disk']));
    for (const r of got) {
      const k = `${r['variant']}|${r['consumer']}|${r['device']}`;
      expect(want.has(k), k).toBe(true);
      expect(relDiff(r['j'] as number, want.get(k)!), k).toBeLessThan(1e-9);
      expect(Number(r['hosts'])).toBe(HOSTS);
    }
  });

  it('per host, the variant deltas of a SQL query over the dataset equal each host’s compare', async () => {
    const got = await rows(
      `SELECT host, name, max(value) FILTER (WHERE variant = 'tight') - max(value) FILTER (WHERE variant = 'base') AS delta
       FROM ${glob('metrics')} GROUP BY host, name`,
    );
    expect(new Set(got.map((r) => r['host']))).toEqual(new Set(fleet.map((h) => h.host)));
    let checked = 0;
    for (const h of fleet) {
      for (const [name, v] of Object.entries(h.metrics)) {
        if (v['base'] === undefined || v['tight'] === undefined) continue;
        const row = got.find((r) => r['host'] === h.host && r['name'] === name);
        expect(row, `${h.host} ${name}`).toBeDefined();
        const want = v['tight'] - v['base'];
        expect(Math.abs((row!['delta'] as number) - want), `${h.host} ${name}`).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(v['base'])));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(HOSTS * 20);
    // The limits differ, so the disk policy's figures differ between the variants on some host.
    expect(got.some((r) => String(r['name']).startsWith('disk.') && Math.abs(r['delta'] as number) > 1e-6)).toBe(true);
  });

  it('columns keep their types (ns as BIGINT, exact), labels are columns, run_uid tells runs apart', async () => {
    const types = Object.fromEntries((await rows(`DESCRIBE SELECT * FROM ${glob('energy')}`)).map((r) => [r['column_name'], r['column_type']]));
    expect(types).toMatchObject({ run_uid: 'VARCHAR', run_id: 'BIGINT', t0_ns: 'BIGINT', t1_ns: 'BIGINT', joules: 'DOUBLE', consumer: 'VARCHAR', host: 'VARCHAR', pipeline: 'VARCHAR', variant: 'VARCHAR' });
    // A table without rows (no host-strides here) is a folder with an empty file: readers find its columns.
    const [empty] = await rows(`SELECT count(*) AS n FROM ${glob('cpu_policy')}`);
    expect(Number(empty!['n'])).toBe(0);
    expect((await rows(`DESCRIBE SELECT * FROM ${glob('cpu_policy')}`)).map((r) => r['column_name'])).toEqual(expect.arrayContaining(['t_ns', 'vm', 'share', 'backlog_s', 'host', 'pipeline', 'variant']));
    const [runs] = await rows(`SELECT count(*) AS n, count(DISTINCT run_uid) AS uids, count(DISTINCT host) AS hosts FROM ${glob('runs')}`);
    expect([Number(runs!['n']), Number(runs!['uids']), Number(runs!['hosts'])]).toEqual([HOSTS * 2, HOSTS * 2, HOSTS]);
    // hyparquet, another reader: one host's energy file, row for row against its store.
    const file = path.join(out, 'energy', 'pipeline=fleet-disk', 'variant=base');
    const parts = fs.readdirSync(file).filter((f) => f.endsWith('.parquet'));
    const buf = fs.readFileSync(path.join(file, parts[0]!));
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const meta = parquetMetadata(ab);
    const t1 = meta.schema.find((s) => s.name === 't1_ns')!;
    expect(t1.type).toBe('INT64');
    const objs = (await parquetReadObjects({ file: ab, columns: ['host', 'run_id', 't0_ns', 't1_ns', 'consumer', 'device', 'kind', 'joules'] })) as Record<string, unknown>[];
    const h = objs[0]!['host'] as string;
    const d = new Database(fleet.find((x) => x.host === h)!.db, { readonly: true });
    const want = d.prepare("SELECT e.run_id, e.t0_ns, e.t1_ns, consumer, device, kind, joules FROM energy e JOIN runs r USING (run_id) WHERE r.variant = 'base' ORDER BY e.rowid").safeIntegers(true).all() as Record<string, unknown>[];
    d.close();
    const mine = objs.filter((o) => o['host'] === h);
    expect(mine.length).toBe(want.length);
    for (let i = 0; i < want.length; i += 97) {
      expect(mine[i]!['t0_ns']).toBe(want[i]!['t0_ns']);
      expect(mine[i]!['t1_ns']).toBe(want[i]!['t1_ns']);
      expect(mine[i]!['consumer']).toBe(want[i]!['consumer']);
      expect(mine[i]!['joules']).toBe(Number(want[i]!['joules']));
    }
  });

  it('bad input: a label without =, a key twice, a folder holding something else: exit 2, nothing written', async () => {
    const h = fleet[0]!;
    const db = path.join(root, 'bad.sqlite');
    for (const [args, says] of [
      [['--label', 'host'], /--label 'host': expected KEY=VALUE/],
      [['--label', 'host=a', '--label', 'host=b'], /--label host is given twice \('a' and 'b'\)/],
      [['--label', '1x=a'], /the key '1x' is not a column name/],
      [['--label', 'Host=a'], /the key 'Host' is not a column name \(lower-case/],
      [['--label', 'date=2026-12-01'], /'date' is a reserved word in SQL .* \(e\.g\. run_date\)/],
    ] as const) {
      const r = await cli(['replay', path.join(h.dir, 'fleet.json'), '--db', db, '--quiet', ...args]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(says);
      expect(fs.existsSync(db)).toBe(false);
    }
    const other = path.join(root, 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'notes.txt'), 'mine');
    const r = await cli(['export', '--db', h.db, '--out', other]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/other: holds something other than a wattrace dataset \(e\.g\. 'notes\.txt'/);
    expect(fs.readdirSync(other)).toEqual(['notes.txt']);
    const e = await cli(['export', '--db', h.db, '--out', '']);
    expect(e.code).toBe(2);
    expect(e.err).toMatch(/--out needs a folder/);
    // The staging folder of a killed export (its process gone) is removed, not taken for foreign content.
    const killed = path.join(root, 'killed');
    fs.mkdirSync(path.join(killed, '.export-999999-1', 'energy'), { recursive: true });
    fs.writeFileSync(path.join(killed, '.export-999999-1', 'work.duckdb'), 'half');
    const k = await cli(['export', '--db', h.db, '--out', killed]);
    expect(k.code, k.err).toBe(0);
    expect(fs.readdirSync(killed).sort()).toEqual(['_wattrace_dataset.json', 'containers', 'cpu_policy', 'disk_policy', 'energy', 'metrics', 'runs', 'virtual_counters']);
    // A store that is not one: refused before anything is written, the dataset as it was.
    fs.writeFileSync(path.join(root, 'junk.sqlite'), 'not a database');
    const before = snapshot(out);
    const j = await cli(['export', '--db', h.db, path.join(root, 'junk.sqlite'), '--out', out]);
    expect(j.code).toBe(2);
    expect(snapshot(out)).toEqual(before);
  });

  it('deploy/replay-host.sh, as a job array runs it (one host twice), and the DuckDB queries of docs/fleet.md over the result', async () => {
    const hostsFile = path.join(root, 'hosts.txt');
    fs.writeFileSync(hostsFile, 'h01\nh02\n');
    const shared = path.join(root, 'shared-dataset');
    const env = {
      ...process.env,
      HOSTS_FILE: hostsFile,
      TRACES_URI: root,
      DATASET_URI: shared,
      PIPELINE: path.join(fleet[0]!.dir, 'fleet.json'),
      RUN_DATE: '2026-12-01',
      WATTRACE: `${process.execPath} ${path.join(PROJECT_ROOT, 'dist', 'cli.js')}`,
    };
    // h01 is replayed twice (a retried task): its runs are in the dataset twice.
    for (const index of ['0', '1', '0']) {
      const r = spawnSync('bash', [path.join(PROJECT_ROOT, 'deploy', 'replay-host.sh'), index], { env, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/replay-host: h0\d done \(compare exit 0\)/);
    }
    // The documented DuckDB statements, verbatim but for the dataset's place.
    const doc = fs.readFileSync(path.join(PROJECT_ROOT, 'docs', 'fleet.md'), 'utf8');
    const sql = /### DuckDB[^\n]*\n+```sql\n([\s\S]*?)```/.exec(doc)![1]!.replaceAll('s3://example-results/wattrace', shared);
    const statements = sql.split(/;\s*\n/).map((x) => x.replace(/^\s*--.*$/gm, '').trim()).filter((x) => x !== '');
    expect(statements.filter((x) => x.startsWith('SELECT'))).toHaveLength(3);
    const c = await (await DuckDBInstance.create(':memory:')).connect();
    const results: Record<string, unknown>[][] = [];
    for (const st of statements) {
      const r = await c.runAndReadAll(st);
      if (st.startsWith('SELECT')) results.push(r.getRowObjectsJS() as Record<string, unknown>[]);
    }
    const [perVm, perDevice, deltas] = results as [Record<string, unknown>[], Record<string, unknown>[], Record<string, unknown>[]];
    const two = fleet.slice(0, 2);
    const want = new Map<string, number>();
    const wantDevice = new Map<string, number>();
    for (const h of two) {
      const d = new Database(h.db, { readonly: true });
      for (const w of d.prepare("SELECT consumer, via, device, kind, sum(joules) AS j FROM energy JOIN runs USING (run_id) WHERE variant = 'base' AND container IS NULL GROUP BY 1, 2, 3, 4").all() as { consumer: string; via: string | null; device: string; kind: string; j: number }[]) {
        const k = `${h.host}|${w.consumer}|${w.via}`;
        want.set(k, (want.get(k) ?? 0) + w.j);
        wantDevice.set(`${w.device}|${w.kind}`, (wantDevice.get(`${w.device}|${w.kind}`) ?? 0) + w.j);
      }
      d.close();
    }
    expect(perVm.length).toBe(want.size);
    for (const r of perVm) expect(relDiff(r['joules'] as number, want.get(`${r['host']}|${r['consumer']}|${r['via']}`)!), JSON.stringify(r)).toBeLessThan(1e-9);
    expect(perDevice.length).toBe(wantDevice.size);
    for (const r of perDevice) expect(relDiff((r['kwh'] as number) * 3.6e6, wantDevice.get(`${r['device']}|${r['kind']}`)!)).toBeLessThan(1e-9);
    let n = 0;
    for (const r of deltas) {
      const m = two.find((h) => h.host === r['host'])!.metrics[r['name'] as string]!;
      // A metric one variant lacks (a settle time never reached) has no delta.
      if (m['tight'] === undefined || m['base'] === undefined) {
        expect(r['delta']).toBeNull();
        continue;
      }
      expect(Math.abs((r['delta'] as number) - (m['tight'] - m['base']))).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(m['base'])));
      n++;
    }
    expect(n).toBeGreaterThan(4);
  });

  it('an export that fails half-way through moving its files in leaves the dataset as it was', async () => {
    const ds = path.join(root, 'half');
    expect((await cli(['export', '--db', fleet[0]!.db, '--out', ds])).code).toBe(0);
    // A store of another pipeline (new partition folders), and a file where the export must make
    // the metrics table's: runs and energy are moved in, with their new folders, before it fails.
    const demoDb = path.join(root, 'demo.sqlite');
    expect((await cli(['replay', path.join(PROJECT_ROOT, 'pipelines', 'demo.json'), '--db', demoDb, '--quiet'])).code).toBe(0);
    fs.writeFileSync(path.join(ds, 'metrics', 'pipeline=demo'), 'in the way');
    const before = snapshot(ds);
    const r = await cli(['export', '--db', demoDb, '--out', ds]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/pipeline=demo.*cannot move the export's files into the dataset/);
    expect(snapshot(ds)).toEqual(before);
    expect(fs.existsSync(path.join(ds, 'runs', 'pipeline=demo'))).toBe(false);
  });
});
