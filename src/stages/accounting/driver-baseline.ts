/**
 * The baseline of a driver VM (§3.3.3): "what the Linux kernel consumes even if it does not handle
 * disk requests" — the CPU access energy it spends while no client uses its device. The paper's
 * translation module measures it online, in quiet moments; a replay is offline, so it is estimated
 * over the whole trace in a first pass, before driver-charge charges anything, and applies over the
 * whole run (a trace recorded under load, or quiet only at its end, gets the same baseline from
 * its first second on).
 *
 * Time is cut into windows of `baseline_window_ms`. A window is busy while a request of the
 * driver's services is in flight in it (for `latency_ns` before its completion, or bytes /
 * nominal_rate_bps without a latency column; at most a second) and in the window after a
 * completion (the driver's deferred completion work); the others are quiet. The estimate, in
 * order of preference:
 *   1. `baseline_watts` from the pipeline (measured beforehand): source `given`;
 *   2. enough quiet time (≥ MIN_QUIET_WINDOWS windows, wherever they lie): the driver's access
 *      energy in quiet windows over their length — source `quiet`;
 *   3. else the intercept of a least-squares fit of each full window's access energy E on the
 *      requests completed in it — E = a + b·n with the `constant` cost model, E = a + b·n + c·bytes
 *      with `per-byte` (requests of different sizes cost differently, so a fit on their number
 *      alone would put part of the larger ones' cost into the intercept) — where that fit is
 *      determined (more windows than unknowns, the requests not all alike): a / window length —
 *      source `fit`;
 *   4. else whatever quiet time there is (source `quiet`), else 0 W (source `none`).
 * It is never more than the driver's mean access power over the run: the baseline cannot exceed
 * what the driver consumed.
 */
import { IntervalAccumulator } from '../../core/intervals.js';
import { ServiceGraph } from '../../core/services.js';
import type { DriverSettings } from '../../core/settings.js';
import type { RunSpan } from '../../core/span.js';
import type { CpuPeriods, DiskRequests, DriverBaseline, DriverBaselines, Stage, StageContext } from '../../core/stage.js';
import { CpuClocks } from '../../core/cpu-clocks.js';
import { NS_PER_S, nsToS, periodNs, perSecond, transferNs } from '../../core/units.js';

/** Quiet windows needed before the quiet estimate is preferred to the fit (0.5 s at 50 ms). */
export const MIN_QUIET_WINDOWS = 10;
/** Longest time a request is taken to be in flight (an outlier latency must not stall the pass). */
export const MAX_IN_FLIGHT_NS = NS_PER_S;

/** What the first pass gathers about one driver. */
export interface BaselineStats {
  /** Access energy in quiet windows, and their covered length (ns). */
  quietJ: number;
  quietNs: number;
  /**
   * Least-squares sums over full windows of the regressors x = (1, n, bytes) and the energy E (J):
   * Σ x·xᵀ row-major (3×3) and Σ x·E.
   */
  readonly xx: Float64Array;
  readonly xe: Float64Array;
  /** All the driver's access energy, and the time the CPU log covers (ns). */
  readJ: number;
  coveredNs: number;
}

export const emptyStats = (): BaselineStats => ({ quietJ: 0, quietNs: 0, xx: new Float64Array(9), xe: new Float64Array(3), readJ: 0, coveredNs: 0 });

/** Adds `count` windows of n requests, `bytes` bytes and energy e to the fit's sums. */
export function addWindow(st: BaselineStats, n: number, bytes: number, e: number, count = 1): void {
  const x = [1, n, bytes];
  for (let i = 0; i < 3; i++) {
    st.xe[i] = st.xe[i]! + count * x[i]! * e;
    for (let j = 0; j < 3; j++) st.xx[i * 3 + j] = st.xx[i * 3 + j]! + count * x[i]! * x[j]!;
  }
}

/**
 * Solves the normal equations of the first `k` regressors (Gaussian elimination with partial
 * pivoting); null when they are not determined (too few windows, or regressors that never vary).
 */
