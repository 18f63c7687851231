/**
 * The replay: streams the traces a pipeline needs through their decoders, merges them into one
 * time-ordered stream, feeds the stage graph (graph.ts), and adds the run-wide metrics. It writes
 * only to the RunSink it is given, so the caller decides about transactions.
 */
import fs from 'node:fs';
import type { Batch, EventSlice } from '../core/events.js';
import { WattraceError } from '../core/errors.js';
import { UNATTRIBUTED, type Machine } from '../core/machine.js';
import { METRICS, MetricWriter, catalogueEntriesFor } from '../core/metrics.js';
import type { ResolvedPipeline, TraceKind } from '../core/pipeline.js';
import { Span, type RunSpan } from '../core/span.js';
import type { ContainerRow, CounterRow, CpuPolicyRow, DiskPolicyRow, EnergyRow, RunSink, ServicePorts } from '../core/stage.js';
import { NS_PER_MS, joules, msToNs, ns, nsToS, periodNs } from '../core/units.js';
import { VALIDATION } from '../stages/validation.js';
import { stageParquetTraces, type Staged } from '../traces/parquet.js';
import { TraceBatchStream, checkTraceFile, maxBase, minBase, missingNewlineNote, openTraceStream, peekFirstTimestamp, peekRange } from '../traces/csv.js';
import type { TimeBase } from '../traces/decoder.js';
import { makeDecoder } from '../traces/decoders.js';
import { diffExact, formatExact } from '../traces/exact.js';
import { mergeRuns } from '../traces/merge.js';
import { WorkerBatchStream, forceThreads, threadedReadingAvailable, warmDecoderThread } from '../traces/threaded.js';
import { buildGraph, type Plan, type StageGraph } from './graph.js';
import type { AnyStageDefinition } from '../stages/registry.js';

export interface RunInput {
  path: string;
  bytes: number;
  sha256: string | null;
  rows: number;
}

export interface RunSummary {
  /** Exact decimal of the run's time origin. */
  baseTsNs: string;
  /** Accounted span, ns relative to the base. */
  t0: number;
  t1: number;
  inputs: Partial<Record<TraceKind, RunInput>>;
  graph: StageGraph;
  /** Notes for the user from the stages. */
  notes: readonly string[];
}

export interface RunOptions {
  /**
   * Called after every slice with the fraction of the replay done: of the traces' time span (the
   * clock the stages follow, so a simulation-bound replay shows its real progress), over passes.
   */
  onProgress?: (fraction: number) => void;
  /** Decode on a worker thread when possible (default true). */
  threads?: boolean;
}

/** Where a first pass's rows and metrics go: nowhere. */
export class DiscardSink implements RunSink {
  energy(): void {}
  counter(): void {}
  diskPolicy(): void {}
  cpuPolicy(): void {}
  containerRow(): void {}
  metric(): void {}
}

