/** Validation against measured power: what it compares, and measured samples that miss the run. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { cli, profileOf, sha256File, tmpDir } from '../helpers.js';
import { coveredFraction } from '../../src/stages/validation.js';

describe('validation against measured power', () => {
  const dir = tmpDir();
  // Two CPUs' worth of one CPU logged from 1 s to 3 s (TSC at 1 GHz), 10 W idle, no access energy.
  fs.writeFileSync(path.join(dir, 'm.json'), JSON.stringify(profileOf({ idleWatts: 10 })));
  fs.writeFileSync(path.join(dir, 'c.csv'), 'ts_ns,cpu,vm,tsc,uops\n1000000000,0,a,1000000000,0\n2000000000,0,b,2000000000,0\n3000000000,0,a,3000000000,0\n');
  const measured = (from: number, to: number, w = 10) => {
    const rows = ['ts_ns,device,watts'];
    for (let t = from; t <= to; t += 1e7) rows.push(`${t},cpu,${w}`);
    return rows.join('\n') + '\n';
  };
  const replay = async (name: string, text: string) => {
    fs.writeFileSync(path.join(dir, `${name}.csv`), text);
    const p = path.join(dir, `${name}.json`);
    fs.writeFileSync(p, JSON.stringify({ name, profile: 'm.json', traces: { cswitch: 'c.csv', measured: `${name}.csv` }, stages: ['cpu-split'] }));
    return cli(['replay', p, '--db', path.join(dir, 'db.sqlite'), '--quiet']);
  };

  it('compares where the samples are: 10 W measured, 10 W accounted, MAPE 0', async () => {
    const r = await replay('all', measured(1e9, 3e9));
    expect(r.code, r.err).toBe(0);
    expect(r.err).not.toMatch(/note/);
  });

  it('samples covering part of the run: a note with the covered fraction', async () => {
    const r = await replay('half', measured(2e9, 3e9));
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/half\.csv: the measured samples cover 50\.0 % of the run \(1\.000 s to 2\.000 s of 0\.000 s to 2\.000 s\); the validation compares that part only/);
    // The matrix's error % would set the whole run's mean against the covered part's: left out.
    const m = await cli(['matrix', '--db', path.join(dir, 'db.sqlite')]);
    expect(m.out).toMatch(/\ncpu\s+[\d.]+\s+[\d.]+\s+–\s/);
    expect(m.out).toContain('error % is left out where the samples cover part of the run (cpu: 10 of 20 intervals)');
    const all = await replay('all2', measured(1e9, 3e9));
    expect(all.code).toBe(0);
    expect((await cli(['matrix', '--db', path.join(dir, 'db.sqlite')])).out).not.toContain('error % is left out');
  });

  it('samples that miss the run entirely: exit 2, named, nothing stored', async () => {
    const before = sha256File(path.join(dir, 'db.sqlite'));
    const r = await replay('elsewhere', measured(10e9, 12e9));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/elsewhere\.csv: the measured samples \(9\.000 s to 11\.000 s from the run's base time\) do not overlap the run \(0\.000 s to 2\.000 s\): they validate nothing/);
    expect(sha256File(path.join(dir, 'db.sqlite'))).toBe(before);
    // A year away: the same error. Before, their span counted in the run's planned size, and the
    // error asked for an interval_ms of over a day.
    const far = await replay('far', measured(3.16e16, 3.16e16 + 2e9));
    expect(far.code).toBe(2);
    expect(far.err).toMatch(/far\.csv: the measured samples \(31599999\.000 s to 31600001\.000 s from the run's base time\) do not overlap the run \(0\.000 s to 2\.000 s\)/);
  });

  it('a measured trace changes no energy row (the demo with and without 100 samples; it cut the traces into other slices)', async () => {
    // Before: interleaving the samples cut the cswitch batches elsewhere, and driver-charge spread
    // a baseline payment that caught up over the slice that paid it: 32 cells of the demo moved
    // (vm1's and vm2's driver idle in interval 0 by -10 %). Now each interval gets B × its time.
    const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');
    const meas = path.join(dir, 'demo-measured.csv');
    fs.writeFileSync(meas, ['ts_ns,device,watts', ...Array.from({ length: 100 }, (_, i) => `${1732400000000000000n + 500000n + BigInt(i) * 1000000n},cpu,100`)].join('\n') + '\n');
    const a = path.join(dir, 'demo-a.sqlite');
    const b = path.join(dir, 'demo-b.sqlite');
    expect((await cli(['replay', demo, '--db', a, '--quiet'])).code).toBe(0);
    const r = await cli(['replay', demo, '--db', b, '--quiet', '--trace', `measured=${meas}`]);
    expect(r.code, r.err).toBe(0);
    const cellsOf = (db: string) => {
      const d = new Database(db, { readonly: true });
      try {
        return new Map((d.prepare("SELECT t0_ns || '|' || consumer || '|' || ifnull(via, '') || '|' || device || '|' || kind, sum(joules) FROM energy WHERE container IS NULL GROUP BY 1").raw().all() as [string, number][]));
      } finally {
        d.close();
      }
    };
    const ca = cellsOf(a);
    const cb = cellsOf(b);
    expect([...cb.keys()].sort()).toEqual([...ca.keys()].sort());
    const moved = [...ca].filter(([k, v]) => Math.abs(cb.get(k)! - v) > 1e-12 * Math.max(Math.abs(v), 1));
    expect(moved).toEqual([]);
  }, 60_000);

  it('covered fraction by hand', () => {
    expect(coveredFraction(0, 10, { t0: 0, t1: 20 })).toBe(0.5);
    expect(coveredFraction(30, 40, { t0: 0, t1: 20 })).toBe(0);
    expect(coveredFraction(-5, 25, { t0: 0, t1: 20 })).toBe(1);
  });
});
