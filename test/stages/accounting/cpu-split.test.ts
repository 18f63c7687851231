import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { EnergyRow } from '../../../src/core/stage.js';
import { DEMO_OPTIONS } from '../../../src/generate/demo-fixture.js';
import { syntheticCswitch } from '../../../src/generate/synthetic-cswitch.js';
import { cpuSplitBatch, cpuSplitStream, machineOf, profileOf, relDiff } from '../../helpers.js';
import { resolveProfile } from '../../../src/core/profile.js';

// Timestamps above 2^53 on purpose: T is 2^53 + 1 ns.
const T = 9007199254740993n;
const at = (ns: bigint) => (T + ns).toString();

/**
 * Three rows on one CPU of a machine with tsc_hz = 1e9, idle_watts = 10 (w_tsc = 1e-8 J/tick)
 * and one event, uops, at 1e-9 J:
 *   row 1 (t = 0):     opens the period.
 *   row 2 (t = 1 s):   'a' ran 1 s:   Δtsc = 1e9 → idle 10 J;  Δuops = 2e9 → active 2 J to a.
 *   row 3 (t = 1.5 s): halted 0.5 s: Δtsc = 5e8 → idle  5 J;  Δuops = 0   → active 0.
 * equal:   idle 15 J split over the profile's VMs a and b: 7.5 J each; a active 2 J. Total 17 J.
 * by-time: a pays the 10 J idle of its own period, and the 5 J of the halt period are shared by
 *          CPU time over the run: a had all of it (b never ran), so a gets 15 J.
 */
const THREE_ROWS = ['ts_ns,cpu,vm,tsc,uops', `${at(0n)},0,a,0,0`, `${at(1_000_000_000n)},0,a,1000000000,2000000000`, `${at(1_500_000_000n)},0,idle,1500000000,2000000000`, ''].join('\n');

const sumWhere = (rows: readonly EnergyRow[], f: (r: EnergyRow) => boolean) => rows.filter(f).reduce((a, r) => a + r.joules, 0);

