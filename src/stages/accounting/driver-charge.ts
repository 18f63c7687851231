/**
 * Stage 3, driver-charge: recursive energy accounting (§3.3.3, Figure 5). A driver VM's energy is
 * charged back to the clients of its services, keeping the physical device it was spent on, so the
 * result is the matrix consumer × via × device × kind.
 *
 * What is moved. Every host-level row earlier stages write for a driver VM (cpu-split's idle and
 * access CPU energy; disk-energy's rows for requests the driver issued to a lower service) and
 * every charge of a lower driver to it is taken over and charged on. Nothing is created, so Σ
 * energy per device is unchanged (the replay checks it).
 *
 * The driver's own CPU energy:
 * - Its idle share (what cpu-split charged it as idle: with `equal`, its part of every period's
 *   idle energy) is CPU idle of the machine the driver happens to hold a share of: it goes to all
 *   clients of its services in equal parts, as CPU idle, whether or not they issued requests.
 * - Its baseline B (driver-baseline.ts: estimated over the whole trace in a first pass, or
 *   given) is the access energy it spends anyway: B × time, in equal parts to the clients, as CPU
 *   idle, over the whole run the CPU log covers.
 * - The rest of its access energy is charged per request, as CPU active. `unaccounted` holds
 *   the access energy read minus the charges so far (the paper's `unaccounted_cpu_energy`). Every
 *   `window` (50) requests the predicted cost is re-estimated from the window's active energy
 *   (access − baseline; driver-cost.ts, `fitCost`), and the next window's costs are scaled to pay
 *   back the deviation (`paybackScale`). At the end, what the charges missed (mostly the last
 *   window's energy) is charged by the clients' request weights; an excess is taken back in
 *   proportion to what each was charged, from the charges not yet written where they suffice. So
 *   over the run the charges equal the driver's energy exactly.
 *
 * Energy of other devices, and charges of lower drivers, taken over from the driver (a chain:
 * client → storage driver → network driver → NIC) is passed on as it arrives, keeping its `via`:
 * idle energy in equal parts; active energy of a disk in proportion to what each upper request
 * cost on that disk under its model (bytes / rate, from disk-energy's `disk-requests`), active
 * energy of a lower driver's CPU in proportion to what each upper request costs under that
 * driver's cost model (`passOnShares`); over the driver's last complete cost window and the
 * current one. Leg by leg: the energy a driver's own request below (its leg) causes is split when
 * its next client request on that disk is read (the lower driver logs the leg before the upper
 * driver logs the client's request), one leg per request, oldest first; the interval's row is
 * passed on in those proportions when it comes (it waits if it comes first): so the split does not
 * depend on `interval_ms`. A charge to a client that is itself a driver is taken over by that driver again, so
 * chains of any depth resolve in dependency order by themselves.
 */
import { IntervalAccumulator, spread } from '../../core/intervals.js';
import { CPU_DEVICE } from '../../core/machine.js';
import { METRICS } from '../../core/metrics.js';
import { ServiceGraph } from '../../core/services.js';
import type { DriverSettings } from '../../core/settings.js';
import type { RunSpan } from '../../core/span.js';
import type { CpuPeriods, DiskRequests, DriverBaseline, DriverBaselines, DriverCostModel, EnergyKind, EnergyRow, Stage, StageContext } from '../../core/stage.js';
import { CpuClocks } from '../../core/cpu-clocks.js';
import { energyOf, joules, ns, nsToS, type Joules, type Ns } from '../../core/units.js';
import { fitCost, passOnShares, paybackScale } from './driver-cost.js';

/**
 * Slots of the charges accumulator per driver and client: the baseline's and the residual's idle
 * charges, the per-request active charges, and the idle share passed on (apart, so a take-back of
 * overpaid charges never touches it; written with IDLE as one row).
 */
const IDLE = 0;
const ACTIVE = 1;
const SHARE = 2;
const SLOTS = 3;

/** Codes of `accounting.driver.<vm>.baseline_source` (docs/metrics.md). */
export const BASELINE_SOURCE_CODE: Readonly<Record<DriverBaseline['source'], number>> = { none: 0, given: 1, quiet: 2, fit: 3 };

/** Request weights of one device a driver's clients used, for passing its energy on. */
interface PassWeights {
  /** What the clients' requests cost on the device: this cost window and the last. */
  readonly win: Float64Array;
  readonly last: Float64Array;
  /** Their numbers of requests, likewise. */
  readonly winN: Float64Array;
  readonly lastN: Float64Array;
}

