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
 * kernel, time before its log starts) goes to the container `(guest)`. disk-energy's own
 * container rows are left out when this stage runs, so they are not counted twice.
 *
 * Enforcement (a simulation, like the host's). For a VM with container limits
 * (`policy.guest.limits_watts[vm]`), the guest schedules its containers round robin in 1 ms quanta
 * in the time the hypervisor gave the VM (its periods in the cswitch log). Every `period_ms` each
 * container's budget is refreshed; one that has spent it is preempted until the next refresh.
 * `static`: a container's budget is its limit × period, unused budget is lost; `shares`: the limits
 * are weights of the VM-wide budget, shared among the containers that want to run (an idle one's
 * share is borrowed by the others). The VM-wide budget is the host's limit for the VM
 * (`policy.cpu.limits_watts[vm]`) × period. A container's power while running is what it drew in
 * the guest log (virtual active energy over virtual time); its demand is what the log shows it
 * running, or unbounded with `cpu_bound` (CPU-bound tasks such as bzip2). A guest's containers are
 * simulated on one virtual CPU: chunks of its time are taken in the order the log ends them
 * (enough for the single-CPU guests of the paper; a multi-CPU guest is under-served).
 */
import type { ContainerBatch, DiskBatch, EventSlice, SwitchBatch } from '../../core/events.js';
import { spread } from '../../core/intervals.js';
import type { RunSpan } from '../../core/span.js';
import type { EnergyRow, EnergyTap, Stage, StageContext } from '../../core/stage.js';
import { msToNs } from '../../core/units.js';

export interface GuestPolicySettings {
  period_ms: number;
  policy: 'static' | 'shares';
  limits_watts: Record<string, Record<string, number>>;
  cpu_bound: boolean;
}

export const GUEST_POLICY_DEFAULTS: GuestPolicySettings = { period_ms: 50, policy: 'static', limits_watts: {}, cpu_bound: false };
export const GUEST_REST = '(guest)';
const QUANTUM_NS = 1e6;

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
  budget: number;
  /** The limit in force this period (static: its own; shares: its share of the VM budget). */
  periodLimit: number | null;
  periodJ: number;
  periodNs: number;
  preempted: number;
  totalJ: number;
  workNs: number;
  preemptedNs: number;
}

interface GuestVm {
  readonly vm: number;
  readonly name: string;
  readonly limits: Record<string, number> | null;
  readonly vmLimit: number | null;
  readonly tasks: Map<string, Task>;
  rr: number;
  nextRefresh: number;
  vmBudget: number;
}

export class GuestContainers implements Stage, EnergyTap {
  readonly name = 'guest-containers' as const;
  readonly consumes = ['switch', 'container', 'disk'] as const;

  private readonly s: GuestPolicySettings;
  private readonly periodNs: number;
  private readonly aware: Set<number>;
  /** interval → vm → container → weights. */
  private readonly weights = new Map<number, Map<number, Map<string, Weights>>>();
  /** interval → the VM's host-level energy to split: key vm\0via\0device\0kind. */
  private readonly pending = new Map<number, Map<string, { t0: number; t1: number; joules: number }>>();
  private readonly guests = new Map<number, GuestVm>();
  private origin = NaN;
  /** The host's limit for the VM (the VM-wide budget) is in force from policy.cpu.start_s. */
  private readonly startNs: number;

