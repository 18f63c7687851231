/**
 * Stage 6, disk-budgets: disk request shaping under the host-level energy manager (§3.3.5,
 * §3.3.6), simulated on the trace's requests.
 *
 * The simulated driver serves one request at a time, taking the clients in turn. A client whose
 * limit is in force is served only up to its budget (the paper's `process_io` loop up to
 * `client->budget`): the throttle factor t is the client's allowed throughput in KiB/s (so
 * t_max = 4000 is about what the paper's disk could do, and the formula's ±1 steps are fine
 * enough to regulate small budgets); every `refresh_ms` the client's credit grows by
 * t × 1024 × refresh bytes (one refresh's worth at most is kept, or one request's), and a request
 * is served when the credit covers its bytes. The budget reported is one refresh's grant in
 * requests of the client's mean size. Every `period_ms` the manager compares the client's energy
 * in the period e_c with its limit e_l = limit_watts × period and moves t with the paper's formula
 * (§3.3.6):
 *   Δt = ¼(t_l − t) + sgn   when (e_c > e_l and t > t_l) or (e_c < e_l and t < t_l)
 *   Δt = 4/3(t − t_l) + sgn otherwise,   sgn = (e_l − e_c)/|e_l − e_c| (0 when equal),
 * t_l the previous factor, t kept within [0, t_max]; t starts at t_max. The energy a request
 * costs the client is the disk's active energy for it, (active_watts − idle_watts) × its service
 * time, plus the driver's CPU for it as driver-charge predicts it (its `driver-cost` port; the
 * replay refuses a pipeline whose profile serves a disk through a driver VM without it): the
 * limit covers the client's whole driver-side active power.
 *
 * Demand comes from the disk log: every recorded request once, in order, with its size and
 * service time; delayed while throttled, never dropped (served + backlog = demand, reported). In
 * a chain of services (§3.3.3) the client's row is the request; the lower driver's row for it (the
 * leg, naming the upper driver as client) is not queued again, and the client's request takes
 * the disk for its bytes at the disk's measured rate (its own latency covers the whole chain); its
 * cost includes every driver's CPU on its way.
 * `arrival: trace`: a request arrives at its recorded completion time. `arrival: closed` (the
 * paper's stress test): a client issues its next recorded request as soon as its previous one
 * completes, until its recorded requests are exhausted — as far as the trace has been read: the
 * simulation clock follows the trace (it never runs ahead of the events read so far, so the stage
 * streams), so a client never issues a request before its recorded time; where it could (the
 * recording has think time, or a throttled neighbour leaves it the disk), it waits as under
 * `trace`. With the driver serving one request at a time, taking the clients in turn, a deeper
 * `queue_depth` changes nothing. Limits switch on at `start_s`.
 */
import type { DiskBatch, EventSlice } from '../../core/events.js';
import type { DiskSpec } from '../../core/machine.js';
import { ServiceGraph } from '../../core/services.js';
import { METRICS } from '../../core/metrics.js';
import type { DiskPolicySettings } from '../../core/settings.js';
import { startAfterRunNote } from './start.js';
import type { RunSpan } from '../../core/span.js';
import type { DriverCostModel, Stage, StageContext } from '../../core/stage.js';
import { amountOver, energyOf, ns, nsToS, periodNs, perSecond, powerOf, sToNs, transferNs, watts } from '../../core/units.js';
import { settle, type SettleResult } from './settle.js';
import { mutated } from './mutations.js';

/**
 * The paper's throttle-factor step (§3.3.6): the new t from t, t_l, e_c and e_l; with
 * other coefficients than ¼ and 4/3 for controller studies.
 */
export function throttleStep(t: number, tl: number, ec: number, el: number, tMax: number, backoff = 0.25, boost = 4 / 3): number {
  const sgn = (el === ec ? 0 : (el - ec) / Math.abs(el - ec)) * (mutated('disk-sign') ? -1 : 1);
  const dt = (ec > el && t > tl) || (ec < el && t < tl) ? backoff * (tl - t) + sgn : boost * (t - tl) + sgn;
  return Math.min(tMax, Math.max(0, t + dt));
}

/** The mutation `truncate-closed` (a test seam) keeps only this many requests per client. */
const TRUNCATED = 256;

