/**
 * The stage contract (docs/architecture.md). A stage is a push-based core with no I/O of its own:
 * it receives time-ordered trace events and what earlier stages produce, and writes result rows.
 * What it reads and what it produces is declared in its StageDefinition; the replay
 * (src/replay/graph.ts) connects producers to consumers from those declarations and refuses a
 * pipeline in which a stage's input has no producer. No stage sees another stage, its batches
 * or its settings: only the ports below.
 */
import type { BatchKind, EventSlice } from './events.js';
import type { Machine } from './machine.js';
import type { MetricWriter } from './metrics.js';
import type { StageName, TraceKind } from './pipeline.js';
import type { Settings } from './settings.js';
import type { RunSpan, Span } from './span.js';
import type { Joules, Ns, Seconds, Watts } from './units.js';

export type EnergyKind = 'idle' | 'active';

/** One row of the `energy` table. Times are ns relative to the run's base. */
export interface EnergyRow {
  readonly t0: Ns;
  readonly t1: Ns;
  readonly consumer: string;
  readonly container: string | null;
  readonly via: string | null;
  readonly device: string;
  readonly kind: EnergyKind;
  readonly joules: Joules;
}

/** One row of the `virtual_counters` table: a VM's private counter advance. */
export interface CounterRow {
  readonly t0: Ns;
  readonly t1: Ns;
  readonly vm: string;
  /** An event column of the profile, or 'tsc'. */
  readonly event: string;
  readonly advance: number;
}

/** One row of `disk_policy`: a client in one period of the disk manager. */
export interface DiskPolicyRow {
  readonly t: Ns;
  readonly vm: string;
  readonly throttle: number;
  readonly budget: number;
  readonly limitWatts: Watts | null;
  readonly watts: Watts;
  readonly requests: number;
  readonly bytes: number;
  readonly backlog: number;
}

/** One row of `cpu_policy`: a VM in one period of the CPU manager. */
export interface CpuPolicyRow {
  readonly t: Ns;
  readonly vm: string;
  readonly share: number;
  readonly limitWatts: Watts | null;
  readonly watts: Watts;
  readonly workS: Seconds;
  readonly backlogS: Seconds;
}

/** One row of `containers`: a guest's resource container in one budget period. */
export interface ContainerRow {
  readonly t: Ns;
  readonly vm: string;
  readonly container: string;
  readonly limitWatts: Watts | null;
  readonly watts: Watts;
  readonly workS: Seconds;
  readonly preemptedNs: Ns;
}

/** The rows a stage writes. */
export interface RowSink {
  energy(row: EnergyRow): void;
  counter(row: CounterRow): void;
  diskPolicy(row: DiskPolicyRow): void;
  cpuPolicy(row: CpuPolicyRow): void;
  containerRow(row: ContainerRow): void;
}

/** Where a run's results go: the SQLite store, or memory in tests. */
export interface RunSink extends RowSink {
  metric(name: string, value: number): void;
}

// ---------------------------------------------------------------------------------------------
// Ports: what stages hand each other.

/**
 * cpu-split's energy of each CPU period (§3.2.1), one record per cswitch period in stream order.
 * Lent like a batch: valid during the call that hands it over.
 */
export interface CpuPeriods {
  readonly length: number;
  readonly cpu: Int32Array;
  /** Consumer index (Machine.consumers) of the VM that ran. */
  readonly vm: Int32Array;
  readonly t0: Float64Array;
  readonly t1: Float64Array;
  /** w_tsc · Δtsc: the period's idle energy, before it is split among the VMs. */
  readonly idleJ: Float64Array;
  /** Σ w_e · Δe: the access energy of whoever ran. */
  readonly activeJ: Float64Array;
}

/**
 * Guest container periods in the VM's private counter view (§3.4.1), as virtual-counters
 * translates them from the guest log: hardware advances minus other VMs' advances meanwhile.
 */
export interface GuestPeriods {
  readonly length: number;
  readonly vm: Int32Array;
  readonly cpu: Int32Array;
  /** Index into `names` of the container that ran. */
  readonly container: Int32Array;
  readonly t0: Float64Array;
  readonly t1: Float64Array;
  /** Virtual TSC advance. */
  readonly vtsc: Float64Array;
  /** Virtual event advances, row-major: vev[i * nEvents + e] for Machine.eventNames[e]. */
  readonly vev: Float64Array;
  readonly nEvents: number;
  readonly names: readonly string[];
}

/**
 * disk-energy's view of each disk request, in stream order: every row of the disk log, also those
 * that only record an upper service's request, with what it costs on its disk under the model.
 */
export interface DiskRequests {
  readonly length: number;
  /** Completion time. */
  readonly t: Float64Array;
  /** Consumer index of the VM that issued it (to the service it went through). */
  readonly vm: Int32Array;
  /** Disk index (profile order) of the disk it ended on. */
  readonly disk: Int32Array;
  readonly bytes: Float64Array;
  /** Device service time as logged, NaN when not recorded. */
  readonly latency: Float64Array;
  /** Time the disk model keeps the disk active for it: bytes / the disk's rate then (§3.2.2). */
  readonly activeNs: Float64Array;
}

/** A driver VM's baseline CPU power (§3.3.3), as estimated over the whole trace or given. */
export interface DriverBaseline {
  readonly watts: number;
  readonly source: 'given' | 'quiet' | 'fit' | 'none';
  /** Time with none of its services' requests in flight, where the CPU log covers it. */
  readonly quietNs: number;
  /** Windows the fit used (fit only). */
  readonly fitWindows: number;
}

