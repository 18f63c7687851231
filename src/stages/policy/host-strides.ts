/**
 * Stage 5, host-strides: the host-level CPU energy manager (§3.3.4, §3.3.6), simulated on the
 * trace's demand.
 *
 * Per physical CPU, a stride scheduler (Waldspurger & Weihl): each virtual processor has a stride
 * (inversely its share) and a pass; every quantum (1 ms) the runnable one with the smallest pass
 * runs and its pass grows by its stride. Beside the VMs runs one privileged idle virtual processor
 * per CPU that turns its time into halt cycles; its stride is `IDLE_STRIDE` (1000) against the
 * VMs' initial 1, a minuscule share, so VMs are favoured whenever they have work.
 *
 * Demand: each period of a VM in the cswitch trace adds its length to that VM's backlog on that
 * CPU when the period ends (a VM is runnable while it has backlog). The backlog is a queue of the
 * recorded periods, each served at the active power it drew in the trace (its access energy over
 * its time). Work is delayed, never dropped: completed + backlog = demand.
 *
 * Manager: every `period_ms` (100) each VM with a limit in `limits_watts` (from `start_s` on) has
 * its active CPU energy of the period compared with limit × period, and its stride moved by the
 * constant `offset` (default 100): up when over, down (not below 1) when under. A VM's share
 * against the idle processor is then 1000 / (1000 + stride).
 *
 * `cpu_bound` names VMs that would use all the CPU they get (a batch job the trace only shows
 * sharing the CPU): they are runnable whenever present, so they take the time a limited VM gives
 * up — stride scheduling's stealing — while the idle processor halts only what nobody wants.
 *
 * With a guest log, the guest's container periods in its private counter view (virtual-counters'
 * `guest-periods`: their virtual TSC is the VM's own time) are queued in order, so the work the VM
 * completes is credited to its containers, each at the power it drew in the guest log
 * (`container.<vm>.<container>.work_s`, `.mean_watts`): host-level control slows every task of a
 * guest alike.
 */
import { METRICS } from '../../core/metrics.js';
import type { CpuPolicySettings } from '../../core/settings.js';
import { startAfterRunNote } from './start.js';
import type { RunSpan } from '../../core/span.js';
import type { CpuPeriods, GuestPeriods, Stage, StageContext } from '../../core/stage.js';
import { NS_PER_MS, nsToS, ns, periodNs, powerOf, sToNs, ticksToNs, watts } from '../../core/units.js';
import { settle } from './settle.js';
import { adaptiveStride, paperStride, type AdaptiveState } from './stride-controller.js';

export const IDLE_STRIDE = 1000;
const QUANTUM_NS = NS_PER_MS;
/**
 * Passes are kept in stride × ns, integers (run times are whole ns), so adding one quantum at a
 * time or m at once gives the same value exactly and both schedules break ties alike. Below 2^53
 * doubles hold them exactly: past 2^49 every pass of the CPU is moved down by the smallest.
 */
const RENORMALIZE_AT = 2 ** 49;

/** The number of steps k ≥ 0 with from + k·step < below (integers: exact, checked both ways). */
function quantaBelow(from: number, below: number, step: number): number {
  let k = Math.max(0, Math.ceil((below - from) / step));
  while (k > 0 && from + (k - 1) * step >= below) k--;
  while (from + k * step < below) k++;
  return k;
}

interface Vp {
  /** Demand not yet served (ns): recorded periods queued in order, each with its energy. */
  backlog: number;
  segNs: number[];
  segJ: number[];
  head: number;
  pass: number;
}

interface Cpu {
  /** Simulated time reached. */
  t: number;
  readonly vps: Map<number, Vp>;
  idlePass: number;
}

interface VmState {
  readonly name: string;
  stride: number;
  readonly limit: number | null;
  /** Recorded active energy and time, for its power while running. */
  recJ: number;
  recNs: number;
  demandNs: number;
  doneNs: number;
  /** cpu_bound: work beyond the recorded demand. */
  extraNs: number;
  periodJ: number;
  periodNs: number;
  totalJ: number;
  readonly watts: number[];
  /** Guest containers: queued (container, ns, J) segments of its recorded time, and work done. */
  qName: number[];
  qNs: number[];
  qJ: number[];
  qHead: number;
  readonly containerWork: Map<string, number>;
  readonly containerJ: Map<string, number>;
  /** Active energy of the work served from start_s on (the window of the mean powers). */
  afterJ: number;
  readonly adaptive: AdaptiveState;
  /** Recorded time per container (its demand). */
  readonly containerDemand: Map<string, number>;
  /** Its virtual processors, one per CPU it ran on (also in that CPU's `vps`). */
  readonly vps: Vp[];
}

