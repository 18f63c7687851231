#!/usr/bin/env node
// Writes a small binary blktrace recording (struct blk_io_trace records, per-CPU files
// vda.blktrace.0/.1, as blktrace(8) writes them) of a made-up workload on a virtio disk
// (254,0), so that the *real* blkparse(1) renders the fixture this directory ships:
//
//   node test/importers/blkparse/make-blktrace.mjs /tmp/blk
//   blkparse -D /tmp/blk -i vda -o test/importers/blkparse/vda.blkparse.txt
//
// (blkparse from Debian's blktrace 1.2.0.) No tracing kernel is needed. The workload: vm1_dd
// writes 64 KiB sequentially (plugged, dispatched by a kworker on the other CPU), vm2_fio reads
// 4 KiB at random (one read back-merged into the one before), jbd2 sends a cache flush, fstrim a
// discard, one read fails with EIO, the trace starts with one request already in flight and ends
// with one still in flight.
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2] ?? '/tmp/blk';
fs.mkdirSync(dir, { recursive: true });
const MAGIC = 0x65617400 | 0x07;
const DEV = (254 << 20) | 0;
const TC = { READ: 0, WRITE: 1 << 1, FLUSH: 1 << 2, SYNC: 1 << 3, QUEUE: 1 << 4, ISSUE: 1 << 6, COMPLETE: 1 << 7, NOTIFY: 1 << 10, DISCARD: 1 << 13 };
const act = (ta, tc) => ta | (tc << 16);
const A = {
  Q: (f) => act(1, TC.QUEUE | f), M: (f) => act(2, TC.QUEUE | f), G: (f) => act(4, TC.QUEUE | f), P: () => act(9, TC.QUEUE),
  U: () => act(10, TC.QUEUE), I: (f) => act(12, TC.QUEUE | f), D: (f) => act(7, TC.ISSUE | f), C: (f) => act(8, TC.COMPLETE | f),
  PROCESS: () => act(0, TC.NOTIFY),
};
const recs = [[], []];
const seq = [0, 0];
function rec(cpu, t, what, { sector = 0n, bytes = 0, pid = 0, error = 0, pdu = Buffer.alloc(0) } = {}) {
  const b = Buffer.alloc(48 + pdu.length);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(++seq[cpu], 4);
  b.writeBigUInt64LE(BigInt(Math.round(t)), 8);
  b.writeBigUInt64LE(BigInt(sector), 16);
  b.writeUInt32LE(bytes, 24);
  b.writeUInt32LE(what, 28);
  b.writeUInt32LE(pid, 32);
  b.writeUInt32LE(DEV, 36);
  b.writeUInt32LE(cpu, 40);
  b.writeUInt16LE(error, 44);
  b.writeUInt16LE(pdu.length, 46);
  pdu.copy(b, 48);
  recs[cpu].push({ t, b });
}
const comm = (cpu, t, pid, name) => rec(cpu, t, A.PROCESS(), { pid, pdu: Buffer.from(name + '\0') });

// Deterministic pseudo-random numbers (LCG).
let s = 12345;
const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

const VM1 = 1001, VM2 = 1002, KW = 77, JBD = 300, TRIM = 1500;
comm(0, 0, VM1, 'vm1_dd');
comm(1, 0, VM2, 'vm2_fio');
comm(1, 0, KW, 'kworker/1:1H');
comm(0, 0, JBD, 'jbd2/vda1-8');
comm(1, 0, TRIM, 'fstrim');
// A request issued before the trace started completes first.
rec(0, 40_000, A.C(TC.READ), { sector: 999_000n, bytes: 4096 });

