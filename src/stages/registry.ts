/** Every stage of DESIGN §2, in pipeline order, with what it reads and needs. */
import { WattraceError } from '../core/errors.js';
import type { ResolvedPipeline, StageName, TraceKind } from '../core/pipeline.js';
import type { StageDefinition } from '../core/stage.js';
import { CpuSplit } from './accounting/cpu-split.js';
import { DiskEnergy } from './accounting/disk-energy.js';
import { DriverCharge } from './accounting/driver-charge.js';
import { VirtualCounters } from './accounting/virtual-counters.js';
import { DiskBudgets } from './policy/disk-budgets.js';
import { HostStrides } from './policy/host-strides.js';
import { GuestContainers } from './guest/guest-containers.js';

export const STAGES: readonly StageDefinition[] = [
  { name: 'cpu-split', traces: ['cswitch'], requires: [], summary: 'CPU idle/access split per VM from the context-switch PMC log (§3.2.1, §3.3.1)', create: (ctx) => new CpuSplit(ctx) },
  { name: 'disk-energy', traces: ['disk'], requires: [], summary: 'two-state time-based disk energy per client (§3.2.2, §3.3.2)', create: (ctx) => new DiskEnergy(ctx) },
  { name: 'driver-charge', traces: ['cswitch', 'disk'], requires: ['cpu-split', 'disk-energy'], summary: "a driver VM's CPU energy charged back to its clients (§3.3.3)", create: (ctx) => new DriverCharge(ctx) },
  { name: 'virtual-counters', traces: ['cswitch'], optionalTraces: ['guest'], requires: [], summary: "each VM's private view of the performance counters (§3.4.1)", create: (ctx) => new VirtualCounters(ctx) },
  { name: 'host-strides', traces: ['cswitch'], requires: ['cpu-split'], optionalTraces: ['guest'], summary: 'stride scheduler with a halting idle processor under power limits (§3.3.4, §3.3.6)', create: (ctx) => new HostStrides(ctx) },
  { name: 'disk-budgets', traces: ['disk'], requires: ['disk-energy'], summary: 'disk request budgets with the throttle-factor controller (§3.3.5, §3.3.6)', create: (ctx) => new DiskBudgets(ctx) },
  { name: 'guest-containers', traces: ['cswitch', 'guest'], optionalTraces: ['disk'], requires: ['virtual-counters'], summary: 'resource containers inside energy-aware guests (§3.4.3)', create: (ctx) => new GuestContainers(ctx) },
];

export function stageDefinition(name: StageName): StageDefinition {
  const d = STAGES.find((s) => s.name === name);
  if (!d) throw new WattraceError('E_PIPELINE', `unknown stage '${name}'`);
  return d;
}

/**
 * Checks that every stage of the pipeline can run: it exists in this version, the stages it
 * needs are listed, and its traces are given. Returns the trace kinds to read, in merge order.
 */
export function planStages(p: ResolvedPipeline): { defs: StageDefinition[]; traces: TraceKind[] } {
  const defs = p.stages.map(stageDefinition);
  for (const d of defs) {
    if (d.create === null) {
      throw new WattraceError(
        'E_PIPELINE',
        `stage '${d.name}' (${d.summary}) is not available in this version of wattrace; available: ${STAGES.filter((s) => s.create).map((s) => s.name).join(', ')}`,
        { file: p.file, path: '/stages' },
      );
    }
    for (const r of d.requires) {
      if (!p.stages.includes(r)) {
        throw new WattraceError('E_PIPELINE', `stage '${d.name}' needs the output of stage '${r}': add it to "stages"`, { file: p.file, path: '/stages' });
      }
    }
    for (const t of d.traces) {
      if (!p.traces[t]) {
        throw new WattraceError('E_PIPELINE', `stage '${d.name}' reads the ${t} trace, but the pipeline gives none (set traces.${t} or pass --trace ${t}=PATH)`, {
          file: p.file,
          path: '/traces',
        });
      }
    }
  }
  const order: TraceKind[] = ['cswitch', 'disk', 'guest', 'measured'];
  const wanted = new Set(defs.flatMap((d) => [...d.traces, ...(d.optionalTraces ?? []).filter((t) => p.traces[t])]));
  // Measured power, when given, validates the accounting (core/validation.ts).
  if (p.traces.measured) wanted.add('measured');
  return { defs, traces: order.filter((t) => wanted.has(t)) };
}