export class HostStrides implements Stage {
  /** Whole rounds and idle stretches in one step (see `rounds`); off only to test them. */
  static batching = true;
  readonly receive = { 'cpu-periods': (p: CpuPeriods) => this.periods(p), 'guest-periods': (g: GuestPeriods) => this.containers(g) };

  private readonly s: CpuPolicySettings;
  private readonly periodNs: number;
  private readonly cpus = new Map<number, Cpu>();
  private readonly vms: VmState[];
  private readonly idleVm: number;
  private origin = NaN;
  /** Manager periods so far with the limits in force (a VM's `watts` has one entry per such period). */
  private controlled = 0;
  /** The current manager period lies in the window of the mean powers (from start_s on). */
  private inWindow = false;
  private nextPeriod = NaN;
  private names: readonly string[] = [];
  private readonly tscHz: number;
  private readonly cpuBound: Set<number>;
  private readonly backlogAtEnd = new Map<number, number>();

  constructor(private readonly ctx: StageContext<CpuPolicySettings>) {
    this.s = ctx.settings;
    this.periodNs = periodNs(this.s.period_ms);
    const m = ctx.machine;
    this.idleVm = m.idleIndex;
    this.tscHz = m.profile.cpu.tsc_hz;
    this.cpuBound = new Set(this.s.cpu_bound.map((n) => m.consumerIndex.get(n)).filter((i): i is number => i !== undefined));
    this.vms = m.consumers.map((name) => ({
      name,
      stride: 1,
      limit: this.s.limits_watts[name] ?? null,
      recJ: 0,
      recNs: 0,
      demandNs: 0,
      doneNs: 0,
      extraNs: 0,
      periodJ: 0,
      periodNs: 0,
      totalJ: 0,
      afterJ: 0,
      adaptive: { ideal: 1, carry: 0 },
      watts: [],
      qName: [],
      qNs: [],
      qJ: [],
      qHead: 0,
      containerWork: new Map(),
      containerJ: new Map(),
      containerDemand: new Map(),
      vps: [],
    }));
  }

  /**
   * A period of the trace is demand that arrives when the period ends: rows come in the order of
   * their end, so every CPU can be simulated up to the newest row's end (the merge clock) without
   * ever learning of demand in its simulated past — a CPU whose log stops early, or starts late,
   * holds nobody up.
   */
  private periods(p: CpuPeriods): void {
    for (let i = 0; i < p.length; i++) {
      const t0 = p.t0[i]!;
      const t1 = p.t1[i]!;
      if (this.origin !== this.origin) {
        this.origin = Math.min(t0, this.ctx.span.t0);
        this.nextPeriod = this.origin + this.periodNs;
        this.inWindow = this.started(this.origin);
      }
      this.advanceAll(t1);
      const c = p.cpu[i]!;
      let cpu = this.cpus.get(c);
      if (!cpu) this.cpus.set(c, (cpu = { t: Math.max(this.origin, t1), vps: new Map(), idlePass: 0 }));
      const vm = p.vm[i]!;
      if (vm === this.idleVm || t1 <= t0) continue;
      const st = this.vms[vm]!;
      const e = p.activeJ[i]!;
      st.recJ += e;
      st.recNs += t1 - t0;
      st.demandNs += t1 - t0;
      let vp = cpu.vps.get(vm);
      // A processor that wakes up joins at the smallest pass of those runnable (no credit for
      // having slept, no penalty either).
      if (!vp) {
        cpu.vps.set(vm, (vp = { backlog: 0, segNs: [], segJ: [], head: 0, pass: this.minPass(cpu) }));
        st.vps.push(vp);
      }
      else if (vp.backlog <= 0 && !this.cpuBound.has(vm)) vp.pass = Math.max(vp.pass, this.minPass(cpu));
      vp.segNs.push(t1 - t0);
      vp.segJ.push(e);
      vp.backlog += t1 - t0;
    }
  }

  /** Simulates every CPU up to `until` in step, the manager acting at its period boundaries. */
  private advanceAll(until: number): void {
    while (this.nextPeriod <= until) {
      for (const cpu of this.cpus.values()) this.runUntil(cpu, this.nextPeriod);
      this.managePeriod();
    }
    for (const cpu of this.cpus.values()) this.runUntil(cpu, until);
  }

