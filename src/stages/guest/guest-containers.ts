/**
 * Stage 7, guest-containers: resource containers inside energy-aware guests (§3.4.3, §4.2.1).
 *
 * Accounting. The guest charges its own energy to its containers: every host-level row charged to
 * an energy-aware VM (its CPU idle and active energy, what drivers spent for it, its disk energy)
 * is split among the containers that ran in that reporting interval — CPU active energy by the
 * containers' energy from their virtualized counters (Σ w_e · virtual Δe), CPU idle energy by
 * their CPU time (virtual TSC), driver and disk energy by the bytes of the disk requests that name
 * them (by CPU time when none did) — and written as rows with `container` set, which therefore sum
 * exactly to the VM's own rows. Energy of an interval in which no container ran (the guest's own
 * kernel, time before its log starts) goes to the container `(guest)`. Container rows of an
 * energy-aware VM written by earlier stages (disk-energy's per-request rows) are taken over and
 * replaced by this split, so they are not counted twice.
 *
 * Enforcement (a simulation, like the host's). For a VM with container limits
 * (`policy.guest.limits_watts[vm]`), the guest schedules its containers round robin in 1 ms quanta
 * in the time the hypervisor gave the VM (its periods in the cswitch log). Every `period_ms` each
 * container's budget is refreshed; one that has spent it is preempted until the next refresh.
 * `static`: a container's budget is its limit × period, unused budget is lost; `shares`: the limits
 * are weights of the VM-wide budget, shared among the containers that want to run (an idle one's
 * share is borrowed by the others). The VM-wide budget is the host's limit for the VM
 * (`policy.cpu.limits_watts[vm]`) × period, from `policy.cpu.start_s`; the containers' limits are
 * in force from `policy.guest.start_s` (by default the same). Its demand is what the log shows it
 * running, chunk by chunk, and served work costs what that chunk drew in the log (virtual active
 * energy over virtual time); with `cpu_bound` (CPU-bound tasks such as bzip2) demand is unbounded
 * and runs at the container's mean power so far. A chunk is known once the row ending it is read,
 * so the VM's periods wait until the guest log reaches their end (or GUEST_LOG_WAIT_NS). A guest's containers are
 * simulated on one virtual CPU: chunks of its time are taken in the order the log ends them
 * (enough for the single-CPU guests of the paper; a multi-CPU guest is under-served).
 *
 * A guest-level run reports the guest VM under the same names a host-level run does:
 * `cpu.<vm>.mean_watts` and `cpu.<vm>.work_s` (its containers' sums), beside each container's.
 */
import { startAfterRunNote } from '../policy/start.js';
import type { DiskBatch, EventSlice } from '../../core/events.js';
import { spread } from '../../core/intervals.js';
import { METRICS } from '../../core/metrics.js';
import type { GuestPolicySettings } from '../../core/settings.js';
import type { RunSpan } from '../../core/span.js';
import type { CpuPeriods, EnergyKind, EnergyRow, GuestPeriods, Stage, StageContext } from '../../core/stage.js';
import { NS_PER_MS, energyOf, joules, ns, nsToS, periodNs, powerOf, sToNs, ticksToNs, watts } from '../../core/units.js';
import { mutated } from '../policy/mutations.js';

export const GUEST_REST = '(guest)';
const QUANTUM_NS = NS_PER_MS;

interface Weights {
  active: number;
  time: number;
  bytes: number;
}

interface Task {
  readonly name: string;
  readonly limit: number | null;
  recJ: number;
  recNs: number;
  backlog: number;
  /**
   * The logged chunks not served yet (without `cpu_bound`), oldest first: their virtual time and
   * active energy left, so served work costs what that very work drew in the log.
   */
  chunkNs: number[];
  chunkJ: number[];
  chunkHead: number;
  budget: number;
  /** The limit in force this period (static: its own; shares: its share of the VM budget). */
  periodLimit: number | null;
  periodJ: number;
  periodNs: number;
  preempted: number;
  totalJ: number;
  /** Energy from policy.guest.start_s on (the window of the mean powers): served, or as logged. */
  afterJ: number;
  recAfterJ: number;
  workNs: number;
  preemptedNs: number;
}

interface GuestVm {
  readonly vm: number;
  readonly name: string;
  readonly limits: Readonly<Record<string, number>> | null;
  readonly vmLimit: number | null;
  readonly tasks: Map<string, Task>;
  rr: number;
  nextRefresh: number;
  vmBudget: number;
  /** The VM's periods not simulated yet: [t0, t1) pairs, waiting for the guest log to reach t1. */
  waiting: number[];
  /** The latest end of a logged container period of this VM. */
  loggedTo: number;
}

