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
 * CPU (a VM is runnable while it has backlog: when the trace shows it running, and after, until
 * its delayed work is done). Its active power while running is what it consumed when it ran in
 * the trace (its periods' access energy over their time, so far). Work is delayed, never dropped:
 * completed + backlog = demand.
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

interface Vp {
  backlog: number;
  pass: number;
}

interface Cpu {
  /** Simulated time reached. */
  t: number;
  readonly vps: Map<number, Vp>;
  idlePass: number;
  /** Demand read from the trace but not yet arrived in simulated time: (start, vm, ns). */
  readonly arrT: number[];
  readonly arrVm: number[];
  readonly arrNs: number[];
  arrHead: number;
  /** The trace has shown this CPU up to here. */
  known: number;
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
      const c = b.cpu[i]!;
      let cpu = this.cpus.get(c);
      if (!cpu) this.cpus.set(c, (cpu = { t: this.origin, vps: new Map(), idlePass: 0, arrT: [], arrVm: [], arrNs: [], arrHead: 0, known: t0 }));
      cpu.known = t1;
      const vm = b.vm[i]!;
      if (vm !== this.idleVm && t1 > t0) {
        const st = this.vms[vm]!;
        let e = 0;
        for (let k = 0; k < nEv; k++) e += eventWeights[k]! * b.dev[i * nEv + k]!;
        st.recJ += e;
        st.recNs += t1 - t0;
        st.demandNs += t1 - t0;
        cpu.arrT.push(t0);
        cpu.arrVm.push(vm);
        cpu.arrNs.push(t1 - t0);
      }
    }
    let w = Infinity;
    for (const cpu of this.cpus.values()) if (cpu.known < w) w = cpu.known;
    this.advanceAll(w);
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
      // Demand arrives when the trace shows it starting.
      while (cpu.arrHead < cpu.arrT.length && cpu.arrT[cpu.arrHead]! <= cpu.t) {
        const vm = cpu.arrVm[cpu.arrHead]!;
        let vp = cpu.vps.get(vm);
        // A processor that wakes up joins at the smallest pass of those runnable (no credit for
        // having slept, no penalty either).
        if (!vp) cpu.vps.set(vm, (vp = { backlog: 0, pass: this.minPass(cpu) }));
        else if (vp.backlog <= 0 && !this.cpuBound.has(vm)) vp.pass = Math.max(vp.pass, this.minPass(cpu));
        vp.backlog += cpu.arrNs[cpu.arrHead]!;
        cpu.arrHead++;
      }
      if (cpu.arrHead > 1024 && cpu.arrHead * 2 > cpu.arrT.length) {
        cpu.arrT.splice(0, cpu.arrHead);
        cpu.arrVm.splice(0, cpu.arrHead);
        cpu.arrNs.splice(0, cpu.arrHead);
        cpu.arrHead = 0;
      }
      const next = cpu.arrHead < cpu.arrT.length ? cpu.arrT[cpu.arrHead]! : Infinity;
      const end = Math.min(until, next);
      const slot = Math.min(QUANTUM_NS, end - cpu.t);
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
        cpu.t = end;
        continue;
      }
      if (cpu.idlePass < bestPass) {
        cpu.idlePass += IDLE_STRIDE * (slot / QUANTUM_NS);
        cpu.t += slot;
        continue;
      }
      const vp = cpu.vps.get(best)!;
      const st = this.vms[best]!;
      // A CPU-bound VM runs whenever it is chosen; its backlog is its recorded demand not yet met.
      const run = this.cpuBound.has(best) ? slot : Math.min(slot, vp.backlog);
      vp.backlog = Math.max(0, vp.backlog - run);
      vp.pass += st.stride * (run / QUANTUM_NS);
      const watts = st.recNs > 0 ? (st.recJ * 1e9) / st.recNs : 0;
      const j = (watts * run) / 1e9;
      st.periodJ += j;
      st.periodNs += run;
      st.totalJ += j;
      st.doneNs += run;
      this.credit(st, run);
      cpu.t += run;
    }
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
    const { sink } = this.ctx;
    const duration = (run.t1 - run.t0) / 1e9;
    this.vms.forEach((st, vm) => {
      if (vm === this.idleVm || st.demandNs === 0) return;
      const p = `cpu.${st.name}`;
      sink.metric(`${p}.work_s`, st.doneNs / 1e9);
      sink.metric(`${p}.demand_s`, st.demandNs / 1e9);
      sink.metric(`${p}.backlog_s`, Math.max(0, st.demandNs - st.doneNs) / 1e9);
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