  /**
   * The guest's container periods, in the VM's own time (virtual TSC), queued in order with their
   * active energy Σ w_e · virtual Δe (negative advances, from a guest log slightly off the host's
   * clock, count as none).
   */
  private containers(g: GuestPeriods): void {
    this.names = g.names;
    const { eventWeights } = this.ctx.machine;
    const nEv = g.nEvents;
    for (let i = 0; i < g.length; i++) {
      const v = g.vtsc[i]!;
      if (!(v > 0)) continue;
      const st = this.vms[g.vm[i]!]!;
      let e = 0;
      for (let k = 0; k < nEv; k++) e += eventWeights[k]! * Math.max(0, g.vev[i * nEv + k]!);
      st.qName.push(g.container[i]!);
      const dt = ticksToNs(v, this.tscHz);
      st.qNs.push(dt);
      const name = g.names[g.container[i]!]!;
      st.containerDemand.set(name, (st.containerDemand.get(name) ?? 0) + dt);
      st.qJ.push(e);
    }
  }

  /** Simulates one CPU up to time `until` (within one manager period). */
  private runUntil(cpu: Cpu, until: number): void {
    while (cpu.t < until) {
      if (HostStrides.batching && this.rounds(cpu, until)) continue;
      if (cpu.idlePass > RENORMALIZE_AT) this.renormalize(cpu);
      const slot = Math.min(QUANTUM_NS, until - cpu.t);
      let best: number | null = null;
      let bestPass = Infinity;
      for (const [vm, vp] of cpu.vps) {
        if ((vp.backlog > 0 || this.cpuBound.has(vm)) && vp.pass < bestPass) {
          best = vm;
          bestPass = vp.pass;
        }
      }
      if (best === null) {
        // Nothing to run: the idle processor halts until more demand comes.
        cpu.t = until;
        continue;
      }
      if (cpu.idlePass < bestPass) {
        // The idle processor runs until its pass reaches the best VM's: k quanta at once.
        const k = HostStrides.batching && Number.isInteger(cpu.idlePass) ? Math.min(quantaBelow(cpu.idlePass, bestPass, IDLE_STRIDE * QUANTUM_NS), Math.floor((until - cpu.t) / QUANTUM_NS)) : 1;
        if (k >= 2) {
          cpu.idlePass += IDLE_STRIDE * QUANTUM_NS * k;
          cpu.t += k * QUANTUM_NS;
        } else {
          cpu.idlePass += IDLE_STRIDE * slot;
          cpu.t += slot;
        }
        continue;
      }
      const vp = cpu.vps.get(best)!;
      const st = this.vms[best]!;
      // A CPU-bound VM runs whenever it is chosen: beyond its recorded demand at its mean power.
      const run = this.cpuBound.has(best) ? slot : Math.min(slot, vp.backlog);
      vp.pass += st.stride * run;
      this.serve(best, vp, run);
      cpu.t += run;
    }
  }

  /**
   * Whole scheduling rounds in one step. When every runnable VM on the CPU has the same stride
   * and their passes lie within one stride of each other, the scheduler serves them round-robin
   * in a fixed order, a quantum each, until the idle processor's pass is reached; m full rounds
   * (every VM with at least m quanta of backlog, all within the manager period) are simulated at
   * once: each VM served m quanta, its pass m strides on. The same schedule as quantum by quantum
   * (a test compares them), at the cost of one step: a day of PlanetLab VMs is 86.4 M quanta per CPU.
   */
  private rounds(cpu: Cpu, until: number): boolean {
    let n = 0;
    let s = 0;
    let pMin = Infinity;
    let pMax = -Infinity;
    let m = Infinity;
    for (const [vm, vp] of cpu.vps) {
      const bound = this.cpuBound.has(vm);
      if (!(vp.backlog > 0 || bound)) continue;
      const stride = this.vms[vm]!.stride;
      // Whole numbers only: with a fractional offset, m additions could round unlike one.
      if (!Number.isInteger(vp.pass) || !Number.isInteger(stride)) return false;
      if (n === 0) s = stride;
      else if (stride !== s) return false;
      n++;
      if (vp.pass < pMin) pMin = vp.pass;
      if (vp.pass > pMax) pMax = vp.pass;
      if (!bound) m = Math.min(m, Math.floor(vp.backlog / QUANTUM_NS));
    }
    const step = s * QUANTUM_NS;
    if (n === 0 || pMax - pMin >= step || cpu.idlePass < pMax || !Number.isInteger(cpu.idlePass)) return false;
    // Rounds r = 0 … m−1 with pMax + r·step ≤ the idle processor's pass (VMs win ties against it).
    m = Math.min(m, quantaBelow(pMax, cpu.idlePass + 1, step), Math.floor((until - cpu.t) / (n * QUANTUM_NS)));
    if (m < 2) return false;
    for (const [vm, vp] of cpu.vps) {
      if (!(vp.backlog > 0 || this.cpuBound.has(vm))) continue;
      vp.pass += step * m;
      this.serve(vm, vp, m * QUANTUM_NS);
    }
    cpu.t += n * m * QUANTUM_NS;
    return true;
  }