interface Driver {
  readonly d: number;
  readonly name: string;
  /** Position among the stage's drivers (its block of charge slots). */
  readonly slot: number;
  readonly clients: readonly number[];
  readonly baseline: DriverBaseline;
  /** Access energy read and not yet charged (J), and all read so far. */
  unaccounted: number;
  readJ: number;
  /**
   * The baseline is due up to here; of what is due, `baselineOwed` (J) is not charged yet: that of
   * [owedFrom, baselineTo), the oldest time paid first.
   */
  baselineTo: number;
  baselineOwed: number;
  owedFrom: number;
  /** Active energy (access − baseline) at the last cost re-estimate. */
  activeAtBoundary: number;
  n: number;
  bytesInWindow: number;
  /** Predicted cost a + b·bytes (constant model: b = 0) and its scale in the current window. */
  a: number;
  b: number;
  scale: number;
  readonly fit: Float64Array;
  /** Request weights for the end-of-run residual: predicted costs (1 each before the first estimate). */
  readonly runWeight: Float64Array;
  /** Pass-on weights by device key (`disk:<d>` or `cpu:<driver>`). */
  readonly pass: Map<string, PassWeights>;
  /** Own-CPU charges so far per client: [2c] idle (baseline), [2c + 1] active. */
  readonly chargedBy: Float64Array;
  /**
   * Per-request charges per client in the current cost window and the last: the charges held back
   * (not yet written, whatever the reporting interval), from which the end can take back.
   */
  readonly heldWin: Float64Array;
  readonly heldLast: Float64Array;
  requests: number;
  windows: number;
  /** Time of the cost estimate before the last (of the first request before that). */
  heldFrom: number;
  lastEstimateT: number;
  capturedActive: number;
  idleShareJ: number;
  baselineJ: number;
  requestJ: number;
  residualJ: number;
  foreignJ: number;
  /**
   * Active energy this driver will be charged for requests it sent below (its legs: it is a
   * client of a lower service), not split among its clients yet: split when its next client
   * request is read, with weights that include it (a lower driver logs the leg first).
   */
  pending: Leg[];
  /** Rows of such energy that arrived before their legs were split: passed on once they are. */
  deferred: EnergyRow[];
}

/** Energy one leg caused (or its part passed down a chain): amounts by interval and device key. */
interface Leg {
  /** When the leg was logged (a part passed down a chain keeps its leg's time). */
  readonly t: number;
  /** The disk it ended on (profile order): a client request on that disk is the one it served. */
  readonly d: number;
  readonly parts: Part[];
}

/** Energy of device key `key` for interval k. */
interface Part {
  readonly k: number;
  readonly key: string;
  readonly j: number;
}

/** Legs that wait for a client request of their driver before they are split with the weights then. */
const MAX_PENDING = 4096;
/** How long a leg waits for its driver's next client request (a driver's own I/O has none). */
const LEG_WAIT_NS = 1e9;

export class DriverCharge implements Stage, DriverCostModel {
  /** The driver VMs, whose host-level rows this stage takes over. */
  readonly captures: ReadonlySet<string>;
  readonly receive = { 'cpu-periods': (p: CpuPeriods) => this.readings(p), 'disk-requests': (r: DiskRequests) => this.requests(r) };
  readonly provides = { 'driver-cost': this };

  private readonly settings: DriverSettings;
  private readonly graph: ServiceGraph;
  private readonly drivers: Driver[];
  /** Driver per consumer index (null for VMs that drive nothing). */
  private readonly driverOf: (Driver | null)[];
  /** Per service index: the drivers below it, down to the disk (a chain). */
  private readonly lowerDrivers: number[][];
  private readonly nCons: number;
  /** Charges of the drivers' own CPU energy: slot (driver, client, kind). */
  private readonly charges: IntervalAccumulator;
  /** Passed-on energy per interval: key `${client}\0${kind}\0${via}\0${device}`. */
  private readonly passed = new Map<number, Map<string, number>>();
  /**
   * A chain's active energy split among a relaying driver's clients leg by leg: interval → key
   * `${driver slot}\0${device key}` → amount per client. The interval's row, when it comes, is
   * passed on in these proportions: so the split does not depend on the reporting interval.
   */
  private readonly foreseen = new Map<number, Map<string, Float64Array>>();
  /** Active watts above idle of each disk, in profile order. */
  private readonly diskActiveWatts: number[];
  /** Profile index of each disk id (the `disk:<index>` keys of the pass-on weights). */
  private readonly diskIndex: Map<string, number>;
  /** After the run's end: rows are no longer deferred. */
  private finishing = false;
  /** No relaying driver has a leg pending from before this (Infinity: none pending). */
  private oldestLegT = Infinity;
  private readonly clocks = new CpuClocks();
  private minT0 = Infinity;
  private cpuEnd = -Infinity;
  /** Every CPU has reported up to here. */
  private watermark = -Infinity;
  private passedBefore = -Infinity;
  private finished = false;

