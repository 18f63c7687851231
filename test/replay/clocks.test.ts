/**
 * Traces of one run on different clocks. The demo's disk log shifted by an hour, by 1e15 ns, onto
 * a boot-time clock (−1.7e18 ns) or written in µs no longer meets the cswitch log in time: before,
 * the first gave exit 0 with a 3,610 s run whose energy was nearly all `(unattributed)`, the second
 * a 3.7 GB store, the last two ran for many minutes. Now each is one error naming the disk trace,
 * before anything is written.
 */
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, tmpDir } from '../helpers.js';

const dir = tmpDir('wattrace-clocks-');
const DEMO = 'pipelines/demo.json';
const rows = fs.readFileSync('fixtures/demo/disk.csv', 'utf8').trimEnd().split('\n');

/** The demo's disk log with every ts_ns mapped by `f` (exact: BigInt). */
function diskWith(name: string, f: (t: bigint) => bigint, extra: string[] = [], first: string[] = []): string {
  const out = [rows[0]!, ...first, ...rows.slice(1).map((l) => {
    const [t, ...rest] = l.split(',');
    return [String(f(BigInt(t!))), ...rest].join(',');
  }), ...extra];
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${out.join('\n')}\n`);
  return file;
}

describe('clocks of a run’s traces', () => {
  const cases: [string, (t: bigint) => bigint][] = [
    ['an hour later', (t) => t + 3_600_000_000_000n],
    ['1e15 ns later', (t) => t + 1_000_000_000_000_000n],
    ['on a boot-time clock', (t) => t - 1_700_000_000_000_000_000n],
    ['in µs', (t) => t / 1000n],
  ];
  for (const [what, f] of cases) {
    it(`a disk log ${what} is refused before anything is written`, async () => {
      const disk = diskWith(`disk-${what.replace(/\W+/g, '-')}.csv`, f);
      const db = path.join(dir, `${what.replace(/\W+/g, '-')}.sqlite`);
      const r = await cli(['replay', DEMO, '--db', db, '--trace', `disk=${disk}`, '--quiet']);
      expect(r.code).toBe(2);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(new RegExp(`${path.basename(disk)}: the disk trace \\(.* from the cswitch trace's first timestamp\\) does not overlap the cswitch trace \\(0 to 9\\.917 s\\): are the two recorded on the same clock`));
      expect(fs.existsSync(db)).toBe(false);
    });
  }

  it('a disk log that overlaps but reaches far beyond gets a note; one that overlaps closely does not', async () => {
    // The demo's requests, then one 60 s after the last (at 9.897 s; the cswitch log ends at
    // 9.917 s): 69.897 − 9.917 = 59.980 s outside.
    const last = BigInt(rows.at(-1)!.split(',')[0]!);
    const far = diskWith('disk-far.csv', (t) => t, [`${last + 60_000_000_000n},vm1,R,0,4096,1000000,`]);
    const r = await cli(['replay', DEMO, '--db', path.join(dir, 'far.sqlite'), '--trace', `disk=${far}`, '--quiet']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/note: the disk trace .*disk-far\.csv reaches 59\.980 s after the cswitch trace's 9\.917 s: the CPU's time there is not logged \(unattributed\)/);
    const ok = await cli(['replay', DEMO, '--db', path.join(dir, 'ok.sqlite'), '--quiet']);
    expect(ok.code).toBe(0);
    expect(ok.err).not.toMatch(/the cswitch trace's/);
    // A request 5 s before the demo's first (which is 1.505 s into the cswitch log): 3.495 s before
    // a 9.917 s log, a third of its length, unattributed CPU idle (2 CPUs × 42 W × 3.495 s =
    // 293.6 J), said too (before, only time beyond the log's own length was).
    const first = BigInt(rows[1]!.split(',')[0]!);
    const early = diskWith('disk-early.csv', (t) => t, [], [`${first - 5_000_000_000n},vm1,R,0,4096,1000000,`]);
    const e = await cli(['replay', DEMO, '--db', path.join(dir, 'early.sqlite'), '--trace', `disk=${early}`, '--quiet']);
    expect(e.code).toBe(0);
    expect(e.err).toMatch(/note: the disk trace .*disk-early\.csv reaches 3\.495 s before the cswitch trace's 9\.917 s/);
  });

  it('a request completing at the run\'s very end, on an interval boundary, is in the interval that ends there', async () => {
    // 20 s after the cswitch log's first row (the run's origin), with 100 ms intervals: the run ends
    // there, and interval 200 is [20 s, 20 s). Before, its energy was a row of no duration.
    // A request at 19.95 s has a row for the same key in [19.9 s, 20 s): the moved energy is added
    // to it, so the key stays one row there.
    const end = diskWith('disk-end.csv', (t) => t, ['1732400019950000000,vm2,W,0,65536,1000000,', '1732400020000000000,vm2,W,4096,65536,1000000,']);
    const db = path.join(dir, 'end.sqlite');
    const r = await cli(['replay', DEMO, '--db', db, '--trace', `disk=${end}`, '--quiet']);
    expect(r.code, r.err).toBe(0);
    const d = new Database(db, { readonly: true });
    const empty = d.prepare('SELECT count(*) AS n FROM energy WHERE t1_ns <= t0_ns').get() as { n: number };
    const split = d.prepare('SELECT count(*) AS n FROM (SELECT count(*) AS c FROM energy GROUP BY t0_ns, consumer, container, via, device, kind HAVING c > 1)').get() as { n: number };
    const last = d.prepare("SELECT t0_ns, t1_ns, sum(joules) AS j FROM energy WHERE consumer = 'vm2' AND device = 'disk' AND kind = 'active' AND t1_ns = 20000000000 GROUP BY 1, 2").all();
    d.close();
    expect(empty.n).toBe(0);
    expect(split.n).toBe(0);
    // Two requests of 65536 B, each at least 2.6 mJ (1.31 ms at the nominal 50 MB/s × 2 W).
    expect(last).toEqual([{ t0_ns: 19_900_000_000, t1_ns: 20_000_000_000, j: expect.any(Number) }]);
    expect((last[0] as { j: number }).j).toBeGreaterThan(2 * 2.6e-3);
  });
});
