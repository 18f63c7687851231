/**
 * Stage 1, cpu-split: the CPU idle/access split of §3.2.1 and §3.3.1.
 *
 * For each period between two switches on one CPU, with counter advances Δ:
 *   idle energy   = w_tsc · Δtsc, w_tsc = idle_watts / tsc_hz  (the TSC counts halted cycles too;
 *                   with `idle_clock: time`, for a TSC that stops in deep idle: idle_watts · Δt)
 *   access energy = Σ_e w_e · Δe                                 (charged to the VM that ran)
 * Idle energy goes to the profile's VMs, per `idle_split`:
 *   equal   — in equal parts, as the paper's code does (`vm[id].cpu_idle += weight[0] * pmc[0] /
 *             max_vms`), whoever ran;
 *   by-time — in proportion to CPU time: a VM's period pays its own idle energy, and the idle
 *             energy of halt periods is shared in proportion to each VM's CPU time over the run.
 * The `idle` VM's periods are halt cycles: their (usually zero) access energy is charged to
 * `idle`, never to a VM. A period that straddles reporting intervals is split in proportion to
 * time. Time within the run when a CPU has no open period (before its first row, after its last)
 * still costs idle_watts: that energy is kept as `(unattributed)`, so the CPU's energy in the
 * table is n_cpus × idle_watts × duration + Σ access (with the TSC as the clock of idle energy).
 *
 * Each period's idle and access energy is also handed on as it is computed (the `cpu-periods`
 * port), so driver-charge and host-strides use the same figures instead of weighing the counters
 * again.
 */
import { BATCH_CAPACITY, type EventSlice, type SwitchBatch } from '../../core/events.js';
import { IntervalAccumulator, spread } from '../../core/intervals.js';
import { CPU_DEVICE, UNATTRIBUTED } from '../../core/machine.js';
import { METRICS } from '../../core/metrics.js';
import type { RunSpan } from '../../core/span.js';
import type { CpuPeriods, Stage, StageContext } from '../../core/stage.js';
import { resized } from '../../core/typed.js';
import { energyOf, joules, ns } from '../../core/units.js';
import { CpuClocks } from '../../core/cpu-clocks.js';

export class CpuSplit implements Stage {
  readonly name = 'cpu-split' as const;
  readonly consumes = ['switch'] as const;

  private readonly acc: IntervalAccumulator;
  private out: { -readonly [K in keyof CpuPeriods]: CpuPeriods[K] } | null = null;
  private readonly nCons: number;
  /** Slot of the idle energy still to be shared among the VMs (all of it with `equal`). */
  private readonly pool: number;
  private readonly equal: boolean;
  private readonly weights: Float64Array;
  private readonly wTsc: number;
  private firstT0 = new Float64Array(0);
  private readonly clocks = new CpuClocks();
  private minT0 = Infinity;
  private maxT1 = -Infinity;
  /** by-time: CPU time of each consumer (ns), and the halt-period idle energy per interval. */
  private readonly cpuTime: Float64Array;
  private haltK: number[] = [];
  private haltJ: number[] = [];
  /** Totals over the run, for the conservation metrics. */
  idleJoules = 0;
  activeJoules = 0;
  periods = 0;

  constructor(private readonly ctx: StageContext<unknown>) {
    const m = ctx.machine;
    this.nCons = m.consumers.length;
    this.pool = 2 * this.nCons;
    this.equal = m.profile.cpu.idle_split !== 'by-time';
    this.weights = m.eventWeights;
    this.wTsc = m.tscWeight;
    this.cpuTime = new Float64Array(this.nCons);
    this.acc = new IntervalAccumulator(ctx.intervalNs, 2 * this.nCons + 1, (k, s) => this.emit(k, s));
  }

  /** The records handed on for a slice of `n` rows, in arrays this stage owns. */
  private outFor(n: number): { -readonly [K in keyof CpuPeriods]: CpuPeriods[K] } {
    if (this.out === null || this.out.t0.length < n) {
      const c = Math.max(n, BATCH_CAPACITY);
      this.out = { length: 0, cpu: new Int32Array(c), vm: new Int32Array(c), t0: new Float64Array(c), t1: new Float64Array(c), idleJ: new Float64Array(c), activeJ: new Float64Array(c) };
    }
    this.out.length = 0;
    return this.out;
  }