  constructor(
    private readonly ctx: StageContext<DriverSettings>,
    baselines: DriverBaselines,
  ) {
    const m = ctx.machine;
    this.settings = ctx.settings;
    this.graph = new ServiceGraph(m);
    this.nCons = m.consumers.length;
    this.driverOf = m.consumers.map(() => null);
    const { services } = m.profile;
    this.lowerDrivers = services.map((s) => {
      const out: number[] = [];
      for (let dev = services.find((x) => x.id === s.device); dev; dev = services.find((x) => x.id === dev!.device)) {
        out.push(m.consumerIndex.get(dev.driver)!);
        if (out.length > services.length) break;
      }
      return out;
    });
    this.drivers = this.graph.drivers.map((d, slot) => {
      const name = m.consumers[d]!;
      const drv: Driver = {
        d,
        name,
        slot,
        clients: this.graph.clientsOf(d),
        baseline: baselines.baseline(name),
        unaccounted: 0,
        readJ: 0,
        baselineTo: NaN,
        baselineOwed: 0,
        owedFrom: NaN,
        activeAtBoundary: 0,
        n: 0,
        bytesInWindow: 0,
        a: 0,
        b: 0,
        scale: 0,
        fit: new Float64Array(5),
        runWeight: new Float64Array(this.nCons),
        pass: new Map(),
        chargedBy: new Float64Array(2 * this.nCons),
        heldWin: new Float64Array(this.nCons),
        heldLast: new Float64Array(this.nCons),
        requests: 0,
        windows: 0,
        heldFrom: Infinity,
        lastEstimateT: Infinity,
        capturedActive: 0,
        idleShareJ: 0,
        baselineJ: 0,
        requestJ: 0,
        residualJ: 0,
        foreignJ: 0,
        pending: [],
        deferred: [],
      };
      this.driverOf[d] = drv;
      return drv;
    });
    this.captures = new Set(this.drivers.map((d) => d.name));
    this.diskActiveWatts = Object.values(m.profile.disks).map((d) => d.active_watts - d.idle_watts);
    this.diskIndex = new Map(Object.keys(m.profile.disks).map((id, i) => [id, i]));
    this.charges = new IntervalAccumulator(ctx.intervalNs, this.drivers.length * this.nCons * SLOTS, (k, s) => this.emitCharges(k, s));
  }

  /** The drivers' own access energy, period by period, as their virtualized counters show it. */
  private readings(p: CpuPeriods): void {
    if (this.drivers.length === 0) return;
    for (let i = 0; i < p.length; i++) {
      const t1 = p.t1[i]!;
      this.clocks.see(p.cpu[i]!, t1);
      if (t1 > this.cpuEnd) this.cpuEnd = t1;
      if (p.t0[i]! < this.minT0) this.minT0 = p.t0[i]!;
      this.resolveStale(t1);
      const drv = this.driverOf[p.vm[i]!];
      if (!drv) continue;
      const e = p.activeJ[i]!;
      drv.unaccounted += e;
      drv.readJ += e;
    }
    this.advance();
  }