  constructor(private readonly ctx: StageContext) {
    const pol = (ctx.pipeline.policy['guest'] ?? {}) as Partial<GuestPolicySettings>;
    this.s = { ...GUEST_POLICY_DEFAULTS, ...pol, limits_watts: { ...(pol.limits_watts ?? {}) } };
    this.periodNs = Math.max(1, Math.round(msToNs(this.s.period_ms)));
    const m = ctx.machine;
    this.aware = new Set(m.profile.vms.map((v, i) => (v.energy_aware ? i : -1)).filter((i) => i >= 0));
    const hostLimits = ((ctx.pipeline.policy['cpu'] ?? {}) as { limits_watts?: Record<string, number> }).limits_watts ?? {};
    this.startNs = (((ctx.pipeline.policy['cpu'] ?? {}) as { start_s?: number }).start_s ?? 0) * 1e9;
    for (const vm of this.aware) {
      const name = m.consumers[vm]!;
      const limits = this.s.limits_watts[name] ?? null;
      const g: GuestVm = { vm, name, limits, vmLimit: hostLimits[name] ?? null, tasks: new Map(), rr: 0, nextRefresh: NaN, vmBudget: 0 };
      this.guests.set(vm, g);
      // Containers with limits report even if they never run.
      for (const c of Object.keys(limits ?? {})) this.task(g, c);
    }
  }

  tap(row: EnergyRow): void {
    if (row.container !== null) return;
    const vm = this.ctx.machine.consumerIndex.get(row.consumer);
    if (vm === undefined || !this.aware.has(vm)) return;
    const k = Math.floor(row.t0 / this.ctx.intervalNs);
    let m = this.pending.get(k);
    if (!m) this.pending.set(k, (m = new Map()));
    const key = `${vm}\0${row.via ?? ''}\0${row.device}\0${row.kind}`;
    const cur = m.get(key);
    if (cur) cur.joules += row.joules;
    else m.set(key, { t0: row.t0, t1: row.t1, joules: row.joules });
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

  push(slice: EventSlice): void {
    const b = slice.batch;
    if (this.origin !== this.origin && slice.to > slice.from) this.origin = Math.min(this.ctx.span.t0, b.t[slice.from]!);
    if (b.kind === 'container') this.containers(slice as EventSlice<ContainerBatch>);
    else if (b.kind === 'disk') this.requests(slice as EventSlice<DiskBatch>);
    else if (b.kind === 'switch') this.vmTime(slice as EventSlice<SwitchBatch>);
  }

  private containers(slice: EventSlice<ContainerBatch>): void {
    const b = slice.batch;
    const { eventWeights, profile } = this.ctx.machine;
    const nEv = b.nEvents;
    for (let i = slice.from; i < slice.to; i++) {
      const vm = b.vm[i]!;
      if (!this.aware.has(vm)) continue;
      const vt = b.vdtsc[i]!;
      if (!(vt > 0)) continue;
      let e = 0;
      for (let k = 0; k < nEv; k++) e += eventWeights[k]! * Math.max(0, b.vdev[i * nEv + k]!);
      const ns = (vt / profile.cpu.tsc_hz) * 1e9;
      const c = b.names[b.container[i]!]!;
      spread(b.t0[i]!, b.t[i]!, this.ctx.intervalNs, (k, f) => {
        const w = this.w(k, vm, c);
        w.active += e * f;
        w.time += ns * f;
      });
      const g = this.guests.get(vm)!;
      const t = this.task(g, c);
      t.recJ += e;
      t.recNs += ns;
      if (!this.s.cpu_bound) t.backlog += ns;
    }
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
      t = { name, limit: g.limits?.[name] ?? null, recJ: 0, recNs: 0, backlog: 0, budget: 0, periodLimit: null, periodJ: 0, periodNs: 0, preempted: 0, totalJ: 0, workNs: 0, preemptedNs: 0 };
      g.tasks.set(name, t);
    }
    return t;
  }

  /** The VM's own periods: the time its guest can give its containers. */
  private vmTime(slice: EventSlice<SwitchBatch>): void {
    const b = slice.batch;
    for (let i = slice.from; i < slice.to; i++) {
      const g = this.guests.get(b.vm[i]!);
      if (!g || !g.limits) continue;
      this.simulate(g, b.t0[i]!, b.t[i]!);
    }
  }

  private runnable(t: Task): boolean {
    return this.s.cpu_bound ? t.recNs > 0 : t.backlog > 0;
  }