interface Client {
  readonly vm: number;
  readonly name: string;
  readonly limit: number | null;
  t: number;
  tl: number;
  /** Bytes the client may still have served this refresh. */
  credit: number;
  meanBytes: number;
  /** trace: pending requests (bytes, service ns) in arrival order, as a ring. */
  qBytes: Float64Array;
  qService: Float64Array;
  qHead: number;
  qLen: number;
  /** This period's energy, requests, bytes; and over the run. */
  eJ: number;
  reqs: number;
  bytes: number;
  totalBytes: number;
  totalReqs: number;
  demand: number;
  /** Energy of the requests completed from start_s on (the window of the mean powers). */
  afterJ: number;
  /** Per-period power after start_s (for settling and the metrics). */
  readonly watts: number[];
  readonly periodBytes: number[];
  beforeBytes: number;
  beforeNs: number;
}

interface DiskSim {
  readonly d: number;
  readonly id: string;
  readonly spec: DiskSpec;
  readonly clients: Client[];
  readonly byVm: Map<number, Client>;
  busyUntil: number;
  /** The request in service: its client, bytes, energy. */
  cur: Client | null;
  curBytes: number;
  curJ: number;
  rr: number;
  /**
   * The disk's transfer rate for upper requests of a chain (their latency covers the chain): from
   * the physical requests' bytes over service time, re-estimated every `rate_window` of them
   * (nominal_rate_bps before), as disk-energy estimates it.
   */
  rate: number;
  windowBytes: number;
  windowNs: number;
  windowN: number;
}

export class DiskBudgets implements Stage {
  private readonly s: DiskPolicySettings;
  private readonly periodNs: number;
  private readonly refreshNs: number;
  private readonly startNs: number;
  private readonly sims: DiskSim[];

  private readonly diskIndex = new Map<string, number>();
  private readonly graph: ServiceGraph;
  private origin = NaN;
  /** Manager periods so far with the limits in force (a client's `watts` has one entry per such period). */
  private controlled = 0;
  private now = NaN;
  private nextPeriod = NaN;
  private nextRefresh = NaN;

  constructor(
    private readonly ctx: StageContext<DiskPolicySettings>,
    /** driver-charge's cost model, where a driver VM serves the disks. */
    private readonly driver: DriverCostModel | null,
  ) {
    this.s = ctx.settings;
    this.periodNs = periodNs(this.s.period_ms);
    this.refreshNs = periodNs(this.s.refresh_ms);
    this.startNs = sToNs(this.s.start_s);
    this.sims = Object.entries(ctx.machine.profile.disks).map(([id, spec], d) => {
      this.diskIndex.set(id, d);
      return { d, id, spec, clients: [], byVm: new Map(), busyUntil: -Infinity, cur: null, curBytes: 0, curJ: 0, rr: 0, rate: spec.nominal_rate_bps, windowBytes: 0, windowNs: 0, windowN: 0 };
    });
    this.graph = new ServiceGraph(ctx.machine);
  }

  /**
   * A request's service time on the simulated disk. A chain's upper request (its client's row;
   * its latency covers the whole chain) takes what its bytes take at the disk's measured rate; a
   * physical request its recorded latency (bytes / nominal rate where none is recorded).
   */
  private serviceOf(sim: DiskSim, upper: boolean, bytes: number, lat: number): number {
    if (upper) return transferNs(bytes, sim.rate);
    if (lat !== lat) return transferNs(bytes, sim.spec.nominal_rate_bps);
    sim.windowBytes += bytes;
    sim.windowNs += lat;
    if (++sim.windowN >= sim.spec.rate_window) {
      if (sim.windowNs > 0 && sim.windowBytes > 0) sim.rate = perSecond(sim.windowBytes, sim.windowNs);
      sim.windowBytes = 0;
      sim.windowNs = 0;
      sim.windowN = 0;
    }
    return lat;
  }

  push(slice: EventSlice): void {
    const b = slice.batch as DiskBatch;
    if (this.origin !== this.origin) this.begin(Math.min(this.ctx.span.t0, b.t[slice.from]!));
    for (let i = slice.from; i < slice.to; i++) {
      const t = b.t[i]!;
      this.advance(t);
      const sim = this.sims[this.diskIndex.get(b.names[b.disk[i]!]!)!]!;
      const vm = b.vm[i]!;
      const route = this.graph.route(vm, sim.d);
      const upper = route !== null && !route.physical;
      // In a chain of services, a client's request is logged twice: by the upper driver (the
      // client's row, the demand) and by the lower driver (the leg it sends on, naming the upper
      // driver as client). The leg is the same request: queued again, it occupied the disk twice.
      if (this.graph.relays(vm, sim.d)) {
        // A physical leg still tells the disk's rate; a middle leg of a deeper chain does not.
        if (!upper) this.serviceOf(sim, false, b.bytes[i]!, b.latency[i]!);
        continue;
      }
      const c = this.client(sim, vm);
      // At least 1 ns: the simulated clock must move with every request.
      const service = Math.max(1, this.serviceOf(sim, upper, b.bytes[i]!, b.latency[i]!));
      if (this.s.arrival === 'closed' && mutated('truncate-closed') && c.demand >= TRUNCATED) continue;
      c.demand++;
      this.enqueue(c, b.bytes[i]!, service);
      this.dispatch(sim);
    }
  }