  /** `vm` runs `run` ns: its queued periods are served in order, each at its recorded power. */
  private serve(vm: number, vp: Vp, run: number): void {
    const st = this.vms[vm]!;
    let left = run;
    let j = 0;
    while (left > 0 && vp.head < vp.segNs.length) {
      const ns = vp.segNs[vp.head]!;
      const take = Math.min(left, ns);
      const part = (vp.segJ[vp.head]! * take) / ns;
      j += part;
      vp.segNs[vp.head] = ns - take;
      vp.segJ[vp.head] = vp.segJ[vp.head]! - part;
      vp.backlog -= take;
      left -= take;
      if (vp.segNs[vp.head]! <= 0) vp.head++;
    }
    if (vp.head > 1024 && vp.head * 2 > vp.segNs.length) {
      vp.segNs.splice(0, vp.head);
      vp.segJ.splice(0, vp.head);
      vp.head = 0;
    }
    if (left > 0) {
      // cpu_bound beyond its demand.
      j += st.recNs > 0 ? (st.recJ * left) / st.recNs : 0;
      st.extraNs += left;
    }
    if (vp.backlog < 1e-6) vp.backlog = 0;
    st.periodJ += j;
    st.periodNs += run;
    st.totalJ += j;
    st.doneNs += run;
    this.credit(st, run);
  }

  /** Moves every pass of the CPU down by the smallest runnable one (order and gaps kept exactly). */
  private renormalize(cpu: Cpu): void {
    const base = this.minPass(cpu);
    cpu.idlePass -= base;
    // A processor without backlog rejoins at no less than the smallest pass: far below is all alike.
    for (const vp of cpu.vps.values()) vp.pass = Math.max(vp.pass - base, -RENORMALIZE_AT);
  }

  /** The smallest pass among the processors that can run now (the idle one always can). */
  private minPass(cpu: Cpu): number {
    let p = cpu.idlePass;
    for (const [vm, vp] of cpu.vps) if ((vp.backlog > 0 || this.cpuBound.has(vm)) && vp.pass < p) p = vp.pass;
    return p;
  }

  /** `run` ns of work the VM completed, credited to its queued container periods in order. */
  private credit(st: VmState, run: number): void {
    while (run > 0 && st.qHead < st.qNs.length) {
      const h = st.qHead;
      const segNs = st.qNs[h]!;
      const take = Math.min(run, segNs);
      const j = (st.qJ[h]! * take) / segNs;
      const name = this.names[st.qName[h]!]!;
      st.containerWork.set(name, (st.containerWork.get(name) ?? 0) + take);
      if (this.inWindow) st.containerJ.set(name, (st.containerJ.get(name) ?? 0) + j);
      else if (!st.containerJ.has(name)) st.containerJ.set(name, 0);
      st.qNs[h] = segNs - take;
      st.qJ[h] = st.qJ[h]! - j;
      run -= take;
      if (st.qNs[h]! <= 0) st.qHead++;
    }
    if (st.qHead > 4096 && st.qHead * 2 > st.qNs.length) {
      st.qNs = st.qNs.slice(st.qHead);
      st.qJ = st.qJ.slice(st.qHead);
      st.qName = st.qName.slice(st.qHead);
      st.qHead = 0;
    }
  }

  /** Every CPU has been simulated to the period's end. */
  private managePeriod(): void {
    const periodS = nsToS(this.periodNs);
    const started = this.started(this.nextPeriod - this.periodNs);
    if (started) this.controlled++;
    this.vms.forEach((st, vm) => {
      if (vm === this.idleVm || st.demandNs === 0) return;
      const w = st.periodJ / periodS;
      if (started) st.afterJ += st.periodJ;
      if (started && st.limit !== null) {
        const el = st.limit * periodS;
        st.stride = this.s.controller === 'adaptive' ? adaptiveStride(st.adaptive, st.periodJ, el, this.shareOf(vm, st)) : paperStride(st.stride, st.periodJ, el, this.s.offset);
        // A VM that had no demand yet drew 0 W in the controlled periods before (settle_s counts
        // from start_s, not from the VM's first period).
        while (st.watts.length < this.controlled - 1) st.watts.push(0);
        st.watts.push(w);
      }
      let backlog = 0;
      for (const vp of st.vps) backlog += vp.backlog;
      // No limit, no work, no energy, no backlog: the row would say nothing (store.sql, cpu_policy).
      const limited = started && st.limit !== null;
      if (!limited && st.periodNs === 0 && st.periodJ === 0 && backlog === 0) return;
      this.ctx.out.cpuPolicy({
        t: ns(this.nextPeriod),
        vm: st.name,
        share: IDLE_STRIDE / st.stride,
        limitWatts: limited ? watts(st.limit!) : null,
        watts: watts(w),
        workS: nsToS(st.periodNs),
        backlogS: nsToS(backlog),
      });
      st.periodJ = 0;
      st.periodNs = 0;
    });
    this.nextPeriod += this.periodNs;
    this.inWindow = this.started(this.nextPeriod - this.periodNs);
  }