/** Tallies energy per consumer on its way to the real sink, for the run-wide metrics. */
class TallySink implements RunSink {
  readonly byConsumer = new Map<string, number>();
  private readonly written = new Set<string>();
  total = 0;
  /** Rows of an empty interval, held for `flushEmpty`. */
  private readonly empty: EnergyRow[] = [];
  /** Rows of the latest interval written so far (t1 = lastT1), held so `flushEmpty` can add to them. */
  private last: EnergyRow[] = [];
  private lastT1 = -Infinity;
  constructor(private readonly inner: RunSink) {}
  energy(r: EnergyRow): void {
    if (r.container === null) {
      this.total += r.joules;
      this.byConsumer.set(r.consumer, (this.byConsumer.get(r.consumer) ?? 0) + r.joules);
    }
    if (r.t1 <= r.t0) {
      this.empty.push(r);
      return;
    }
    if (r.t1 > this.lastT1) {
      this.flushLast();
      this.lastT1 = r.t1;
    }
    if (r.t1 === this.lastT1) this.last.push(r);
    else this.inner.energy(r);
  }
  private flushLast(): void {
    for (const r of this.last) this.inner.energy(r);
    this.last = [];
  }
  /**
   * An event at the run's very end on an interval boundary (a request completing there) falls in
   * an interval clipped to nothing, [t1, t1): its energy belongs to the interval that ends there
   * (a row of no duration with joules would be infinite power), added to that interval's row of
   * the same key, so a key stays one row per interval. Then the held rows are written.
   */
  flushEmpty(run: RunSpan, intervalNs: number): void {
    for (const r of this.empty) {
      const t0 = Math.max(run.t0, r.t0 - intervalNs);
      if (!(t0 < r.t0)) {
        this.inner.energy(r);
        continue;
      }
      const moved = { ...r, t0: ns(t0), t1: r.t0 };
      if (this.lastT1 !== moved.t1) {
        this.inner.energy(moved);
        continue;
      }
      const i = this.last.findIndex((x) => x.t0 === moved.t0 && x.consumer === moved.consumer && x.container === moved.container && x.via === moved.via && x.device === moved.device && x.kind === moved.kind);
      if (i >= 0) this.last[i] = { ...this.last[i]!, joules: joules(this.last[i]!.joules + moved.joules) };
      else this.last.push(moved);
    }
    this.empty.length = 0;
    this.flushLast();
  }
  counter(r: CounterRow): void {
    this.inner.counter(r);
  }
  diskPolicy(r: DiskPolicyRow): void {
    this.inner.diskPolicy(r);
  }
  cpuPolicy(r: CpuPolicyRow): void {
    this.inner.cpuPolicy(r);
  }
  containerRow(r: ContainerRow): void {
    this.inner.containerRow(r);
  }
  /**
   * A figure that cannot be computed (NaN: nothing to average) is left out, not stored. A name
   * outside the catalogue is a bug (stages write through it), never stored.
   */
  metric(name: string, value: number): void {
    if (catalogueEntriesFor(name).length === 0) throw new Error(`metric '${name}' is not in the metrics catalogue (src/core/metrics.ts)`);
    if (this.written.has(name)) throw new Error(`metric '${name}' was written twice in one run`);
    this.written.add(name);
    if (Number.isFinite(value)) this.inner.metric(name, value);
  }
}

/** Longest stretch of stage work without a turn of the event loop (signals wait for one). */
const EVENT_LOOP_MS = 50;

/**
 * The streaming adapter: merges `streams` and feeds every slice to `stages` (without finishing
 * them). Streams are closed whatever happens.
 */
export async function pump(streams: readonly AsyncIterableIterator<Batch>[], graphs: readonly StageGraph[], span: Span, tick?: () => void): Promise<void> {
  try {
    let yielded = performance.now();
    for await (const run of mergeRuns(streams)) {
      for (const slice of run) {
        span.see(slice);
        for (const g of graphs) g.dispatch(slice);
      }
      tick?.();
      // Batches that are always ready (read ahead, or decoded on the other thread) never let the
      // event loop run: every EVENT_LOOP_MS it gets a turn, so Ctrl-C and SIGTERM roll back at once.
      if (performance.now() - yielded > EVENT_LOOP_MS) {
        await new Promise<void>((r) => setImmediate(r));
        yielded = performance.now();
      }
    }
  } finally {
    for (const s of streams) await s.return?.();
  }
}

/** The batch adapter: feeds slices held in memory to `graph` and finishes it. Returns the run's span. */
export function runSlices(graph: StageGraph, slices: Iterable<EventSlice>, span = new Span()): RunSpan {
  for (const slice of slices) {
    span.see(slice);
    graph.dispatch(slice);
  }
  const run = span.get();
  graph.finish(run);
  return run;
}

/** One pipeline's stages over the traces of a replay. */
export interface LaneGraph {
  readonly p: ResolvedPipeline;
  readonly defs: readonly AnyStageDefinition[];
  /** Stages of a first pass over the traces, or null. */
  readonly prepass: readonly AnyStageDefinition[] | null;
  readonly sink: RunSink;
}