  /** Requests of the drivers' services: each is charged its predicted cost. */
  private requests(r: DiskRequests): void {
    if (this.drivers.length === 0) return;
    const I = this.ctx.intervalNs;
    for (let i = 0; i < r.length; i++) {
      const t = r.t[i]!;
      const c = r.vm[i]!;
      const route = this.graph.route(c, r.disk[i]!);
      if (route === null) continue;
      const drv = this.driverOf[route.driver]!;
      const bytes = r.bytes[i]!;
      // The window is re-estimated when the request after it arrives: by then the driver's work
      // for the window's last request has been read.
      if (drv.heldFrom === Infinity) drv.heldFrom = drv.lastEstimateT = t;
      if (drv.n >= this.settings.window) {
        this.reestimate(drv);
        drv.heldFrom = drv.lastEstimateT;
        drv.lastEstimateT = t;
      }
      const p = drv.a + drv.b * bytes;
      const cost = drv.scale * p;
      if (cost > 0) {
        drv.unaccounted -= cost;
        drv.requestJ += cost;
        const s = this.charges.slots(Math.floor(t / I));
        const slot = this.slot(drv, c, ACTIVE);
        s[slot] = s[slot]! + cost;
        drv.chargedBy[2 * c + 1] = drv.chargedBy[2 * c + 1]! + cost;
        drv.heldWin[c] = drv.heldWin[c]! + cost;
      }
      drv.runWeight[c] = drv.runWeight[c]! + (drv.windows === 0 ? 1 : p);
      // What the request costs on each device below the driver, to pass that device's energy on.
      this.weigh(drv, `disk:${r.disk[i]}`, c, r.activeNs[i]!);
      for (const l of this.lowerDrivers[route.service]!) {
        const lower = this.driverOf[l];
        if (lower) this.weigh(drv, `cpu:${lower.name}`, c, lower.windows === 0 ? 0 : Math.max(0, lower.a + lower.b * bytes));
      }
      // A client request of drv on this disk: the oldest leg drv sent below to it (logged first by
      // the lower driver, so usually this request's own) is split now, with weights that include it.
      // Its share for a client that relays too goes with that client's own leg (this request).
      let mine: Part[] = [];
      if (drv.pending.length > 0) {
        const down = this.resolveLeg(drv, r.disk[i]!);
        if (down) {
          mine = down.get(c) ?? [];
          down.delete(c);
          this.giveDown(down, t, r.disk[i]!);
        }
      }
      // A request of a driver that relays its clients' requests (c's leg): the disk energy and
      // drv's cost it causes wait in c's pending until c's client request comes.
      const relay = this.driverOf[c];
      if (relay) {
        const k = Math.floor(t / I);
        const e = route.physical ? energyOf(this.diskActiveWatts[r.disk[i]!]!, r.activeNs[i]!) : 0;
        const parts: Part[] = [...mine];
        if (e > 0) parts.push({ k, key: `disk:${r.disk[i]}`, j: e });
        if (cost > 0) parts.push({ k, key: `cpu:${drv.name}`, j: cost });
        if (parts.length > 0) {
          relay.pending.push({ t, d: r.disk[i]!, parts });
          if (t < this.oldestLegT) this.oldestLegT = t;
          if (relay.pending.length > MAX_PENDING) this.resolve(relay);
        }
      }
      this.resolveStale(t);
      drv.requests++;
      drv.n++;
      drv.bytesInWindow += bytes;
    }
  }

  /** The shares of `drv`'s clients in active energy of device `key`, by their requests' weights now. */
  private sharesNow(drv: Driver, key: string): number[] {
    const pw = drv.pass.get(key);
    const w = pw ? this.mix(pw.win, pw.last) : new Float64Array(this.nCons);
    const n = pw ? this.mix(pw.winN, pw.lastN) : new Float64Array(this.nCons);
    return passOnShares('active', drv.clients, w, n);
  }

  /**
   * Splits `drv`'s oldest pending leg on disk `d` (if any) and passes on the rows it held up.
   * Returns the parts that go on down a chain, by relaying client.
   */
  private resolveLeg(drv: Driver, d: number): Map<number, Part[]> | null {
    const at = drv.pending.findIndex((l) => l.d === d);
    if (at < 0) return null;
    const [leg] = drv.pending.splice(at, 1);
    const down = this.split(drv, leg!);
    this.releaseDeferred(drv);
    return down;
  }

  /** Splits all of `drv`'s pending legs by the weights now (stale legs, the end). */
  private resolve(drv: Driver): void {
    const legs = drv.pending;
    drv.pending = [];
    for (const leg of legs) this.giveDown(this.split(drv, leg), leg.t, leg.d);
    this.releaseDeferred(drv);
  }

  /**
   * Parts of a leg for relaying clients that no request of theirs is being read for: added to
   * their newest pending leg on that disk (so each client request still resolves one), else a leg.
   */
  private giveDown(down: Map<number, Part[]>, t: number, d: number): void {
    for (const [c, parts] of down) {
      const legs = this.driverOf[c]!.pending;
      let i = legs.length - 1;
      while (i >= 0 && legs[i]!.d !== d) i--;
      if (i >= 0) legs[i]!.parts.push(...parts);
      else {
        legs.push({ t, d, parts });
        if (t < this.oldestLegT) this.oldestLegT = t;
      }
    }
  }