describe('cpu-split by hand', () => {
  it('splits idle energy equally among the profile VMs (the paper\'s code)', () => {
    const sink = cpuSplitBatch(machineOf({ split: 'equal' }), THREE_ROWS, 100);
    const by = sink.sumBy((r) => `${r.consumer}/${r.kind}`);
    expect(by.get('a/idle')).toBeCloseTo(7.5, 12);
    expect(by.get('b/idle')).toBeCloseTo(7.5, 12);
    expect(by.get('a/active')).toBeCloseTo(2, 12);
    expect(by.has('idle/idle')).toBe(false);
    expect(by.has('b/active')).toBe(false);
    expect(sink.total()).toBeCloseTo(17, 12);
    expect(sink.rows.every((r) => r.device === 'cpu' && r.via === null && r.container === null)).toBe(true);
  });

  it('splits idle energy in proportion to CPU time with by-time', () => {
    const sink = cpuSplitBatch(machineOf({ split: 'by-time' }), THREE_ROWS, 100);
    const by = sink.sumBy((r) => `${r.consumer}/${r.kind}`);
    expect(by.get('a/idle')).toBeCloseTo(15, 12);
    expect(by.get('a/active')).toBeCloseTo(2, 12);
    expect(by.has('idle/idle')).toBe(false);
    expect(by.has('b/idle')).toBe(false);
  });

  it('shares halt-time idle energy by run-wide CPU time with by-time', () => {
    // a runs 3 s, b runs 1 s, then 4 s of halt: 40 J of halt idle energy go 3:1 to a and b.
    const text = ['ts_ns,cpu,vm,tsc,uops', `${at(0n)},0,a,0,0`, `${at(3_000_000_000n)},0,a,3000000000,0`, `${at(4_000_000_000n)},0,b,4000000000,0`, `${at(8_000_000_000n)},0,idle,8000000000,0`, ''].join('\n');
    const by = cpuSplitBatch(machineOf({ split: 'by-time' }), text, 100).sumBy((r) => `${r.consumer}/${r.kind}`);
    expect(by.get('a/idle')).toBeCloseTo(30 + 30, 9);
    expect(by.get('b/idle')).toBeCloseTo(10 + 10, 9);
  });

  it('splits a period across reporting intervals in proportion to time', () => {
    // 300 ms intervals: period 1 [0, 1 s) covers k = 0..3 with fractions .3, .3, .3, .1;
    // period 2 [1 s, 1.5 s) covers k = 3 (0.2 s of it, 0.4) and k = 4 (0.3 s, 0.6).
    // k = 3 = [900 ms, 1200 ms): idle 0.1·10 + 0.4·5 = 3 J → 1.5 J each to a and b; a active 0.1·2 = 0.2 J.
    const sink = cpuSplitBatch(machineOf({ split: 'equal' }), THREE_ROWS, 300);
    const k3 = sink.rows.filter((r) => r.t0 === 900e6);
    expect(k3.every((r) => r.t1 === 1200e6)).toBe(true);
    expect(sumWhere(k3, (r) => r.consumer === 'a' && r.kind === 'idle')).toBeCloseTo(1.5, 12);
    expect(sumWhere(k3, (r) => r.consumer === 'b' && r.kind === 'idle')).toBeCloseTo(1.5, 12);
    expect(sumWhere(k3, (r) => r.consumer === 'a' && r.kind === 'active')).toBeCloseTo(0.2, 12);
    // The last interval is clipped to the end of the trace: [1200 ms, 1500 ms).
    const last = sink.rows.filter((r) => r.t0 === 1200e6);
    expect(last.length).toBeGreaterThan(0);
    expect(last.every((r) => r.t1 === 1500e6)).toBe(true);
    expect(sumWhere(last, () => true)).toBeCloseTo(3, 12);
  });

  it('accounts a counter that wraps at counter_bits', () => {
    // 16-bit uops counter: 65530 → 4 is an advance of 10 events.
    const text = ['ts_ns,cpu,vm,tsc,uops', `${at(0n)},0,a,0,65530`, `${at(1000n)},0,a,1000,4`, ''].join('\n');
    const sink = cpuSplitBatch(machineOf({ bits: 16, events: { uops: 1 } }), text, 100);
    expect(sink.total((r) => r.kind === 'active')).toBe(10);
  });

  it('idle_clock "time": a TSC that stops in deep idle costs idle_watts × Δt; with the TSC clock it is an error', () => {
    // cpu 0: a runs 1 ms (1e6 ticks, 100 uops), then the idle processor halts 4 ms while the TSC
    // stands still (deep idle), then b runs 1 ms. 10 W idle, 2 VMs: idle energy by time is
    // 10 W × 6 ms = 60 mJ, 30 mJ to each VM; access 200 uops × 1e-6 J = 200 µJ.
    const text = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0', '1000000,0,a,1000000,100', '5000000,0,idle,1000000,100', '6000000,0,b,2000000,200', ''].join('\n');
    const p = profileOf({ idleWatts: 10, events: { uops: 1e-6 } });
    expect(() => cpuSplitBatch(resolveProfile(p, 'tsc.json'), text)).toThrow(/the TSC of cpu 0 advanced 0 ticks since line 3, but 4\.000 ms at tsc_hz 1000000000 is 4\.0000e\+6 ticks/);
    p.cpu.idle_clock = 'time';
    const by = cpuSplitBatch(resolveProfile(p, 'time.json'), text, 1000).sumBy((r) => `${r.consumer}/${r.kind}`);
    expect(by.get('a/idle')).toBeCloseTo(0.03, 12);
    expect(by.get('b/idle')).toBeCloseTo(0.03, 12);
    expect(by.get('a/active')! + by.get('b/active')!).toBeCloseTo(200e-6, 12);
  });

  it('a period under 1 ms may be off by up to 1 ms of TSC ticks (read apart), a jump inside it is an error', () => {
    // tsc_hz 1 GHz: 0.5 ms is 500,000 ticks. 0.5 ms of skew is let go; 10^15 ticks (a jump) is
    // not: before, it was accounted, 10^15 ticks × 10 W / 1e9 Hz = 10 MJ of idle in 0.5 ms.
    const p = profileOf({ idleWatts: 10, events: { uops: 1e-6 } });
    const m = resolveProfile(p, 'tsc.json');
    const skew = ['ts_ns,cpu,vm,tsc,uops', '0,0,a,0,0', '500000,0,b,1000000,100', '2000000,0,a,2500000,200', ''].join('\n');
    expect(cpuSplitBatch(m, skew, 1000).total(() => true)).toBeCloseTo(10 * 2.5e-3 + 200e-6, 12);
    const jump = ['ts_ns,cpu,vm,tsc,uops', '0,0,a,0,0', '500000,0,b,1000000000000000,100', ''].join('\n');
    expect(() => cpuSplitBatch(m, jump)).toThrow(/the TSC of cpu 0 advanced 1\.0000e\+15 ticks since line 2, but 0\.500 ms .*beyond 1 ms of ticks/);
  });

  it('keeps CPUs apart: each period is between rows of the same CPU', () => {
    const text = [
      'ts_ns,cpu,vm,tsc,uops',
      `${at(0n)},0,a,0,0`,
      `${at(10n)},1,b,500,7`,
      `${at(100n)},0,a,100,40`, // cpu 0: a ran 100 ns: 100 ticks, 40 uops
      `${at(210n)},1,b,700,27`, // cpu 1: b ran 200 ns: 200 ticks, 20 uops
      '',
    ].join('\n');
    const sink = cpuSplitBatch(machineOf({ split: 'by-time', idleWatts: 1e9, events: { uops: 1 } }), text, 1000);
    const by = sink.sumBy((r) => `${r.consumer}/${r.kind}`);
    expect(by.get('a/idle')).toBeCloseTo(100, 9); // w_tsc = 1e9/1e9 = 1 J per tick
    expect(by.get('b/idle')).toBeCloseTo(200, 9);
    expect(by.get('a/active')).toBe(40);
    expect(by.get('b/active')).toBe(20);
    // The run spans [0, 210] ns: cpu 0 is unlogged for 110 ns, cpu 1 for 10 ns, at 1e9 W idle.
    expect(by.get('(unattributed)/idle')).toBeCloseTo(120, 9);
    expect(sink.total()).toBeCloseTo(2 * 1e9 * 210e-9 + 60, 9);
  });
});

