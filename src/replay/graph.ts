/**
 * The stage graph of one run: which stages run, what each reads, and the wiring from producers to
 * consumers, all from the stages' declarations (core/stage.ts, stages/registry.ts).
 *
 * - Traces: a slice of the merged stream goes to every stage that reads its trace.
 * - Stream ports: what a stage emits goes, at once, to the stages after it that read the port.
 * - Service ports: a stage created after the producer gets the producer's interface.
 * - Energy: a row a stage writes passes the energy handlers of the stages after it, in pipeline
 *   order (a handler may take the row over), then goes to the run's sink.
 * - A first pass: a stage that needs a figure of the whole trace before it starts (driver-charge:
 *   the drivers' baselines) names the stages of a first pass over the same traces; the services
 *   they provide are the stage's inputs in the second.
 * A stage that needs a port no earlier stage of the pipeline writes is refused with an error that
 * names both stages; nothing is added behind the user's back.
 */
import { WattraceError } from '../core/errors.js';
import type { EventSlice } from '../core/events.js';
import type { Machine } from '../core/machine.js';
import { MetricWriter } from '../core/metrics.js';
import type { ResolvedPipeline, TraceKind } from '../core/pipeline.js';
import type { Span, RunSpan } from '../core/span.js';
import {
  BATCH_OF,
  type EnergyRow,
  type PortName,
  type RowSink,
  type RunSink,
  type ServicePorts,
  type Stage,
  type StreamPort,
  type StreamPorts,
} from '../core/stage.js';
import type { Ns } from '../core/units.js';
import { STAGES, stageDefinition, type AnyStageDefinition as AnyDefinition } from '../stages/registry.js';

const TRACE_ORDER: readonly TraceKind[] = ['cswitch', 'disk', 'guest', 'measured'];
const SERVICE_PORTS: readonly (keyof ServicePorts)[] = ['driver-cost', 'driver-baseline'];
const STREAM_PORTS: readonly StreamPort[] = ['cpu-periods', 'guest-periods', 'disk-requests'];

export interface Plan {
  readonly defs: readonly AnyDefinition[];
  /** The traces to read, in merge order. */
  readonly traces: readonly TraceKind[];
  /** The stages of a first pass over the traces, or null when no stage needs one. */
  readonly prepass: readonly AnyDefinition[] | null;
}

/** The producer of `port` among `defs` before position `i`, or null. */
function producerBefore(defs: readonly AnyDefinition[], i: number, port: PortName): AnyDefinition | null {
  for (let j = i - 1; j >= 0; j--) if (defs[j]!.writes.includes(port)) return defs[j]!;
  return null;
}

/**
 * Checks that every stage of the pipeline can run — its traces are given, every port it needs has
 * a producer before it — and returns the stages and the traces to read.
 */
export function planStages(p: ResolvedPipeline, machine: Machine): Plan {
  const defs = p.stages.map(stageDefinition);
  const given = new Set(Object.keys(p.traces) as TraceKind[]);
  const info = { machine, settings: p.settings, traces: given };
  const prepass: AnyDefinition[] = [];
  for (const d of defs) for (const q of d.prepass?.(info) ?? []) if (!prepass.includes(q)) prepass.push(q);
  const where = { file: p.file, path: '/stages' };
  defs.forEach((d, i) => {
    for (const t of [...d.traces, ...(d.needsTraces ?? [])]) {
      if (!p.traces[t]) {
        throw new WattraceError('E_PIPELINE', `stage '${d.name}' reads the ${t} trace, but the pipeline gives none (set traces.${t} or pass --trace ${t}=PATH)`, { file: p.file, path: '/traces' });
      }
    }
    for (const r of d.reads) {
      if (producerBefore(defs, i, r.port)) continue;
      // A service of the stage's own first pass (streams of a first pass end with it).
      if ((SERVICE_PORTS as readonly PortName[]).includes(r.port) && d.prepass?.(info)?.some((q) => q.writes.includes(r.port))) continue;
      const why = r.neededBecause ? r.neededBecause(info) : 'it cannot run without it';
      if (why === null) continue;
      const makers = STAGES.filter((s) => s.writes.includes(r.port) && s.name !== d.name).map((s) => `'${s.name}'`);
      const port = r.port === 'energy' ? 'energy rows' : `${r.port} output`;
      throw new WattraceError('E_PIPELINE', `stage '${d.name}' needs the ${port} of stage ${makers.join(' or ')} (${why}): add it to "stages"`, where);
    }
  });
  checkSettingsVms(p, machine);
  const names = new Set(p.stages);
  // Both stages report an energy-aware guest's CPU (`cpu.<vm>.*`), each from its own simulation.
  const aware = machine.profile.vms.filter((v) => v.energy_aware).map((v) => `'${v.id}'`);
  if (names.has('host-strides') && names.has('guest-containers') && aware.length > 0) {
    throw new WattraceError(
      'E_PIPELINE',
      `stages 'host-strides' and 'guest-containers' would each simulate the CPU of the energy-aware guest ${aware.join(', ')}: run host-level and guest-level control as two variants, as pipelines/paper-fig9.json does`,
      where,
    );
  }
  const wanted = new Set(defs.flatMap((d) => [...d.traces, ...(d.optionalTraces ?? []).filter((t) => p.traces[t])]));
  // Measured power, when given, validates the accounting (stages/validation.ts).
  if (p.traces.measured) wanted.add('measured');
  return { defs, traces: TRACE_ORDER.filter((t) => wanted.has(t)), prepass: prepass.length > 0 ? prepass : null };
}