/**
 * How long a VM's time waits for its guest log before it is simulated without the chunks still to
 * come: a chunk's demand is known only when the row that ends it is read, and a period of the VM
 * is simulated once the log has reached its end (or is this far behind).
 */
const GUEST_LOG_WAIT_NS = 1e9;
/** Chunks of a container's backlog kept apart; later ones are merged into the last (flat memory). */
const MAX_CHUNKS = 4096;

export class GuestContainers implements Stage {
  readonly receive = {
    'cpu-periods': (p: CpuPeriods) => this.vmTime(p),
    'guest-periods': (g: GuestPeriods) => this.containers(g),
  };

  private readonly s: GuestPolicySettings;
  private readonly periodNs: number;
  private readonly aware: Set<number>;
  /** interval → vm → container → weights. */
  private readonly weights = new Map<number, Map<number, Map<string, Weights>>>();
  /** interval → the VM's host-level energy to split: key vm\0via\0device\0kind. */
  private readonly pending = new Map<number, Map<string, { t0: number; t1: number; joules: number }>>();
  private readonly guests = new Map<number, GuestVm>();
  private origin = NaN;
  /** The latest time this stage has seen in either log. */
  private latest = -Infinity;
  /** The host's limit for the VM (the VM-wide budget) is in force from policy.cpu.start_s. */
  private readonly startNs: number;
  /** The container limits, from policy.guest.start_s. */
  private readonly containerStartNs: number;

  constructor(private readonly ctx: StageContext<GuestPolicySettings>) {
    this.s = ctx.settings;
    this.periodNs = periodNs(this.s.period_ms);
    const m = ctx.machine;
    this.aware = new Set(m.profile.vms.map((v, i) => (v.energy_aware ? i : -1)).filter((i) => i >= 0));
    const hostLimits = this.s.host_limits_watts;
    this.startNs = sToNs(this.s.host_start_s);
    this.containerStartNs = sToNs(this.s.start_s);
    for (const vm of this.aware) {
      const name = m.consumers[vm]!;
      const limits = this.s.limits_watts[name] ?? null;
      const g: GuestVm = { vm, name, limits, vmLimit: hostLimits[name] ?? null, tasks: new Map(), rr: 0, nextRefresh: NaN, vmBudget: 0, waiting: [], loggedTo: -Infinity };
      this.guests.set(vm, g);
      // Containers with limits report even if they never run.
      for (const c of Object.keys(limits ?? {})) this.task(g, c);
    }
  }

  /**
   * Energy written by earlier stages: an energy-aware VM's host-level rows are kept for the split
   * (and written as they are); its container rows are taken over, the split replaces them.
   */
  energy(row: EnergyRow): boolean {
    const vm = this.ctx.machine.consumerIndex.get(row.consumer);
    if (vm === undefined || !this.aware.has(vm)) return false;
    if (row.container !== null) return true;
    const k = Math.floor(row.t0 / this.ctx.intervalNs);
    let m = this.pending.get(k);
    if (!m) this.pending.set(k, (m = new Map()));
    const key = `${vm}\0${row.via ?? ''}\0${row.device}\0${row.kind}`;
    const cur = m.get(key);
    if (cur) cur.joules += row.joules;
    else m.set(key, { t0: row.t0, t1: row.t1, joules: row.joules });
    return false;
  }

  private w(k: number, vm: number, c: string): Weights {
    let byVm = this.weights.get(k);
    if (!byVm) this.weights.set(k, (byVm = new Map()));
    let byC = byVm.get(vm);
    if (!byC) byVm.set(vm, (byC = new Map()));
    let w = byC.get(c);
    if (!w) byC.set(c, (w = { active: 0, time: 0, bytes: 0 }));
    return w;
  }

  /** The simulation starts with the first event of any kind this stage sees. */
  private begin(t: number): void {
    if (this.origin !== this.origin) this.origin = Math.min(this.ctx.span.t0, t);
  }

  push(slice: EventSlice): void {
    if (slice.to > slice.from) this.begin(slice.batch.t[slice.from]!);
    this.requests(slice as EventSlice<DiskBatch>);
  }