  /**
   * A leg's energy among `drv`'s clients by their requests' weights now (foreseen, for the rows
   * that carry it); returns the parts of clients that relay too, which go on as their legs.
   */
  private split(drv: Driver, leg: Leg): Map<number, Part[]> {
    const down = new Map<number, Part[]>();
    for (const p of leg.parts) {
      const sh = this.sharesNow(drv, p.key);
      let m = this.foreseen.get(p.k);
      if (!m) this.foreseen.set(p.k, (m = new Map()));
      const id = `${drv.slot}\0${p.key}`;
      let f = m.get(id);
      if (!f) m.set(id, (f = new Float64Array(this.nCons)));
      for (let i = 0; i < drv.clients.length; i++) {
        const c = drv.clients[i]!;
        const a = p.j * sh[i]!;
        if (a === 0) continue;
        f[c] = f[c]! + a;
        if (this.driverOf[c]) {
          let l = down.get(c);
          if (!l) down.set(c, (l = []));
          l.push({ k: p.k, key: p.key, j: a });
        }
      }
    }
    return down;
  }

  /** Passes on the rows `drv` held that no pending leg holds up any more. */
  private releaseDeferred(drv: Driver): void {
    if (drv.deferred.length === 0) return;
    const rows = drv.deferred;
    drv.deferred = [];
    for (const row of rows) {
      if (!this.finishing && this.heldUp(drv, row)) drv.deferred.push(row);
      else this.passOn(drv, row);
    }
  }

  /** A pending leg of `drv` has energy of the row's device from its interval or before. */
  private heldUp(drv: Driver, row: EnergyRow): boolean {
    const k = Math.floor(row.t0 / this.ctx.intervalNs);
    const key = this.keyOf(drv, row);
    return drv.pending.some((l) => l.parts.some((p) => p.key === key && p.k <= k));
  }

  /** The pass-on weights' key of a row charged to `drv`: `cpu:<via>` or `disk:<index>`. */
  private keyOf(drv: Driver, row: EnergyRow): string {
    return row.device === CPU_DEVICE ? `cpu:${row.via ?? drv.name}` : `disk:${this.diskIndex.get(row.device) ?? -1}`;
  }

  private weigh(drv: Driver, key: string, c: number, w: number): void {
    let pw = drv.pass.get(key);
    if (!pw) {
      const z = () => new Float64Array(this.nCons);
      drv.pass.set(key, (pw = { win: z(), last: z(), winN: z(), lastN: z() }));
    }
    pw.win[c] = pw.win[c]! + w;
    pw.winN[c] = pw.winN[c]! + 1;
  }

  /**
   * Charges are complete up to where every CPU has reported: the baseline up to there, and the
   * per-request charges but those of the last two cost windows (held back, so that an excess can
   * be taken back from them at the end).
   */
  private advance(): void {
    const w = this.clocks.min();
    if (w === -Infinity || w <= this.watermark) return;
    this.watermark = w;
    let held = w;
    for (const drv of this.drivers) {
      this.chargeBaseline(drv, Math.min(w, this.cpuEnd));
      if (drv.heldFrom < held) held = drv.heldFrom;
      // Baseline still owed is paid to its own time later: those intervals stay open for it.
      if (drv.baselineOwed > 0 && drv.owedFrom < held) held = drv.owedFrom;
    }
    this.charges.flushBefore(Math.min(w, held));
    const k = Math.min(Math.floor(w / this.ctx.intervalNs), this.oldestOpenRelayK());
    if (k > this.passedBefore) {
      this.passedBefore = k;
      this.flushPassed(k);
    }
  }

  /** Every `window` requests: a new predicted cost, and the scale that pays back the deviation. */
  private reestimate(drv: Driver): void {
    const n = drv.n;
    // The baseline of time the readings reach but not yet charged is not active energy either: up
    // to the latest period read on any CPU, not only to where every CPU has reported (a CPU
    // that stays in one long period held that back, and the requests were charged the baseline).
    const pending = drv.baselineOwed + (drv.baselineTo === drv.baselineTo && this.cpuEnd > drv.baselineTo ? energyOf(drv.baseline.watts, this.cpuEnd - drv.baselineTo) : 0);
    const active = drv.readJ - drv.baselineJ - pending;
    const windowJ = active - drv.activeAtBoundary;
    drv.activeAtBoundary = active;
    drv.windows++;
    const { a, b } = fitCost(drv.fit, drv.bytesInWindow / n, windowJ / n, this.settings.forget, this.settings.model, drv.windows);
    drv.a = a;
    drv.b = b;
    drv.scale = paybackScale(drv.unaccounted - pending, n * a + b * drv.bytesInWindow);
    drv.heldLast.set(drv.heldWin);
    drv.heldWin.fill(0);
    for (const pw of drv.pass.values()) {
      pw.last.set(pw.win);
      pw.win.fill(0);
      pw.lastN.set(pw.winN);
      pw.winN.fill(0);
    }
    drv.n = 0;
    drv.bytesInWindow = 0;
  }