let t1 = 100_000; // vm1: 64 KiB writes at sector 200000.., on cpu 0, dispatched by the kworker on cpu 1
let sec1 = 200_000n;
let t2 = 150_000; // vm2: 4 KiB random reads on cpu 1
const END = 120_000_000;
let n2 = 0;
while (t1 < END || t2 < END) {
  if (t1 <= t2) {
    const w = A.Q(TC.WRITE | TC.SYNC);
    rec(0, t1, w, { sector: sec1, bytes: 65536, pid: VM1 });
    rec(0, t1 + 900, A.G(TC.WRITE | TC.SYNC), { sector: sec1, bytes: 65536, pid: VM1 });
    rec(0, t1 + 1_400, A.P(), { pid: VM1 });
    rec(0, t1 + 2_000, A.I(TC.WRITE | TC.SYNC), { sector: sec1, bytes: 65536, pid: VM1 });
    rec(0, t1 + 2_600, A.U(), { pid: VM1, pdu: Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]) });
    rec(1, t1 + 9_000, A.D(TC.WRITE | TC.SYNC), { sector: sec1, bytes: 65536, pid: KW });
    const svc = 600_000 + Math.round(rnd() * 300_000);
    rec(0, t1 + 9_000 + svc, A.C(TC.WRITE | TC.SYNC), { sector: sec1, bytes: 65536 });
    sec1 += 128n;
    t1 += 9_000 + svc + 200_000 + Math.round(rnd() * 100_000);
  } else {
    n2++;
    const sector = BigInt(Math.floor(rnd() * 4_000_000)) * 8n;
    rec(1, t2, A.Q(TC.READ | TC.SYNC), { sector, bytes: 4096, pid: VM2 });
    rec(1, t2 + 700, A.G(TC.READ | TC.SYNC), { sector, bytes: 4096, pid: VM2 });
    let bytes = 4096;
    if (n2 % 10 === 7) {
      // the next 4 KiB read is back-merged into this request: one 8 KiB request
      rec(1, t2 + 1_100, A.Q(TC.READ | TC.SYNC), { sector: sector + 8n, bytes: 4096, pid: VM2 });
      rec(1, t2 + 1_300, A.M(TC.READ | TC.SYNC), { sector: sector + 8n, bytes: 4096, pid: VM2 });
      bytes = 8192;
    }
    rec(1, t2 + 1_800, A.D(TC.READ | TC.SYNC), { sector, bytes, pid: VM2 });
    const svc = 150_000 + Math.round(rnd() * 150_000);
    rec(1, t2 + 1_800 + svc, A.C(TC.READ | TC.SYNC), { sector, bytes, error: n2 === 30 ? 5 : 0 });
    t2 += 1_800 + svc + 400_000 + Math.round(rnd() * 600_000);
  }
}
// A journal cache flush (no data) and a discard, then a write still in flight at the end.
rec(0, 50_000_000, A.Q(TC.FLUSH | TC.SYNC), { pid: JBD });
rec(0, 50_001_000, A.D(TC.FLUSH | TC.SYNC), { pid: JBD });
rec(0, 50_300_000, A.C(TC.FLUSH | TC.SYNC), {});
rec(1, 70_000_000, A.Q(TC.DISCARD | TC.WRITE), { sector: 8_000_000n, bytes: 1 << 20, pid: TRIM });
rec(1, 70_002_000, A.D(TC.DISCARD | TC.WRITE), { sector: 8_000_000n, bytes: 1 << 20, pid: TRIM });
rec(1, 70_900_000, A.C(TC.DISCARD | TC.WRITE), { sector: 8_000_000n, bytes: 1 << 20 });
rec(0, END + 1_000_000, A.Q(TC.WRITE | TC.SYNC), { sector: 7_000_000n, bytes: 65536, pid: VM1 });
rec(0, END + 1_010_000, A.D(TC.WRITE | TC.SYNC), { sector: 7_000_000n, bytes: 65536, pid: VM1 });

for (const cpu of [0, 1]) {
  // per-CPU files are in time order, with sequence numbers in that order
  const sorted = recs[cpu].sort((a, b) => a.t - b.t);
  sorted.forEach((r, i) => r.b.writeUInt32LE(i + 1, 4));
  fs.writeFileSync(path.join(dir, `vda.blktrace.${cpu}`), Buffer.concat(sorted.map((r) => r.b)));
}
console.log(`wrote ${recs[0].length + recs[1].length} records to ${dir}/vda.blktrace.{0,1}`);
