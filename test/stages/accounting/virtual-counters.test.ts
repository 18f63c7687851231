import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Batch, ContainerBatch, EventSlice } from '../../../src/core/events.js';
import { resolveProfile } from '../../../src/core/profile.js';
import { pump } from '../../../src/core/runner.js';
import { Span } from '../../../src/core/span.js';
import type { Stage, StageContext } from '../../../src/core/stage.js';
import { makeDecoder } from '../../../src/core/decoders.js';
import { VirtualCounters } from '../../../src/stages/accounting/virtual-counters.js';
import { MemorySink } from '../../../src/store/memory.js';
import { chunkStream } from '../../../src/traces/csv.js';
import { standardVms, syntheticCswitch } from '../../../src/generate/synthetic-cswitch.js';
import { pipelineStub, profileOf, replayTexts } from '../../helpers.js';

const p = profileOf({ vms: ['a', 'b'] });
p.vms[0]!.energy_aware = true;
const m = resolveProfile(p, 'm.json');

/** Runs virtual-counters and a probe that records the translated guest periods. */
async function run(cswitch: string, guest: string) {
  const sink = new MemorySink();
  const span = new Span();
  const ctx: StageContext = { machine: m, pipeline: pipelineStub(1000), intervalNs: 1e9, sink, span };
  const seen: { container: string; dtsc: number; vdtsc: number; duops: number; vuops: number }[] = [];
  const probe: Stage = {
    name: 'guest-containers',
    consumes: ['container'],
    push(s: EventSlice) {
      const b = s.batch as ContainerBatch;
      for (let i = s.from; i < s.to; i++) seen.push({ container: b.names[b.container[i]!]!, dtsc: b.dtsc[i]!, vdtsc: b.vdtsc[i]!, duops: b.dev[i]!, vuops: b.vdev[i]! });
    },
    finish() {},
  };
  const stages = [new VirtualCounters(ctx), probe];
  const base = { hi: 0, lo: 0 };
  const streams = [chunkStream([cswitch], makeDecoder('cswitch', 'c.csv', base, m)), chunkStream([guest], makeDecoder('guest', 'g.csv', base, m))];
  await pump(streams as AsyncIterableIterator<Batch>[], stages, span);
  for (const s of stages) s.finish(span.get());
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
    expect(seen).toEqual([
      { container: 'web', dtsc: 0, vdtsc: 0, duops: 0, vuops: 0 },
      { container: 'db', dtsc: 250, vdtsc: 100, duops: 40, vuops: 10 },
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