  /** The share of its CPUs a VM had in the period just ended: its run time over the CPUs' time. */
  private shareOf(vm: number, st: VmState): number {
    const n = st.vps.length;
    return n > 0 ? st.periodNs / (n * this.periodNs) : 0;
  }

  /** Does the manager period beginning at `from` lie after the limits switch on (start_s)? */
  private started(from: number): boolean {
    return from - this.origin >= sToNs(this.s.start_s);
  }

  finish(run: RunSpan): void {
    const late = startAfterRunNote('policy.cpu.start_s', this.s.start_s, Object.keys(this.s.limits_watts).length, run);
    if (late !== null) this.ctx.note(late);
    if (this.origin !== this.origin) return;
    this.advanceAll(run.t1);
    for (let vm = 0; vm < this.vms.length; vm++) {
      let backlog = 0;
      for (const vp of this.vms[vm]!.vps) backlog += vp.backlog;
      this.backlogAtEnd.set(vm, backlog);
    }
    const { metrics } = this.ctx;
    // The window of every mean power: from the first manager period at or after start_s.
    const from = this.origin + Math.ceil(sToNs(this.s.start_s) / this.periodNs) * this.periodNs;
    const windowNs = run.t1 - from;
    // The last, partial manager period.
    if (this.inWindow) for (const st of this.vms) st.afterJ += st.periodJ;
    this.vms.forEach((st, i) => {
      if (i === this.idleVm || st.demandNs === 0) return;
      const vm = { vm: st.name };
      metrics.write(METRICS.cpuWork, vm, nsToS(st.doneNs));
      metrics.write(METRICS.cpuDemand, vm, nsToS(st.demandNs));
      // What is still queued: work − extra + backlog = demand.
      metrics.write(METRICS.cpuBacklog, vm, nsToS(this.backlogAtEnd.get(i) ?? 0));
      if (this.cpuBound.has(i)) metrics.write(METRICS.cpuExtra, vm, nsToS(st.extraNs));
      metrics.write(METRICS.cpuJoules, vm, st.totalJ);
      if (windowNs > 0) metrics.write(METRICS.cpuMean, vm, powerOf(st.afterJ, windowNs));
      if (st.limit !== null && st.watts.length > 0) {
        const r = settle(st.watts, st.limit, nsToS(this.periodNs));
        // From start_s: the first controlled period begins at the first period boundary after it.
        if (r.settled) metrics.write(METRICS.cpuSettle, vm, r.settleS + nsToS(from - this.origin - sToNs(this.s.start_s)));
        metrics.write(METRICS.cpuSettledMean, vm, r.meanWatts);
        metrics.write(METRICS.cpuMax, vm, r.maxWatts);
        metrics.write(METRICS.cpuOver, vm, r.overLimitFrac);
      }
      // What is still queued of each container's recorded time.
      const left = new Map<string, number>();
      for (let h = st.qHead; h < st.qNs.length; h++) {
        const name = this.names[st.qName[h]!]!;
        left.set(name, (left.get(name) ?? 0) + st.qNs[h]!);
      }
      for (const [container, demand] of st.containerDemand) {
        metrics.write(METRICS.containerDemand, { vm: st.name, container }, nsToS(demand));
        metrics.write(METRICS.containerBacklog, { vm: st.name, container }, nsToS(left.get(container) ?? 0));
      }
      for (const container of new Set([...st.containerDemand.keys(), ...st.containerWork.keys()])) {
        const t = st.containerWork.get(container) ?? 0;
        metrics.write(METRICS.containerWork, { vm: st.name, container }, nsToS(t));
        if (windowNs > 0) metrics.write(METRICS.containerMean, { vm: st.name, container }, powerOf(st.containerJ.get(container) ?? 0, windowNs));
      }
    });
  }
}
