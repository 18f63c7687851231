/** disk-budgets: the paper's throttle controller and Figure 8 (§3.3.5, §3.3.6, §4.2). */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli.js';
import { bufferIO } from '../../../src/commands/io.js';
import { generate } from '../../../src/commands/generate.js';
import { PROJECT_ROOT } from '../../../src/core/json.js';
import { resolveProfile } from '../../../src/core/profile.js';
import { throttleStep } from '../../../src/stages/policy/disk-budgets.js';
import { settle } from '../../../src/stages/policy/settle.js';
import { driverScenario } from '../../../src/generate/driver-scenario.js';
import { cells, chainProfile, chainTraces, deepChainProfile, driverProfile, machineOf, relDiff, replayTexts, tmpDir } from '../../helpers.js';
import type { MemorySink } from '../../../src/store/memory.js';

describe('the throttle-factor formula (§3.3.6), step by step by hand', () => {
  it.each([
    // t, t_l, e_c, e_l → new t
    [100, 100, 2, 1, 99], // over the limit, t = t_l: 4/3·0 − 1
    [99, 100, 2, 1, 99 + (4 / 3) * -1 - 1], // still over and already falling: accelerate
    [96.6666, 99, 0.5, 1, 96.6666 + 0.25 * (99 - 96.6666) + 1], // under while falling: back off ¼
    [50, 40, 1, 1, 50 + (4 / 3) * 10], // equal: sgn = 0, momentum only
    [60, 50, 2, 1, 60 + 0.25 * (50 - 60) - 1], // over while rising: back off ¼
    [2, 5, 2, 1, 0], // clamped at 0: 2 + 4/3·(−3) − 1 < 0
    [3999, 3990, 0.5, 1, 4000], // clamped at t_max
  ])('t=%d, t_l=%d, e_c=%d, e_l=%d → %d', (t, tl, ec, el, want) => {
    expect(throttleStep(t, tl, ec, el, 4000)).toBeCloseTo(want, 9);
  });

  it('settling: the first period from which the 5 s average stays within 10 % of the limit', () => {
    const w = [...Array(10).fill(2), ...Array(5).fill(1.4), ...Array(40).fill(1)];
    const s = settle(w, 1, 0.2);
    // Windows of 25 periods: the one starting at period 10 averages (5·1.4 + 20·1)/25 = 1.08, the
    // one at 9 (2 + 5·1.4 + 19)/25 = 1.12.
    expect(s.settledFrom).toBe(10);
    expect(s.settleS).toBeCloseTo(2, 9);
    expect(s.meanWatts).toBeCloseTo((5 * 1.4 + 40) / 45, 9);
    expect(s.overLimitFrac).toBeCloseTo(5 / 45, 9);
  });
});