  private refresh(g: GuestVm, now: number): void {
    const P = this.periodNs / 1e9;
    const hostLimit = g.vmLimit !== null && now - this.origin >= this.startNs ? g.vmLimit : null;
    g.vmBudget = hostLimit !== null ? hostLimit * P : Infinity;
    const tasks = [...g.tasks.values()];
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
    const P = this.periodNs / 1e9;
    for (const t of g.tasks.values()) {
      this.ctx.sink.containerRow({ t: end, vm: g.name, container: t.name, limitWatts: t.periodLimit, watts: t.periodJ / P, workS: t.periodNs / 1e9, preemptedNs: t.preempted });
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
      const power = (chosen.recJ * 1e9) / chosen.recNs;
      const cap = Math.min(chosen.budget, g.vmBudget);
      let dt = Math.min(QUANTUM_NS, end - t, power > 0 ? (cap / power) * 1e9 : Infinity);
      if (!this.s.cpu_bound) dt = Math.min(dt, chosen.backlog);
      dt = Math.max(dt, 1);
      const j = (power * dt) / 1e9;
      chosen.budget -= j;
      g.vmBudget -= j;
      chosen.periodJ += j;
      chosen.totalJ += j;
      chosen.periodNs += dt;
      chosen.workNs += dt;
      if (!this.s.cpu_bound) chosen.backlog = Math.max(0, chosen.backlog - dt);
      for (const c of tasks) if (c !== chosen && this.runnable(c) && (c.budget <= 0 || g.vmBudget <= 0)) c.preempted += dt;
      t += dt;
    }
  }

  finish(run: RunSpan): void {
    // The last, partial budget period.
    for (const g of this.guests.values()) if (g.limits && g.nextRefresh === g.nextRefresh) this.closePeriod(g, Math.min(g.nextRefresh, run.t1));
    this.splitEnergy();
    const { sink } = this.ctx;
    const duration = (run.t1 - run.t0) / 1e9;
    for (const g of this.guests.values()) {
      if (!g.limits) continue;
      let total = 0;
      for (const t of g.tasks.values()) {
        const p = `container.${g.name}.${t.name}`;
        sink.metric(`${p}.mean_watts`, duration > 0 ? t.totalJ / duration : 0);
        sink.metric(`${p}.work_s`, t.workNs / 1e9);
        sink.metric(`${p}.preempted_s`, t.preemptedNs / 1e9);
        total += t.totalJ;
      }
      sink.metric(`guest.${g.name}.mean_watts`, duration > 0 ? total / duration : 0);
    }
  }

  /** Splits the VM's host-level energy among its containers, interval by interval. */
  private splitEnergy(): void {
    const { consumers } = this.ctx.machine;
    for (const [k, m] of [...this.pending].sort(([a], [b]) => a - b)) {
      const byVm = this.weights.get(k);
      for (const [key, r] of m) {
        const [vmS, via, device, kind] = key.split('\0') as [string, string, string, 'idle' | 'active'];
        const vm = Number(vmS);
        const ws = byVm?.get(vm);
        const pick = (w: Weights) => (device === 'cpu' && via === '' ? (kind === 'active' ? w.active : w.time) : w.bytes);
        let entries = ws ? [...ws].map(([c, w]) => [c, pick(w)] as const).filter(([, x]) => x > 0) : [];
        if (entries.length === 0 && ws) entries = [...ws].map(([c, w]) => [c, w.time] as const).filter(([, x]) => x > 0);
        const sum = entries.reduce((a, [, x]) => a + x, 0);
        const base = { t0: r.t0, t1: r.t1, consumer: consumers[vm]!, via: via === '' ? null : via, device, kind };
        if (sum <= 0) this.ctx.sink.energy({ ...base, container: GUEST_REST, joules: r.joules });
        else for (const [c, x] of entries) this.ctx.sink.energy({ ...base, container: c, joules: (r.joules * x) / sum });
      }
    }
    this.pending.clear();
    this.weights.clear();
  }
}