/**
 * Every VM the settings name is one of the profile's: a limit for a VM the profile does not have
 * would be ignored without a word.
 */
function checkSettingsVms(p: ResolvedPipeline, machine: Machine): void {
  const { settings: s } = p;
  const vms = new Set(machine.profile.vms.map((v) => v.id));
  const drivers = new Set(machine.profile.vms.filter((v) => v.role === 'driver').map((v) => v.id));
  const named: [string, readonly string[], ReadonlySet<string>, string][] = [
    ['/policy/cpu/limits_watts', Object.keys(s.policy.cpu.limits_watts), vms, 'VM'],
    ['/policy/cpu/cpu_bound', s.policy.cpu.cpu_bound, vms, 'VM'],
    ['/policy/disk/limits_watts', Object.keys(s.policy.disk.limits_watts), vms, 'VM'],
    ['/policy/guest/limits_watts', Object.keys(s.policy.guest.limits_watts), vms, 'VM'],
    ['/accounting/driver/baseline_watts', Object.keys(s.accounting.driver.baseline_watts), drivers, 'driver VM'],
  ];
  // Container limits act only inside an energy-aware guest (guest-containers simulates no other).
  if (p.stages.includes('guest-containers')) {
    for (const id of Object.keys(s.policy.guest.limits_watts)) {
      const vm = machine.profile.vms.find((v) => v.id === id);
      if (vm !== undefined && !vm.energy_aware) {
        throw new WattraceError('E_PIPELINE', `names VM '${id}', which the machine profile (${machine.file}) does not mark energy_aware: guest-containers simulates only energy-aware guests, so these limits would do nothing`, {
          file: p.file,
          path: `/policy/guest/limits_watts/${id}`,
        });
      }
    }
  }
  for (const [path, ids, known, what] of named) {
    for (const [i, id] of ids.entries()) {
      if (!known.has(id)) {
        const at = path.endsWith('cpu_bound') ? `${path}/${i}` : `${path}/${id}`;
        const why = vms.has(id) ? `'${id}' is not a ${what} in the machine profile (${machine.file})` : `the machine profile (${machine.file}) does not have it`;
        throw new WattraceError('E_PIPELINE', `names ${what} '${id}', but ${why}; it has ${[...known].join(', ') || 'none'}`, { file: p.file, path: at });
      }
    }
  }
}

/** Relative tolerance of the conservation check (float sums over many rows in another order). */
export const CONSERVATION_TOLERANCE = 1e-9;

/**
 * Energy is moved between consumers, never created or lost: per device, the host-level rows that
 * reach the store add up to what the stages declared they created. Otherwise the run is a bug's
 * result, not an answer: an internal error (exit 70), and nothing is stored.
 */
function checkConservation(created: ReadonlyMap<string, number>, stored: ReadonlyMap<string, number>): void {
  for (const device of new Set([...created.keys(), ...stored.keys()])) {
    const c = created.get(device) ?? 0;
    const s = stored.get(device) ?? 0;
    if (Math.abs(s - c) > CONSERVATION_TOLERANCE * Math.max(Math.abs(c), Math.abs(s), 1e-12)) {
      throw new Error(`energy is not conserved on device '${device}': the stages accounted ${c} J, the rows add up to ${s} J (off by ${s - c} J); this is a bug in wattrace, and the run is not stored`);
    }
  }
}

/** The stages of one run, wired. */
export interface StageGraph {
  readonly stages: readonly Stage[];
  /** The services its stages provide (a first pass hands them to the second). */
  readonly services: Partial<ServicePorts>;
  /** The stages' notes for the user, in the order written. */
  readonly notes: readonly string[];
  /** Feeds a slice of the merged trace stream to the stages that read its trace. */
  dispatch(slice: EventSlice): void;
  finish(run: RunSpan): void;
}

