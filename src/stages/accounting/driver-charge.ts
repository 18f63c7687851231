/**
 * Stage 3, driver-charge: recursive energy accounting (§3.3.3, Figure 5). A driver VM's energy is
 * charged back to the clients of its services, keeping the physical device it was spent on, so the
 * result is the matrix consumer × via × device × kind.
 *
 * What is moved. Every host-level row other stages charge to a driver VM (cpu-split's idle and
 * active CPU energy; disk-energy's rows for requests the driver itself issued to a lower service;
 * charges from drivers below it) is taken over: the runner hands it to `capture` instead of writing
 * it. Nothing else is created, so Σ energy per device is unchanged.
 *
 * The driver's own CPU energy, as the paper's translation module sees it:
 * - Readings. The driver reads its CPU energy through its virtualized counters (§3.4.1): its own
 *   periods' access energy Σ w_e·Δe, plus its share of idle energy (`equal`: w_tsc·Δtsc / #VMs of
 *   every period; `by-time`: w_tsc·Δtsc of its own periods). That is exactly what cpu-split
 *   charges it, but known period by period instead of per reporting interval.
 * - Baseline ("what the Linux kernel consumes even if it does not handle disk requests"). Time is
 *   cut into windows of `baseline_window_ms`; a window is quiet when no request of the driver's
 *   services was in flight in it (a request is in flight for `latency_ns` before its completion, or
 *   bytes / nominal_rate_bps without a latency column; the window after its completion also
 *   counts as busy, for the driver's deferred completion work). The baseline power is the driver's energy
 *   in quiet windows over their length, so far in the trace (0 W before the first quiet window), or
 *   `baseline_watts` from the pipeline when it was measured beforehand. As each window closes, the
 *   baseline power × its length is charged to the driver's clients in equal parts, as CPU idle.
 * - The rest, per request. `unaccounted` holds the readings minus the charges so far (the paper's
 *   `unaccounted_cpu_energy`). Every `window` (50) requests the predicted cost is re-estimated
 *   from the active energy of the last windows: constant model, one cost per request (the
 *   paper's); per-byte model, a + b·bytes fitted by least squares on the windows' energy per
 *   request against their bytes per request. The deviation between what was charged and what was
 *   consumed is carried forward: the next window's costs are scaled to pay it back. Costs are
 *   never negative.
 * - With `by-time`, the driver's share of halt energy, which cpu-split only knows at the end of
 *   the run, goes to the clients in equal parts as idle, spread over the run.
 * - At the end of the run, whatever the charges missed (mostly the last window's energy) is
 *   charged to the clients in proportion to their requests' weights (equally when there were
 *   none); an excess is taken back in proportion to what each was charged, from the charges not
 *   yet written where they suffice (else a small negative correction in the last interval). So
 *   over the run the charges equal the driver's energy exactly. A window's baseline is never more
 *   than the driver read in it.
 *
 * Other energy charged to the driver (by lower drivers, or for its own disk requests) is passed on
 * as it arrives: idle energy in equal parts, active energy in proportion to the clients' request
 * weights (predicted costs) in the last complete cost window and the current one. It keeps
 * its `via` (the driver that spent it), so a chain client → storage driver → network driver → NIC
 * shows the client's energy via both drivers. Chains resolve in dependency order by themselves:
 * a charge to a client that is itself a driver is captured again by that driver.
 */
import type { DiskBatch, EventSlice } from '../../core/events.js';
import { IntervalAccumulator, spread } from '../../core/intervals.js';
import { METRICS } from '../../core/metrics.js';
import { ServiceGraph } from '../../core/services.js';
import type { DriverSettings } from '../../core/settings.js';
import type { RunSpan } from '../../core/span.js';
import type { CpuPeriods, DriverCostModel, EnergyKind, EnergyRow, Stage, StageContext } from '../../core/stage.js';
import { CpuClocks } from '../../core/cpu-clocks.js';
import { NS_PER_S, energyOf, joules, ns, nsToS, periodNs, perSecond, transferNs, type Joules, type Ns } from '../../core/units.js';
import { CPU_DEVICE } from './cpu-split.js';

/** per-byte: windows to wait for requests of different sizes before charging a constant cost. */
const PER_BYTE_PATIENCE = 4;
/** Longest time a request is taken to be in flight (an outlier latency must not stall the stage). */
const MAX_IN_FLIGHT_NS = NS_PER_S;