  push(slice: EventSlice): void {
    const b = slice.batch as SwitchBatch;
    const { weights, wTsc, equal, pool, cpuTime } = this;
    const idleVm = this.ctx.machine.idleIndex;
    const byTime = this.ctx.machine.profile.cpu.idle_clock === 'time';
    const idleWatts = this.ctx.machine.profile.cpu.idle_watts;
    const nEv = b.nEvents;
    const I = this.ctx.intervalNs;
    const out = this.outFor(slice.to - slice.from);
    for (let i = slice.from; i < slice.to; i++) {
      const cpu = b.cpu[i]!;
      const vm = b.vm[i]!;
      const t0 = b.t0[i]!;
      const t1 = b.t[i]!;
      // The TSC counts halted cycles too (§3.2.1); where it stops in deep idle, time does.
      const eIdle = byTime ? energyOf(idleWatts, t1 - t0) : wTsc * b.dtsc[i]!;
      let eAct = 0;
      const d = i * nEv;
      for (let e = 0; e < nEv; e++) eAct += weights[e]! * b.dev[d + e]!;
      this.idleJoules += eIdle;
      this.activeJoules += eAct;
      const o = out.length++;
      out.cpu[o] = cpu;
      out.vm[o] = vm;
      out.t0[o] = t0;
      out.t1[o] = t1;
      out.idleJ[o] = eIdle;
      out.activeJ[o] = eAct;
      const idleSlot = equal || vm === idleVm ? pool : 2 * vm;
      cpuTime[vm] = cpuTime[vm]! + (t1 - t0);
      const k0 = Math.floor(t0 / I);
      if (t1 <= t0 || Math.ceil(t1 / I) - 1 <= k0) {
        const s = this.acc.slots(k0);
        s[idleSlot] = s[idleSlot]! + eIdle;
        s[2 * vm + 1] = s[2 * vm + 1]! + eAct;
      } else {
        spread(t0, t1, I, (k, f) => {
          const s = this.acc.slots(k);
          s[idleSlot] = s[idleSlot]! + eIdle * f;
          s[2 * vm + 1] = s[2 * vm + 1]! + eAct * f;
        });
      }
      if (t0 < this.minT0) this.minT0 = t0;
      if (t1 > this.maxT1) this.maxT1 = t1;
      if (this.clocks.see(cpu, t1)) {
        if (cpu >= this.firstT0.length) this.firstT0 = resized(this.firstT0, Math.max(cpu + 1, 2 * this.firstT0.length));
        this.firstT0[cpu] = t0;
      }
    }
    this.periods += slice.to - slice.from;
    this.acc.flushBefore(this.clocks.min());
    this.ctx.emit('cpu-periods', out);
  }

  finish(run: RunSpan): void {
    this.acc.flushAll();
    const { metrics, machine } = this.ctx;
    if (!this.equal) this.shareHaltEnergy(run);
    // Time a CPU spent outside its logged periods: idle power, owner unknown.
    const idleWatts = machine.profile.cpu.idle_watts;
    let unattributed = 0;
    // Summed per interval over the CPUs first: one row per interval.
    const byK = new Map<number, number>();
    const gap = (a: number, b: number) => {
      if (b <= a) return;
      const j = energyOf(idleWatts, b - a);
      unattributed += j;
      spread(a, b, this.ctx.intervalNs, (k, f) => byK.set(k, (byK.get(k) ?? 0) + j * f));
    };
    const logged = new Set<number>();
    for (const [c, last] of this.clocks.entries()) {
      logged.add(c);
      gap(run.t0, this.firstT0[c]!);
      gap(last, run.t1);
    }
    // A CPU whose log is a single row has no period: all of its time is unlogged.
    let lone = 0;
    for (const c of run.cpus ?? []) {
      if (logged.has(c)) continue;
      gap(run.t0, run.t1);
      lone++;
    }
    for (const k of [...byK.keys()].sort((x, y) => x - y)) this.row(k, UNATTRIBUTED, 'idle', byK.get(k)!, run);
    this.ctx.account(CPU_DEVICE, this.idleJoules + unattributed + this.activeJoules);
    metrics.write(METRICS.cpuIdle, {}, this.idleJoules + unattributed);
    metrics.write(METRICS.cpuActive, {}, this.activeJoules);
    metrics.write(METRICS.cpuUnlogged, {}, unattributed);
    metrics.write(METRICS.cpuPeriods, {}, this.periods);
    metrics.write(METRICS.cpuCount, {}, this.clocks.count + lone);
  }

  /** by-time: the idle energy of halt periods, shared by the VMs' CPU time over the whole run. */
  private shareHaltEnergy(run: RunSpan): void {
    const { consumers, vmCount } = this.ctx.machine;
    let busy = 0;
    for (let c = 0; c < vmCount; c++) busy += this.cpuTime[c]!;
    for (let n = 0; n < this.haltK.length; n++) {
      const k = this.haltK[n]!;
      const j = this.haltJ[n]!;
      for (let c = 0; c < vmCount; c++) {
        const share = busy > 0 ? this.cpuTime[c]! / busy : 1 / vmCount;
        if (share > 0) this.row(k, consumers[c]!, 'idle', j * share, run);
      }
    }
    this.haltK = [];
    this.haltJ = [];
  }

  private row(k: number, consumer: string, kind: 'idle' | 'active', j: number, span?: RunSpan): void {
    if (j === 0) return;
    const I = this.ctx.intervalNs;
    const t0 = Math.max(k * I, span ? span.t0 : this.minT0);
    const t1 = Math.min((k + 1) * I, span ? span.t1 : this.maxT1);
    this.ctx.out.energy({ t0: ns(t0), t1: ns(t1), consumer, container: null, via: null, device: CPU_DEVICE, kind, joules: joules(j) });
  }

  private emit(k: number, s: Float64Array): void {
    const { consumers, vmCount } = this.ctx.machine;
    const pool = s[this.pool]!;
    let share = 0;
    if (this.equal) share = pool / vmCount;
    else if (pool !== 0) {
      this.haltK.push(k);
      this.haltJ.push(pool);
    }
    for (let c = 0; c < this.nCons; c++) {
      this.row(k, consumers[c]!, 'idle', s[2 * c]! + (c < vmCount ? share : 0));
      this.row(k, consumers[c]!, 'active', s[2 * c + 1]!);
    }
  }
}