describe('Figure 8 (pipelines/paper-fig8.json): two clients, 1 W and 0.5 W from 45 s', () => {
  const dir = tmpDir();
  const metrics = new Map<string, Map<string, number>>();
  const cellsBy = new Map<string, Map<string, number>>();
  beforeAll(async () => {
    generate({ scenario: 'paper-fig8', out: path.join(PROJECT_ROOT, 'fixtures', 'paper-fig8'), seed: 1 }, bufferIO());
    for (const variant of ['base', 'tight', 'unlimited']) {
      const db = path.join(dir, `${variant}.sqlite`);
      const io = bufferIO();
      expect(await main(['replay', path.join(PROJECT_ROOT, 'pipelines', 'paper-fig8.json'), '--variant', variant, '--db', db, '--quiet'], io), io.stderr.join('')).toBe(0);
      const d = new Database(db, { readonly: true });
      metrics.set(variant, new Map((d.prepare('SELECT name, value FROM metrics').all() as { name: string; value: number }[]).map((m) => [m.name, m.value])));
      const rows = d.prepare('SELECT consumer, via, device, kind, joules FROM energy_matrix').all() as { consumer: string; via: string | null; device: string; kind: string; joules: number }[];
      cellsBy.set(variant, new Map(rows.map((r) => [`${r.consumer}|${r.via ?? '-'}|${r.device}|${r.kind}`, r.joules])));
      d.close();
    }
  });

  it('settles within 15 s; then each mean within 10 % of its limit, under 10 % of periods more than 20 % over', () => {
    const m = metrics.get('base')!;
    for (const [vm, limit] of [['vm1', 1], ['vm2', 0.5]] as const) {
      expect(m.get(`disk.${vm}.settle_s`), vm).toBeLessThan(15);
      expect(Math.abs(m.get(`disk.${vm}.mean_watts`)! / limit - 1), vm).toBeLessThan(0.1);
      expect(m.get(`disk.${vm}.over_limit_frac`), vm).toBeLessThan(0.1);
    }
  });

  it("attributes the driver's CPU to the two clients as the simulation spent it (truth.json)", () => {
    const truth = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'fixtures', 'paper-fig8', 'truth.json'), 'utf8')) as {
      driver_cpu_joules: Record<string, number>;
      disk_active_joules: Record<string, number>;
    };
    const c = cellsBy.get('unlimited')!;
    // In all to 2 %; per client to 10 %: the clients alternate strictly, so every cost window holds
    // the same mix and the per-byte fit cannot separate them — the constant cost charges vm1's
    // 32 KB requests (0.74 mJ of driver CPU each) like vm2's 16 KB ones (0.65 mJ), ~6 % off.
    const drv = (vm: string) => c.get(`${vm}|drv|cpu|active`)!;
    expect(relDiff(drv('vm1') + drv('vm2'), truth.driver_cpu_joules['vm1']! + truth.driver_cpu_joules['vm2']!)).toBeLessThan(0.02);
    for (const vm of ['vm1', 'vm2']) expect(relDiff(drv(vm), truth.driver_cpu_joules[vm]!), vm).toBeLessThan(0.1);
    // The disk: the two-state model charges the seeks at full active power (the simulated disk
    // draws 0.2 W less while seeking, ~80 % of each request here): ~9 % too much in all. And its
    // split follows bytes, while the time went mostly to seeks: vm1's 32 KB requests are charged
    // about 2/3 though they took about 53 % of the active time (README: known limits).
    const total = (vm: string) => c.get(`${vm}|drv|disk|active`)!;
    expect(relDiff(total('vm1') + total('vm2'), truth.disk_active_joules['vm1']! + truth.disk_active_joules['vm2']!)).toBeLessThan(0.12);
    expect(total('vm1') / (total('vm1') + total('vm2'))).toBeGreaterThan(0.6);
  });

  it('throughput falls accordingly: vm2 about halves, and a tighter limit never gives more', () => {
    const m = metrics.get('base')!;
    const ratio = m.get('disk.vm2.throughput_after_bps')! / m.get('disk.vm2.throughput_before_bps')!;
    expect(ratio).toBeGreaterThan(0.35);
    expect(ratio).toBeLessThan(0.65);
    expect(m.get('disk.vm1.throughput_after_bps')!).toBeLessThan(m.get('disk.vm1.throughput_before_bps')!);
    const tight = metrics.get('tight')!;
    const free = metrics.get('unlimited')!;
    expect(tight.get('disk.vm2.bytes')!).toBeLessThan(m.get('disk.vm2.bytes')!);
    expect(m.get('disk.vm2.bytes')!).toBeLessThan(free.get('disk.vm2.bytes')!);
    // At 0.3 W a period holds under 5 of vm2's requests: the controller keeps vm2 near its limit
    // on average but its 5 s means swing beyond ±10 %, so it is not reported as settled.
    expect(tight.get('disk.vm2.mean_watts')!).toBeLessThan(0.4);
    expect(tight.get('disk.vm2.settle_s')).toBeUndefined();
  });
});