interface Driver {
  readonly d: number;
  readonly name: string;
  /** Position among the stage's drivers (its block of charge slots). */
  readonly slot: number;
  readonly clients: readonly number[];
  /** Baseline windows: [energy read, busy flag]. */
  readonly win: IntervalAccumulator;
  windowFrom: number;
  quietJ: number;
  quietNs: number;
  readonly fixedWatts: number | null;
  baselineW: number;
  /** Readings not yet charged (J), and all readings so far. */
  unaccounted: number;
  readJ: number;
  /** Active energy (readings − baseline, charged or not) at the last cost re-estimate. */
  activeAtBoundary: number;
  n: number;
  bytesInWindow: number;
  /** Predicted cost a + b·bytes (constant model: b = 0) and its scale in the current window. */
  a: number;
  b: number;
  scale: number;
  /** Forgetting sums of the per-byte fit: weight, x, y, x², xy. */
  readonly fit: Float64Array;
  readonly winWeight: Float64Array;
  readonly lastWeight: Float64Array;
  readonly runWeight: Float64Array;
  readonly requestsBy: Float64Array;
  /** Own-CPU charges so far per client: [2c] idle (baseline), [2c + 1] active. */
  readonly chargedBy: Float64Array;
  requests: number;
  /** Cost windows completed. */
  windows: number;
  /** Time of the cost estimate before the last (of the first request before that). */
  heldFrom: number;
  lastEstimateT: number;
  capturedOwn: number;
  /** by-time: own idle as read, own idle as captured, and the halt share passed on at the end. */
  readOwnIdle: number;
  capturedIdle: number;
  haltJ: number;
  baselineJ: number;
  requestJ: number;
  residualJ: number;
  foreignJ: number;
}

export class DriverCharge implements Stage, DriverCostModel {
  /** The driver VMs, whose host-level rows this stage takes over. */
  readonly captures: ReadonlySet<string>;
  readonly receive = { 'cpu-periods': (p: CpuPeriods) => this.readings(p) };
  readonly provides = { 'driver-cost': this };

  private readonly settings: DriverSettings;
  private readonly graph: ServiceGraph;
  private readonly drivers: Driver[];
  /** Driver per consumer index (null for VMs that drive nothing). */
  private readonly driverOf: (Driver | null)[];
  private readonly nCons: number;
  private readonly windowNs: number;
  /** Charges of the drivers' own CPU energy: slot (driver, client, kind). */
  private readonly charges: IntervalAccumulator;
  /** Passed-on energy per interval: key `${client}\0${kind}\0${via}\0${device}`. */
  private readonly passed = new Map<number, Map<string, number>>();
  private readonly equal: boolean;
  private readonly mixBuf: Float64Array;
  private readonly clocks = new CpuClocks();
  private now = -Infinity;
  private maxServiceNs = 0;
  private minT0 = Infinity;
  /** The end of the run once it is known (windows are cut there). */
  private endNs = Infinity;
  /** Every CPU has reported up to here; the latest any has reported to. */
  private watermark = -Infinity;
  private cpuEnd = -Infinity;
  private flushedTo = -Infinity;
  private passedBefore = -Infinity;
  private finished = false;