export function leastSquares(xx: ArrayLike<number>, xe: ArrayLike<number>, k: number): number[] | null {
  const a = Array.from({ length: k }, (_, i) => [...Array.from({ length: k }, (_, j) => xx[i * 3 + j]!), xe[i]!]);
  if (a[0]![0]! <= k) return null;
  for (let c = 0; c < k; c++) {
    let p = c;
    for (let r = c + 1; r < k; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    [a[c], a[p]] = [a[p]!, a[c]!];
    const scale = Math.max(...a.map((row) => Math.abs(row[c]!)), 1e-300);
    if (Math.abs(a[c]![c]!) <= 1e-9 * scale) return null;
    for (let r = 0; r < k; r++) {
      if (r === c) continue;
      const f = a[r]![c]! / a[c]![c]!;
      for (let j = c; j <= k; j++) a[r]![j] = a[r]![j]! - f * a[c]![j]!;
    }
  }
  return a.map((row, i) => row[k]! / row[i]!);
}

/** The baseline from a pass's figures (§3.3.3; the order of preference above). */
export function estimateBaseline(x: BaselineStats, windowNs: number, given: number | null, model: 'constant' | 'per-byte' = 'constant'): DriverBaseline {
  if (given !== null) return { watts: given, source: 'given', quietNs: x.quietNs, fitWindows: 0 };
  const cap = x.coveredNs > 0 ? perSecond(x.readJ, x.coveredNs) : 0;
  const capped = (w: number) => Math.max(0, Math.min(w, cap));
  if (x.quietNs >= MIN_QUIET_WINDOWS * windowNs) return { watts: capped(perSecond(x.quietJ, x.quietNs)), source: 'quiet', quietNs: x.quietNs, fitWindows: 0 };
  const fit = leastSquares(x.xx, x.xe, model === 'per-byte' ? 3 : 2);
  if (fit !== null) return { watts: capped(fit[0]! / nsToS(windowNs)), source: 'fit', quietNs: x.quietNs, fitWindows: x.xx[0]! };
  if (x.quietNs > 0) return { watts: capped(perSecond(x.quietJ, x.quietNs)), source: 'quiet', quietNs: x.quietNs, fitWindows: 0 };
  return { watts: 0, source: 'none', quietNs: 0, fitWindows: 0 };
}

interface Drv {
  readonly name: string;
  /** Windows: [access energy, busy flag, requests completed, their bytes]. */
  readonly win: IntervalAccumulator;
  /** Windows before this time are counted. */
  from: number;
  readonly stats: BaselineStats;
}

/** The first pass of driver-charge: gathers BaselineStats per driver VM and provides the estimates. */
export class DriverBaselineEstimator implements Stage, DriverBaselines {
  readonly receive = { 'cpu-periods': (p: CpuPeriods) => this.periods(p), 'disk-requests': (r: DiskRequests) => this.requests(r) };
  readonly provides = { 'driver-baseline': this };

  private readonly graph: ServiceGraph;
  private readonly windowNs: number;
  private readonly drivers: Drv[];
  private readonly driverOf: (Drv | null)[];
  private readonly clocks = new CpuClocks();
  private readonly estimates = new Map<string, DriverBaseline>();
  private now = -Infinity;
  private maxServiceNs = 0;
  private minT0 = Infinity;
  private cpuEnd = -Infinity;
  private flushedTo = -Infinity;
  private endNs = Infinity;

  constructor(private readonly ctx: StageContext<DriverSettings>) {
    const m = ctx.machine;
    this.graph = new ServiceGraph(m);
    this.windowNs = periodNs(ctx.settings.baseline_window_ms);
    this.driverOf = m.consumers.map(() => null);
    this.drivers = this.graph.drivers.map((d) => {
      const drv: Drv = { name: m.consumers[d]!, win: new IntervalAccumulator(this.windowNs, 4, (k, s) => this.close(drv, k, s)), from: NaN, stats: emptyStats() };
      this.driverOf[d] = drv;
      return drv;
    });
  }

  baseline(driver: string): DriverBaseline {
    const b = this.estimates.get(driver);
    if (!b) throw new Error(`no baseline estimated for '${driver}'`);
    return b;
  }

  private periods(p: CpuPeriods): void {
    const W = this.windowNs;
    for (let i = 0; i < p.length; i++) {
      const t0 = p.t0[i]!;
      const t1 = p.t1[i]!;
      this.clocks.see(p.cpu[i]!, t1);
      if (t1 > this.now) this.now = t1;
      if (t1 > this.cpuEnd) this.cpuEnd = t1;
      if (t0 < this.minT0) this.minT0 = t0;
      const drv = this.driverOf[p.vm[i]!];
      const e = p.activeJ[i]!;
      if (!drv || e === 0) continue;
      drv.stats.readJ += e;
      // Spread over the windows the period overlaps, in proportion to time.
      const k0 = Math.floor(t0 / W);
      const k1 = Math.max(k0, Math.ceil(t1 / W) - 1);
      for (let k = k0; k <= k1; k++) {
        const f = t1 > t0 ? (Math.min(t1, (k + 1) * W) - Math.max(t0, k * W)) / (t1 - t0) : 1;
        if (f > 0) {
          const s = drv.win.slots(k);
          s[0] = s[0]! + e * f;
        }
      }
    }
    this.advance();
  }

  private requests(r: DiskRequests): void {
    const W = this.windowNs;
    const disks = Object.values(this.ctx.machine.profile.disks);
    for (let i = 0; i < r.length; i++) {
      const t = r.t[i]!;
      if (t > this.now) this.now = t;
      const route = this.graph.route(r.vm[i]!, r.disk[i]!);
      if (route === null) continue;
      const drv = this.driverOf[route.driver]!;
      const lat = r.latency[i]!;
      const service = Math.min(MAX_IN_FLIGHT_NS, lat === lat ? lat : transferNs(r.bytes[i]!, disks[r.disk[i]!]!.nominal_rate_bps));
      if (service > this.maxServiceNs) this.maxServiceNs = service;
      // In flight from its start to its completion; the window after it too (deferred work).
      for (let k = Math.floor((t - service) / W), kEnd = Math.floor(t / W) + 1; k <= kEnd; k++) drv.win.slots(k)[1] = 1;
      const s = drv.win.slots(Math.floor(t / W));
      s[2] = s[2]! + 1;
      s[3] = s[3]! + r.bytes[i]!;
    }
    this.advance();
  }

  /** Windows are complete once every CPU has passed them and no later request can reach back into them. */
  private advance(): void {
    const w = this.clocks.min();
    if (w === -Infinity) return;
    const limit = Math.min(w, this.now - this.maxServiceNs);
    if (limit <= this.flushedTo) return;
    this.flushedTo = limit;
    for (const drv of this.drivers) drv.win.flushBefore(limit);
  }

  /** How much of [from, to) the CPU log covers. */
  private covered(from: number, to: number): number {
    return Math.max(0, Math.min(to, this.cpuEnd) - Math.max(from, this.minT0));
  }

  /** Windows nobody touched, [from, to): quiet, no energy, no requests. */
  private untouched(drv: Drv, from: number, to: number): void {
    const c = this.covered(from, to);
    if (c <= 0) return;
    drv.stats.quietNs += c;
    drv.stats.coveredNs += c;
    // Full windows among them enter the fit as (n = 0, E = 0).
    const full = Math.floor(c / this.windowNs);
    if (full > 0) addWindow(drv.stats, 0, 0, 0, full);
  }

  private close(drv: Drv, k: number, s: Float64Array): void {
    const W = this.windowNs;
    const a = k * W;
    const b = Math.min((k + 1) * W, this.endNs);
    // The first window: the time before it, from the start of the CPU log, was untouched.
    if (drv.from !== drv.from) drv.from = Math.min(this.minT0, a);
    if (b <= drv.from) return;
    this.untouched(drv, drv.from, Math.max(a, drv.from));
    const c = this.covered(Math.max(a, drv.from), b);
    const st = drv.stats;
    st.coveredNs += c;
    const e = s[0]!;
    const n = s[2]!;
    if (s[1] === 0) {
      st.quietJ += e;
      st.quietNs += c;
    }
    if (c >= W) addWindow(st, n, s[3]!, e);
    drv.from = b;
  }

  finish(run: RunSpan): void {
    this.endNs = run.t1;
    for (const drv of this.drivers) {
      drv.win.flushAll();
      if (drv.from !== drv.from) drv.from = run.t0;
      this.untouched(drv, drv.from, run.t1);
      drv.from = run.t1;
      this.estimates.set(drv.name, estimateBaseline(drv.stats, this.windowNs, this.ctx.settings.baseline_watts[drv.name] ?? null, this.ctx.settings.model));
    }
  }
}