  finish(run: RunSpan): void {
    const late = startAfterRunNote('policy.disk.start_s', this.s.start_s, Object.keys(this.s.limits_watts).length, run);
    if (late !== null) this.ctx.note(late);
    if (this.origin !== this.origin) return;
    this.advance(run.t1);
    const { metrics } = this.ctx;
    // The window of every mean power: from the first manager period at or after start_s.
    const windowNs = run.t1 - (this.origin + Math.ceil(this.startNs / this.periodNs) * this.periodNs);
    for (const sim of this.sims) {
      for (const c of sim.clients) {
        const vm = { vm: c.name };
        metrics.write(METRICS.diskPolBytes, vm, c.totalBytes);
        metrics.write(METRICS.diskPolRequests, vm, c.totalReqs);
        // Not served yet: waiting, or still in service when the run ends.
        metrics.write(METRICS.diskPolBacklog, vm, c.qLen + (sim.cur === c ? 1 : 0));
        metrics.write(METRICS.diskPolDemand, vm, c.demand);
        metrics.write(METRICS.diskPolBefore, vm, c.beforeNs > 0 ? perSecond(c.beforeBytes, c.beforeNs) : NaN);
        if (windowNs > 0) metrics.write(METRICS.diskPolMean, vm, powerOf(c.afterJ, windowNs));
        if (c.limit === null) continue;
        const st: SettleResult = settle(c.watts, c.limit, nsToS(this.periodNs));
        // From start_s: the first controlled period begins at the first period boundary after it.
        if (st.settled) metrics.write(METRICS.diskPolSettle, vm, st.settleS + nsToS(Math.ceil(this.startNs / this.periodNs) * this.periodNs - this.startNs));
        metrics.write(METRICS.diskPolSettledMean, vm, st.meanWatts);
        metrics.write(METRICS.diskPolMax, vm, st.maxWatts);
        metrics.write(METRICS.diskPolOver, vm, st.overLimitFrac);
        const after = c.periodBytes.slice(st.settledFrom);
        metrics.write(METRICS.diskPolAfter, vm, after.length ? perSecond(after.reduce((a, x) => a + x, 0), after.length * this.periodNs) : NaN);
      }
    }
  }

  private begin(t: number): void {
    this.origin = t;
    this.now = t;
    this.nextPeriod = t + this.periodNs;
    this.nextRefresh = t + this.refreshNs;
  }

  private client(sim: DiskSim, vm: number): Client {
    let c = sim.byVm.get(vm);
    if (!c) {
      const name = this.ctx.machine.consumers[vm]!;
      const limit = this.s.limits_watts[name];
      c = {
        vm,
        name,
        limit: limit ?? null,
        t: this.s.t_max,
        tl: this.s.t_max,
        credit: 0,
        meanBytes: 0,
        qBytes: new Float64Array(64),
        qService: new Float64Array(64),
        qHead: 0,
        qLen: 0,
        eJ: 0,
        reqs: 0,
        bytes: 0,
        totalBytes: 0,
        totalReqs: 0,
        demand: 0,
        afterJ: 0,
        watts: [],
        periodBytes: [],
        beforeBytes: 0,
        beforeNs: 0,
      };
      sim.clients.push(c);
      sim.byVm.set(vm, c);
    }
    return c;
  }

  private enqueue(c: Client, bytes: number, service: number): void {
    if (c.qLen === c.qBytes.length) {
      const n = c.qBytes.length * 2;
      const nb = new Float64Array(n);
      const ns = new Float64Array(n);
      for (let k = 0; k < c.qLen; k++) {
        nb[k] = c.qBytes[(c.qHead + k) % c.qBytes.length]!;
        ns[k] = c.qService[(c.qHead + k) % c.qBytes.length]!;
      }
      c.qBytes = nb;
      c.qService = ns;
      c.qHead = 0;
    }
    const at = (c.qHead + c.qLen) % c.qBytes.length;
    c.qBytes[at] = bytes;
    c.qService[at] = service;
    c.qLen++;
  }

