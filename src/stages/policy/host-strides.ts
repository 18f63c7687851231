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
 * With `virtual-counters` and a guest log, the guest's container periods (their virtual TSC, the
 * VM's own time) are queued in order, so the work the VM completes is credited to its containers
 * (`container.<vm>.<container>.work_s`): host-level control slows every task of a guest alike.
 */
import type { ContainerBatch, EventSlice, SwitchBatch } from '../../core/events.js';
import type { RunSpan } from '../../core/span.js';
import type { Stage, StageContext } from '../../core/stage.js';
import { msToNs } from '../../core/units.js';
import { settle } from './settle.js';

export interface CpuPolicySettings {
  period_ms: number;
  start_s: number;
  offset: number;
  limits_watts: Record<string, number>;
  /** VMs that would use all the CPU they get (once seen in the trace): always runnable. */
  cpu_bound: string[];
}

export const CPU_POLICY_DEFAULTS: CpuPolicySettings = { period_ms: 100, start_s: 0, offset: 100, limits_watts: {}, cpu_bound: [] };
export const IDLE_STRIDE = 1000;
const QUANTUM_NS = 1e6;
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
  /** Guest containers: queued (container, ns) segments of its recorded time, and work done. */
  qName: number[];
  qNs: number[];
  qHead: number;
  readonly containerWork: Map<string, number>;
}

export class HostStrides implements Stage {
  /** Whole rounds and idle stretches in one step (see `rounds`); off only to test them. */
  static batching = true;
  readonly name = 'host-strides' as const;
  readonly consumes = ['switch', 'container'] as const;

  private readonly s: CpuPolicySettings;
  private readonly periodNs: number;
  private readonly cpus = new Map<number, Cpu>();
  private readonly vms: VmState[];
  private readonly idleVm: number;
  private origin = NaN;
  private nextPeriod = NaN;
  private names: string[] = [];
  private readonly tscHz: number;
  private readonly cpuBound: Set<number>;
  private readonly backlogAtEnd = new Map<number, number>();

