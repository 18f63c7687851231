/**
 * Properties of the policy stages on random traces (fast-check): work served + backlog = demand,
 * per VM, per container and per disk client; limits hold once settled. And two cases by hand:
 * closed arrival over 1,000 recorded requests, container limits from their start_s.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveProfile } from '../../../src/core/profile.js';
import { machineOf, profileOf, replayTexts } from '../../helpers.js';

/** One CPU at 1 GHz; VMs a, b, c take turns in slices of random length, each at its own power. */
const cpuArb = fc.record({
  slices: fc.array(fc.record({ vm: fc.constantFrom('a', 'b', 'c', 'idle'), ms: fc.integer({ min: 1, max: 30 }) }), { minLength: 20, maxLength: 400 }),
  limitA: fc.constantFrom(3, 8, 15),
  controller: fc.constantFrom<'paper' | 'adaptive'>('paper', 'adaptive'),
  bound: fc.boolean(),
  startS: fc.constantFrom(0, 0.5),
});
const WATTS: Record<string, number> = { a: 40, b: 25, c: 10, idle: 0 };

function cswitchOf(slices: { vm: string; ms: number }[]): string {
  const rows = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0'];
  let t = 0;
  let uops = 0;
  for (const s of slices) {
    t += s.ms * 1e6;
    uops += Math.round(WATTS[s.vm]! * s.ms * 1e6);
    rows.push(`${t},0,${s.vm},${t},${uops}`);
  }
  return rows.join('\n') + '\n';
}

describe('host-strides on random traces', () => {
  const m = resolveProfile(profileOf({ vms: ['a', 'b', 'c'], events: { uops: 1e-9 } }), 'abc.json');
  it('work − extra + backlog = demand for every VM; a settled limit holds within 10 %', async () => {
    await fc.assert(
      fc.asyncProperty(cpuArb, async (o) => {
        const s = await replayTexts(m, { cswitch: cswitchOf(o.slices) }, ['cpu-split', 'host-strides'], {
          policy: { cpu: { period_ms: 50, start_s: o.startS, controller: o.controller, limits_watts: { a: o.limitA }, cpu_bound: o.bound ? ['b'] : [] } },
        });
        for (const vm of ['a', 'b', 'c']) {
          const g = (k: string) => s.metrics.get(`cpu.${vm}.${k}`);
          if (g('demand_s') === undefined) continue;
          expect(g('work_s')! - (g('extra_s') ?? 0) + g('backlog_s')!, vm).toBeCloseTo(g('demand_s')!, 6);
        }
        const settled = s.metrics.get('cpu.a.settled_mean_watts');
        if (s.metrics.get('cpu.a.settle_s') !== undefined) expect(Math.abs(settled! / o.limitA - 1)).toBeLessThan(0.1);
        // The limit never makes a VM draw more than it did unlimited.
        const max = s.metrics.get('cpu.a.max_period_watts');
        if (max !== undefined) expect(max).toBeLessThanOrEqual(40 * 1.0001);
      }),
      { numRuns: 40 },
    );
  }, 120_000);
});