// ---- Properties over random traces ----

interface GenRow { dt: number; cpu: number; vm: string; drift: number; dev: number[] }

const VMS = ['a', 'b', 'c', 'idle'];
const rowArb = (cpus: number, nEv: number) =>
  fc.record({
    dt: fc.integer({ min: 0, max: 400_000_000 }),
    cpu: fc.integer({ min: 0, max: cpus - 1 }),
    vm: fc.constantFrom(...VMS),
    // The TSC runs at tsc_hz (1 GHz) give or take 1.5 % (the profile tolerates 2 %).
    drift: fc.double({ min: -0.015, max: 0.015, noNaN: true }),
    dev: fc.array(fc.integer({ min: 0, max: 30_000 }), { minLength: nEv, maxLength: nEv }),
  });
const traceArb = fc
  .record({ cpus: fc.integer({ min: 1, max: 3 }), start: fc.bigInt({ min: 0n, max: 2n ** 63n }) })
  .chain(({ cpus, start }) => fc.record({ cpus: fc.constant(cpus), start: fc.constant(start), rows: fc.array(rowArb(cpus, 2), { minLength: 2, maxLength: 60 }) }));

/** Writes rows as a CSV with 16-bit event counters (so they wrap) and returns the expected totals. */
function render(t: { cpus: number; start: bigint; rows: GenRow[] }) {
  const w = { uops: 1e-6, miss: 3e-5 };
  const tsc = new Array<bigint>(t.cpus).fill(0n);
  const ev = Array.from({ length: t.cpus }, () => [65_000n, 12n]);
  const time = new Array<bigint>(t.cpus).fill(t.start);
  const seen = new Array<boolean>(t.cpus).fill(false);
  const first = new Array<bigint | null>(t.cpus).fill(null);
  const last = new Array<bigint | null>(t.cpus).fill(null);
  let idle = 0;
  let active = 0;
  const lines = ['ts_ns,cpu,vm,tsc,uops,miss'];
  for (const r of t.rows) {
    time[r.cpu] = time[r.cpu]! + BigInt(r.dt);
    const dtsc = Math.round(r.dt * (1 + r.drift));
    tsc[r.cpu] = tsc[r.cpu]! + BigInt(dtsc);
    ev[r.cpu] = ev[r.cpu]!.map((v, e) => (v + BigInt(r.dev[e]!)) % 65536n);
    if (seen[r.cpu]) {
      idle += dtsc * (10 / 1e9);
      active += r.dev[0]! * w.uops + r.dev[1]! * w.miss;
      last[r.cpu] = time[r.cpu]!;
    } else first[r.cpu] = time[r.cpu]!;
    seen[r.cpu] = true;
    lines.push(`${time[r.cpu]},${r.cpu},${r.vm},${tsc[r.cpu]},${ev[r.cpu]![0]},${ev[r.cpu]![1]}`);
  }
  // CPUs with a period: the run spans their periods; time a CPU is not logged costs 10 W idle.
  const logged = [...Array(t.cpus).keys()].filter((c) => last[c] !== null);
  if (logged.length > 0) {
    const t0 = logged.reduce((a, c) => (first[c]! < a ? first[c]! : a), first[logged[0]!]!);
    const t1 = logged.reduce((a, c) => (last[c]! > a ? last[c]! : a), last[logged[0]!]!);
    for (const c of logged) idle += (10 * Number(first[c]! - t0 + (t1 - last[c]!))) / 1e9;
  }
  return { text: lines.join('\n') + '\n', idle, active, w };
}

