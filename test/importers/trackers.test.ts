/**
 * The importers' trackers on their own (src/importers/trackers.ts), fed events by hand, each
 * expectation worked out from the rule in the comment: switch pairing and coverage, ftrace's
 * issue/complete pairing, blktrace's request life cycle (Q, M, F, X, R, D, C), ordered disk rows.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WattraceError } from '../../src/core/errors.js';
import { BlkRequestTracker, BlockTracker, CsvOut, DiskRows, Skips, SwitchTracker, blkKindOf } from '../../src/importers/trackers.js';
import { tmpDir } from '../helpers.js';

const dir = tmpDir('wattrace-trackers-');
let n = 0;
/** A CsvOut in a fresh file, and a reader of its lines once closed. */
function csv(header: string): { out: CsvOut; lines: () => string[] } {
  const out = new CsvOut(path.join(dir, `t${n++}.csv`), header);
  return {
    out,
    lines: () => {
      out.close();
      return fs.readFileSync(out.file, 'utf8').trimEnd().split('\n');
    },
  };
}
const where = { file: 'x', line: 1 };

describe('SwitchTracker', () => {
  it('writes the VM switched out, counts by VM, and says how much of each CPU the switches cover', () => {
    const { out, lines } = csv('ts_ns,cpu,vm,tsc');
    const t = new SwitchTracker(out, (comm) => (comm === 'swapper/0' ? 'idle' : comm.startsWith('qemu') ? 'vm1' : 'host'));
    t.switchOut(0, 100n, 1000n, 'qemu-a', '7', where);
    t.switchOut(1, 150n, 1500n, 'swapper/0', '0', where);
    t.switchOut(0, 200n, 2000n, 'bash', '9', where);
    t.switchOut(1, 400n, 4000n, 'qemu-b', '8', where);
    expect(lines()).toEqual(['ts_ns,cpu,vm,tsc', '100,0,vm1,1000', '150,1,idle,1500', '200,0,host,2000', '400,1,vm1,4000']);
    expect(t.switches).toBe(4);
    expect(t.byVm).toEqual({ vm1: 2, idle: 1, host: 1 });
    // Span 100..400 = 300 ns: cpu 0 covers 100..200 (1/3), cpu 1 150..400 (5/6).
    const c = t.cpus.coverage();
    expect(c[0]!.fraction).toBeCloseTo(1 / 3, 12);
    expect(c[1]!.fraction).toBeCloseTo(5 / 6, 12);
    expect(t.coverageLine()).toContain('cpu 0 33.3%, cpu 1 83.3%');
    expect(t.cpus.span()).toEqual({ first: 100n, last: 400n });
  });

  it('refuses time going backwards on one CPU, and across CPUs (per-CPU files joined)', () => {
    const { out } = csv('ts_ns,cpu,vm,tsc');
    const t = new SwitchTracker(out, () => 'vm1');
    t.switchOut(0, 500n, 0n, 'a', '1', where);
    t.switchOut(1, 500n, 0n, 'a', '1', where); // equal times on two CPUs are in order
    expect(() => t.switchOut(0, 499n, 0n, 'a', '1', { file: 'f', line: 9 })).toThrow(/time goes backwards on cpu 0: a switch at 499 ns after one at 500 ns/);
    expect(() => t.switchOut(2, 100n, 0n, 'a', '1', { file: 'f', line: 10 })).toThrow(/time goes backwards across CPUs: a switch at 100 ns on cpu 2 after one at 500 ns on cpu 1 \(per-CPU files joined\?/);
    out.discard();
    expect(fs.existsSync(out.file)).toBe(false);
  });
});

describe('BlockTracker (ftrace issue/complete)', () => {
  it('pairs by device and sector first in first out, and counts what it cannot pair', () => {
    const { out, lines } = csv('ts_ns,vm,op,offset,bytes,latency_ns');
    const skips = new Skips();
    const b = new BlockTracker(out, skips);
    // Two requests at sector 8 of 8,0: the first completion belongs to the first issue.
    b.issue('8,0', '8', 100n, 'vm1', 4096n);
    b.issue('8,0', '8', 120n, 'vm2', 512n);
    b.issue('8,16', '8', 130n, 'vm3', 1024n);
    b.complete('8,0', '8', 300n, 'WS', where); // vm1: W, offset 8 × 512, latency 200
    b.complete('8,0', '8', 350n, 'R', where); // vm2: R, latency 230
    b.complete('8,0', '64', 360n, 'R', where); // never issued: skipped
    b.complete('8,16', '8', 400n, 'FF', where); // another device: counted, not merged into the disk
    b.issue('8,0', '16', 402n, 'vm1', 0n);
    b.complete('8,0', '16', 405n, 'FF', where); // a flush: no data, skipped
    b.issue('8,0', '0', 410n, 'vm1', 512n); // still in flight at the end
    b.finish();
    expect(lines()).toEqual(['ts_ns,vm,op,offset,bytes,latency_ns', '300,vm1,W,4096,4096,200', '350,vm2,R,4096,512,230']);
    expect(b.requests).toBe(2);
    expect(skips.counts).toEqual({
      'a completion whose issue is not in the trace': 1,
      'a request on device 8,16, not on 8,0 (the first device\'s requests are the disk log; one device per import)': 1,
      'a request of rwbs FF (no data transfer)': 1,
      'an issue whose completion is not in the trace': 1,
    });
  });

  it('refuses a completion earlier than the one before', () => {
    const { out } = csv('h');
    const b = new BlockTracker(out, new Skips());
    b.issue('8,0', '1', 0n, 'vm1', 512n);
    b.issue('8,0', '2', 0n, 'vm1', 512n);
    b.complete('8,0', '1', 500n, 'R', where);
    expect(() => b.complete('8,0', '2', 400n, 'R', where)).toThrow(WattraceError);
    out.discard();
  });
});

describe('BlkRequestTracker (blktrace Q M F X R D C)', () => {
  const fresh = () => {
    const skips = new Skips();
    return { skips, t: new BlkRequestTracker(skips) };
  };
  const dev = '8,0';

  it('Q then D then C: the client of the queueing, the service time from the dispatch', () => {
    const { t } = fresh();
    t.queue(dev, 10n, 'R', 100n, 'vm1');
    t.dispatch(dev, 10n, 8n, 'R', 150n, () => 'kworker');
    expect(t.complete(dev, 10n, 8n, 'R', 'R', '0')).toEqual({ vm: 'vm1', since: 150n });
  });

  it('a back merge rides with the request before it; a front merge moves the request to its sector', () => {
    const { t, skips } = fresh();
    t.queue(dev, 10n, 'W', 100n, 'vm1');
    t.queue(dev, 18n, 'W', 110n, 'vm2');
    t.backMerge(dev, 18n, 'W'); // vm2's bio joins vm1's request at 10
    t.dispatch(dev, 10n, 16n, 'W', 200n, () => 'x');
    expect(t.complete(dev, 10n, 16n, 'W', 'W', '0')).toEqual({ vm: 'vm1', since: 200n });
    t.queue(dev, 58n, 'W', 300n, 'vm1');
    t.queue(dev, 50n, 'W', 310n, 'vm2');
    t.frontMerge(dev, 50n, 8n, 'W'); // vm2's bio at 50 joins vm1's request, which now starts at 50
    t.dispatch(dev, 50n, 16n, 'W', 320n, () => 'x');
    expect(t.complete(dev, 50n, 16n, 'W', 'W', '0')).toEqual({ vm: 'vm1', since: 320n });
    t.finish();
    expect(skips.counts).toEqual({});
  });

  it('a split gives the remainder the client of the bio; a partial completion leaves the rest in flight', () => {
    const { t } = fresh();
    t.queue(dev, 0n, 'R', 100n, 'vm3');
    t.split(dev, 0n, 8n, 'R', 105n, () => 'kworker'); // X 0 / 8
    t.dispatch(dev, 0n, 8n, 'R', 110n, () => 'x');
    t.dispatch(dev, 8n, 8n, 'R', 120n, () => 'x');
    expect(t.complete(dev, 0n, 8n, 'R', 'R', '0')).toEqual({ vm: 'vm3', since: 110n });
    expect(t.complete(dev, 8n, 8n, 'R', 'R', '0')).toEqual({ vm: 'vm3', since: 120n });
    // D of 16 sectors completed in two halves: both from the one dispatch.
    t.queue(dev, 100n, 'R', 200n, 'vm1');
    t.dispatch(dev, 100n, 16n, 'R', 210n, () => 'x');
    expect(t.complete(dev, 100n, 8n, 'R', 'R', '0')).toEqual({ vm: 'vm1', since: 210n });
    expect(t.complete(dev, 108n, 8n, 'R', 'R', '0')).toEqual({ vm: 'vm1', since: 210n });
  });

  it('a requeued request keeps its client, its service time from the last dispatch; no dispatch: from the queueing', () => {
    const { t } = fresh();
    t.queue(dev, 0n, 'W', 100n, 'vm1');
    t.dispatch(dev, 0n, 8n, 'W', 150n, () => 'x');
    t.requeue(dev, 0n, 'W');
    t.dispatch(dev, 0n, 8n, 'W', 300n, () => 'x');
    expect(t.complete(dev, 0n, 8n, 'W', 'W', '0')).toEqual({ vm: 'vm1', since: 300n });
    // A bio-based device (dm, md): Q then C.
    t.queue('253,0', 0n, 'R', 500n, 'vm2');
    expect(t.complete('253,0', 0n, 8n, 'R', 'R', '0')).toEqual({ vm: 'vm2', since: 500n });
    // Without a Q in the trace the client is the dispatching task's.
    t.dispatch(dev, 64n, 8n, 'R', 600n, () => 'vm9');
    expect(t.complete(dev, 64n, 8n, 'R', 'R', '0')).toEqual({ vm: 'vm9', since: 600n });
  });

  it('a remapped bio (A, device-mapper) keeps its client on the device below; the dm device completes nothing of its own', () => {
    const { t, skips } = fresh();
    t.queue('253,0', 2048n, 'W', 100n, 'vm1'); // the task's bio on the dm device
    t.remap('8,0', 4096n, '253,0', 2048n, 'W'); // A W 4096 + 8 <- (253,0) 2048
    t.queue('8,0', 4096n, 'W', 101n, 'kworker'); // Q below, from dm's worker: still vm1's
    t.dispatch('8,0', 4096n, 8n, 'W', 150n, () => 'x');
    expect(t.complete('8,0', 4096n, 8n, 'W', 'W', '0')).toEqual({ vm: 'vm1', since: 150n });
    expect(t.complete('253,0', 2048n, 8n, 'W', 'W', '0')).toBeNull();
    t.finish();
    expect(skips.counts).toEqual({ 'a completion on 253,0, which remaps its I/O to another device (device-mapper, md): counted on the device below': 1 });
  });

  it('counts discards, requests without data, failures, unpaired completions and what is left in flight', () => {
    const { t, skips } = fresh();
    t.dispatch(dev, 0n, 8n, 'D', 100n, () => 'x');
    expect(t.complete(dev, 0n, 8n, 'D', 'DS', '0')).toBeNull();
    expect(t.complete(dev, 0n, 0n, 'N', 'FN', '0')).toBeNull();
    t.dispatch(dev, 8n, 8n, 'R', 100n, () => 'x');
    expect(t.complete(dev, 8n, 8n, 'R', 'R', '-5')).toBeNull();
    t.queue(dev, 16n, 'R', 100n, 'vm1');
    expect(t.complete(dev, 16n, 8n, 'W', 'W', '0')).toBeNull(); // a write does not complete a read
    t.dispatch(dev, 24n, 8n, 'W', 100n, () => 'x');
    t.finish();
    expect(skips.counts).toEqual({
      'a discard': 1,
      'a request without data (rwbs FN)': 1,
      'a failed request (error -5)': 1,
      'a completion whose queueing or dispatch is not in the trace': 1,
      'a dispatch whose completion is not in the trace': 1,
      'a queued bio neither dispatched nor completed in the trace': 1,
    });
    expect([blkKindOf('WS'), blkKindOf('RA'), blkKindOf('DS'), blkKindOf('FN'), blkKindOf('WFS')]).toEqual(['W', 'R', 'D', 'N', 'W']);
  });
});

describe('DiskRows', () => {
  it('writes the columns asked for, in time order per disk, and tallies by VM and disk', () => {
    const cols = { latency: true, disk: true };
    const { out, lines } = csv(DiskRows.header(cols));
    const d = new DiskRows(out, cols);
    d.row(100n, 'vm1', 'R', 0n, 512n, where, 10n, 'sda');
    d.row(50n, 'vm2', 'W', 512n, 1024n, where, 20n, 'sdb'); // another disk may be behind
    d.row(100n, 'vm1', 'R', 1024n, 512n, where, 30n, 'sda'); // equal times are in order
    expect(() => d.row(99n, 'vm1', 'R', 0n, 512n, { file: 'f', line: 4 }, 1n, 'sda')).toThrow(/time goes backwards \(99 after 100 on sda\)/);
    expect(lines()).toEqual(['ts_ns,vm,op,offset,bytes,latency_ns,disk', '100,vm1,R,0,512,10,sda', '50,vm2,W,512,1024,20,sdb', '100,vm1,R,1024,512,30,sda']);
    expect(d.tally.byVm).toEqual({ vm1: 2, vm2: 1 });
    expect(d.byDisk).toEqual({ sda: 2, sdb: 1 });
    expect(d.tally.span).toEqual({ first: 100n, last: 100n });
    expect(DiskRows.header({ latency: false, disk: false })).toBe('ts_ns,vm,op,offset,bytes');
  });
});
