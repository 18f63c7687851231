/**
 * Properties of every accounting stage over random driver scenarios (fast-check): conservation per
 * device, totals independent of the reporting interval and of how the input is cut, no negative
 * charge, and a client that issued no request gets exactly its equal idle parts of the driver.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../../src/core/machine.js';
import { resolveProfile } from '../../../src/core/profile.js';
import { driverScenario } from '../../../src/generate/driver-scenario.js';
import { cells, relDiff, replayTexts } from '../../helpers.js';

/** One CPU at 24 W idle; a driver serving vm1, vm2 and vm3 (vm3 never issues a request). */
function profile(split: 'equal' | 'by-time'): Profile {
  return {
    cpu: { tsc_hz: 1e9, idle_watts: 24, counter_bits: 48, idle_split: split, events: { uops: 1e-9 } },
    disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5e7, rate_window: 20, idle_period_ms: 50 } },
    vms: ['drv', 'vm1', 'vm2', 'vm3'].map((id) => ({ id, role: id === 'drv' ? ('driver' as const) : ('client' as const) })),
    services: [{ id: 'vdisk', driver: 'drv', device: 'disk', clients: ['vm1', 'vm2', 'vm3'] }],
  };
}

const scenarioArb = fc.record({
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  seconds: fc.integer({ min: 2, max: 6 }),
  quietS: fc.constantFrom(0, 0.3, 1),
  baselineWatts: fc.constantFrom(0, 0.5, 3),
  r1: fc.integer({ min: 5, max: 120 }),
  r2: fc.integer({ min: 0, max: 60 }),
  b1: fc.constantFrom(512, 4096, 65536),
  b2: fc.constantFrom(4096, 1048576),
  a: fc.double({ min: 1e-5, max: 5e-3, noNaN: true }),
  perByte: fc.double({ min: 0, max: 1e-8, noNaN: true }),
  noLatency: fc.boolean(),
  split: fc.constantFrom<'equal' | 'by-time'>('equal', 'by-time'),
  model: fc.constantFrom<'constant' | 'per-byte'>('constant', 'per-byte'),
});

type Sc = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

function build(s: Sc) {
  const clients = [{ vm: 'vm1', perSecond: s.r1, bytes: s.b1 }, ...(s.r2 > 0 ? [{ vm: 'vm2', perSecond: s.r2, bytes: s.b2, op: 'W' as const }] : [])];
  return driverScenario({ seconds: s.seconds, quietS: s.quietS, driver: 'drv', uopJoules: 1e-9, cost: (b) => s.a + s.perByte * b, baselineWatts: s.baselineWatts, seed: s.seed, noLatency: s.noLatency, clients });
}

const STAGES = ['cpu-split', 'disk-energy', 'driver-charge', 'virtual-counters'] as const;

describe('accounting stages: properties over random driver scenarios', () => {
  it('conserve every device; no negative charge; the client without requests gets exactly its equal idle parts', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const sc = build(s);
        const m = resolveProfile(profile(s.split), 'p.json');
        const texts = { cswitch: sc.cswitch, disk: sc.disk };
        const sink = await replayTexts(m, texts, STAGES, { driver: { model: s.model } });
        const alone = await replayTexts(m, { cswitch: sc.cswitch }, ['cpu-split']);
        const T = sc.durationNs / 1e9;
        // CPU: moved between consumers, never created; disk: idle power × duration + Σ active.
        expect(relDiff(sink.total((r) => r.device === 'cpu'), alone.total())).toBeLessThan(1e-9);
        expect(relDiff(sink.total((r) => r.device === 'disk'), 3.6 * T + sink.metrics.get('accounting.disk.disk.active_joules')!)).toBeLessThan(1e-9);
        // Nothing stays with the driver, and no charge is negative.
        expect(sink.rows.filter((r) => r.consumer === 'drv')).toEqual([]);
        expect(sink.rows.filter((r) => r.joules < -1e-12 * alone.total())).toEqual([]);
        // vm3 issued nothing: a third of the driver's idle share and of its baseline, nothing active.
        const c = cells(sink);
        const idleParts = (sink.metrics.get('accounting.driver.drv.idle_share_joules')! + sink.metrics.get('accounting.driver.drv.baseline_joules')!) / 3;
        expect(relDiff(c.get('vm3|drv|cpu|idle') ?? 0, idleParts)).toBeLessThan(1e-9);
        expect(c.get('vm3|drv|cpu|active') ?? 0).toBe(0);
        expect(c.get('vm3|drv|disk|active') ?? 0).toBe(0);
        // Virtual counters: the VMs' private advances add up to the hardware's.
        const tsc = sink.counters.filter((r) => r.event === 'tsc').reduce((a, r) => a + r.advance, 0);
        expect(relDiff(tsc, sink.metrics.get('accounting.counters.tsc.hardware_advance')!)).toBeLessThan(1e-12);
      }),
      { numRuns: 40 },
    );
  }, 120_000);

  it('give the same totals per cell for any reporting interval and any cut of the input', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, fc.constantFrom(37, 250, 1000), fc.integer({ min: 501, max: 9000 }), async (s, intervalMs, chunkBytes) => {
        const sc = build(s);
        const m = resolveProfile(profile(s.split), 'p.json');
        const texts = { cswitch: sc.cswitch, disk: sc.disk };
        const ref = await replayTexts(m, texts, STAGES, { driver: { model: s.model } });
        const other = await replayTexts(m, texts, STAGES, { driver: { model: s.model }, intervalMs, chunkBytes });
        const a = cells(ref);
        const b = cells(other);
        const scale = ref.total();
        for (const k of new Set([...a.keys(), ...b.keys()])) expect(Math.abs((a.get(k) ?? 0) - (b.get(k) ?? 0)) / scale, k).toBeLessThan(1e-9);
        const counters = (x: typeof ref) => {
          const out = new Map<string, number>();
          for (const r of x.counters) out.set(`${r.vm}|${r.event}`, (out.get(`${r.vm}|${r.event}`) ?? 0) + r.advance);
          return out;
        };
        const ca = counters(ref);
        const cb = counters(other);
        for (const [k, v] of ca) expect(relDiff(cb.get(k)!, v), k).toBeLessThan(1e-9);
      }),
      { numRuns: 30 },
    );
  }, 120_000);
});
