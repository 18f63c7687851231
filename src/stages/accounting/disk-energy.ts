/**
 * Stage 2, disk-energy: the two-state, time-based disk model of §3.2.2 as the driver's
 * translation module applies it (§3.3.2), one model per disk of the profile.
 *
 * Transfer rate: re-estimated every `rate_window` (50) requests of the disk as bytes over busy
 * time of those requests; until the first window completes, `nominal_rate_bps`, or the same
 * estimate over the latency-carrying requests so far where that is faster. A request's busy
 * time is its `latency_ns` where the log has it; otherwise the time since the disk's previous
 * completion (0 for completions at the same instant) — unless that gap is longer than
 * `idle_period_ms`: the disk then idled, and the request tells nothing about the rate. A window in
 * which fewer than half of the requests tell something, or whose busy time is 0, keeps the rate.
 * Without latencies the estimate is the disk's throughput while busy, so a disk that is rarely
 * idle for a whole period looks always active (metric `accounting.disk.<id>.active_frac`).
 *
 * Active energy: a request keeps the disk active for bytes / rate; its energy
 * (active_watts − idle_watts) · bytes / rate goes to its client (and, where the log names one, to
 * its resource container, as an extra container-level row; for an energy-aware guest whose
 * containers guest-containers accounts, that stage replaces these rows with its own split).
 *
 * Idle energy: idle_watts · period, recomputed every `idle_period_ms` (the paper's 50 ms procedure)
 * and apportioned to the clients in proportion to their active time in that period; equally among
 * the disk's clients when nobody used it. Over a run the disk's energy is exactly
 * idle_watts · duration + Σ active.
 *
 * A request that reached the disk through a driver VM's service is consumed by that driver on the
 * client's behalf: its rows have `via` = the driver (Figure 5). See core/services.ts for how a row
 * is matched to a service, and for rows that only record an upper service's request.
 */
import { BATCH_CAPACITY, type DiskBatch, type EventSlice } from '../../core/events.js';
import { WattraceError } from '../../core/errors.js';
import { readHead } from '../../core/files.js';
import { IntervalAccumulator, spread } from '../../core/intervals.js';
import type { DiskSpec } from '../../core/machine.js';
import { METRICS } from '../../core/metrics.js';
import { ServiceGraph } from '../../core/services.js';
import type { RunSpan } from '../../core/span.js';
import type { DiskRequests, Stage, StageContext } from '../../core/stage.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
import { energyOf, joules, ns, nsToS, periodNs, perSecond, transferNs } from '../../core/units.js';

interface DiskState {
  readonly id: string;
  /** Index of the disk in profile order (its block of accumulator slots). */
  readonly d: number;
  readonly spec: DiskSpec;
  /** Idle accounting period, ns. */
  readonly periodNs: number;
  /** Bytes per second in effect. */
  rate: number;
  /** True once a window has set the rate (until then: nominal, or the latencies seen so far). */
  estimated: boolean;
  /** Before that: bytes and busy time of the requests that carried their latency. */
  firstBytes: number;
  firstBusy: number;
  winN: number;
  /** Requests of the window whose busy time is known. */
  winUsable: number;
  winBytes: number;
  winBusy: number;
  prevT: number;
  /** Current idle period and its utilization per consumer (active ns). */
  curP: number;
  readonly util: Float64Array;
  utilSum: number;
  /** Idle energy has been emitted from `firstFrom` up to `idleFrom`. */
  idleFrom: number;
  firstFrom: number;
  /**
   * The first idle period closed: its index and utilization, for the time before `firstFrom` in
   * it (the run's start is known only at the end: before, whether that time went by utilization
   * or equally depended on whether the CPU log had shown a period before the first request).
   */
  firstP: number;
  firstUtil: Float64Array | null;
  firstUtilSum: number;
  /**
   * Idle energy before `firstFrom` has been emitted from here on: at the first period's close (the
   * run's start as known then), so it goes into intervals not yet written; the end adds what lies
   * before, should the run's start have moved earlier since.
   */
  preFrom: number;

  requests: number;
  bytes: number;
  activeS: number;
  /** Windows that kept the previous rate. */
  rateKept: number;
  idleJ: number;
  activeJ: number;
}

export class DiskEnergy implements Stage {
  private readonly graph: ServiceGraph;
  private readonly disks: DiskState[];
  private readonly nCons: number;
  private readonly acc: IntervalAccumulator;
  private out: Mutable<DiskRequests> | null = null;
  /** Container-level active energy per interval: key `${d}\0${consumer}\0${container}`. */
  private readonly containerJ = new Map<number, Map<string, number>>();
  private readonly viaCache = new Map<number, string | null>();
  /** Requests that only record an upper service's work (no disk energy of their own). */
  upperRequests = 0;

