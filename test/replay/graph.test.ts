/**
 * The stage graph (src/replay/graph.ts): stages are wired from their declarations only; a stage
 * whose input has no producer is refused naming both; energy rows pass the later stages' handlers.
 */
import { describe, expect, it } from 'vitest';
import { machineOf, pipelineStub, driverProfile, profileOf } from '../helpers.js';
import { resolveProfile } from '../../src/core/profile.js';
import { defineStage, type EnergyRow, type Stage } from '../../src/core/stage.js';
import { buildGraph, planStages } from '../../src/replay/graph.js';
import { MemorySink } from '../../src/store/memory.js';
import { Span } from '../../src/core/span.js';
import { joules, ns } from '../../src/core/units.js';
import type { StageName, TraceKind } from '../../src/core/pipeline.js';

const m = machineOf();
const plan = (stages: StageName[], traces: TraceKind[] = ['cswitch'], policy: unknown = {}) => planStages(pipelineStub({ stages, traces, policy }), m);

describe('planStages', () => {
  it('refuses a stage whose input no earlier stage produces, naming both', () => {
    expect(() => plan(['host-strides'])).toThrow(/stage 'host-strides' needs the cpu-periods output of stage 'cpu-split' .*add it to "stages"/);
    expect(() => plan(['cpu-split', 'host-strides'], ['cswitch', 'guest'])).toThrow(/stage 'host-strides' needs the guest-periods output of stage 'virtual-counters' \(the guest log's container periods/);
    expect(() => plan(['cpu-split', 'guest-containers'], ['cswitch', 'guest'])).toThrow(/stage 'guest-containers' needs the guest-periods output of stage 'virtual-counters'/);
    const drv = resolveProfile(driverProfile(), 'p.json');
    expect(() => planStages(pipelineStub({ stages: ['disk-energy', 'disk-budgets'], traces: ['disk'] }), drv)).toThrow(
      /stage 'disk-budgets' needs the driver-cost output of stage 'driver-charge' \(driver VM 'drv' serves disk 'disk'/,
    );
  });

  it('needs an optional input only where it would change the result', () => {
    // No guest log: host-strides runs without virtual-counters. No driver: disk-budgets without driver-charge.
    expect(plan(['cpu-split', 'host-strides']).defs.map((d) => d.name)).toEqual(['cpu-split', 'host-strides']);
    expect(planStages(pipelineStub({ stages: ['disk-energy', 'disk-budgets'], traces: ['disk'] }), m).traces).toEqual(['disk']);
    // The guest log is read only because virtual-counters reads it.
    expect(plan(['cpu-split', 'virtual-counters', 'host-strides'], ['cswitch', 'guest']).traces).toEqual(['cswitch', 'guest']);
    expect(plan(['cpu-split', 'host-strides'], ['cswitch', 'measured']).traces).toEqual(['cswitch', 'measured']);
  });

  it('refuses host- and guest-level control of the same guest in one run', () => {
    // Both would report the energy-aware guest's CPU (cpu.<vm>.*), each from its own simulation.
    const p = profileOf();
    p.vms[0]!.energy_aware = true;
    const aware = resolveProfile(p, 'aware.json');
    const stages: StageName[] = ['cpu-split', 'virtual-counters', 'host-strides', 'guest-containers'];
    expect(() => planStages(pipelineStub({ stages, traces: ['cswitch', 'guest'] }), aware)).toThrow(/'host-strides' and 'guest-containers' would each simulate the CPU of the energy-aware guest 'a'/);
    // Without an energy-aware guest, guest-containers has nothing to do but is no conflict.
    expect(plan(stages, ['cswitch', 'guest']).defs).toHaveLength(4);
  });

  it('names the trace a stage needs though it reads it through another stage', () => {
    expect(() => plan(['cpu-split', 'virtual-counters', 'guest-containers'], ['cswitch'])).toThrow(/stage 'guest-containers' reads the guest trace, but the pipeline gives none/);
  });
});

describe('buildGraph', () => {
  const row = (consumer: string, j: number): EnergyRow => ({ t0: ns(0), t1: ns(1), consumer, container: null, via: null, device: 'cpu', kind: 'idle', joules: joules(j) });

  it('hands an energy row to the handlers of the later stages only, in order, until one takes it', () => {
    const seen: string[] = [];
    const probe = (name: string, takes: string | null, writes: string[] = []) =>
      defineStage({
        name: 'cpu-split',
        summary: name,
        traces: [],
        reads: [{ port: 'energy', neededBecause: () => null }],
        writes: ['energy'],
        settings: () => null,
        create: (ctx): Stage => ({
          energy(r) {
            seen.push(`${name} sees ${r.consumer}`);
            if (r.consumer !== takes) return false;
            // Takes it over and charges it on, as driver-charge does.
            ctx.out.energy({ ...r, consumer: `${r.consumer}'` });
            return true;
          },
          finish() {
            for (const c of writes) {
              ctx.account('cpu', 1);
              ctx.out.energy(row(c, 1));
            }
          },
        }),
      });
    const sink = new MemorySink();
    const g = buildGraph([probe('first', null, ['a', 'b']), probe('second', 'b', ['c']), probe('third', null)], { machine: m, pipeline: pipelineStub(), intervalNs: ns(1e8), span: new Span(), sink });
    g.finish({ t0: 0, t1: 1 });
    expect(seen).toEqual(['second sees a', 'third sees a', 'second sees b', "third sees b'", 'third sees c']);
    expect(sink.rows.map((r) => r.consumer)).toEqual(['a', "b'", 'c']);
  });

  it('refuses a run whose stored energy is not what the stages accounted (a bug: nothing stored)', () => {
    const leaky = defineStage({
      name: 'cpu-split',
      summary: 'accounts 10 J on the CPU but writes 9 J',
      traces: [],
      reads: [],
      writes: ['energy'],
      settings: () => null,
      create: (ctx): Stage => ({
        finish: () => {
          ctx.account('cpu', 10);
          ctx.out.energy(row('a', 9));
        },
      }),
    });
    const g = buildGraph([leaky], { machine: m, pipeline: pipelineStub(), intervalNs: ns(1e8), span: new Span(), sink: new MemorySink() });
    expect(() => g.finish({ t0: 0, t1: 1 })).toThrow(/energy is not conserved on device 'cpu': the stages accounted 10 J, the rows add up to 9 J \(off by -1 J\)/);
  });

  it('refuses an emission on a port the stage did not declare (a bug, not input)', () => {
    const liar = defineStage({
      name: 'cpu-split',
      summary: 'emits guest periods without declaring them',
      traces: [],
      reads: [],
      writes: [],
      settings: () => null,
      create: (ctx): Stage => ({ finish: () => ctx.emit('guest-periods', { length: 0 } as never) }),
    });
    const g = buildGraph([liar], { machine: m, pipeline: pipelineStub(), intervalNs: ns(1e8), span: new Span(), sink: new MemorySink() });
    expect(() => g.finish({ t0: 0, t1: 1 })).toThrow(/emitted on 'guest-periods', which its definition does not declare/);
  });
});