/** Baselines by driver VM name. */
export interface DriverBaselines {
  baseline(driver: string): DriverBaseline;
}

/** driver-charge's per-request CPU cost model (§3.3.3). */
export interface DriverCostModel {
  /**
   * The driver CPU energy a request of consumer `client` on disk number `disk` (profile order) of
   * `bytes` is predicted to cost now, summed over every driver on its way (a chain of services);
   * 0 where no driver serves it.
   */
  predictedCost(client: number, disk: number, bytes: number): Joules;
}

/** Ports that carry a stream of records, handed to every consumer as they are produced. */
export interface StreamPorts {
  'cpu-periods': CpuPeriods;
  'guest-periods': GuestPeriods;
  'disk-requests': DiskRequests;
}

/** Ports that offer an interface a consumer queries. */
export interface ServicePorts {
  'driver-cost': DriverCostModel;
  'driver-baseline': DriverBaselines;
}

export type StreamPort = keyof StreamPorts;
export type ServicePort = keyof ServicePorts;
/**
 * `energy` is the energy rows themselves: a row a stage writes passes the energy handlers of the
 * stages after it, in pipeline order, each of which may take it over, and then goes to the store.
 */
export type PortName = StreamPort | ServicePort | 'energy';

/** What a stage gets from the stages before it (services present only if produced). */
export interface StageInputs {
  readonly services: Partial<ServicePorts>;
}

/** Emits on the stream ports the stage declared it writes. */
export type Emit = <P extends StreamPort>(port: P, value: StreamPorts[P]) => void;

export interface StageContext<S> {
  readonly machine: Machine;
  /** The stage's own settings (see StageDefinition.settings). */
  readonly settings: S;
  /** Reporting interval of the energy table. */
  readonly intervalNs: Ns;
  /** Rows: energy enters the energy path after this stage; the others go to the store. */
  readonly out: RowSink;
  readonly metrics: MetricWriter;
  readonly emit: Emit;
  /**
   * Declares energy the stage creates on a device (cpu-split: the CPUs' idle and access energy;
   * disk-energy: each disk's). The replay checks, per device, that the host-level rows stored add
   * up to what was declared: energy is moved between consumers, never created or lost.
   */
  readonly account: (device: string, joules: number) => void;
  /** A note for the user (stderr): a result that holds, but with a caveat worth knowing. */
  readonly note: (message: string) => void;
  /** The span of the events dispatched so far (grows as the stream advances). */
  readonly span: Span;
}

export interface Stage {
  /**
   * Receives the next slice of the merged, time-ordered trace stream, for the trace kinds its
   * definition reads. The batch is lent: it is reused after push returns.
   */
  push?(slice: EventSlice): void;
  /** Receives records of the stream ports its definition reads (lent, like batches). */
  readonly receive?: { readonly [P in StreamPort]?: (value: StreamPorts[P]) => void };
  /** The services its definition says it writes. */
  readonly provides?: Partial<ServicePorts>;
  /**
   * Sees every energy row written by an earlier stage (if its definition reads `energy`);
   * returns true to take the row over (it is then not written, nor seen by later stages).
   */
  energy?(row: EnergyRow): boolean;
  /** The input has ended: emit everything still held. `run` is the accounted span of the run. */
  finish(run: RunSpan): void;
}

/** A port a stage reads, and when it needs a producer for it. */
export interface PortRead {
  readonly port: PortName;
  /**
   * Why the stage cannot do without the port in this pipeline, or null when it can (the port is
   * then read only if produced). Omitted: always needed.
   */
  readonly neededBecause?: (p: PlanInfo) => string | null;
}

/** What a requirement may depend on. */
export interface PlanInfo {
  readonly machine: Machine;
  readonly settings: Settings;
  /** The traces the pipeline gives. */
  readonly traces: ReadonlySet<TraceKind>;
}

export interface StageDefinition<S = unknown> {
  /**
   * A pipeline stage; or `validation`, which the replay adds when measured power is given; or a
   * stage of another's first pass (`driver-baseline`).
   */
  readonly name: StageName | 'validation' | 'driver-baseline';
  /** A one-line summary for --help and error messages. */
  readonly summary: string;
  /** Traces the stage reads, and the batch kinds they arrive as. */
  readonly traces: readonly TraceKind[];
  /** Traces it also reads when the pipeline gives them. */
  readonly optionalTraces?: readonly TraceKind[];
  /** Traces the pipeline must give, though the stage reads them through another stage's port. */
  readonly needsTraces?: readonly TraceKind[];
  readonly reads: readonly PortRead[];
  readonly writes: readonly PortName[];
  /** Its part of the pipeline's settings. */
  readonly settings: (all: Settings) => S;
  /**
   * Stages to run in a first pass over the same traces, when this stage needs a figure of the
   * whole trace before it can start (driver-charge: the drivers' baselines). The services they
   * provide are inputs of this stage; their rows and metrics are discarded.
   */
  readonly prepass?: (p: PlanInfo) => readonly StageDefinition<any>[] | null;
  readonly create: (ctx: StageContext<S>, inputs: StageInputs) => Stage;
}

/** Declares a stage with its settings type inferred. */
export function defineStage<S>(d: StageDefinition<S>): StageDefinition<S> {
  return d;
}

/** The batch kind each trace arrives as. */
export const BATCH_OF: Readonly<Record<TraceKind, BatchKind>> = { cswitch: 'switch', disk: 'disk', guest: 'container', measured: 'measured' };