/**
 * Replays the traces `open` opens through each lane's stage graph (unfinished graphs are
 * finished here): first, when a lane needs one, a pass through the lanes' first-pass stages,
 * whose services (the driver baselines) are inputs of the second; `open` is called once per
 * pass. Every slice of a pass goes to every lane.
 */
export async function replayPasses(
  lanes: readonly LaneGraph[],
  machine: Machine,
  open: (firstPass: boolean) => AsyncIterableIterator<Batch>[],
  /** Called after every slice: (pass index, number of passes, the pass's span so far). */
  progress?: (pass: number, passes: number, span: Span) => void,
): Promise<{ span: Span; graphs: StageGraph[] }> {
  const firstPass: (Partial<ServicePorts> | undefined)[] = lanes.map(() => undefined);
  const passes = lanes.some((l) => l.prepass !== null) ? 2 : 1;
  if (passes === 2) {
    const preSpan = new Span();
    const pre = lanes.map((lane) => (lane.prepass ? buildGraph(lane.prepass, { machine, pipeline: lane.p, intervalNs: periodNs(lane.p.intervalMs), span: preSpan, sink: new DiscardSink() }) : null));
    await pump(
      open(true),
      pre.filter((g): g is StageGraph => g !== null),
      preSpan,
      progress && (() => progress(0, 2, preSpan)),
    );
    pre.forEach((g, i) => {
      if (g === null) return;
      g.finish(preSpan.get());
      firstPass[i] = g.services;
    });
  }
  const span = new Span();
  const graphs = lanes.map((lane, i) => {
    const services = firstPass[i];
    return buildGraph(lane.defs, { machine, pipeline: lane.p, intervalNs: periodNs(lane.p.intervalMs), span, sink: lane.sink, ...(services ? { services } : {}) });
  });
  await pump(open(passes === 1), graphs, span, progress && (() => progress(passes - 1, passes, span)));
  return { span, graphs };
}

/** Writes the metrics every run has (docs/metrics.md): energy totals and unattributed energy. */
function writeRunMetrics(tally: TallySink, span: Span, inputs: RunSummary['inputs']): void {
  const m = new MetricWriter(tally);
  m.write(METRICS.energyTotal, {}, tally.total);
  for (const [consumer, j] of tally.byConsumer) m.write(METRICS.energyOf, { consumer }, j);
  m.write(METRICS.unattributed, {}, tally.byConsumer.get(UNATTRIBUTED) ?? 0);
  const run = span.get();
  m.write(METRICS.runDuration, {}, nsToS(run.t1 - run.t0));
  for (const [kind, v] of Object.entries(inputs)) if (v) m.write(METRICS.traceRows, { kind }, v.rows);
}

/** Runs `defs` over the pipeline's traces, writing to `sink`. Throws on the first bad input. */
export async function runPipeline(p: ResolvedPipeline, machine: Machine, plan: Plan, sink: RunSink, opts: RunOptions = {}): Promise<RunSummary> {
  return (await runPipelines([{ p, plan, sink }], machine, plan.traces, opts))[0]!;
}

/**
 * A trace smaller than this is decoded on the main thread: a decoder thread costs ~0.1 s to start,
 * more than it saves on a few MB.
 */
export const THREADED_MIN_BYTES = 8 << 20;

/** Energy rows above which a run is refused before anything is written (≈ 100 bytes each in SQLite). */
export const MAX_PLANNED_ROWS = 50_000_000;

/**
 * A reporting interval so short that the run would write more energy rows than a store can
 * sensibly hold (interval_ms 1e-9 over two minutes: billions) is refused before writing, with the
 * interval that would do.
 */