  private nextBytes(c: Client): number {
    return c.qLen > 0 ? c.qBytes[c.qHead]! : 0;
  }

  private limited(c: Client): boolean {
    return c.limit !== null && this.now - this.origin >= this.startNs;
  }

  /** Runs the simulation up to time `until` (events in time order). */
  private advance(until: number): void {
    for (;;) {
      let next = Math.min(this.nextPeriod, this.nextRefresh);
      for (const sim of this.sims) if (sim.cur && sim.busyUntil < next) next = sim.busyUntil;
      if (next > until) break;
      this.now = next;
      for (const sim of this.sims) if (sim.cur && sim.busyUntil <= next) this.complete(sim);
      if (this.nextRefresh <= next) {
        for (const sim of this.sims) {
          for (const c of sim.clients) {
            const grant = amountOver(c.t * 1024, this.refreshNs);
            // Keep one refresh's worth, or enough for the next request however large it is.
            c.credit = Math.min(c.credit + grant, Math.max(grant, this.nextBytes(c)));
          }
        }
        this.nextRefresh += this.refreshNs;
      }
      if (this.nextPeriod <= next) {
        this.managePeriod();
        this.nextPeriod += this.periodNs;
      }
      for (const sim of this.sims) this.dispatch(sim);
    }
    this.now = Math.max(this.now, until);
  }

  private complete(sim: DiskSim): void {
    const c = sim.cur!;
    c.eJ += sim.curJ;
    if (this.now - this.origin >= Math.ceil(this.startNs / this.periodNs) * this.periodNs) c.afterJ += sim.curJ;
    c.reqs++;
    c.bytes += sim.curBytes;
    c.totalReqs++;
    c.totalBytes += sim.curBytes;
    sim.cur = null;
  }

  /** The driver starts the next request when the disk is free: clients in turn, within budgets. */
  private dispatch(sim: DiskSim): void {
    if (sim.cur) return;
    const n = sim.clients.length;
    for (let k = 0; k < n; k++) {
      const c = sim.clients[(sim.rr + k) % n]!;
      if (c.qLen === 0) continue;
      const bytes = c.qBytes[c.qHead]!;
      if (this.limited(c) && c.credit < bytes) continue;
      if (this.limited(c)) c.credit -= bytes;
      const service = c.qService[c.qHead]!;
      c.qHead = (c.qHead + 1) % c.qBytes.length;
      c.qLen--;
      c.meanBytes = c.meanBytes === 0 ? bytes : 0.95 * c.meanBytes + 0.05 * bytes;
      sim.cur = c;
      sim.curBytes = bytes;
      sim.curJ = energyOf(sim.spec.active_watts - sim.spec.idle_watts, service) + (this.driver ? this.driver.predictedCost(c.vm, sim.d, bytes) : 0);
      sim.busyUntil = this.now + service;
      sim.rr = (sim.rr + k + 1) % n;
      return;
    }
  }

  private managePeriod(): void {
    const periodS = nsToS(this.periodNs);
    // The period that ends now began after the limits came on.
    const started = this.now - this.origin >= this.startNs + this.periodNs;
    if (started) this.controlled++;
    for (const sim of this.sims) {
      for (const c of sim.clients) {
        const w = c.eJ / periodS;
        if (started && c.limit !== null) {
          const t = throttleStep(c.t, c.tl, c.eJ, c.limit * periodS, this.s.t_max, this.s.backoff, this.s.boost);
          c.tl = c.t;
          c.t = t;
        }
        if (started) {
          // A client that appeared later drew 0 W in the controlled periods before it.
          while (c.watts.length < this.controlled - 1) {
            c.watts.push(0);
            c.periodBytes.push(0);
          }
          c.watts.push(w);
          c.periodBytes.push(c.bytes);
        } else {
          c.beforeBytes += c.bytes;
          c.beforeNs += this.periodNs;
        }
        this.ctx.out.diskPolicy({
          t: ns(this.now),
          vm: c.name,
          throttle: c.t,
          budget: c.meanBytes > 0 ? amountOver(c.t * 1024, this.refreshNs) / c.meanBytes : 0,
          limitWatts: started && c.limit !== null ? watts(c.limit) : null,
          watts: watts(w),
          requests: c.reqs,
          bytes: c.bytes,
          backlog: c.qLen,
        });
        c.eJ = 0;
        c.reqs = 0;
        c.bytes = 0;
      }
    }
  }
}