const consumerTotals = (rows: readonly EnergyRow[]) => {
  const m = new Map<string, number>();
  for (const r of rows) m.set(`${r.consumer}/${r.kind}`, (m.get(`${r.consumer}/${r.kind}`) ?? 0) + r.joules);
  return m;
};

describe('cpu-split properties', () => {
  it('conserves energy: all CPU energy = w_tsc · Σ Δtsc + Σ w_e · Δe (to 1e-9 relative)', () => {
    fc.assert(
      fc.property(traceArb, fc.constantFrom<'equal' | 'by-time'>('equal', 'by-time'), (t, split) => {
        const { text, idle, active, w } = render(t);
        const m = machineOf({ split, bits: 16, idleWatts: 10, tscHz: 1e9, events: w, vms: ['a', 'b', 'c'] });
        const sink = cpuSplitBatch(m, text, 100);
        const total = sink.total();
        if (idle + active === 0) {
          expect(total).toBe(0);
        } else {
          expect(relDiff(total, idle + active)).toBeLessThan(1e-9);
          if (idle > 0) expect(relDiff(sink.total((r) => r.kind === 'idle'), idle)).toBeLessThan(1e-9);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('gives the same per-consumer totals for interval_ms 100, 37 and 1000', () => {
    fc.assert(
      fc.property(traceArb, (t) => {
        const { text, w } = render(t);
        const m = machineOf({ bits: 16, events: w, vms: ['a', 'b', 'c'] });
        const [a, b, c] = [100, 37, 1000].map((ms) => consumerTotals(cpuSplitBatch(m, text, ms).rows));
        for (const other of [b!, c!]) {
          expect([...other.keys()].sort()).toEqual([...a!.keys()].sort());
          for (const [k, v] of a!) expect(relDiff(other.get(k)!, v)).toBeLessThan(1e-9);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('streaming equals batch, and splitting the CSV at arbitrary byte boundaries changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(traceArb, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }), async (t, cuts) => {
        const { text, w } = render(t);
        const m = machineOf({ bits: 16, events: w, vms: ['a', 'b', 'c'] });
        const batch = cpuSplitBatch(m, text, 37).rows;
        const bytes = Buffer.from(text);
        const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((x, y) => x - y);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of [...points, bytes.length]) {
          chunks.push(bytes.subarray(prev, p));
          prev = p;
        }
        const streamed = (await cpuSplitStream(m, chunks, 37)).rows;
        expect(streamed).toEqual(batch);
      }),
      { numRuns: 100 },
    );
  });
});

describe('cpu-split over long traces (many batches, early flushes)', () => {
  const text = [...syntheticCswitch({ ...DEMO_OPTIONS, rows: 30_000, cpus: 3, meanPeriodNs: 700_000 })].join('');
  const m = machineOf({ bits: 48, tscHz: 3e9, idleWatts: 42, events: { uops: 4e-9, l2_miss: 2e-7 }, vms: ['core', 'drv', 'vm1', 'vm2'] });

  it('gives the same per-consumer totals for 100, 37 and 1000 ms, streamed or not', async () => {
    for (const split of ['equal', 'by-time'] as const) {
      const mm = machineOf({ bits: 48, tscHz: 3e9, idleWatts: 42, split, events: { uops: 4e-9, l2_miss: 2e-7 }, vms: ['core', 'drv', 'vm1', 'vm2'] });
      const a = consumerTotals(cpuSplitBatch(mm, text, 100).rows);
      for (const ms of [37, 1000]) {
        const b = consumerTotals((await cpuSplitStream(mm, [text.slice(0, 777_777), text.slice(777_777)], ms)).rows);
        expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
        for (const [k, v] of a) expect(relDiff(b.get(k)!, v), `${split} ${k} at ${ms} ms`).toBeLessThan(1e-9);
      }
    }
  });

  it('conserves energy: n_cpus × idle_watts × duration + Σ access (TSC consistent with time)', () => {
    const sink = cpuSplitBatch(m, text, 37);
    const ts = text.split('\n').slice(1, -1).map((l) => BigInt(l.split(',')[0]!));
    const duration = Number(ts.reduce((a, b) => (b > a ? b : a)) - ts.reduce((a, b) => (b < a ? b : a))) / 1e9;
    const expected = 3 * 42 * duration + sink.metrics.get('accounting.cpu.active_joules')!;
    expect(relDiff(sink.total(), expected)).toBeLessThan(1e-9);
    expect(sink.rows.filter((r) => r.consumer === '(unattributed)').length).toBeGreaterThan(0);
    // Rows cover the run in 37 ms steps, some intervals more than once (late rows): sums still hold.
    expect(sink.rows.length).toBeGreaterThan(100);
  });
});