  constructor(private readonly ctx: StageContext<unknown>) {
    const m = ctx.machine;
    this.graph = new ServiceGraph(m);
    this.nCons = m.consumers.length;
    this.disks = Object.entries(m.profile.disks).map(([id, spec], d) => ({
      id,
      d,
      spec,
      periodNs: periodNs(spec.idle_period_ms),
      rate: spec.nominal_rate_bps,
      estimated: false,
      firstBytes: 0,
      firstBusy: 0,
      winN: 0,
      winUsable: 0,
      winBytes: 0,
      winBusy: 0,
      prevT: NaN,
      curP: NaN,
      util: new Float64Array(this.nCons),
      utilSum: 0,
      firstP: NaN,
      firstUtil: null,
      firstUtilSum: 0,
      preFrom: NaN,

      idleFrom: NaN,
      firstFrom: NaN,
      requests: 0,
      bytes: 0,
      activeS: 0,
      rateKept: 0,
      idleJ: 0,
      activeJ: 0,
    }));
    this.acc = new IntervalAccumulator(ctx.intervalNs, this.disks.length * this.nCons * 2, (k, s) => this.emit(k, s));
  }

  /** The records handed on for a slice of `n` rows, in arrays this stage owns. */
  private outFor(n: number): Mutable<DiskRequests> {
    if (this.out === null || this.out.t.length < n) {
      const c = Math.max(n, BATCH_CAPACITY);
      this.out = { length: 0, t: new Float64Array(c), vm: new Int32Array(c), disk: new Int32Array(c), bytes: new Float64Array(c), latency: new Float64Array(c), activeNs: new Float64Array(c) };
    }
    this.out.length = 0;
    return this.out;
  }

  push(slice: EventSlice): void {
    const b = slice.batch as DiskBatch;
    const I = this.ctx.intervalNs;
    let t = -Infinity;
    const out = this.outFor(slice.to - slice.from);
    for (let i = slice.from; i < slice.to; i++) {
      t = b.t[i]!;
      const st = this.disks[this.graph.diskIndex(b.names, b.disk[i]!)]!;
      const c = b.vm[i]!;
      const o = out.length++;
      out.t[o] = t;
      out.vm[o] = c;
      out.disk[o] = st.d;
      out.bytes[o] = b.bytes[i]!;
      out.latency[o] = b.latency[i]!;
      const route = this.graph.route(c, st.d);
      const upper = route !== null && !route.physical;
      // An upper service's request costs what it would at the disk's rate: its own latency
      // covers the whole chain, not the disk's busy time.
      const rate = this.rateFor(st, b.bytes[i]!, upper ? NaN : b.latency[i]!);
      out.activeNs[o] = transferNs(b.bytes[i]!, rate);
      if (upper) {
        this.upperRequests++;
        continue;
      }
      this.advance(st, t);
      const bytes = b.bytes[i]!;
      const activeNs = transferNs(bytes, rate);
      // No block request moves a terabyte: a size that says so is corrupt or not in bytes (2^64 − 1
      // bytes made 857 GW of disk power, exit 0; its recorded latency made the rate estimate
      // vouch for it, so no bound by rate would do).
      if (bytes > MAX_REQUEST_BYTES) {
        throw new WattraceError('E_FIELD', `a request of ${bytes >= 2 ** 53 ? bytes.toExponential(4) : bytes} bytes: more than 1 TiB in one request is no disk request (a corrupt size, or not in bytes)`, {
          file: b.file,
          line: b.line[i]!,
          ...bytesColumn(b.file),
          columnName: 'bytes',
        });
      }
      const e = energyOf(st.spec.active_watts - st.spec.idle_watts, activeNs);
      const slot = (st.d * this.nCons + c) * 2 + 1;
      const s = this.acc.slots(Math.floor(t / I));
      s[slot] = s[slot]! + e;
      if (b.container[i]! >= 0) this.addContainer(Math.floor(t / I), `${st.d}\0${c}\0${b.names[b.container[i]!]!}`, e);
      st.util[c] = st.util[c]! + activeNs;
      st.utilSum += activeNs;
      st.requests++;
      st.bytes += bytes;
      st.activeS += nsToS(activeNs);
      st.activeJ += e;
      // Busy time for the next rate estimate: the latency, else the gap since the previous
      // completion. A gap longer than an idle period was idle time: that request tells nothing.
      const lat = b.latency[i]!;
      if (!st.estimated && lat === lat) {
        st.firstBytes += bytes;
        st.firstBusy += Math.min(lat, st.periodNs);
      }
      const gap = t - st.prevT;
      st.prevT = t;
      st.winN++;
      if (lat === lat || gap <= st.periodNs) {
        st.winUsable++;
        st.winBytes += bytes;
        // No request keeps a disk busy for longer than an idle period: an outlier latency
        // must not drag the rate of a whole window down.
        st.winBusy += lat === lat ? Math.min(lat, st.periodNs) : gap;
      }
      if (st.winN >= st.spec.rate_window) {
        // Keep the rate when the window says too little (mostly idle gaps, or only ties, as in
        // logs with whole-second timestamps).
        if (st.winBusy > 0 && st.winBytes > 0 && 2 * st.winUsable >= st.winN) {
          st.rate = perSecond(st.winBytes, st.winBusy);
          st.estimated = true;
        } else st.rateKept++;
        st.winN = 0;
        st.winUsable = 0;
        st.winBytes = 0;
        st.winBusy = 0;
      }
    }
    if (t === -Infinity) return;
    // The requests go on before the energy they caused is written (driver-charge passes a chain's
    // disk energy on by them).
    this.ctx.emit('disk-requests', out);
    let mark = Infinity;
    for (const st of this.disks) {
      this.advance(st, t);
      // Nothing is written before every disk's first period has closed: the time before it is
      // charged then (by that period's use), to intervals still open.
      mark = Math.min(mark, st.firstUtil === null ? -Infinity : st.curP * st.periodNs);
    }
    this.acc.flushBefore(mark);
  }