interface GraphOptions {
  readonly machine: Machine;
  readonly pipeline: ResolvedPipeline;
  readonly intervalNs: Ns;
  readonly span: Span;
  readonly sink: RunSink;
  /** Services from a first pass over the traces. */
  readonly services?: Partial<ServicePorts>;
}

/** Creates the stages of `defs` (in pipeline order) and connects them. */
export function buildGraph(defs: readonly AnyDefinition[], o: GraphOptions): StageGraph {
  const stages: Stage[] = [];
  const traceKinds = new Set(Object.keys(o.pipeline.traces) as TraceKind[]);
  const byKind = { switch: [] as Stage[], disk: [] as Stage[], container: [] as Stage[], measured: [] as Stage[] };
  const streams: { [P in StreamPort]: ((v: StreamPorts[P]) => void)[] } = { 'cpu-periods': [], 'guest-periods': [], 'disk-requests': [] };
  const services: Partial<ServicePorts> = { ...o.services };
  const metrics = new MetricWriter(o.sink);
  // Conservation: per device, what the stages declare they created, and what reaches the sink.
  const created = new Map<string, number>();
  const stored = new Map<string, number>();
  const sink: RunSink = {
    energy: (r) => {
      if (r.container === null) stored.set(r.device, (stored.get(r.device) ?? 0) + r.joules);
      o.sink.energy(r);
    },
    counter: (r) => o.sink.counter(r),
    diskPolicy: (r) => o.sink.diskPolicy(r),
    cpuPolicy: (r) => o.sink.cpuPolicy(r),
    containerRow: (r) => o.sink.containerRow(r),
    metric: (n, v) => o.sink.metric(n, v),
  };
  const account = (device: string, joules: number) => created.set(device, (created.get(device) ?? 0) + joules);
  const notes: string[] = [];
  const note = (message: string) => notes.push(message);

  /** Writes an energy row of stage `i`: through the handlers after it, then to the sink. */
  const energyAfter = (i: number) => {
    return (row: EnergyRow): void => {
      for (let j = i + 1; j < stages.length; j++) {
        const h = stages[j]!;
        if (h.energy !== undefined && h.energy(row)) return;
      }
      sink.energy(row);
    };
  };

  defs.forEach((d, i) => {
    const writes = new Set(d.writes);
    const out: RowSink = {
      energy: energyAfter(i),
      counter: (r) => sink.counter(r),
      diskPolicy: (r) => sink.diskPolicy(r),
      cpuPolicy: (r) => sink.cpuPolicy(r),
      containerRow: (r) => sink.containerRow(r),
    };
    const emit = <P extends StreamPort>(port: P, value: StreamPorts[P]): void => {
      if (!writes.has(port)) throw new Error(`stage '${d.name}' emitted on '${port}', which its definition does not declare`);
      for (const h of streams[port]) h(value);
    };
    const readable = new Set(d.reads.map((r) => r.port));
    const inputs = { services: Object.fromEntries(Object.entries(services).filter(([k]) => readable.has(k as PortName))) as Partial<ServicePorts> };
    const s = d.create({ machine: o.machine, settings: d.settings(o.pipeline.settings), intervalNs: o.intervalNs, out, metrics, emit, span: o.span, account, note }, inputs);
    stages.push(s);
    for (const t of [...d.traces, ...(d.optionalTraces ?? [])]) if (traceKinds.has(t) && s.push) byKind[BATCH_OF[t]].push(s);
    for (const port of readable) {
      if (port === 'energy' && !s.energy) throw new Error(`stage '${d.name}' reads energy rows but has no energy handler`);
      if ((STREAM_PORTS as readonly PortName[]).includes(port)) {
        const h = s.receive?.[port as StreamPort];
        if (!h) throw new Error(`stage '${d.name}' reads '${port}' but has no receiver for it`);
        (streams[port as StreamPort] as ((v: unknown) => void)[]).push(h as (v: unknown) => void);
      }
    }
    for (const port of SERVICE_PORTS) {
      if (!writes.has(port)) continue;
      const svc = s.provides?.[port];
      if (!svc) throw new Error(`stage '${d.name}' declares '${port}' but provides none`);
      (services as Record<string, unknown>)[port] = svc;
    }
  });

  return {
    stages,
    services,
    notes,
    dispatch(slice: EventSlice): void {
      for (const s of byKind[slice.batch.kind]) s.push!(slice);
    },
    finish(run: RunSpan): void {
      for (const s of stages) s.finish(run);
      checkConservation(created, stored);
    },
  };
}