  private containers(p: GuestPeriods): void {
    if (p.length > 0) this.begin(p.t1[0]!);
    const { eventWeights, profile } = this.ctx.machine;
    const nEv = p.nEvents;
    for (let i = 0; i < p.length; i++) {
      const vm = p.vm[i]!;
      if (!this.aware.has(vm)) continue;
      const vt = p.vtsc[i]!;
      if (!(vt > 0)) continue;
      let e = 0;
      for (let k = 0; k < nEv; k++) e += eventWeights[k]! * Math.max(0, p.vev[i * nEv + k]!);
      const dt = ticksToNs(vt, profile.cpu.tsc_hz);
      const c = p.names[p.container[i]!]!;
      spread(p.t0[i]!, p.t1[i]!, this.ctx.intervalNs, (k, f) => {
        const w = this.w(k, vm, c);
        w.active += e * f;
        w.time += dt * f;
      });
      const g = this.guests.get(vm)!;
      const t = this.task(g, c);
      t.recJ += e;
      t.recNs += dt;
      // The part of the logged period in the window of the mean powers.
      const t0 = p.t0[i]!;
      const t1 = p.t1[i]!;
      const from = this.windowFrom();
      t.recAfterJ += t1 > t0 ? (e * Math.max(0, t1 - Math.max(t0, from))) / (t1 - t0) : t1 >= from ? e : 0;
      if (!this.s.cpu_bound && g.limits) {
        t.backlog += dt;
        // A deep backlog keeps its newest chunks merged into one (their mean power), so memory
        // stays flat however far a limited container falls behind its log.
        const last = t.chunkNs.length - 1;
        if (last - t.chunkHead >= MAX_CHUNKS) {
          t.chunkNs[last] = t.chunkNs[last]! + dt;
          t.chunkJ[last] = t.chunkJ[last]! + e;
        } else {
          t.chunkNs.push(dt);
          t.chunkJ.push(e);
        }
      }
      if (p.t1[i]! > g.loggedTo) g.loggedTo = p.t1[i]!;
      if (p.t1[i]! > this.latest) this.latest = p.t1[i]!;
    }
    for (const g of this.guests.values()) this.release(g, false);
  }

  private requests(slice: EventSlice<DiskBatch>): void {
    const b = slice.batch;
    for (let i = slice.from; i < slice.to; i++) {
      const vm = b.vm[i]!;
      if (!this.aware.has(vm) || b.container[i]! < 0) continue;
      this.w(Math.floor(b.t[i]! / this.ctx.intervalNs), vm, b.names[b.container[i]!]!).bytes += b.bytes[i]!;
    }
  }

  private task(g: GuestVm, name: string): Task {
    let t = g.tasks.get(name);
    if (!t) {
      t = { name, limit: g.limits?.[name] ?? null, recJ: 0, recNs: 0, backlog: 0, chunkNs: [], chunkJ: [], chunkHead: 0, budget: 0, periodLimit: null, periodJ: 0, periodNs: 0, preempted: 0, totalJ: 0, afterJ: 0, recAfterJ: 0, workNs: 0, preemptedNs: 0 };
      g.tasks.set(name, t);
    }
    return t;
  }

  /** The VM's own periods: the time its guest can give its containers. */
  private vmTime(p: CpuPeriods): void {
    if (p.length > 0) this.begin(p.t1[0]!);
    for (let i = 0; i < p.length; i++) {
      if (p.t1[i]! > this.latest) this.latest = p.t1[i]!;
      const g = this.guests.get(p.vm[i]!);
      if (!g || !g.limits) continue;
      g.waiting.push(p.t0[i]!, p.t1[i]!);
    }
    for (const g of this.guests.values()) this.release(g, false);
  }

  /**
   * Simulates the VM's waiting periods whose end the guest log has reached (so every chunk the
   * guest ran in them is known), or that are GUEST_LOG_WAIT_NS behind the replay; all at the end.
   */
  private release(g: GuestVm, all: boolean): void {
    const w = g.waiting;
    let k = 0;
    while (k < w.length && (all || w[k + 1]! <= g.loggedTo || w[k + 1]! + GUEST_LOG_WAIT_NS <= this.latest)) {
      this.simulate(g, w[k]!, w[k + 1]!);
      k += 2;
    }
    if (k > 0) w.splice(0, k);
  }

  /** The window of the mean powers starts at the first budget period from policy.guest.start_s. */
  private windowFrom(): number {
    return this.origin + Math.ceil(this.containerStartNs / this.periodNs) * this.periodNs;
  }

  private runnable(t: Task): boolean {
    return this.s.cpu_bound ? t.recNs > 0 : t.chunkHead < t.chunkNs.length;
  }