  constructor(private readonly ctx: StageContext<DriverSettings>) {
    const m = ctx.machine;
    this.settings = ctx.settings;
    this.graph = new ServiceGraph(m);
    this.nCons = m.consumers.length;
    this.equal = m.profile.cpu.idle_split !== 'by-time';
    this.windowNs = periodNs(this.settings.baseline_window_ms);
    this.mixBuf = new Float64Array(this.nCons);
    this.driverOf = m.consumers.map(() => null);
    this.drivers = this.graph.drivers.map((d, slot) => {
      const name = m.consumers[d]!;
      const fixed = this.settings.baseline_watts[name];
      const drv: Driver = {
        d,
        name,
        slot,
        clients: this.graph.clientsOf(d),
        win: new IntervalAccumulator(this.windowNs, 2, (k, s) => this.closeWindow(drv, k, s)),
        windowFrom: NaN,
        quietJ: 0,
        quietNs: 0,
        fixedWatts: fixed ?? null,
        baselineW: fixed ?? 0,
        unaccounted: 0,
        readJ: 0,
        activeAtBoundary: 0,
        n: 0,
        bytesInWindow: 0,
        a: 0,
        b: 0,
        scale: 0,
        fit: new Float64Array(5),
        winWeight: new Float64Array(this.nCons),
        lastWeight: new Float64Array(this.nCons),
        runWeight: new Float64Array(this.nCons),
        requestsBy: new Float64Array(this.nCons),
        chargedBy: new Float64Array(2 * this.nCons),
        requests: 0,
        windows: 0,
        heldFrom: Infinity,
        lastEstimateT: Infinity,
        capturedOwn: 0,
        readOwnIdle: 0,
        capturedIdle: 0,
        haltJ: 0,
        baselineJ: 0,
        requestJ: 0,
        residualJ: 0,
        foreignJ: 0,
      };
      this.driverOf[d] = drv;
      return drv;
    });
    this.captures = new Set(this.drivers.map((d) => d.name));
    this.charges = new IntervalAccumulator(ctx.intervalNs, this.drivers.length * this.nCons * 2, (k, s) => this.emitCharges(k, s));
  }

  push(slice: EventSlice): void {
    if (this.drivers.length === 0) return;
    this.requests(slice as EventSlice<DiskBatch>);
    this.advance();
  }

  /**
   * Windows are complete once every CPU has reported past them and no later request can still
   * have been in flight in them: close them, and write the charges no later estimate can change.
   */
  private advance(): void {
    const w = this.clocks.min();
    if (w === -Infinity) return;
    this.watermark = w;
    const limit = Math.min(w, this.now - this.maxServiceNs);
    if (limit <= this.flushedTo) return;
    this.flushedTo = limit;
    let done = limit;
    let held = limit;
    for (const drv of this.drivers) {
      drv.win.flushBefore(limit);
      if (drv.windowFrom === drv.windowFrom && drv.windowFrom < done) done = drv.windowFrom;
      if (drv.heldFrom < held) held = drv.heldFrom;
    }
    // The charges since the second-to-last cost estimate stay unwritten: should the charges end up
    // above the driver's energy, the excess is taken back from them (chargeResidual).
    this.charges.flushBefore(Math.min(done, held));
    const k = Math.floor(done / this.ctx.intervalNs);
    if (k > this.passedBefore) {
      this.passedBefore = k;
      this.flushPassed(k);
    }
  }

  /** The drivers' CPU energy, period by period, as their virtualized counters show it. */
  private readings(p: CpuPeriods): void {
    if (this.drivers.length === 0) return;
    const { vmCount } = this.ctx.machine;
    const W = this.windowNs;
    for (let i = 0; i < p.length; i++) {
      const t0 = p.t0[i]!;
      const t1 = p.t1[i]!;
      const vm = p.vm[i]!;
      const cpu = p.cpu[i]!;
      this.clocks.see(cpu, t1);
      if (t1 > this.now) this.now = t1;
      if (t1 > this.cpuEnd) this.cpuEnd = t1;
      if (t0 < this.minT0) this.minT0 = t0;
      const idle = p.idleJ[i]!;
      const own = this.driverOf[vm] ?? null;
      for (const drv of this.drivers) {
        let e = this.equal ? idle / vmCount : 0;
        if (drv === own) {
          if (!this.equal) {
            e += idle;
            drv.readOwnIdle += idle;
          }
          e += p.activeJ[i]!;
        }
        if (e === 0) continue;
        drv.unaccounted += e;
        drv.readJ += e;
        const k0 = Math.floor(t0 / W);
        if (t1 <= t0 || Math.ceil(t1 / W) - 1 <= k0) {
          const s = drv.win.slots(k0);
          s[0] = s[0]! + e;
        } else {
          spread(t0, t1, W, (k, f) => {
            const s = drv.win.slots(k);
            s[0] = s[0]! + e * f;
          });
        }
      }
    }
    this.advance();
  }