  /**
   * The baseline up to `to`: B × time, equally to the clients, as CPU idle — never more than the
   * driver has consumed and not yet been charged for: what that does not cover stays owed and is
   * charged once the driver has read more, and at the end of the run whatever is still owed, taken
   * from the per-request charges (a baseline given above what the driver consumed is so charged
   * only up to that). What is paid is the oldest owed time, [owedFrom, …), at B: so each
   * interval gets B × its time whenever it is paid, and how the traces were cut into slices (where
   * this is called) changes no interval's figure — before, a payment that caught up was spread
   * over the slice that paid it.
   */
  private chargeBaseline(drv: Driver, to: number): void {
    if (drv.baselineTo !== drv.baselineTo) drv.baselineTo = drv.owedFrom = this.minT0;
    const from = drv.baselineTo;
    if (!(to > from)) return;
    drv.baselineTo = to;
    drv.baselineOwed += energyOf(drv.baseline.watts, to - from);
    this.payOwed(drv, Math.min(drv.baselineOwed, Math.max(0, drv.unaccounted)));
  }

  /**
   * The most chargeResidual can take back from `drv`'s per-request charges without a negative row:
   * it takes from each client in proportion to what the client was charged, from the client's
   * charges not yet written, which hold at least those of the last two cost windows (counted so,
   * not from the open intervals, so the figure does not depend on the reporting interval).
   */
  private takeBackRoom(drv: Driver): number {
    const charged = drv.clients.reduce((a, c) => a + drv.chargedBy[2 * c + ACTIVE]!, 0);
    if (!(charged > 0)) return 0;
    let room = Infinity;
    for (const c of drv.clients) {
      const by = drv.chargedBy[2 * c + ACTIVE]!;
      if (by > 0) room = Math.min(room, ((drv.heldWin[c]! + drv.heldLast[c]!) * charged) / by);
    }
    return room === Infinity ? 0 : room;
  }