  /**
   * The rate a request is charged at. Before the first window has set it: the rate of the
   * requests so far that carried their latency (bytes over busy time, as a window estimates it;
   * this one included when it carries its own), where that is faster than nominal_rate_bps —
   * the recording says how fast the disk is, where a starter profile's guess made the first
   * window of a fast disk's requests cost up to 20× their recorded busy time; never slower, so an
   * early outlier latency cannot make the first window dearer than nominal, as before. Without
   * latencies the gaps between completions say little about a single request: nominal.
   */
  private rateFor(st: DiskState, bytes: number, latency: number): number {
    if (st.estimated) return st.rate;
    const own = latency === latency;
    const busy = st.firstBusy + (own ? Math.min(latency, st.periodNs) : 0);
    const total = st.firstBytes + (own ? bytes : 0);
    return busy > 0 && total > 0 ? Math.max(st.rate, perSecond(total, busy)) : st.rate;
  }

  finish(run: RunSpan): void {
    for (const st of this.disks) {
      if (st.curP !== st.curP) this.start(st, run.t0);
      this.advance(st, run.t1);
      // The last, partial period, and time before the first period the stream showed us.
      if (run.t1 > st.idleFrom) this.closePeriod(st, st.idleFrom, run.t1, true);
      // What lies before the run's start as known at the first period's close.
      if (run.t0 < st.preFrom) this.beforeFirst(st, run.t0, st.preFrom);
    }
    this.acc.flushAll();
    this.flushContainers(Infinity);
    const { metrics } = this.ctx;
    for (const st of this.disks) {
      const disk = { disk: st.id };
      // The disk's energy over the run: idle power × duration + every request's active energy.
      this.ctx.account(st.id, energyOf(st.spec.idle_watts, run.t1 - run.t0) + st.activeJ);
      metrics.write(METRICS.diskIdle, disk, st.idleJ);
      metrics.write(METRICS.diskActive, disk, st.activeJ);
      metrics.write(METRICS.diskActiveS, disk, st.activeS);
      metrics.write(METRICS.diskRequests, disk, st.requests);
      metrics.write(METRICS.diskBytes, disk, st.bytes);
      metrics.write(METRICS.diskRate, disk, st.rate);
      metrics.write(METRICS.diskRateKept, disk, st.rateKept);
      // Above 1 when the model keeps the disk active longer than the run (see README).
      metrics.write(METRICS.diskActiveFrac, disk, run.t1 > run.t0 ? st.activeS / nsToS(run.t1 - run.t0) : 0);
    }
    metrics.write(METRICS.diskUpper, {}, this.upperRequests);
  }

  private start(st: DiskState, t: number): void {
    const from = Math.min(t, this.ctx.span.t0);
    st.curP = Math.floor(from / st.periodNs);
    st.idleFrom = from;
    st.firstFrom = from;
  }

  /** Closes every idle period that ends at or before `t`. */
  private advance(st: DiskState, t: number): void {
    if (st.curP !== st.curP) this.start(st, t);
    const P = st.periodNs;
    const pt = Math.floor(t / P);
    if (pt <= st.curP) return;
    this.closePeriod(st, st.idleFrom, (st.curP + 1) * P, true);
    // Periods nobody used, in one go.
    if (pt > st.curP + 1) this.idle(st, (st.curP + 1) * P, pt * P, false);
    st.curP = pt;
    st.idleFrom = pt * P;
  }

