import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { resolveProfile } from '../../../src/core/profile.js';
import { defineStage, type GuestPeriods } from '../../../src/core/stage.js';
import { stageDefinition } from '../../../src/stages/registry.js';
import { standardVms, syntheticCswitch } from '../../../src/generate/synthetic-cswitch.js';
import { profileOf, replayDefs, replayTexts } from '../../helpers.js';
import type { ContainerBatch } from '../../../src/core/events.js';
import { decodeText } from '../../../src/traces/csv.js';
import { GuestDecoder } from '../../../src/traces/guest.js';

const p = profileOf({ vms: ['a', 'b'] });
p.vms[0]!.energy_aware = true;
const m = resolveProfile(p, 'm.json');

/** Runs virtual-counters and a probe stage that records the guest periods it hands on. */
async function run(cswitch: string, guest: string) {
  const seen: { container: string; vdtsc: number; vuops: number }[] = [];
  const probe = defineStage({
    name: 'guest-containers',
    summary: 'probe',
    traces: [],
    reads: [{ port: 'guest-periods' }],
    writes: [],
    settings: () => null,
    create: () => ({
      receive: {
        'guest-periods': (g: GuestPeriods) => {
          for (let i = 0; i < g.length; i++) seen.push({ container: g.names[g.container[i]!]!, vdtsc: g.vtsc[i]!, vuops: g.vev[i * g.nEvents]! });
        },
      },
      finish() {},
    }),
  });
  const sink = await replayDefs(m, { cswitch, guest }, [stageDefinition('virtual-counters'), probe], { intervalMs: 1000 });
  return { sink, seen };
}

describe('virtual-counters (§3.4.1)', () => {
  // CPU 0: a runs [0,100] (tsc 100, uops 10), b [100,250] (150, 30), a [250,300] (50, 5).
  const cswitch = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0', '100,0,a,100,10', '250,0,b,250,40', '300,0,a,300,45', ''].join('\n');
  // Inside a: container web until 50, then db until 300, read with the hardware counters.
  const guest = ['ts_ns,vm,cpu,container,tsc,uops', '50,a,0,web,50,5', '300,a,0,db,300,45', ''].join('\n');

  it("translates a guest's reading: hardware minus the others' advances (by hand)", async () => {
    const { seen } = await run(cswitch, guest);
    // The opening row is an empty period; db's period [50, 300] read 250 ticks and 40 uops on the
    // hardware, of which b's period (150 ticks, 30 uops) was not a's: a's own are 100 and 10.
    const hw = decodeText(guest, new GuestDecoder('g.csv', { hi: 0, lo: 0 }, m))[0] as ContainerBatch;
    expect([hw.dtsc[0], hw.dev[0], hw.dtsc[1], hw.dev[1]]).toEqual([0, 0, 250, 40]);
    expect(seen).toEqual([
      { container: 'web', vdtsc: 0, vuops: 0 },
      { container: 'db', vdtsc: 100, vuops: 10 },
    ]);
  });

  it('writes each VM its own advances; over the VMs they add up to the hardware', async () => {
    const { sink } = await run(cswitch, guest);
    const by = (vm: string, e: string) => sink.counters.filter((r) => r.vm === vm && r.event === e).reduce((s, r) => s + r.advance, 0);
    expect([by('a', 'tsc'), by('a', 'uops'), by('b', 'tsc'), by('b', 'uops')]).toEqual([150, 15, 150, 30]);
    expect(sink.metrics.get('accounting.counters.tsc.hardware_advance')).toBe(300);
    expect(sink.metrics.get('accounting.counters.uops.hardware_advance')).toBe(45);
  });

  it('on long synthetic logs: advances never negative, and Σ virtual = hardware over the run', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1e6 }), fc.constantFrom(7, 100, 1000), async (seed, intervalMs) => {
        const mm = resolveProfile(profileOf({ vms: ['core', 'drv', 'vm1'], events: { uops: 1e-9, l2: 1e-8 }, bits: 40, tscHz: 3e9 }), 'm.json');
        const o = { rows: 3000, cpus: 3, seed, tscHz: 3e9, counterBits: 40, startBelowWrap: 5000, events: ['uops', 'l2'], vms: standardVms(4, ['uops', 'l2']) };
        const text = [...syntheticCswitch(o)].join('');
        const sink = await replayTexts(mm, { cswitch: text }, ['virtual-counters'], { intervalMs });
        for (const r of sink.counters) expect(r.advance).toBeGreaterThanOrEqual(0);
        for (const e of ['tsc', 'uops', 'l2']) {
          const total = sink.counters.filter((r) => r.event === e).reduce((s, r) => s + r.advance, 0);
          const hw = sink.metrics.get(`accounting.counters.${e}.hardware_advance`)!;
          expect(Math.abs(total - hw) / hw).toBeLessThan(1e-9);
        }
      }),
      { numRuns: 6 },
    );
  });
});
