/**
 * The stage contract. A stage is a pure push-based core: it receives time-ordered event slices
 * and writes results to a RunSink, with no I/O of its own. The runner (core/runner.ts) feeds it
 * from streamed files; tests feed it arrays. Same core, so streaming and batch cannot disagree.
 */
import type { BatchKind, EventSlice } from './events.js';
import type { ResolvedPipeline, StageName, TraceKind } from './pipeline.js';
import { Span, type RunSpan } from './span.js';
import type { Machine } from './profile.js';

export type EnergyKind = 'idle' | 'active';

/** One row of the `energy` table (DESIGN §3). Times are ns relative to the run's base. */
export interface EnergyRow {
  readonly t0: number;
  readonly t1: number;
  readonly consumer: string;
  readonly container: string | null;
  readonly via: string | null;
  readonly device: string;
  readonly kind: EnergyKind;
  readonly joules: number;
}

/** One row of the `virtual_counters` table (DESIGN §3): a VM's private counter advance. */
export interface CounterRow {
  readonly t0: number;
  readonly t1: number;
  readonly vm: string;
  /** An event column of the profile, or 'tsc'. */
  readonly event: string;
  readonly advance: number;
}

/** One row of `disk_policy` (DESIGN §3): a client in one period of the disk manager. */
export interface DiskPolicyRow {
  readonly t: number;
  readonly vm: string;
  readonly throttle: number;
  readonly budget: number;
  readonly limitWatts: number | null;
  readonly watts: number;
  readonly requests: number;
  readonly bytes: number;
  readonly backlog: number;
}

/** One row of `cpu_policy` (DESIGN §3): a VM in one period of the CPU manager. */
export interface CpuPolicyRow {
  readonly t: number;
  readonly vm: string;
  readonly share: number;
  readonly limitWatts: number | null;
  readonly watts: number;
  readonly workS: number;
  readonly backlogS: number;
}

/** One row of `containers` (DESIGN §3): a guest's resource container in one budget period. */
export interface ContainerRow {
  readonly t: number;
  readonly vm: string;
  readonly container: string;
  readonly limitWatts: number | null;
  readonly watts: number;
  readonly workS: number;
  readonly preemptedNs: number;
}

/** Where a run's results go: the SQLite store, or memory in tests. */
export interface RunSink {
  energy(row: EnergyRow): void;
  counter(row: CounterRow): void;
  metric(name: string, value: number): void;
  diskPolicy(row: DiskPolicyRow): void;
  cpuPolicy(row: CpuPolicyRow): void;
  containerRow(row: ContainerRow): void;
}

/** A stage that sees every energy row written (after capture), to derive more from them. */
export interface EnergyTap {
  tap(row: EnergyRow): void;
}

/**
 * A stage that takes over the energy other stages charge to some consumers (driver-charge takes
 * the driver VMs' energy and charges it on to their clients, §3.3.3). The runner hands it every
 * host-level row whose consumer it names instead of writing the row.
 */
export interface EnergyCapture {
  readonly captures: ReadonlySet<string>;
  capture(row: EnergyRow): void;
}

export interface StageContext {
  readonly machine: Machine;
  readonly pipeline: ResolvedPipeline;
  /** Reporting interval of the energy table, in ns. */
  readonly intervalNs: number;
  readonly sink: RunSink;
  /** The span of the events dispatched so far (grows as the stream advances). */
  readonly span: Span;
  /** A stage of the same run created before this one (an earlier stage), if in the pipeline. */
  readonly find?: (name: StageName) => Stage | undefined;
}

export interface Stage {
  readonly name: StageName | 'validation';
  /** The event kinds this stage wants to see. */
  readonly consumes: readonly BatchKind[];
  /**
   * Receives the next slice of the merged, time-ordered stream. The batch is lent: it is reused
   * after push returns, so a stage copies what it wants to keep.
   */
  push(slice: EventSlice): void;
  /** The input has ended: emit everything still held. `run` is the accounted span of the run. */
  finish(run: RunSpan): void;
}

export interface StageDefinition {
  readonly name: StageName;
  /** Traces the stage reads. */
  readonly traces: readonly TraceKind[];
  /** Traces it also reads when the pipeline gives them. */
  readonly optionalTraces?: readonly TraceKind[];
  /** Stages whose output it needs, which must also be in the pipeline. */
  readonly requires: readonly StageName[];
  /** A one-line summary for --help and error messages. */
  readonly summary: string;
  /** Null while the stage is not part of this version of wattrace. */
  readonly create: ((ctx: StageContext) => Stage) | null;
}

/** Feeds slices to the stages that consume their kind (shared by the streaming and batch paths). */
export function dispatch(stages: readonly Stage[], slice: EventSlice): void {
  const kind = slice.batch.kind;
  for (const s of stages) if (s.consumes.includes(kind)) s.push(slice);
}

/** The batch adapter: runs stages over slices held in memory. Returns the run's span. */
export function runSlices(stages: readonly Stage[], slices: Iterable<EventSlice>, span = new Span()): RunSpan {
  for (const slice of slices) {
    span.see(slice);
    dispatch(stages, slice);
  }
  const run = span.get();
  for (const s of stages) s.finish(run);
  return run;
}

/** Hands the rows an EnergyCapture takes over to it, and everything else to `inner`. */
export class CapturingSink implements RunSink {
  capturer: EnergyCapture | null = null;
  taps: EnergyTap[] = [];
  constructor(private readonly inner: RunSink) {}
  energy(row: EnergyRow): void {
    if (this.capturer !== null && row.container === null && this.capturer.captures.has(row.consumer)) this.capturer.capture(row);
    else {
      for (const t of this.taps) t.tap(row);
      this.inner.energy(row);
    }
  }
  containerRow(row: ContainerRow): void {
    this.inner.containerRow(row);
  }
  counter(row: CounterRow): void {
    this.inner.counter(row);
  }
  metric(name: string, value: number): void {
    this.inner.metric(name, value);
  }
  diskPolicy(row: DiskPolicyRow): void {
    this.inner.diskPolicy(row);
  }
  cpuPolicy(row: CpuPolicyRow): void {
    this.inner.cpuPolicy(row);
  }
}

export function isEnergyCapture(s: Stage): s is Stage & EnergyCapture {
  return 'capture' in s && 'captures' in s;
}

/** Creates the stages of a run over one context whose sink routes captured rows. */
export function createStages(defs: readonly StageDefinition[], base: Omit<StageContext, 'sink'>, sink: RunSink): Stage[] {
  const router = new CapturingSink(sink);
  const stages: Stage[] = [];
  const ctx: StageContext = { ...base, sink: router, find: (name) => stages.find((s) => s.name === name) };
  for (const d of defs) {
    if (!d.create) throw new Error(`stage '${d.name}' is not available`);
    stages.push(d.create(ctx));
  }
  const capturers = stages.filter(isEnergyCapture);
  if (capturers.length > 1) throw new Error('only one stage may capture energy rows');
  router.capturer = capturers[0] ?? null;
  router.taps = stages.filter((s): s is Stage & EnergyTap => 'tap' in s);
  return stages;
}