function checkPlannedOutput(lanes: readonly Lane[], machine: Machine, span: number): void {
  const cells = machine.consumers.length * (1 + Object.keys(machine.profile.disks).length) * 2;
  for (const lane of lanes) {
    const rows = (span / msToNs(lane.p.intervalMs)) * cells;
    if (rows > MAX_PLANNED_ROWS) {
      const ms = Math.ceil((span * cells) / (MAX_PLANNED_ROWS / 10) / NS_PER_MS);
      throw new WattraceError(
        'E_PIPELINE',
        `interval_ms ${lane.p.intervalMs} over the ${nsToS(span).toFixed(1)} s the traces span would write about ${rows.toExponential(1)} energy rows (${(rows * 100 / 1e9).toFixed(0)} GB); use interval_ms ${ms} or more`,
        { file: lane.p.file, path: '/interval_ms' },
      );
    }
  }
}

/**
 * Traces of one run must share a clock. A disk or guest log whose time range does not meet the
 * cswitch log's (the first and last 64 KiB of each tell) is an error before anything is read —
 * one on a boot-time clock beside an epoch-stamped one would otherwise make a run of decades,
 * nearly all of it `(unattributed)`; one that reaches far outside it gets a note, since the CPU's
 * time there is unlogged. (Measured power is checked against the run by its validation.)
 * Returns the run's span as planned, from the earliest first to the latest last timestamp.
 */
function checkClocks(files: readonly { kind: TraceKind; path: string }[]): { span: number; notes: string[] } {
  const ranges = files.map((f) => ({ ...f, range: peekRange(f.path) }));
  const known = ranges.filter((r) => r.range !== null).map((r) => ({ ...r, range: r.range! }));
  if (known.length === 0) return { span: 0, notes: [] };
  const primary = known.find((r) => r.kind === 'cswitch') ?? known[0]!;
  const p = primary.range;
  const at = (t: TimeBase) => nsToS(diffExact(t.hi, t.lo, p.first.hi, p.first.lo));
  const secs = (x: number) => `${Math.abs(x) >= 1e4 ? x.toExponential(3) : x.toFixed(3)} s`;
  const notes: string[] = [];
  const pLen = at(p.last);
  for (const r of known) {
    if (r === primary || r.kind === 'measured') continue;
    const a = at(r.range.first);
    const b = at(r.range.last);
    if (b < 0 || a > pLen) {
      throw new WattraceError(
        'E_PIPELINE',
        `the ${r.kind} trace (${secs(a)} to ${secs(b)} from the ${primary.kind} trace's first timestamp) does not overlap the ${primary.kind} trace (0 to ${secs(pLen)}): are the two recorded on the same clock, in ns?`,
        { file: r.path },
      );
    }
    // Time outside the CPU log is accounted as unattributed CPU idle: said when it is more than a
    // hundredth of the log (before, only beyond the log's own length: 5 s before a 10 s log, 420 J
    // unattributed, went without a word).
    const before = Math.max(0, -a);
    const after = Math.max(0, b - pLen);
    if (before + after > Math.max(0.01 * pLen, 1e-3)) {
      const where = [before > 0 ? `${secs(before)} before` : '', after > 0 ? `${secs(after)} after` : ''].filter((x) => x !== '').join(' and ');
      notes.push(`the ${r.kind} trace ${r.path} reaches ${where} the ${primary.kind} trace's ${secs(pLen)}: the CPU's time there is not logged (unattributed)`);
    }
  }
  let first = p.first;
  let last = p.last;
  // Measured samples do not extend the run (validation compares where they meet it).
  for (const r of known.filter((x) => x.kind !== 'measured')) {
    first = minBase(first, r.range.first)!;
    last = maxBase(last, r.range.last)!;
  }
  return { span: diffExact(last.hi, last.lo, first.hi, first.lo), notes };
}

/** One of several pipelines replayed over the same traces in one pass. */
export interface Lane {
  p: ResolvedPipeline;
  plan: Plan;
  sink: RunSink;
}

/**
 * Runs several pipelines (variants) that share their traces, machine and reporting interval over
 * one reading of the traces: every slice goes to every lane's stages. Traces come from the first.
 */