  /** Requests of the drivers' services: they mark windows busy and are charged their cost. */
  private requests(slice: EventSlice<DiskBatch>): void {
    const b = slice.batch;
    const W = this.windowNs;
    const I = this.ctx.intervalNs;
    const disks = Object.values(this.ctx.machine.profile.disks);
    for (let i = slice.from; i < slice.to; i++) {
      const t = b.t[i]!;
      if (t > this.now) this.now = t;
      const c = b.vm[i]!;
      const d = this.graph.diskIndex(b.names, b.disk[i]!);
      const route = this.graph.route(c, d);
      if (route === null) continue;
      const drv = this.driverOf[route.driver]!;
      const bytes = b.bytes[i]!;
      const lat = b.latency[i]!;
      // A request in flight for longer than a second marks only its last second busy.
      const service = Math.min(MAX_IN_FLIGHT_NS, lat === lat ? lat : transferNs(bytes, disks[d]!.nominal_rate_bps));
      if (service > this.maxServiceNs) this.maxServiceNs = service;
      // In flight from its start to its completion; the window after it too (deferred work).
      for (let k = Math.floor((t - service) / W), kEnd = Math.floor(t / W) + 1; k <= kEnd; k++) drv.win.slots(k)[1] = 1;
      // The window is re-estimated when the request after it arrives: by then the driver's work
      // for the window's last request has been read.
      if (drv.heldFrom === Infinity) drv.heldFrom = drv.lastEstimateT = t;
      if (drv.n >= this.settings.window) {
        this.reestimate(drv);
        drv.heldFrom = drv.lastEstimateT;
        drv.lastEstimateT = t;
      }
      // Charge the predicted cost (§3.3.3); the weight g also apportions passed-on energy.
      const p = drv.a + drv.b * bytes;
      const g = drv.requests < this.settings.window ? 1 : p;
      const cost = drv.scale * p;
      if (cost > 0) {
        drv.unaccounted -= cost;
        drv.requestJ += cost;
        const s = this.charges.slots(Math.floor(t / I));
        const slot = (drv.slot * this.nCons + c) * 2 + 1;
        s[slot] = s[slot]! + cost;
        drv.chargedBy[2 * c + 1] = drv.chargedBy[2 * c + 1]! + cost;
      }
      drv.winWeight[c] = drv.winWeight[c]! + g;
      drv.runWeight[c] = drv.runWeight[c]! + g;
      drv.requestsBy[c] = drv.requestsBy[c]! + 1;
      drv.requests++;
      drv.n++;
      drv.bytesInWindow += bytes;
    }
  }

  /**
   * Every `window` requests: a new predicted cost. The window's active energy (readings minus
   * baseline) per request is fitted — constant model: its mean; per-byte model: a + b·bytes by
   * least squares — with older windows weighted down by `forget`. Each request of the next window
   * is charged its predicted cost p = a + b·bytes, scaled by 1 + U / G so that the deviation U
   * still unaccounted (consumed but not charged, or charged too much) is paid back over a window
   * like the last one (G = its predicted total).
   */
  private reestimate(drv: Driver): void {
    const n = drv.n;
    const pending = this.pendingBaseline(drv);
    const active = drv.readJ - drv.baselineJ - pending;
    const windowJ = active - drv.activeAtBoundary;
    drv.activeAtBoundary = active;
    const x = drv.bytesInWindow / n;
    const y = windowJ / n;
    const f = drv.fit;
    const l = this.settings.forget;
    f[0] = l * f[0]! + 1;
    f[1] = l * f[1]! + x;
    f[2] = l * f[2]! + y;
    f[3] = l * f[3]! + x * x;
    f[4] = l * f[4]! + x * y;
    const mx = f[1]! / f[0]!;
    const my = f[2]! / f[0]!;
    let a = Math.max(0, my);
    let b = 0;
    drv.windows++;
    if (this.settings.model === 'per-byte') {
      const vx = f[3]! / f[0]! - mx * mx;
      const determined = drv.windows >= 2 && vx > 1e-12 * Math.max(1, mx * mx);
      b = determined ? (f[4]! / f[0]! - mx * my) / vx : 0;
      a = my - b * mx;
      if (!determined && drv.windows < PER_BYTE_PATIENCE) {
        // Too few windows of different request sizes to tell a from b: charge nothing yet (the
        // energy is carried forward and paid once the fit exists).
        a = 0;
      } else if (b < 0) {
        b = 0;
        a = Math.max(0, my);
      } else if (a < 0) {
        a = 0;
        b = mx > 0 ? Math.max(0, my) / mx : 0;
      }
    }
    drv.a = a;
    drv.b = b;
    const G = n * a + b * drv.bytesInWindow;
    drv.scale = G > 0 ? Math.max(0, 1 + (drv.unaccounted - pending) / G) : 0;
    drv.lastWeight.set(drv.winWeight);
    drv.winWeight.fill(0);
    drv.n = 0;
    drv.bytesInWindow = 0;
  }