  private refresh(g: GuestVm, now: number): void {
    const P = nsToS(this.periodNs);
    const hostLimit = g.vmLimit !== null && now - this.origin >= this.startNs ? g.vmLimit : null;
    g.vmBudget = hostLimit !== null ? hostLimit * P : Infinity;
    const tasks = [...g.tasks.values()];
    if (now - this.origin < this.containerStartNs || mutated('ignore-container-budgets')) {
      // The container limits are not in force yet (policy.guest.start_s).
      for (const t of tasks) {
        t.budget = Infinity;
        t.periodLimit = null;
      }
      return;
    }
    if (this.s.policy === 'shares') {
      const wanting = tasks.filter((t) => this.runnable(t) && t.limit !== null);
      const sum = wanting.reduce((a, t) => a + t.limit!, 0);
      const total = hostLimit !== null ? hostLimit * P : tasks.reduce((a, t) => a + (t.limit ?? 0), 0) * P;
      for (const t of tasks) t.budget = t.limit !== null && sum > 0 && this.runnable(t) ? (total * t.limit) / sum : t.limit === null ? Infinity : 0;
    } else for (const t of tasks) t.budget = t.limit !== null ? t.limit * P : Infinity;
    for (const t of tasks) t.periodLimit = Number.isFinite(t.budget) ? t.budget / P : null;
  }

  /** Emits the period's containers rows (the period ending at `end`) and starts the next. */
  private closePeriod(g: GuestVm, end: number): void {
    const P = nsToS(this.periodNs);
    for (const t of g.tasks.values()) {
      const limitWatts = t.periodLimit === null ? null : watts(t.periodLimit);
      this.ctx.out.containerRow({ t: ns(end), vm: g.name, container: t.name, limitWatts, watts: watts(t.periodJ / P), workS: nsToS(t.periodNs), preemptedNs: ns(t.preempted) });
      t.preemptedNs += t.preempted;
      t.periodJ = 0;
      t.periodNs = 0;
      t.preempted = 0;
    }
    this.refresh(g, end);
  }

  private simulate(g: GuestVm, from: number, to: number): void {
    if (g.nextRefresh !== g.nextRefresh) {
      g.nextRefresh = this.origin + this.periodNs;
      this.refresh(g, this.origin);
    }
    let t = from;
    while (t < to) {
      while (t >= g.nextRefresh) {
        this.closePeriod(g, g.nextRefresh);
        g.nextRefresh += this.periodNs;
      }
      const end = Math.min(to, g.nextRefresh);
      const tasks = [...g.tasks.values()];
      let chosen: Task | null = null;
      for (let k = 0; k < tasks.length; k++) {
        const c = tasks[(g.rr + k) % tasks.length]!;
        if (this.runnable(c) && c.budget > 0 && g.vmBudget > 0 && c.recNs > 0) {
          chosen = c;
          g.rr = (g.rr + k + 1) % tasks.length;
          break;
        }
      }
      if (!chosen && this.s.policy === 'shares' && g.vmBudget > 0) {
        // shares: what the VM budget still holds is lent to whoever wants to run.
        for (let k = 0; k < tasks.length; k++) {
          const c = tasks[(g.rr + k) % tasks.length]!;
          if (this.runnable(c) && c.recNs > 0 && c.limit !== null) {
            chosen = c;
            c.budget = Math.max(c.budget, 0) + g.vmBudget;
            g.rr = (g.rr + k + 1) % tasks.length;
            break;
          }
        }
      }
      if (!chosen) {
        // Nobody may run: the guest halts; those that wanted to were preempted.
        for (const c of tasks) if (this.runnable(c)) c.preempted += end - t;
        t = end;
        continue;
      }
      // Served work costs what it drew in the log: the oldest logged chunk's power (cpu_bound:
      // demand beyond the log, at the container's mean power so far).
      const head = chosen.chunkHead;
      const power = this.s.cpu_bound ? powerOf(chosen.recJ, chosen.recNs) : powerOf(chosen.chunkJ[head]!, chosen.chunkNs[head]!);
      const cap = Math.min(chosen.budget, g.vmBudget);
      let dt = Math.min(QUANTUM_NS, end - t, power > 0 ? sToNs(cap / power) : Infinity);
      if (!this.s.cpu_bound) dt = Math.min(dt, chosen.chunkNs[head]!);
      dt = Math.max(dt, Math.min(1, this.s.cpu_bound ? 1 : chosen.chunkNs[head]!));
      const j = this.s.cpu_bound ? energyOf(power, dt) : this.serveChunk(chosen, dt);
      chosen.budget -= j;
      g.vmBudget -= j;
      chosen.periodJ += j;
      chosen.totalJ += j;
      if (t >= this.windowFrom()) chosen.afterJ += j;
      chosen.periodNs += dt;
      chosen.workNs += dt;
      for (const c of tasks) if (c !== chosen && this.runnable(c) && (c.budget <= 0 || g.vmBudget <= 0)) c.preempted += dt;
      t += dt;
    }
  }