  /** Pays `j` J of the baseline owed, for the oldest owed time first. */
  private payOwed(drv: Driver, j: number): void {
    if (!(j > 0) || !(drv.baselineOwed > 0)) return;
    const to = drv.baselineTo;
    const paidFrom = drv.owedFrom;
    const paidTo = j >= drv.baselineOwed ? to : paidFrom + (j / drv.baselineOwed) * (to - paidFrom);
    drv.owedFrom = paidTo;
    drv.baselineOwed -= j;
    drv.unaccounted -= j;
    drv.baselineJ += j;
    const each = j / drv.clients.length;
    spread(paidFrom, paidTo, this.ctx.intervalNs, (k, f) => {
      const s = this.charges.slots(k);
      for (const c of drv.clients) {
        const slot = this.slot(drv, c, IDLE);
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
    const k = Math.floor(row.t0 / this.ctx.intervalNs);
    if (row.via === null && row.device === CPU_DEVICE) {
      if (row.kind === 'active') {
        drv.capturedActive += row.joules;
        return;
      }
      // Its idle share: idle, equally to all clients.
      // Kept beside the baseline's charges, so an interval's CPU idle through the driver is one
      // row, but apart from them: what the charges overpaid is taken back from charges alone.
      drv.idleShareJ += row.joules;
      const s = this.charges.slots(k);
      const each = row.joules / drv.clients.length;
      for (const c of drv.clients) {
        const slot = this.slot(drv, c, SHARE);
        s[slot] = s[slot]! + each;
      }
      return;
    }
    drv.foreignJ += row.joules;
    // Active energy of legs not split yet waits for them (their client requests come later).
    if (row.kind === 'active' && !this.finishing && this.heldUp(drv, row)) drv.deferred.push(row);
    else this.passOn(drv, row);
  }

  /**
   * Passes energy charged to `drv` by others on to its clients, keeping its `via`: idle in equal
   * parts; active as its legs were split (foreseen); energy beyond what they foresaw (the end's
   * settlement) by the weights now; less than that (a take-back) in their proportions.
   */
  private passOn(drv: Driver, row: EnergyRow): void {
    const k = Math.floor(row.t0 / this.ctx.intervalNs);
    const via = row.via ?? drv.name;
    const key = this.keyOf(drv, row);
    const parts = row.kind === 'idle' ? passOnShares('idle', drv.clients, [], []).map((x) => row.joules * x) : this.activeParts(k, drv, key, row.joules);
    drv.clients.forEach((c, i) => this.pass(k, c, via, row.device, row.kind, parts[i]!));
  }

  private activeParts(k: number, drv: Driver, key: string, j: number): number[] {
    const m = this.foreseen.get(k);
    const id = `${drv.slot}\0${key}`;
    const f = m?.get(id);
    if (m && f) {
      m.delete(id);
      if (m.size === 0) this.foreseen.delete(k);
    }
    const total = f ? drv.clients.reduce((a, c) => a + f[c]!, 0) : 0;
    if (!f || !(total > 0)) return this.sharesNow(drv, key).map((x) => j * x);
    if (j <= total) return drv.clients.map((c) => (j * f[c]!) / total);
    const now = this.sharesNow(drv, key);
    return drv.clients.map((c, i) => f[c]! + (j - total) * now[i]!);
  }

  /**
   * Legs that waited LEG_WAIT_NS up to the event at `now` without a client request of their driver
   * are split by the weights now (also the parts they pass down a chain), so nothing waits longer.
   */
  private resolveStale(now: number): void {
    if (now - LEG_WAIT_NS <= this.oldestLegT) return;
    for (let again = true; again; ) {
      again = false;
      for (const drv of this.drivers) {
        if (drv.pending.some((l) => l.t < now - LEG_WAIT_NS)) {
          this.resolve(drv);
          again = true;
        }
      }
    }
    let oldest = Infinity;
    for (const drv of this.drivers) for (const l of drv.pending) if (l.t < oldest) oldest = l.t;
    this.oldestLegT = oldest;
  }

  /** The oldest interval a relaying driver still has legs or rows open for (passing waits for it). */
  private oldestOpenRelayK(): number {
    let k = Infinity;
    for (const drv of this.drivers) {
      for (const l of drv.pending) for (const p of l.parts) if (p.k < k) k = p.k;
      for (const r of drv.deferred) k = Math.min(k, Math.floor(r.t0 / this.ctx.intervalNs));
    }
    return k;
  }

  private mix(a: Float64Array, b: Float64Array): Float64Array {
    const m = new Float64Array(a.length);
    for (let c = 0; c < m.length; c++) m[c] = a[c]! + b[c]!;
    return m;
  }

  /**
   * The driver CPU energy a request of `client` on disk number `disk` of `bytes` is predicted to
   * cost now (J, the current cost model without the payback of deviations); 0 without a driver.
   * The disk manager (disk-budgets) counts it against the client's limit.
   */
  predictedCost(client: number, disk: number, bytes: number): Joules {
    // Every driver on the request's way: in a chain, the upper driver's cost and the lower one's
    // for the leg the upper driver sends on (same bytes).
    let j = 0;
    let c = client;
    for (let hop = 0; hop <= this.ctx.machine.profile.services.length; hop++) {
      const r = this.graph.route(c, disk);
      if (r === null) break;
      const drv = this.driverOf[r.driver];
      if (drv) j += Math.max(0, drv.a + drv.b * bytes);
      if (r.physical) break;
      c = r.driver;
    }
    return joules(j);
  }

  private pass(k: number, c: number, via: string, device: string, kind: EnergyKind, j: number): void {
    if (j === 0) return;
    let m = this.passed.get(k);
    if (!m) this.passed.set(k, (m = new Map()));
    const key = `${c}\0${kind}\0${via}\0${device}`;
    m.set(key, (m.get(key) ?? 0) + j);
  }

  finish(run: RunSpan): void {
    // The baseline up to the end of the CPU log.
    for (const drv of this.drivers) {
      this.chargeBaseline(drv, Math.min(run.t1, this.cpuEnd));
      // What is still owed is due now, as far as the driver's energy not charged yet and what
      // chargeResidual can take back from the per-request charges not yet written cover it (so no
      // row goes negative). Beyond what the driver consumed it is not charged at all (a baseline
      // given too high); what the take-back cannot cover stays with the requests: a note says so.
      const residual = drv.capturedActive - drv.baselineJ - drv.requestJ;
      const consumed = Math.min(drv.baselineOwed, Math.max(0, drv.capturedActive - drv.baselineJ));
      this.payOwed(drv, Math.min(consumed, Math.max(0, residual + this.takeBackRoom(drv))));
      // Of what is still owed: beyond the driver's access energy not yet paid as baseline, never
      // consumed (not charged); the rest went to the requests.
      const overConsumed = Math.max(0, drv.baselineOwed - Math.max(0, drv.capturedActive - drv.baselineJ));
      const stays = drv.baselineOwed - overConsumed;
      const due = drv.baselineJ + drv.baselineOwed;
      if (stays > 1e-3 * due && stays > 1e-9) {
        this.ctx.note(
          `driver ${drv.name}: ${stays.toFixed(3)} J of its ${drv.baseline.watts.toPrecision(4)} W baseline (${((100 * stays) / due).toFixed(1)} %) stays with the per-request charges: the driver consumed less than the baseline late in the run, after it had been charged per request for consuming more`,
        );
      }
    }
    for (const drv of this.drivers) this.chargeResidual(drv, run);
    // Legs whose client request never came are split by the weights now (down a chain: until none
    // is left, as the graph is acyclic); rows no longer wait.
    this.finishing = true;
    for (let again = true; again; ) {
      again = false;
      for (const drv of this.drivers) {
        if (drv.pending.length === 0 && drv.deferred.length === 0) continue;
        this.resolve(drv);
        again = true;
      }
    }
    // Charges to drivers are taken over and passed on again; the graph is acyclic, so this ends.
    this.charges.flushAll();
    while (this.passed.size > 0) this.flushPassed(Infinity);
    this.finished = true;
    const { metrics } = this.ctx;
    for (const drv of this.drivers) {
      const vm = { vm: drv.name };
      metrics.write(METRICS.driverBaseline, vm, drv.baseline.watts);
      metrics.write(METRICS.driverBaselineSource, vm, BASELINE_SOURCE_CODE[drv.baseline.source]);
      metrics.write(METRICS.driverQuiet, vm, nsToS(drv.baseline.quietNs));
      metrics.write(METRICS.driverRequests, vm, drv.requests);
      metrics.write(METRICS.driverCpu, vm, drv.capturedActive + drv.idleShareJ);
      metrics.write(METRICS.driverIdleShare, vm, drv.idleShareJ);
      metrics.write(METRICS.driverBaselineJ, vm, drv.baselineJ);
      metrics.write(METRICS.driverRequestJ, vm, drv.requestJ);
      metrics.write(METRICS.driverResidual, vm, drv.residualJ);
      metrics.write(METRICS.driverPassed, vm, drv.foreignJ);
      if (this.settings.model === 'per-byte') {
        metrics.write(METRICS.driverFitA, vm, drv.a);
        metrics.write(METRICS.driverFitB, vm, drv.b);
      }
    }
  }

  /**
   * Whatever the driver consumed and the charges missed, so that nothing is lost: to the clients
   * by their requests' weights (equally, as idle, when there were none). Should the charges have
   * exceeded the consumption, the excess is taken back in proportion to what each client was
   * charged, from the per-request charges first, so no client's total goes below zero.
   */
  private chargeResidual(drv: Driver, run: RunSpan): void {
    const r = drv.capturedActive - drv.baselineJ - drv.requestJ;
    drv.residualJ = r;
    if (r === 0) return;
    const s = this.charges.slots(Math.floor(Math.max(run.t0, run.t1 - 1) / this.ctx.intervalNs));
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
          const slot = this.slot(drv, c, kind);
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
          if (owe > 1e-12 * drv.capturedActive) s[slot] = s[slot]! - owe;
        }
      }
      return;
    }
    const total = drv.clients.reduce((a, c) => a + drv.runWeight[c]!, 0);
    const kind = total > 0 ? 1 : 0;
    for (const c of drv.clients) {
      const share = total > 0 ? drv.runWeight[c]! / total : 1 / drv.clients.length;
      const slot = this.slot(drv, c, kind);
      s[slot] = s[slot]! + r * share;
    }
  }

  /** Writes a charge; a charge to a client that is itself a driver is taken over again (chains). */
  private out(row: EnergyRow): void {
    if (this.captures.has(row.consumer)) this.capture(row);
    else this.ctx.out.energy(row);
  }

  /** The charges slot of client `c` of `drv` for `kind` (IDLE, ACTIVE or SHARE). */
  private slot(drv: Driver, c: number, kind: number): number {
    return (drv.slot * this.nCons + c) * SLOTS + kind;
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
        const slot = this.slot(drv, c, IDLE);
        // The baseline and the idle share, both CPU idle through the driver: one row.
        const idle = s[slot]! + s[slot + SHARE]!;
        const active = s[slot + ACTIVE]!;
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