  constructor(private readonly ctx: StageContext) {
    const pol = (ctx.pipeline.policy['cpu'] ?? {}) as Partial<CpuPolicySettings>;
    this.s = { ...CPU_POLICY_DEFAULTS, ...pol, limits_watts: { ...(pol.limits_watts ?? {}) } };
    this.periodNs = Math.max(1, Math.round(msToNs(this.s.period_ms)));
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
      watts: [],
      qName: [],
      qNs: [],
      qHead: 0,
      containerWork: new Map(),
    }));
  }

  /**
   * A period of the trace is demand that arrives when the period ends: rows come in the order of
   * their end, so every CPU can be simulated up to the newest row's end (the merge clock) without
   * ever learning of demand in its simulated past — a CPU whose log stops early, or starts late,
   * holds nobody up.
   */
  push(slice: EventSlice): void {
    if (slice.batch.kind === 'container') return this.containers(slice as EventSlice<ContainerBatch>);
    const b = slice.batch as SwitchBatch;
    const { eventWeights } = this.ctx.machine;
    const nEv = b.nEvents;
    for (let i = slice.from; i < slice.to; i++) {
      const t0 = b.t0[i]!;
      const t1 = b.t[i]!;
      if (this.origin !== this.origin) {
        this.origin = Math.min(t0, this.ctx.span.t0);
        this.nextPeriod = this.origin + this.periodNs;
      }
      this.advanceAll(t1);
      const c = b.cpu[i]!;
      let cpu = this.cpus.get(c);
      if (!cpu) this.cpus.set(c, (cpu = { t: Math.max(this.origin, t1), vps: new Map(), idlePass: 0 }));
      const vm = b.vm[i]!;
      if (vm === this.idleVm || t1 <= t0) continue;
      const st = this.vms[vm]!;
      let e = 0;
      for (let k = 0; k < nEv; k++) e += eventWeights[k]! * b.dev[i * nEv + k]!;
      st.recJ += e;
      st.recNs += t1 - t0;
      st.demandNs += t1 - t0;
      let vp = cpu.vps.get(vm);
      // A processor that wakes up joins at the smallest pass of those runnable (no credit for
      // having slept, no penalty either).
      if (!vp) cpu.vps.set(vm, (vp = { backlog: 0, segNs: [], segJ: [], head: 0, pass: this.minPass(cpu) }));
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

  /** The guest's container periods, in the VM's own time (virtual TSC), queued in order. */
  private containers(slice: EventSlice<ContainerBatch>): void {
    const b = slice.batch;
    this.names = b.names;
    for (let i = slice.from; i < slice.to; i++) {
      const v = b.vdtsc[i]!;
      if (!(v > 0)) continue;
      const st = this.vms[b.vm[i]!]!;
      st.qName.push(b.container[i]!);
      st.qNs.push((v / this.tscHz) * 1e9);
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

  private credit(st: VmState, ns: number): void {
    while (ns > 0 && st.qHead < st.qNs.length) {
      const take = Math.min(ns, st.qNs[st.qHead]!);
      const name = this.names[st.qName[st.qHead]!]!;
      st.containerWork.set(name, (st.containerWork.get(name) ?? 0) + take);
      st.qNs[st.qHead] = st.qNs[st.qHead]! - take;
      ns -= take;
      if (st.qNs[st.qHead]! <= 0) st.qHead++;
    }
    if (st.qHead > 4096 && st.qHead * 2 > st.qNs.length) {
      st.qNs = st.qNs.slice(st.qHead);
      st.qName = st.qName.slice(st.qHead);
      st.qHead = 0;
    }
  }

  /** Every CPU has been simulated to the period's end. */
  private managePeriod(): void {
    const periodS = this.periodNs / 1e9;
    const started = this.nextPeriod - this.origin >= this.s.start_s * 1e9 + this.periodNs;
    this.vms.forEach((st, vm) => {
      if (vm === this.idleVm || st.demandNs === 0) return;
      const watts = st.periodJ / periodS;
      if (started && st.limit !== null) {
        const el = st.limit * periodS;
        if (st.periodJ > el) st.stride += this.s.offset;
        else if (st.periodJ < el) st.stride = Math.max(1, st.stride - this.s.offset);
        st.watts.push(watts);
      }
      let backlog = 0;
      for (const cpu of this.cpus.values()) backlog += cpu.vps.get(vm)?.backlog ?? 0;
      this.ctx.sink.cpuPolicy({
        t: this.nextPeriod,
        vm: st.name,
        share: IDLE_STRIDE / st.stride,
        limitWatts: started ? st.limit : null,
        watts,
        workS: st.periodNs / 1e9,
        backlogS: backlog / 1e9,
      });
      st.periodJ = 0;
      st.periodNs = 0;
    });
    this.nextPeriod += this.periodNs;
  }

  finish(run: RunSpan): void {
    if (this.origin !== this.origin) return;
    this.advanceAll(run.t1);
    for (let vm = 0; vm < this.vms.length; vm++) {
      let backlog = 0;
      for (const cpu of this.cpus.values()) backlog += cpu.vps.get(vm)?.backlog ?? 0;
      this.backlogAtEnd.set(vm, backlog);
    }
    const { sink } = this.ctx;
    const duration = (run.t1 - run.t0) / 1e9;
    this.vms.forEach((st, vm) => {
      if (vm === this.idleVm || st.demandNs === 0) return;
      const p = `cpu.${st.name}`;
      sink.metric(`${p}.work_s`, st.doneNs / 1e9);
      sink.metric(`${p}.demand_s`, st.demandNs / 1e9);
      // What is still queued: work − extra + backlog = demand.
      sink.metric(`${p}.backlog_s`, (this.backlogAtEnd.get(vm) ?? 0) / 1e9);
      if (this.cpuBound.has(vm)) sink.metric(`${p}.extra_s`, st.extraNs / 1e9);
      sink.metric(`${p}.joules`, st.totalJ);
      if (st.limit !== null && st.watts.length > 0) {
        const r = settle(st.watts, st.limit, this.periodNs / 1e9);
        sink.metric(`${p}.settle_s`, r.settleS);
        sink.metric(`${p}.mean_watts`, r.meanWatts);
        sink.metric(`${p}.max_period_watts`, r.maxWatts);
        sink.metric(`${p}.over_limit_frac`, r.overLimitFrac);
      } else sink.metric(`${p}.mean_watts`, duration > 0 ? st.totalJ / duration : 0);
      for (const [c, ns] of st.containerWork) sink.metric(`container.${st.name}.${c}.work_s`, ns / 1e9);
    });
  }
}