  /**
   * The baseline of the time the readings already cover but no closed window has charged yet:
   * those readings are not active energy, so the per-request costs leave them alone.
   */
  private pendingBaseline(drv: Driver): number {
    const upTo = this.watermark;
    return drv.windowFrom === drv.windowFrom && upTo > drv.windowFrom ? energyOf(drv.baselineW, upTo - drv.windowFrom) : 0;
  }

  /** A baseline window is complete: update the estimate and charge the baseline up to its end. */
  private closeWindow(drv: Driver, k: number, s: Float64Array): void {
    const W = this.windowNs;
    const to = Math.min((k + 1) * W, this.endNs);
    if (drv.windowFrom !== drv.windowFrom) drv.windowFrom = Math.max(k * W, Math.min(this.minT0, to));
    const from = Math.max(k * W, drv.windowFrom);
    if (to <= drv.windowFrom) return;
    // Windows nobody touched since the last one were quiet and the driver read nothing in them;
    // quiet time counts only where the CPU log covers it.
    drv.quietNs += this.covered(drv.windowFrom, from);
    if (s[1] === 0) {
      drv.quietJ += s[0]!;
      drv.quietNs += this.covered(from, to);
    }
    if (drv.fixedWatts === null && drv.quietNs > 0) drv.baselineW = perSecond(drv.quietJ, drv.quietNs);
    // Never more baseline than the driver consumed in the window (the estimate is an average).
    this.chargeBaseline(drv, drv.windowFrom, to, s[0]!);
    drv.windowFrom = to;
  }

  /** How much of [from, to) the CPU log covers. */
  private covered(from: number, to: number): number {
    return Math.max(0, Math.min(to, this.cpuEnd) - Math.max(from, this.minT0));
  }

  private chargeBaseline(drv: Driver, from: number, to: number, cap = Infinity): void {
    if (to <= from || drv.baselineW === 0) return;
    const j = Math.min(energyOf(drv.baselineW, to - from), cap);
    if (j <= 0) return;
    drv.unaccounted -= j;
    drv.baselineJ += j;
    const each = j / drv.clients.length;
    spread(from, to, this.ctx.intervalNs, (k, f) => {
      const s = this.charges.slots(k);
      for (const c of drv.clients) {
        const slot = (drv.slot * this.nCons + c) * 2;
        s[slot] = s[slot]! + each * f;
      }
    });
    for (const c of drv.clients) drv.chargedBy[2 * c] = drv.chargedBy[2 * c]! + each;
  }

  /** Energy written by an earlier stage: the driver VMs' host-level rows are taken over. */
  energy(row: EnergyRow): boolean {
    if (row.container !== null || !this.captures.has(row.consumer)) return false;
    this.capture(row);
    return true;
  }

  private capture(row: EnergyRow): void {
    const drv = this.driverOf[this.ctx.machine.consumerIndex.get(row.consumer)!];
    if (!drv) throw new Error(`driver-charge captured a row of '${row.consumer}', which drives no service`);
    if (this.finished) throw new Error(`driver-charge captured a row of '${row.consumer}' after it finished: a stage after it charged a driver`);
    if (row.via === null && row.device === CPU_DEVICE) {
      drv.capturedOwn += row.joules;
      if (row.kind === 'idle') drv.capturedIdle += row.joules;
      return;
    }
    drv.foreignJ += row.joules;
    const weights = row.kind === 'idle' ? null : this.mix(drv);
    const total = weights ? drv.clients.reduce((a, c) => a + weights[c]!, 0) : 0;
    const k = Math.floor(row.t0 / this.ctx.intervalNs);
    const via = row.via ?? drv.name;
    for (const c of drv.clients) {
      const share = weights && total > 0 ? weights[c]! / total : 1 / drv.clients.length;
      this.pass(k, c, via, row.device, row.kind, row.joules * share);
    }
  }