describe('disk-budgets with arrival: trace', () => {
  const m = resolveProfile(driverProfile(), 'p.json');
  const sc = driverScenario({
    seconds: 30,
    quietS: 0.5,
    driver: 'drv',
    uopJoules: 1e-9,
    cost: () => 3e-4,
    clients: [
      { vm: 'vm1', perSecond: 40, bytes: 16384 },
      { vm: 'vm2', perSecond: 40, bytes: 16384 },
    ],
  });
  const stages = ['cpu-split', 'disk-energy', 'driver-charge', 'disk-budgets'] as const;
  // Clients that use the disk directly (no driver VM: the limit covers the disk alone).
  const direct = machineOf({ vms: ['vm1', 'vm2'] });
  const run = (limits: Record<string, number>): Promise<MemorySink> =>
    replayTexts(m, { cswitch: sc.cswitch, disk: sc.disk }, stages, { policy: { disk: { arrival: 'trace', limits_watts: limits, start_s: 5 } } });

  it('without limits serves the trace as it came: the same energy per client as the accounting', async () => {
    const sink = await run({});
    const c = cells(sink);
    for (const vm of ['vm1', 'vm2']) {
      const sim = sink.diskPolicyRows.filter((r) => r.vm === vm).reduce((a, r) => a + r.watts * 0.2, 0);
      const accounted = c.get(`${vm}|drv|disk|active`)! + c.get(`${vm}|drv|cpu|active`)!;
      expect(relDiff(sim, accounted), vm).toBeLessThan(0.05);
      expect(sink.metrics.get(`disk.${vm}.requests`)).toBe(sc.requestsBy.get(vm));
    }
  });

  it('serves a limited client whose requests are larger than one refresh grants', async () => {
    // 256 KiB every 100 ms (2.5 MiB/s, under t_max's 4000 KiB/s), 5 ms each: 0.1 W of disk active
    // power, far under the 2 W limit — but each request is bigger than one refresh's 200 KiB grant.
    const big = ['ts_ns,vm,op,offset,bytes,latency_ns', ...Array.from({ length: 200 }, (_, i) => `${(i + 1) * 100_000_000},vm1,R,0,262144,5000000`)].join('\n') + '\n';
    const s = await replayTexts(direct, { disk: big }, ['disk-energy', 'disk-budgets'], { policy: { disk: { arrival: 'trace', start_s: 0, limits_watts: { vm1: 2 } } } });
    expect(s.metrics.get('disk.vm1.requests')! + s.metrics.get('disk.vm1.backlog')!).toBe(200);
    expect(s.metrics.get('disk.vm1.requests')!).toBeGreaterThan(195);
  });

  it('a request without service time does not stop the simulated clock', async () => {
    const zero = ['ts_ns,vm,op,offset,bytes,latency_ns', ...Array.from({ length: 10 }, (_, i) => `${(i + 1) * 1_000_000},vm1,R,0,4096,0`)].join('\n') + '\n';
    const s = await replayTexts(direct, { disk: zero }, ['disk-energy', 'disk-budgets'], { policy: { disk: { arrival: 'closed', start_s: 0 } } });
    // Every request once; the last completes at the end of the run, so it is still in service.
    expect(s.metrics.get('disk.vm1.requests')!).toBe(9);
    expect(s.metrics.get('disk.vm1.requests')! + s.metrics.get('disk.vm1.backlog')!).toBe(10);
  });

  it('a chain of services: each client request once, at the disk\'s rate, costing both drivers', async () => {
    // chainTraces: each client request is logged by stor (the client's row: 4 KiB, latency 1 ms,
    // the whole chain) and by net (the leg, naming stor: 4 KiB in 100 µs, so the NIC's measured
    // rate is 4096 B / 100 µs). Per request the client's driver-side active energy is, by hand:
    // the NIC's (3 − 1) W × 100 µs = 200 µJ, stor's CPU 100 k uops × 1 nJ = 100 µJ and net's
    // 40 k uops = 40 µJ: 340 µJ. Before, the leg was queued again as a client `stor` and the
    // client's row took the disk for its 1 ms: 2.1 mJ a request, 6× the accounting.
    const m = resolveProfile(chainProfile(), 'chain.json');
    const tr = chainTraces(20, { vm1: 60, vm2: 20 });
    const sink = await replayTexts(m, { cswitch: tr.cswitch, disk: tr.disk }, ['cpu-split', 'disk-energy', 'driver-charge', 'disk-budgets'], { policy: { disk: { arrival: 'trace', start_s: 0 } } });
    const c = cells(sink);
    expect(sink.metrics.has('disk.stor.demand')).toBe(false);
    expect(sink.diskPolicyRows.some((r) => r.vm === 'stor')).toBe(false);
    for (const [vm, n] of [['vm1', 1200], ['vm2', 400]] as const) {
      expect(sink.metrics.get(`disk.${vm}.demand`), vm).toBe(n);
      expect(sink.metrics.get(`disk.${vm}.backlog`), vm).toBe(0);
      const sim = sink.diskPolicyRows.filter((r) => r.vm === vm).reduce((a, r) => a + r.watts * 0.2, 0);
      expect(relDiff(sim, n * 340e-6), vm).toBeLessThan(0.05);
      const accounted = c.get(`${vm}|net|nic|active`)! + c.get(`${vm}|stor|cpu|active`)! + c.get(`${vm}|net|cpu|active`)!;
      expect(relDiff(sim, accounted), vm).toBeLessThan(0.05);
    }
  });

  it('a chain three drivers deep: only the physical leg tells the disk\'s rate, whatever the middle leg\'s latency', async () => {
    // vm1 (3 of 4) and vm2 ask A, which asks B, which asks C, which reads 64 KiB from the disk in
    // 655 µs (100 MB/s). B logs A's request with a latency that covers B → C → disk: ten times the
    // physical one here. The simulation must cost and time vm's requests by the physical rate, as
    // the accounting does (the middle leg's latency made it 5× the accounting, found by a review).
    const p = deepChainProfile();
    const cs = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0'];
    const disk = ['ts_ns,vm,op,offset,bytes,latency_ns'];
    let uops = 0;
    for (let i = 0; i < 1600; i++) {
      const t = 1e8 + i * 6_250_000;
      cs.push(`${t},0,idle,${t},${uops}`, `${t + 50_000},0,A,${t + 50_000},${(uops += 20_000)}`, `${t + 100_000},0,B,${t + 100_000},${(uops += 40_000)}`, `${t + 150_000},0,C,${t + 150_000},${(uops += 80_000)}`);
      disk.push(`${t},B,R,0,65536,655360`, `${t},A,R,0,65536,6553600`, `${t},${i % 4 === 3 ? 'vm2' : 'vm1'},R,0,65536,6653600`);
    }
    const T = 1e8 + 1600 * 6_250_000 + 1e8;
    cs.push(`${T},0,idle,${T},${uops}`);
    const sink = await replayTexts(resolveProfile(p, 'deep.json'), { cswitch: cs.join('\n') + '\n', disk: disk.join('\n') + '\n' }, ['cpu-split', 'disk-energy', 'driver-charge', 'disk-budgets'], { policy: { disk: { arrival: 'trace', start_s: 0 } } });
    const c = cells(sink);
    expect(sink.diskPolicyRows.some((r) => r.vm === 'A' || r.vm === 'B')).toBe(false);
    for (const [vm, n] of [['vm1', 1200], ['vm2', 400]] as const) {
      expect(sink.metrics.get(`disk.${vm}.demand`), vm).toBe(n);
      expect(sink.metrics.get(`disk.${vm}.backlog`), vm).toBe(0);
      const sim = sink.diskPolicyRows.filter((r) => r.vm === vm).reduce((a, r) => a + r.watts * 0.2, 0);
      // By hand: the disk's (5 − 2) W × 655 µs = 1.97 mJ + A, B, C's 20 + 40 + 80 µJ = 2.11 mJ a request.
      expect(relDiff(sim, n * (3 * 655.36e-6 + 140e-6)), vm).toBeLessThan(0.05);
      const accounted = ['A', 'B', 'C'].reduce((a, d) => a + (c.get(`${vm}|${d}|cpu|active`) ?? 0), 0) + c.get(`${vm}|C|disk|active`)!;
      expect(relDiff(sim, accounted), vm).toBeLessThan(0.05);
    }
  });

  it('settle_s counts from start_s, also when start_s falls between two manager periods', async () => {
    // One client on the disk directly: 64 KiB every 10 ms, 5 ms each, 1 W of active power; a
    // 0.5 W limit. Periods of 200 ms from the trace's start: start_s 5.1 and 5.2 control the same
    // periods (the first begins at 5.2 s), so their settle_s are 0.1 s apart.
    const reqs = ['ts_ns,vm,op,offset,bytes,latency_ns', ...Array.from({ length: 6000 }, (_, i) => `${(i + 1) * 10_000_000},vm1,R,0,65536,5000000`)].join('\n') + '\n';
    const at = (startS: number) => replayTexts(direct, { disk: reqs }, ['disk-energy', 'disk-budgets'], { policy: { disk: { arrival: 'trace', limits_watts: { vm1: 0.5 }, start_s: startS } } });
    const [a, b] = await Promise.all([at(5.1), at(5.2)]);
    expect(b.metrics.get('disk.vm1.settle_s')).toBeGreaterThanOrEqual(0);
    expect(a.metrics.get('disk.vm1.settle_s')! - b.metrics.get('disk.vm1.settle_s')!).toBeCloseTo(0.1, 9);
  });

  it('delays, never drops: served + still waiting = demand; a tighter limit serves no more', async () => {
    const a = await run({ vm1: 0.05 });
    const b = await run({ vm1: 0.02 });
    for (const s of [a, b]) {
      expect(s.metrics.get('disk.vm1.requests')! + s.metrics.get('disk.vm1.backlog')!).toBe(sc.requestsBy.get('vm1'));
      expect(s.metrics.get('disk.vm1.backlog')!).toBeGreaterThan(0);
      expect(s.metrics.get('disk.vm2.backlog')).toBe(0);
    }
    expect(b.metrics.get('disk.vm1.bytes')!).toBeLessThan(a.metrics.get('disk.vm1.bytes')!);
  });
});