describe('disk-budgets on random traces', () => {
  const m = machineOf({ vms: ['vm1', 'vm2'] });
  const diskArb = fc.record({
    reqs: fc.array(fc.record({ vm: fc.constantFrom('vm1', 'vm2'), gap: fc.integer({ min: 0, max: 20_000_000 }), bytes: fc.constantFrom(512, 4096, 65536, 1 << 20), lat: fc.integer({ min: 1, max: 30_000_000 }) }), { minLength: 5, maxLength: 300 }),
    limit: fc.constantFrom(0.01, 0.1, 1),
    arrival: fc.constantFrom<'trace' | 'closed'>('trace', 'closed'),
  });
  it('requests + backlog = demand per client; bytes served never exceed the recorded bytes', async () => {
    await fc.assert(
      fc.asyncProperty(diskArb, async (o) => {
        let t = 1000;
        const rows = ['ts_ns,vm,op,offset,bytes,latency_ns'];
        const bytes = new Map<string, number>();
        for (const r of o.reqs) {
          t += r.gap;
          rows.push(`${t},${r.vm},R,0,${r.bytes},${r.lat}`);
          bytes.set(r.vm, (bytes.get(r.vm) ?? 0) + r.bytes);
        }
        const s = await replayTexts(m, { disk: rows.join('\n') + '\n' }, ['disk-energy', 'disk-budgets'], { policy: { disk: { arrival: o.arrival, limits_watts: { vm1: o.limit } } } });
        for (const vm of ['vm1', 'vm2']) {
          const g = (k: string) => s.metrics.get(`disk.${vm}.${k}`);
          if (g('demand') === undefined) continue;
          expect(g('requests')! + g('backlog')!, vm).toBe(g('demand')!);
          expect(g('demand')!, vm).toBe(o.reqs.filter((r) => r.vm === vm).length);
          expect(g('bytes')!, vm).toBeLessThanOrEqual(bytes.get(vm)!);
        }
      }),
      { numRuns: 40 },
    );
  }, 120_000);

  it('closed arrival, 1,000 recorded requests: each issued once, in order; all bytes served once', async () => {
    // vm1 recorded 1,000 requests of 4 KiB, 1 ms of service each, completing 2 ms apart; the CPU
    // log runs 1 s longer, so the run outlasts them. Unlimited, all 1,000 are served: 4,096,000
    // bytes, none left. Limited, with a throttle factor that starts (and stays) at t_max = 8 KiB/s
    // (a 4 KiB request every 0.5 s: about 6 in the 3 s run), few are served and the rest wait:
    // served + waiting = 1,000.
    const disk = ['ts_ns,vm,op,offset,bytes,latency_ns', ...Array.from({ length: 1000 }, (_, i) => `${(i + 1) * 2_000_000},vm1,R,${i * 4096},4096,1000000`)].join('\n') + '\n';
    const cswitch = `ts_ns,cpu,vm,tsc,uops\n0,0,idle,0,0\n3000000000,0,idle,3000000000,0\n`;
    const p = profileOf({ vms: ['vm1', 'vm2'] });
    p.disks['disk']!.active_watts = 5.6;
    const mm = resolveProfile(p, 'p.json');
    const free = await replayTexts(mm, { cswitch, disk }, ['cpu-split', 'disk-energy', 'disk-budgets'], { policy: { disk: { arrival: 'closed' } } });
    expect(free.metrics.get('disk.vm1.requests')).toBe(1000);
    expect(free.metrics.get('disk.vm1.bytes')).toBe(4_096_000);
    expect(free.metrics.get('disk.vm1.backlog')).toBe(0);
    const capped = await replayTexts(mm, { cswitch, disk }, ['cpu-split', 'disk-energy', 'disk-budgets'], { policy: { disk: { arrival: 'closed', t_max: 8, limits_watts: { vm1: 0.0005 } } } });
    const served = capped.metrics.get('disk.vm1.requests')!;
    expect(served).toBeGreaterThanOrEqual(4);
    expect(served).toBeLessThanOrEqual(8);
    expect(served + capped.metrics.get('disk.vm1.backlog')!).toBe(1000);
    expect(capped.metrics.get('disk.vm1.bytes')).toBe(served * 4096);
  });
});