  /**
   * The driver CPU energy a request of `client` on disk number `disk` of `bytes` is predicted to
   * cost now (J, the current cost model without the payback of deviations); 0 without a driver.
   * The disk manager (disk-budgets) counts it against the client's limit.
   */
  predictedCost(client: number, disk: number, bytes: number): Joules {
    const r = this.graph.route(client, disk);
    const drv = r === null ? null : this.driverOf[r.driver];
    return joules(drv ? Math.max(0, drv.a + drv.b * bytes) : 0);
  }

  /** The clients' request weights to apportion active energy by: the last window's and this one's. */
  private mix(drv: Driver): Float64Array {
    const m = this.mixBuf;
    for (let c = 0; c < m.length; c++) m[c] = drv.lastWeight[c]! + drv.winWeight[c]!;
    return m;
  }

  private pass(k: number, c: number, via: string, device: string, kind: EnergyKind, joules: number): void {
    if (joules === 0) return;
    let m = this.passed.get(k);
    if (!m) this.passed.set(k, (m = new Map()));
    const key = `${c}\0${kind}\0${via}\0${device}`;
    m.set(key, (m.get(key) ?? 0) + joules);
  }

  finish(run: RunSpan): void {
    for (const drv of this.drivers) {
      // Close the remaining windows at the end of the run, then the time after the last one.
      this.endNs = run.t1;
      drv.win.flushAll();
      if (drv.windowFrom !== drv.windowFrom) drv.windowFrom = Math.max(run.t0, Math.min(this.minT0, run.t1));
      // Up to the end of the CPU log only, and never more than was read and not yet charged.
      this.chargeBaseline(drv, drv.windowFrom, Math.min(run.t1, this.cpuEnd), Math.max(0, drv.unaccounted));
      drv.windowFrom = run.t1;
      this.chargeHaltShare(drv, run);
    }
    for (const drv of this.drivers) this.chargeResidual(drv, run);
    // Charges to drivers are captured and passed on again; the graph is acyclic, so this ends.
    this.charges.flushAll();
    while (this.passed.size > 0) this.flushPassed(Infinity);
    this.finished = true;
    const { metrics } = this.ctx;
    for (const drv of this.drivers) {
      const vm = { vm: drv.name };
      metrics.write(METRICS.driverBaseline, vm, drv.baselineW);
      metrics.write(METRICS.driverQuiet, vm, nsToS(drv.quietNs));
      metrics.write(METRICS.driverRequests, vm, drv.requests);
      metrics.write(METRICS.driverCpu, vm, drv.capturedOwn);
      metrics.write(METRICS.driverBaselineJ, vm, drv.baselineJ);
      metrics.write(METRICS.driverRequestJ, vm, drv.requestJ);
      metrics.write(METRICS.driverResidual, vm, drv.residualJ);
      if (!this.equal) metrics.write(METRICS.driverHalt, vm, drv.haltJ);
      metrics.write(METRICS.driverPassed, vm, drv.foreignJ);
      if (this.settings.model === 'per-byte') {
        metrics.write(METRICS.driverFitA, vm, drv.a);
        metrics.write(METRICS.driverFitB, vm, drv.b);
      }
    }
  }

  /**
   * by-time: cpu-split charges the driver its share of the halt periods' idle energy only at the
   * end of the run (it depends on the CPU time of the whole run). That share — what the driver was
   * charged as idle beyond its own periods' idle — goes to the clients in equal parts as CPU idle,
   * spread over the run like the halt periods it comes from.
   */
  private chargeHaltShare(drv: Driver, run: RunSpan): void {
    if (this.equal) return;
    const j = drv.capturedIdle - drv.readOwnIdle;
    if (!(j > 0)) return;
    drv.haltJ = j;
    const each = j / drv.clients.length;
    spread(run.t0, run.t1, this.ctx.intervalNs, (k, f) => {
      const s = this.charges.slots(k);
      for (const c of drv.clients) {
        const slot = (drv.slot * this.nCons + c) * 2;
        s[slot] = s[slot]! + each * f;
      }
    });
    for (const c of drv.clients) drv.chargedBy[2 * c] = drv.chargedBy[2 * c]! + each;
  }

