/**
 * `wattrace import blkparse`. The fixture `blkparse/vda.blkparse.txt` is real blkparse(1) output
 * (Debian blktrace 1.2.0) of a binary recording written by `blkparse/make-blktrace.mjs`; the counts
 * below were read off it with grep (`grep -c ' C  WS '` → 119, `grep ' C  RS ' | grep -vc '\[5\]'`
 * → 128, `grep -c '  M  RS'` → 13).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, lines, tmpDir } from '../helpers.js';

const FIXTURE = path.join(import.meta.dirname, 'blkparse', 'vda.blkparse.txt');
const dir = tmpDir();
const HAVE_BLKPARSE = (() => {
  try {
    execFileSync('blkparse', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    console.warn('[wattrace] skipping the blkparse round trip: blkparse (Debian package blktrace) is not installed');
    return false;
  }
})();

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}
const MAP = { vms: { vm1: ['^vm1_dd$'], vm2: ['^vm2_fio$'], drv: ['^kworker'] }, drivers: ['drv'], default: 'host', disks: { disk: ['^254,0$'] } };

describe('import blkparse (real blkparse output of a recorded workload)', () => {
  it('pairs queue, dispatch and completion: clients from the submitting task, service time from the dispatch', async () => {
    const map = write('blk-map.json', JSON.stringify(MAP));
    const out = path.join(dir, 'blk');
    const r = await cli(['import', 'blkparse', FIXTURE, '--out', out, '--map', map]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/247 requests .*first 411182, last 120209976 ns/);
    expect(r.out).toMatch(/by VM: vm2 128, vm1 119; by disk: disk 247/);
    // Every request the trace does not complete with data is named, none silently dropped.
    for (const s of ['1 × a completion whose queueing or dispatch is not in the trace', '1 × a failed request (error 5)', '1 × a request without a sector (a flush or a SCSI command; rwbs FNS)', '1 × a discard', '1 × a dispatch whose completion is not in the trace']) {
      expect(r.out).toContain(s);
    }
    const l = lines(path.join(out, 'disk.csv'));
    expect(l[0]).toBe('ts_ns,vm,op,offset,bytes,latency_ns,disk');
    expect(l).toHaveLength(248);
    // `D RS 20239464 + 8` at 0.000111800, `C` at 0.000411182.
    expect(l[1]).toBe(`411182,vm2,R,${20239464 * 512},4096,${411182 - 111800},disk`);
    // vm1's writes are dispatched by the kworker, yet are vm1's: Q at 0.000060000, D at 0.000069000.
    expect(l[2]).toBe(`865546,vm1,W,${200000 * 512},65536,${865546 - 69000},disk`);
    const rows = l.slice(1).map((x) => x.split(','));
    expect(rows.filter((x) => x[1] === 'vm1').every((x) => x[2] === 'W' && x[4] === '65536')).toBe(true);
    // The 13 back-merged reads come out as 8 KiB requests of vm2.
    expect(rows.filter((x) => x[1] === 'vm2' && x[4] === '8192')).toHaveLength(13);
    expect(rows.every((x, i) => i === 0 || BigInt(x[0]!) >= BigInt(rows[i - 1]![0]!))).toBe(true);
    const profile = JSON.parse(fs.readFileSync(path.join(out, 'machine.json'), 'utf8')) as { vms: { id: string; role: string }[]; services: unknown[] };
    expect(profile.vms).toEqual([
      { id: 'drv', role: 'driver' },
      { id: 'vm1', role: 'client' },
      { id: 'vm2', role: 'client' },
    ]);
    expect(profile.services).toEqual([{ id: 'vdisk', driver: 'drv', device: 'disk', clients: ['vm1', 'vm2'] }]);

    // Replays through disk-energy with the starter profile; the disk's energy is conserved:
    // idle 3.6 W over the run plus the active energy of the requests.
    const p = write(path.join('blk', 'pipeline.json'), JSON.stringify({ name: 'blk', profile: 'machine.json', traces: { disk: 'disk.csv' }, stages: ['disk-energy'] }));
    const db = path.join(dir, 'blk.sqlite');
    const rr = await cli(['replay', p, '--db', db, '--quiet']);
    expect(rr.code, rr.err).toBe(0);
    const { default: Database } = await import('better-sqlite3');
    const q = new Database(db, { readonly: true });
    const cells = q.prepare("SELECT consumer, kind, sum(joules) AS j FROM energy_matrix WHERE device = 'disk' GROUP BY consumer, kind").all() as { consumer: string; kind: string; j: number }[];
    const run = q.prepare('SELECT duration_ns FROM runs').get() as { duration_ns: number };
    q.close();
    const idle = cells.filter((c) => c.kind === 'idle').reduce((a, c) => a + c.j, 0);
    expect(idle).toBeCloseTo((3.6 * run.duration_ns) / 1e9, 9);
    expect(cells.find((c) => c.consumer === 'vm1' && c.kind === 'active')!.j).toBeGreaterThan(cells.find((c) => c.consumer === 'vm2' && c.kind === 'active')!.j);
  });

  it.skipIf(!HAVE_BLKPARSE)('the fixture is what blkparse makes of the recording (where blkparse is installed)', () => {
    const raw = path.join(dir, 'raw');
    execFileSync(process.execPath, [path.join(import.meta.dirname, 'blkparse', 'make-blktrace.mjs'), raw], { stdio: 'ignore' });
    const text = path.join(dir, 'again.txt');
    execFileSync('blkparse', ['-D', raw, '-i', 'vda', '-o', text], { stdio: 'ignore' });
    expect(fs.readFileSync(text, 'utf8')).toBe(fs.readFileSync(FIXTURE, 'utf8'));
  });
});

describe('import blkparse: small cases by hand', () => {
  const ev = (cpu: number, seq: number, t: string, pid: number, a: string, rwbs: string, rest: string) => `  8,0    ${cpu}  ${String(seq).padStart(7)}  ${t}  ${String(pid).padStart(5)}  ${a} ${rwbs.padStart(3)} ${rest}`;

  it('a requeued request keeps its client and is timed from its last dispatch; a dispatch without a queue is its task’s; devices are named by maj,min', async () => {
    const f = write(
      'hand.txt',
      [
        ev(0, 1, '0.000000000', 10, 'Q', 'R', '100 + 8 [app]'),
        ev(0, 2, '0.000001000', 10, 'D', 'R', '100 + 8 [app]'),
        ev(0, 3, '0.000002000', 0, 'R', 'R', '100 + 8 [0]'),
        ev(1, 1, '0.000005000', 99, 'D', 'R', '100 + 8 [kworker/0:1]'),
        ev(1, 2, '0.000009000', 0, 'C', 'R', '100 + 8 [0]'),
        ev(1, 3, '0.000010000', 42, 'D', 'WS', '500 + 16 [other]'),
        '  8,16   1        4     0.000011000    42  D  WS 500 + 16 [other]',
        'CPU0 (sda):',
        ' Reads Queued:           1,        4KiB\t Writes Queued:           0,        0KiB',
        '',
      ].join('\n'),
    );
    const out = path.join(dir, 'hand');
    const r = await cli(['import', 'blkparse', f, '--out', out, '--map', write('hand-map.json', JSON.stringify({ vms: { vmA: ['^app$'] }, default: 'rest' }))]);
    expect(r.code, r.err).toBe(0);
    // The 8,0 and 8,16 writes stay in flight.
    expect(lines(path.join(out, 'disk.csv'))).toEqual(['ts_ns,vm,op,offset,bytes,latency_ns,disk', `9000,vmA,R,${100 * 512},4096,4000,dev8_0`]);
    expect(r.out).toContain('2 × a dispatch whose completion is not in the trace');
    const two = write('two.txt', [ev(0, 1, '0.000000000', 42, 'D', 'W', '500 + 16 [other]'), '  8,16   0        1     0.000001000    42  D   W 7 + 8 [other]', ev(0, 2, '0.000002000', 0, 'C', 'W', '500 + 16 [0]'), '  8,16   0        2     0.000003000     0  C   W 7 + 8 [0]'].join('\n'));
    const r2 = await cli(['import', 'blkparse', two, '--out', path.join(dir, 'two')]);
    expect(r2.code, r2.err).toBe(0);
    expect(r2.out).toMatch(/by VM: host 2; by disk: dev8_0 1, dev8_16 1/);
    const prof = JSON.parse(fs.readFileSync(path.join(dir, 'two', 'machine.json'), 'utf8')) as { disks: Record<string, unknown> };
    expect(Object.keys(prof.disks)).toEqual(['dev8_0', 'dev8_16']);
  });

  it('front and back merges, a split, a partial completion, two requests at one sector, a bio-based device', async () => {
    const f = write(
      'merge.txt',
      [
        // vmA's request at 1000; vmB's bio at 992 front-merges into it: the request is vmA's, now at 992.
        ev(0, 1, '0.000000000', 10, 'Q', 'RS', '1000 + 8 [app]'),
        ev(0, 2, '0.000000500', 10, 'I', 'RS', '1000 + 8 [app]'),
        ev(0, 3, '0.000001000', 20, 'Q', 'RS', '992 + 8 [bee]'),
        ev(0, 4, '0.000001100', 20, 'F', 'RS', '992 + 8 [bee]'),
        // vmB's bio at 5008 back-merges into vmB's request at 5000.
        ev(0, 5, '0.000001200', 20, 'Q', 'R', '5000 + 8 [bee]'),
        ev(0, 6, '0.000001300', 20, 'Q', 'R', '5008 + 8 [bee]'),
        ev(0, 7, '0.000001400', 20, 'M', 'R', '5008 + 8 [bee]'),
        ev(1, 1, '0.000002000', 99, 'D', 'RS', '992 + 16 [kworker/1:1]'),
        ev(1, 2, '0.000002100', 99, 'D', 'R', '5000 + 16 [kworker/1:1]'),
        // vmA's 256 KiB write is split at 1512; both parts are vmA's.
        ev(0, 8, '0.000003000', 10, 'Q', 'W', '1000000 + 512 [app]'),
        ev(0, 9, '0.000003100', 10, 'X', 'W', '1000000 / 1000256 [app]'),
        ev(1, 3, '0.000004000', 99, 'D', 'W', '1000000 + 256 [kworker/1:1]'),
        ev(1, 4, '0.000004100', 99, 'D', 'W', '1000256 + 256 [kworker/1:1]'),
        // A write and a read at one sector, in flight together; the read completes first.
        ev(0, 10, '0.000005000', 10, 'Q', 'W', '7000 + 8 [app]'),
        ev(0, 11, '0.000005100', 10, 'D', 'W', '7000 + 8 [app]'),
        ev(0, 12, '0.000005200', 20, 'Q', 'R', '7000 + 8 [bee]'),
        ev(0, 13, '0.000005300', 20, 'D', 'R', '7000 + 8 [bee]'),
        ev(0, 14, '0.000010000', 0, 'C', 'RS', '992 + 16 [0]'),
        ev(0, 15, '0.000011000', 0, 'C', 'R', '5000 + 16 [0]'),
        ev(0, 16, '0.000012000', 0, 'C', 'W', '1000000 + 256 [0]'),
        // A partial completion of the second part: 128 sectors, then the rest.
        ev(0, 17, '0.000013000', 0, 'C', 'W', '1000256 + 128 [0]'),
        ev(0, 18, '0.000014000', 0, 'C', 'W', '1000384 + 128 [0]'),
        ev(0, 19, '0.000015000', 0, 'C', 'R', '7000 + 8 [0]'),
        ev(0, 20, '0.000016000', 0, 'C', 'W', '7000 + 8 [0]'),
        // A device-mapper device: queued, then completed.
        '253,0    0       21     0.000017000    10  Q   W 300 + 8 [app]',
        '253,0    0       22     0.000019000     0  C   W 300 + 8 [0]',
      ].join('\n'),
    );
    const out = path.join(dir, 'merge');
    const r = await cli(['import', 'blkparse', f, '--out', out, '--map', write('merge-map.json', JSON.stringify({ vms: { vmA: ['^app$'], vmB: ['^bee$'] }, default: 'drv' }))]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('skipped: none');
    expect(lines(path.join(out, 'disk.csv')).slice(1)).toEqual([
      `10000,vmA,R,${992 * 512},8192,8000,dev8_0`,
      `11000,vmB,R,${5000 * 512},8192,8900,dev8_0`,
      `12000,vmA,W,${1000000 * 512},131072,8000,dev8_0`,
      `13000,vmA,W,${1000256 * 512},65536,8900,dev8_0`,
      `14000,vmA,W,${1000384 * 512},65536,9900,dev8_0`,
      `15000,vmB,R,${7000 * 512},4096,9700,dev8_0`,
      `16000,vmA,W,${7000 * 512},4096,10900,dev8_0`,
      `19000,vmA,W,${300 * 512},4096,2000,dev253_0`,
    ]);
  });

  it('pairs by direction too: reads, writes and discards at one sector; requeues first in line; leftovers counted (from a review)', async () => {
    const f = write(
      'dir.txt',
      [
        ev(0, 1, '0.000000000', 10, 'Q', 'R', '100 + 8 [app]'),
        ev(0, 2, '0.000000100', 20, 'Q', 'D', '100 + 8 [bee]'),
        ev(0, 3, '0.000000200', 10, 'D', 'R', '100 + 8 [app]'),
        ev(0, 4, '0.000000300', 20, 'D', 'D', '100 + 8 [bee]'),
        ev(0, 5, '0.000000400', 0, 'C', 'W', '100 + 8 [0]'), // no write in flight there
        ev(0, 6, '0.000000490', 0, 'C', 'D', '100 + 8 [0]'),
        ev(0, 7, '0.000000500', 0, 'C', 'R', '100 + 8 [0]'),
        // Requeue: app's write goes back first in line before bee's, queued later at the same sector.
        ev(0, 8, '0.000001000', 10, 'Q', 'W', '500 + 8 [app]'),
        ev(0, 9, '0.000001100', 10, 'D', 'W', '500 + 8 [app]'),
        ev(0, 10, '0.000001200', 20, 'Q', 'W', '500 + 8 [bee]'),
        ev(0, 11, '0.000001300', 0, 'R', 'W', '500 + 8 [0]'),
        ev(0, 12, '0.000001400', 99, 'D', 'W', '500 + 8 [kworker/0:1]'),
        ev(0, 13, '0.000002000', 0, 'C', 'W', '500 + 8 [0]'),
        // A failed partial completion is one failed request, nothing left in flight.
        ev(0, 14, '0.000003000', 10, 'D', 'W', '900 + 16 [app]'),
        ev(0, 15, '0.000003500', 0, 'C', 'W', '900 + 8 [5]'),
        // A bio-based device: a discard then a read at one sector.
        '253,0    0       16     0.000004000    20  Q   D 100 + 8 [bee]',
        '253,0    0       17     0.000004100     0  C   D 100 + 8 [0]',
        '253,0    0       18     0.000004200    10  Q   R 100 + 8 [app]',
        '253,0    0       19     0.000004300     0  C   R 100 + 8 [0]',
      ].join('\n'),
    );
    const out = path.join(dir, 'dir');
    const r = await cli(['import', 'blkparse', f, '--out', out, '--map', write('dir-map.json', JSON.stringify({ vms: { vmA: ['^app$'], vmB: ['^bee$'] }, default: 'drv' }))]);
    expect(r.code, r.err).toBe(0);
    expect(lines(path.join(out, 'disk.csv')).slice(1)).toEqual([
      `500,vmA,R,${100 * 512},4096,300,dev8_0`,
      `2000,vmA,W,${500 * 512},4096,600,dev8_0`,
      `4300,vmA,R,${100 * 512},4096,100,dev253_0`,
    ]);
    expect(r.out).toMatch(/skipped: 1 × a completion whose queueing or dispatch is not in the trace, 2 × a discard, 1 × a failed request \(error 5\), 1 × a queued bio neither dispatched nor completed in the trace$/m);
  });

  it('a malformed event line is an error naming it, and leaves no half-written log; other lines are counted', async () => {
    const bad = write('bad.txt', [ev(0, 1, '0.000000000', 10, 'Q', 'R', '100 + 8 [app]'), '  8,0    0        2     0.00000x000    10  D   R 100 + 8 [app]'].join('\n'));
    const out = path.join(dir, 'bad');
    const r = await cli(['import', 'blkparse', bad, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.txt:2.*maj,min cpu seq sec\.nsec/);
    expect(fs.existsSync(path.join(out, 'disk.csv'))).toBe(false);
    const back = write('back.txt', [ev(0, 1, '0.000000000', 10, 'D', 'R', '100 + 8 [app]'), ev(0, 2, '0.000000000', 10, 'D', 'R', '200 + 8 [app]'), ev(0, 3, '0.000005000', 0, 'C', 'R', '100 + 8 [0]'), ev(1, 1, '0.000004000', 0, 'C', 'R', '200 + 8 [0]')].join('\n'));
    const rb = await cli(['import', 'blkparse', back, '--out', path.join(dir, 'back')]);
    expect(rb.code).toBe(2);
    expect(rb.err).toMatch(/back\.txt:4.*earlier than the previous one/);
    const after = write('after.txt', [ev(0, 1, '0.000000000', 10, 'D', 'R', '100 + 8 [app]'), 'Total (sda):', ' Reads Queued: 1', ev(0, 2, '0.000005000', 0, 'C', 'R', '100 + 8 [0]')].join('\n'));
    const ra = await cli(['import', 'blkparse', after, '--out', path.join(dir, 'after')]);
    expect(ra.code).toBe(2);
    expect(ra.err).toMatch(/after\.txt:4.*after blkparse's closing statistics/);
    const two = await cli(['import', 'blkparse', after, after, '--out', path.join(dir, 'twice')]);
    expect(two.code).toBe(2);
    expect(two.err).toMatch(/one output at a time/);
    const note = write('note.txt', ['Input file vda.blktrace.0 added', ev(0, 1, '0.000000000', 10, 'D', 'R', '100 + 8 [app]'), ev(0, 2, '0.000005000', 0, 'C', 'R', '100 + 8 [0]')].join('\n'));
    const rn = await cli(['import', 'blkparse', note, '--out', path.join(dir, 'note')]);
    expect(rn.code, rn.err).toBe(0);
    expect(rn.out).toContain('1 × a line that is not a blkparse event');
  });
});