  /** Serves `dt` of the task's oldest chunk (dt ≤ what is left of it): the energy it drew for that. */
  private serveChunk(task: Task, dt: number): number {
    const h = task.chunkHead;
    const left = task.chunkNs[h]!;
    const j = dt >= left ? task.chunkJ[h]! : (task.chunkJ[h]! * dt) / left;
    task.backlog = Math.max(0, task.backlog - dt);
    if (dt >= left) {
      task.chunkHead++;
      // The served chunks are dropped now and then, not one by one.
      if (task.chunkHead >= 1024 && task.chunkHead * 2 >= task.chunkNs.length) {
        task.chunkNs.splice(0, task.chunkHead);
        task.chunkJ.splice(0, task.chunkHead);
        task.chunkHead = 0;
      }
      if (task.chunkHead === task.chunkNs.length) task.backlog = 0;
    } else {
      task.chunkNs[h] = left - dt;
      task.chunkJ[h] = task.chunkJ[h]! - j;
    }
    return j;
  }

  finish(run: RunSpan): void {
    for (const g of this.guests.values()) this.release(g, true);
    const late = startAfterRunNote('policy.guest.start_s', this.s.start_s, Object.keys(this.s.limits_watts).length, run);
    if (late !== null) this.ctx.note(late);
    // The last, partial budget period.
    for (const g of this.guests.values()) if (g.limits && g.nextRefresh === g.nextRefresh) this.closePeriod(g, Math.min(g.nextRefresh, run.t1));
    this.splitEnergy();
    const { metrics } = this.ctx;
    const windowNs = run.t1 - this.windowFrom();
    for (const g of this.guests.values()) {
      if (g.tasks.size === 0) continue;
      let totalJ = 0;
      let workNs = 0;
      for (const t of g.tasks.values()) {
        // Without container limits the guest ran its containers as the log shows.
        const j = g.limits ? t.afterJ : t.recAfterJ;
        const work = g.limits ? t.workNs : t.recNs;
        const c = { vm: g.name, container: t.name };
        if (windowNs > 0) metrics.write(METRICS.containerMean, c, powerOf(j, windowNs));
        metrics.write(METRICS.containerWork, c, nsToS(work));
        metrics.write(METRICS.containerDemand, c, nsToS(t.recNs));
        if (!this.s.cpu_bound) metrics.write(METRICS.containerBacklog, c, nsToS(g.limits ? t.backlog : 0));
        if (g.limits) metrics.write(METRICS.containerPreempted, c, nsToS(t.preemptedNs));
        totalJ += j;
        workNs += work;
      }
      // The guest VM under the names a host-level run gives it.
      if (windowNs > 0) metrics.write(METRICS.cpuMean, { vm: g.name }, powerOf(totalJ, windowNs));
      metrics.write(METRICS.cpuWork, { vm: g.name }, nsToS(workNs));
    }
  }

  /** Splits the VM's host-level energy among its containers, interval by interval. */
  private splitEnergy(): void {
    const { consumers } = this.ctx.machine;
    for (const [k, m] of [...this.pending].sort(([a], [b]) => a - b)) {
      const byVm = this.weights.get(k);
      for (const [key, r] of m) {
        const [vmS, via, device, kind] = key.split('\0') as [string, string, string, EnergyKind];
        const vm = Number(vmS);
        const ws = byVm?.get(vm);
        const pick = (w: Weights) => (device === 'cpu' && via === '' ? (kind === 'active' ? w.active : w.time) : w.bytes);
        let entries = ws ? [...ws].map(([c, w]) => [c, pick(w)] as const).filter(([, x]) => x > 0) : [];
        if (entries.length === 0 && ws) entries = [...ws].map(([c, w]) => [c, w.time] as const).filter(([, x]) => x > 0);
        const sum = entries.reduce((a, [, x]) => a + x, 0);
        const base = { t0: ns(r.t0), t1: ns(r.t1), consumer: consumers[vm]!, via: via === '' ? null : via, device, kind };
        if (sum <= 0) this.ctx.out.energy({ ...base, container: GUEST_REST, joules: joules(r.joules) });
        else for (const [c, x] of entries) this.ctx.out.energy({ ...base, container: c, joules: joules((r.joules * x) / sum) });
      }
    }
    this.pending.clear();
    this.weights.clear();
  }
}