export async function runPipelines(lanes: readonly Lane[], machine: Machine, kinds: readonly TraceKind[], opts: RunOptions = {}): Promise<RunSummary[]> {
  const given = kinds.map((k) => lanes[0]!.p.traces[k]!);
  // Parquet traces are read through a CSV staged from them (src/traces/parquet.ts).
  const staged = await stageParquetTraces(given);
  try {
    const summaries = await runPipelinesStaged(lanes, machine, kinds, opts, staged);
    for (const s of summaries) {
      for (const t of staged.traces) {
        for (const input of Object.values(s.inputs)) {
          if (input && input.path === t.csv) Object.assign(input, { path: t.parquet, bytes: t.bytes, sha256: t.sha256 });
        }
      }
      s.notes = s.notes.map((n) => staged.traces.reduce((m, t) => m.split(t.csv).join(t.parquet), n));
    }
    return summaries;
  } catch (e) {
    throw staged.relocate(e);
  } finally {
    staged.cleanup();
  }
}

async function runPipelinesStaged(lanes: readonly Lane[], machine: Machine, kinds: readonly TraceKind[], opts: RunOptions, staged: Staged): Promise<RunSummary[]> {
  const p0 = lanes[0]!.p;
  const files = kinds.map((k) => ({ kind: k, path: staged.pathOf(p0.traces[k]!) }));
  for (const f of files) checkTraceFile(f.path, f.kind);
  let base: TimeBase | null = null;
  for (const f of files) base = minBase(base, peekFirstTimestamp(f.path));
  base ??= { hi: 0, lo: 0 };

  const { span: planned, notes: clockNotes } = checkClocks(files);
  checkPlannedOutput(lanes, machine, planned);
  const onProgress = opts.onProgress;
  const progress = onProgress && ((pass: number, passes: number, s: Span) => onProgress((pass + (planned > 0 ? Math.min(1, Math.max(0, s.t1) / planned) : 0)) / passes));
  // The largest trace is decoded on a worker thread (the second core) when the build allows; the
  // others, much smaller as a rule (disk requests are rarer than context switches), in-thread.
  const sizes = files.map((f) => fs.statSync(f.path).size);
  const largest = sizes.indexOf(Math.max(...sizes));
  const threaded = threadedReadingAvailable() && opts.threads !== false && (sizes[largest]! >= THREADED_MIN_BYTES || forceThreads());
  // The inputs' sha256 is taken in the first pass only: of two, the first is bound by decoding,
  // and the main thread has the time (the second is bound by the stages on the main thread).
  const open = (firstPass: boolean) =>
    files.map((f, i) => {
      if (threaded && i === largest) {
        const s = new WorkerBatchStream(f.kind, f.path, base!, machine, undefined, firstPass);
        return { stream: s as AsyncIterableIterator<Batch>, rows: () => s.info.rows, bytes: () => s.info.bytes, sha256: () => s.info.sha256, cpus: () => s.info.cpus };
      }
      const d = makeDecoder(f.kind, f.path, base!, machine);
      const s: TraceBatchStream<Batch> = openTraceStream(f.path, d, undefined, true, firstPass);
      return { stream: s as AsyncIterableIterator<Batch>, rows: () => d.rows, bytes: () => s.info.bytes, sha256: () => s.info.sha256, cpus: () => d.cpus() };
    });

  let readers: ReturnType<typeof open> = [];
  let hashed: ReturnType<typeof open> = [];
  const tallies = lanes.map((lane) => new TallySink(lane.sink));
  const { span, graphs } = await replayPasses(
    // Measured power, when read, validates what the stages account (last: it sees every row).
    lanes.map((lane, i) => ({ p: lane.p, defs: kinds.includes('measured') ? [...lane.plan.defs, VALIDATION] : lane.plan.defs, prepass: lane.plan.prepass, sink: tallies[i]! })),
    machine,
    (firstPass) => {
      readers = open(firstPass);
      if (firstPass) hashed = readers;
      return readers.map((r) => r.stream);
    },
    progress,
  );
  const built = graphs.map((graph, i) => ({ graph, tally: tallies[i]!, intervalNs: periodNs(lanes[i]!.p.intervalMs) }));
  const inputs: RunSummary['inputs'] = {};
  files.forEach((f, i) => (inputs[f.kind] = { path: f.path, bytes: readers[i]!.bytes(), sha256: hashed[i]!.sha256(), rows: readers[i]!.rows() }));
  if (kinds.includes('cswitch') && span.periods === 0) {
    throw new WattraceError('E_EMPTY', 'the cswitch trace has no complete period: each CPU needs at least two rows', { file: p0.traces.cswitch! });
  }
  const run: RunSpan = { ...span.get(), cpus: [...new Set(readers.flatMap((r) => r.cpus()))] };
  return built.map((b) => {
    b.graph.finish(run);
    b.tally.flushEmpty(run, b.intervalNs);
    writeRunMetrics(b.tally, span, inputs);
    const newline = files.map((f) => missingNewlineNote(f.path)).filter((n): n is string => n !== null);
    return { baseTsNs: formatExact(base!.hi, base!.lo), t0: run.t0, t1: run.t1, inputs, graph: b.graph, notes: [...clockNotes, ...newline, ...b.graph.notes] };
  });
}

