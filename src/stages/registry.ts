/**
 * Every stage, in pipeline order, with what it reads and writes (docs/architecture.md has the
 * table). The replay (src/replay/graph.ts) wires them from these declarations alone.
 */
import { WattraceError } from '../core/errors.js';
import type { StageName } from '../core/pipeline.js';
import { defineStage, type DriverBaselines, type PlanInfo, type StageDefinition } from '../core/stage.js';
import { CpuSplit } from './accounting/cpu-split.js';
import { DiskEnergy } from './accounting/disk-energy.js';
import { DriverCharge } from './accounting/driver-charge.js';
import { DriverBaselineEstimator } from './accounting/driver-baseline.js';
import { ServiceGraph } from '../core/services.js';
import type { DriverSettings } from '../core/settings.js';
import { VirtualCounters } from './accounting/virtual-counters.js';
import { DiskBudgets } from './policy/disk-budgets.js';
import { HostStrides } from './policy/host-strides.js';
import { GuestContainers } from './guest/guest-containers.js';

/** Why a stage that reads the guest log needs its virtual counters: when the pipeline gives one. */
const withGuestLog = (p: PlanInfo): string | null =>
  p.traces.has('guest') ? "the guest log's container periods are read in each VM's private counter view" : null;

/** Why disk-budgets needs the driver's cost model: when a driver VM serves a disk. */
function driverServesDisk(p: PlanInfo): string | null {
  const { services, disks } = p.machine.profile;
  const s = services.find((x) => x.device in disks && x.clients.length > 0);
  return s ? `driver VM '${s.driver}' serves disk '${s.device}', and a disk limit covers the driver's CPU for each request too` : null;
}

const CPU_SPLIT = defineStage({
  name: 'cpu-split',
  summary: 'CPU idle/access split per VM from the context-switch PMC log (§3.2.1, §3.3.1)',
  traces: ['cswitch'],
  reads: [],
  writes: ['energy', 'cpu-periods'],
  settings: () => null,
  create: (ctx) => new CpuSplit(ctx),
});

const DISK_ENERGY = defineStage({
  name: 'disk-energy',
  summary: 'two-state time-based disk energy per client (§3.2.2, §3.3.2)',
  traces: ['disk'],
  reads: [],
  writes: ['energy', 'disk-requests'],
  settings: () => null,
  create: (ctx) => new DiskEnergy(ctx),
});

/** driver-charge's first pass: the drivers' baselines over the whole trace. */
const DRIVER_BASELINE = defineStage({
  name: 'driver-baseline',
  summary: "each driver VM's baseline CPU power over the whole trace (§3.3.3)",
  traces: [],
  reads: [{ port: 'cpu-periods' }, { port: 'disk-requests' }],
  writes: ['driver-baseline'],
  settings: (s) => s.accounting.driver,
  create: (ctx) => new DriverBaselineEstimator(ctx),
});

/** Baselines all given in the pipeline (`accounting.driver.baseline_watts`): no first pass. */
function givenBaselines(s: DriverSettings): DriverBaselines {
  return {
    baseline: (driver) => {
      const w = s.baseline_watts[driver];
      if (w === undefined) throw new Error(`no baseline given for '${driver}'`);
      return { watts: w, source: 'given', quietNs: 0, fitWindows: 0 };
    },
  };
}

export const STAGES = [
  CPU_SPLIT,
  DISK_ENERGY,
  defineStage({
    name: 'driver-charge',
    summary: "a driver VM's CPU energy charged back to its clients (§3.3.3)",
    traces: [],
    needsTraces: ['cswitch', 'disk'],
    reads: [{ port: 'cpu-periods' }, { port: 'disk-requests' }, { port: 'energy' }, { port: 'driver-baseline', neededBecause: () => null }],
    writes: ['energy', 'driver-cost'],
    settings: (s) => s.accounting.driver,
    // The baselines are estimated over the whole trace in a first pass, unless all are given.
    prepass: (p) => (new ServiceGraph(p.machine).drivers.every((d) => p.machine.consumers[d]! in p.settings.accounting.driver.baseline_watts) ? null : [CPU_SPLIT, DISK_ENERGY, DRIVER_BASELINE]),
    create: (ctx, inputs) => new DriverCharge(ctx, inputs.services['driver-baseline'] ?? givenBaselines(ctx.settings)),
  }),
  defineStage({
    name: 'virtual-counters',
    summary: "each VM's private view of the performance counters (§3.4.1)",
    traces: ['cswitch'],
    optionalTraces: ['guest'],
    reads: [],
    writes: ['guest-periods'],
    settings: () => null,
    create: (ctx) => new VirtualCounters(ctx),
  }),
  defineStage({
    name: 'host-strides',
    summary: 'stride scheduler with a halting idle processor under power limits (§3.3.4, §3.3.6)',
    traces: [],
    needsTraces: ['cswitch'],
    reads: [{ port: 'cpu-periods' }, { port: 'guest-periods', neededBecause: withGuestLog }],
    writes: [],
    settings: (s) => s.policy.cpu,
    create: (ctx) => new HostStrides(ctx),
  }),
  defineStage({
    name: 'disk-budgets',
    summary: 'disk request budgets with the throttle-factor controller (§3.3.5, §3.3.6)',
    traces: ['disk'],
    reads: [{ port: 'driver-cost', neededBecause: driverServesDisk }],
    writes: [],
    settings: (s) => s.policy.disk,
    create: (ctx, inputs) => new DiskBudgets(ctx, inputs.services['driver-cost'] ?? null),
  }),
  defineStage({
    name: 'guest-containers',
    summary: 'resource containers inside energy-aware guests (§3.4.3)',
    traces: [],
    optionalTraces: ['disk'],
    needsTraces: ['cswitch', 'guest'],
    reads: [{ port: 'cpu-periods' }, { port: 'guest-periods' }, { port: 'energy' }],
    writes: ['energy'],
    settings: (s) => s.policy.guest,
    create: (ctx) => new GuestContainers(ctx),
  }),
] as const;

/** Any stage's definition, whatever its settings type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyStageDefinition = StageDefinition<any>;

export function stageDefinition(name: StageName): AnyStageDefinition {
  const d = STAGES.find((s) => s.name === name);
  if (!d) throw new WattraceError('E_PIPELINE', `unknown stage '${name}'`);
  return d;
}