describe('containers on random guest logs', () => {
  // A guest g alone on one CPU (slices of random length), its guest log switching between
  // containers x and y at each slice's end; g limited at host level or its containers in the guest.
  const guestArb = fc.record({
    slices: fc.array(fc.record({ ms: fc.integer({ min: 1, max: 20 }), c: fc.constantFrom('x', 'y'), idle: fc.boolean() }), { minLength: 10, maxLength: 300 }),
    limit: fc.constantFrom(5, 20),
    policy: fc.constantFrom<'static' | 'shares'>('static', 'shares'),
  });
  function logs(slices: { ms: number; c: string; idle: boolean }[]) {
    const cs = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0'];
    const gl = ['ts_ns,vm,cpu,container,tsc,uops', '0,g,0,x,0,0'];
    let t = 0;
    let uops = 0;
    for (const s of slices) {
      t += s.ms * 1e6;
      if (s.idle) {
        cs.push(`${t},0,idle,${t},${uops}`);
        continue;
      }
      uops += 40 * s.ms * 1e6;
      cs.push(`${t},0,g,${t},${uops}`);
      gl.push(`${t},g,0,${s.c},${t},${uops}`);
    }
    return { cswitch: cs.join('\n') + '\n', guest: gl.join('\n') + '\n' };
  }
  const p = profileOf({ vms: ['g'], events: { uops: 1e-9 } });
  p.vms[0]!.energy_aware = true;
  const aware = resolveProfile(p, 'g.json');
  const plain = resolveProfile(profileOf({ vms: ['g'], events: { uops: 1e-9 } }), 'g0.json');
  const check = (s: { metrics: Map<string, number> }) => {
    for (const c of ['x', 'y']) {
      const g = (k: string) => s.metrics.get(`container.g.${c}.${k}`);
      if (g('demand_s') === undefined) continue;
      expect(g('work_s')! + g('backlog_s')!, c).toBeCloseTo(g('demand_s')!, 6);
    }
  };
  it('host-strides: each container served + still queued = its recorded time', async () => {
    await fc.assert(
      fc.asyncProperty(guestArb, async (o) => {
        const s = await replayTexts(plain, logs(o.slices), ['cpu-split', 'virtual-counters', 'host-strides'], { policy: { cpu: { period_ms: 50, controller: 'adaptive', limits_watts: { g: o.limit } } } });
        check(s);
      }),
      { numRuns: 30 },
    );
  }, 120_000);
  it('guest-containers: each container served + still queued = its recorded time', async () => {
    await fc.assert(
      fc.asyncProperty(guestArb, async (o) => {
        const s = await replayTexts(aware, logs(o.slices), ['cpu-split', 'virtual-counters', 'guest-containers'], { policy: { guest: { policy: o.policy, limits_watts: { g: { x: o.limit, y: 2 * o.limit } } } } });
        check(s);
      }),
      { numRuns: 30 },
    );
  }, 120_000);
});

describe('guest-containers: limits from their start_s', () => {
  // One guest g on one CPU, alone, running containers x and y in 5 ms turns for 4 s at 50 W; the
  // containers are limited to 10 W each from 2 s (policy.guest.start_s). Before: no budget, each
  // draws its share of 50 W (25 W); after: 10 W each, preempted the rest of each 50 ms period.
  const p = profileOf({ vms: ['g'], events: { uops: 1e-9 } });
  p.vms[0]!.energy_aware = true;
  const m = resolveProfile(p, 'g.json');
  const cs = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0'];
  const gl = ['ts_ns,vm,cpu,container,tsc,uops', '0,g,0,x,0,0'];
  let uops = 0;
  for (let i = 1; i <= 800; i++) {
    uops += 250_000_000;
    cs.push(`${i * 5e6},0,g,${i * 5e6},${uops}`);
    gl.push(`${i * 5e6},g,0,${i % 2 ? 'x' : 'y'},${i * 5e6},${uops}`);
  }
  it('before start_s the containers run free; after it each is held to its limit', async () => {
    const s = await replayTexts(m, { cswitch: cs.join('\n') + '\n', guest: gl.join('\n') + '\n' }, ['cpu-split', 'virtual-counters', 'guest-containers'], {
      policy: { guest: { start_s: 2, cpu_bound: true, limits_watts: { g: { x: 10, y: 10 } } } },
    });
    const rows = (c: string, before: boolean) => s.containerRows.filter((r) => r.container === c && (r.t <= 2e9) === before);
    for (const c of ['x', 'y']) {
      const early = rows(c, true);
      const late = rows(c, false);
      expect(early.every((r) => r.limitWatts === null), c).toBe(true);
      expect(early.reduce((a, r) => a + r.watts, 0) / early.length, c).toBeGreaterThan(20);
      expect(late.every((r) => r.limitWatts === 10), c).toBe(true);
      expect(Math.abs(late.reduce((a, r) => a + r.watts, 0) / late.length / 10 - 1), c).toBeLessThan(0.02);
      // The mean over the window from start_s is the limit; the demand is all the recorded time.
      expect(Math.abs(s.metrics.get(`container.g.${c}.mean_watts`)! / 10 - 1), c).toBeLessThan(0.02);
    }
  });
});