/**
 * True when a replay of these traces uses threads (the largest trace is big enough, or
 * WATTRACE_THREADS=1): a decoder thread for the largest trace and a writer thread for the store.
 */
export function usesThreads(files: readonly string[], opts: RunOptions = {}): boolean {
  if (opts.threads === false) return false;
  let largest = 0;
  for (const f of files) {
    try {
      largest = Math.max(largest, fs.statSync(f).size);
    } catch {
      // A missing trace is reported where it is checked.
    }
  }
  return largest >= THREADED_MIN_BYTES || forceThreads();
}

/**
 * True when a run should be written on a writer thread (store/threaded.ts): when it will write
 * more rows than it reads (estimated from the traces' span and sizes, as checkPlannedOutput does),
 * SQLite is then the larger part of the work and the second core, which the decoder leaves idle,
 * takes it — the PlanetLab day writes 5.6 M rows from 265 k (measured: 13.3 s → see README,
 * Benchmark). Where reading dominates, the decoder fills that core and a third thread only slows
 * every stage (the complete accounting: 4.9 → 6.2 s), so the run writes on the main thread.
 * WATTRACE_THREADS=1 always uses one (tests), 0 never.
 */
export function writerThreadPays(p: ResolvedPipeline, machine: Machine, opts: RunOptions = {}): boolean {
  if (opts.threads === false) return false;
  if (forceThreads()) return true;
  let bytes = 0;
  let first: TimeBase | null = null;
  let last: TimeBase | null = null;
  for (const f of Object.values(p.traces)) {
    try {
      bytes += fs.statSync(f).size;
      const r = peekRange(f);
      if (r === null) continue;
      first = minBase(first, r.first);
      last = maxBase(last, r.last);
    } catch {
      // A missing or unreadable trace is reported where it is checked.
    }
  }
  if (first === null || last === null) return false;
  const span = Math.max(0, diffExact(last.hi, last.lo, first.hi, first.lo));
  const intervals = span / msToNs(p.intervalMs);
  const cons = machine.consumers.length;
  let rows = intervals * cons * (1 + Object.keys(machine.profile.disks).length) * 2;
  if (p.stages.includes('virtual-counters')) rows += intervals * cons * (machine.eventNames.length + 1);
  if (p.stages.includes('host-strides')) rows += (span / msToNs(p.settings.policy.cpu.period_ms)) * machine.vmCount;
  // A trace row is some 50–90 bytes.
  return rows > bytes / 64;
}

/**
 * Starts the decoder thread early when a replay of these traces will use one, so that its
 * start-up overlaps the main thread's.
 */
export function prepareReading(files: readonly string[], opts: RunOptions = {}): void {
  if (usesThreads(files, opts)) warmDecoderThread();
}