  private closePeriod(st: DiskState, from: number, to: number, byUse: boolean): void {
    if (st.firstUtil === null) {
      st.firstP = Math.floor(from / st.periodNs);
      st.firstUtil = st.util.slice();
      st.firstUtilSum = st.utilSum;
      st.preFrom = Math.min(st.firstFrom, this.ctx.span.t0);
      this.beforeFirst(st, st.preFrom, st.firstFrom);
    }
    this.idle(st, from, to, byUse && st.utilSum > 0);
    st.util.fill(0);
    st.utilSum = 0;
  }

  /**
   * The disk's idle energy over [from, to), before `firstFrom`: whole periods before the first
   * one closed nobody used (equally); the part of that first period, by its utilization, as the
   * rest of it.
   */
  private beforeFirst(st: DiskState, from: number, to: number): void {
    if (to <= from) return;
    const p0 = Math.min(to, Math.max(from, st.firstP * st.periodNs));
    this.idle(st, from, p0, false);
    this.idle(st, p0, to, st.firstUtilSum > 0, st.firstUtil!, st.firstUtilSum);
  }

  /** idle_watts over [from, to), by the period's utilization or equally among the disk's clients. */
  private idle(st: DiskState, from: number, to: number, byUse: boolean, u = st.util, sum = st.utilSum): void {
    if (to <= from) return;
    const j = energyOf(st.spec.idle_watts, to - from);
    st.idleJ += j;
    const base = st.d * this.nCons;
    if (byUse) {
      spread(from, to, this.ctx.intervalNs, (k, f) => {
        const s = this.acc.slots(k);
        for (let c = 0; c < this.nCons; c++) if (u[c]! > 0) s[(base + c) * 2] = s[(base + c) * 2]! + (j * f * u[c]!) / sum;
      });
    } else {
      const sharers = this.graph.diskSharers(st.id);
      const each = j / sharers.length;
      spread(from, to, this.ctx.intervalNs, (k, f) => {
        const s = this.acc.slots(k);
        for (const { vm } of sharers) s[(base + vm) * 2] = s[(base + vm) * 2]! + each * f;
      });
    }
  }

  private addContainer(k: number, key: string, j: number): void {
    let m = this.containerJ.get(k);
    if (!m) this.containerJ.set(k, (m = new Map()));
    m.set(key, (m.get(key) ?? 0) + j);
  }

  /** The driver through which consumer `c` uses disk `d`, or null. */
  private via(d: number, c: number): string | null {
    const key = d * this.nCons + c;
    let v = this.viaCache.get(key);
    if (v === undefined) {
      const r = this.graph.route(c, d);
      v = r !== null && r.physical ? this.ctx.machine.consumers[r.driver]! : null;
      this.viaCache.set(key, v);
    }
    return v;
  }

  private bounds(k: number): [number, number] {
    const I = this.ctx.intervalNs;
    const span = this.ctx.span;
    return [Math.max(k * I, span.t0), Math.min((k + 1) * I, span.t1)];
  }

  private emit(k: number, s: Float64Array): void {
    const { consumers } = this.ctx.machine;
    const [t0, t1] = this.bounds(k);
    for (const st of this.disks) {
      for (let c = 0; c < this.nCons; c++) {
        const slot = (st.d * this.nCons + c) * 2;
        for (const kind of ['idle', 'active'] as const) {
          const j = s[slot + (kind === 'idle' ? 0 : 1)]!;
          if (j !== 0) this.ctx.out.energy({ t0: ns(t0), t1: ns(t1), consumer: consumers[c]!, container: null, via: this.via(st.d, c), device: st.id, kind, joules: joules(j) });
        }
      }
    }
    this.flushContainers(k + 1);
  }

  private flushContainers(beforeK: number): void {
    const { consumers } = this.ctx.machine;
    for (const [k, m] of [...this.containerJ].sort(([a], [b]) => a - b)) {
      if (k >= beforeK) break;
      this.containerJ.delete(k);
      const [t0, t1] = this.bounds(k);
      for (const [key, j] of m) {
        const p1 = key.indexOf('\0');
        const p2 = key.indexOf('\0', p1 + 1);
        const d = key.slice(0, p1);
        const c = key.slice(p1 + 1, p2);
        const container = key.slice(p2 + 1);
        const consumer = consumers[Number(c)]!;
        const device = this.disks[Number(d)]!.id;
        this.ctx.out.energy({ t0: ns(t0), t1: ns(t1), consumer, container, via: this.via(Number(d), Number(c)), device, kind: 'active', joules: joules(j) });
      }
    }
  }
}

/** The largest request a disk log may hold (1 TiB). */
const MAX_REQUEST_BYTES = 2 ** 40;

/** The 1-based column of `bytes` in a disk log's header, when the file can be read. */
function bytesColumn(file: string): { column?: number } {
  try {
    const i = readHead(file, 4096).toString('utf8').split('\n')[0]!.trim().split(',').indexOf('bytes');
    return i >= 0 ? { column: i + 1 } : {};
  } catch {
    return {};
  }
}