  /**
   * Whatever the driver consumed and the charges missed, so that nothing is lost: to the clients
   * by their requests' weights (equally, as idle, when there were none). Should the charges have
   * exceeded the consumption, the excess is taken back in proportion to what each client was
   * charged, from the per-request charges first, so no client's total goes below zero.
   */
  private chargeResidual(drv: Driver, run: RunSpan): void {
    const r = drv.capturedOwn - drv.baselineJ - drv.requestJ - drv.haltJ;
    drv.residualJ = r;
    if (r === 0) return;
    const s = this.charges.slots(Math.floor(Math.max(run.t0, run.t1 - 1) / this.ctx.intervalNs));
    const base = drv.slot * this.nCons * 2;
    if (r < 0) {
      // Taken back in proportion to what each client was charged of each kind, per-request
      // charges first (the totals so depend on nothing but the charges). From the same cells not
      // yet written — the charges of the last two cost windows are held back for this — so that
      // no row goes negative; only what those cannot cover is a negative correction in the last
      // interval. (What is left from float rounding alone, under 1e-12 of the driver's energy,
      // is let go.)
      let left = -r;
      for (const kind of [1, 0]) {
        const charged = drv.clients.reduce((a, c) => a + drv.chargedBy[2 * c + kind]!, 0);
        const take = Math.min(left, charged);
        if (take <= 0) continue;
        left -= take;
        for (const c of drv.clients) {
          const slot = base + 2 * c + kind;
          let owe = (take * drv.chargedBy[2 * c + kind]!) / charged;
          let open = 0;
          this.charges.forEachOpen((_, sl) => (open += Math.max(0, sl[slot]!)));
          if (open > 0) {
            const f = Math.min(1, owe / open);
            this.charges.forEachOpen((_, sl) => {
              if (sl[slot]! > 0) sl[slot] = sl[slot]! * (1 - f);
            });
            owe -= f * open;
          }
          if (owe > 1e-12 * drv.capturedOwn) s[slot] = s[slot]! - owe;
        }
      }
      return;
    }
    const total = drv.clients.reduce((a, c) => a + drv.runWeight[c]!, 0);
    const kind = total > 0 ? 1 : 0;
    for (const c of drv.clients) {
      const share = total > 0 ? drv.runWeight[c]! / total : 1 / drv.clients.length;
      s[base + 2 * c + kind] = s[base + 2 * c + kind]! + r * share;
    }
  }

  /** Writes a charge; a charge to a client that is itself a driver is taken over again (chains). */
  private out(row: EnergyRow): void {
    if (this.captures.has(row.consumer)) this.capture(row);
    else this.ctx.out.energy(row);
  }

  private bounds(k: number): [Ns, Ns] {
    const I = this.ctx.intervalNs;
    return [ns(Math.max(k * I, this.ctx.span.t0)), ns(Math.min((k + 1) * I, this.ctx.span.t1))];
  }

  private emitCharges(k: number, s: Float64Array): void {
    const { consumers } = this.ctx.machine;
    const [t0, t1] = this.bounds(k);
    for (const drv of this.drivers) {
      for (const c of drv.clients) {
        const slot = (drv.slot * this.nCons + c) * 2;
        const idle = s[slot]!;
        const active = s[slot + 1]!;
        if (idle !== 0) this.out({ t0, t1, consumer: consumers[c]!, container: null, via: drv.name, device: CPU_DEVICE, kind: 'idle', joules: joules(idle) });
        if (active !== 0) this.out({ t0, t1, consumer: consumers[c]!, container: null, via: drv.name, device: CPU_DEVICE, kind: 'active', joules: joules(active) });
      }
    }
  }

  private flushPassed(beforeK: number): void {
    const { consumers } = this.ctx.machine;
    const ks = [...this.passed.keys()].filter((k) => k < beforeK).sort((a, b) => a - b);
    for (const k of ks) {
      const m = this.passed.get(k)!;
      this.passed.delete(k);
      const [t0, t1] = this.bounds(k);
      for (const [key, j] of m) {
        const p1 = key.indexOf('\0');
        const p2 = key.indexOf('\0', p1 + 1);
        const p3 = key.indexOf('\0', p2 + 1);
        const consumer = consumers[Number(key.slice(0, p1))]!;
        const kind = key.slice(p1 + 1, p2) as EnergyKind;
        const via = key.slice(p2 + 1, p3);
        const device = key.slice(p3 + 1);
        this.out({ t0, t1, consumer, container: null, via, device, kind, joules: joules(j) });
      }
    }
  }

}
