/**
 * Stage 1, cpu-split: the CPU idle/access split of §3.2.1 and §3.3.1.
 *
 * For each period between two switches on one CPU, with counter advances Δ:
 *   idle energy   = w_tsc · Δtsc, w_tsc = idle_watts / tsc_hz  (the TSC counts halted cycles too)
 *   access energy = Σ_e w_e · Δe                                 (charged to the VM that ran)
 * Idle energy goes, per `idle_split`:
 *   equal   — to all the profile's VMs in equal parts, as the paper's code does
 *             (`vm[id].cpu_idle += weight[0] * pmc[0] / max_vms`);
 *   by-time — to whoever held the CPU in the period, so each VM pays the base power for its own
 *             CPU time and the idle processor's halt time stays with the consumer `idle`.
 * The `idle` VM's periods are halt cycles: their (usually zero) access energy is charged to
 * `idle`, never to a VM, and their idle energy is split like any other.
 * A period that straddles reporting intervals is split in proportion to time.
 */
import type { EventSlice, SwitchBatch } from '../../core/events.js';
import { IntervalAccumulator, spread } from '../../core/intervals.js';
import type { Stage, StageContext } from '../../core/stage.js';

export const CPU_DEVICE = 'cpu';

export class CpuSplit implements Stage {
  readonly name = 'cpu-split' as const;
  readonly consumes = ['switch'] as const;

  private readonly acc: IntervalAccumulator;
  private readonly nCons: number;
  private readonly pool: number;
  private readonly equal: boolean;
  private readonly weights: Float64Array;
  private readonly wTsc: number;
  private lastT = new Float64Array(0);
  private cpuSeen = new Uint8Array(0);
  private minT0 = Infinity;
  private maxT1 = -Infinity;
  /** Totals over the run, for the conservation metrics. */
  idleJoules = 0;
  activeJoules = 0;
  periods = 0;

  constructor(private readonly ctx: StageContext) {
    const m = ctx.machine;
    this.nCons = m.consumers.length;
    this.pool = 2 * this.nCons;
    this.equal = m.profile.cpu.idle_split !== 'by-time';
    this.weights = m.eventWeights;
    this.wTsc = m.tscWeight;
    this.acc = new IntervalAccumulator(ctx.intervalNs, 2 * this.nCons + 1, (k, s) => this.emit(k, s));
  }

  push(slice: EventSlice): void {
    const b = slice.batch as SwitchBatch;
    const { weights, wTsc, equal, pool } = this;
    const nEv = b.nEvents;
    const I = this.ctx.intervalNs;
    for (let i = slice.from; i < slice.to; i++) {
      const cpu = b.cpu[i]!;
      const vm = b.vm[i]!;
      const t0 = b.t0[i]!;
      const t1 = b.t[i]!;
      const eIdle = wTsc * b.dtsc[i]!;
      let eAct = 0;
      const d = i * nEv;
      for (let e = 0; e < nEv; e++) eAct += weights[e]! * b.dev[d + e]!;
      this.idleJoules += eIdle;
      this.activeJoules += eAct;
      const idleSlot = equal ? pool : 2 * vm;
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
      if (cpu >= this.lastT.length) this.growCpus(cpu);
      this.lastT[cpu] = t1;
      this.cpuSeen[cpu] = 1;
    }
    this.periods += slice.to - slice.from;
    this.acc.flushBefore(this.watermark());
  }

  finish(): void {
    this.acc.flushAll();
    const { sink } = this.ctx;
    sink.metric('accounting.cpu.idle_joules', this.idleJoules);
    sink.metric('accounting.cpu.active_joules', this.activeJoules);
    sink.metric('accounting.cpu.periods', this.periods);
  }

  /** Every CPU has reported up to here, so earlier intervals are complete. */
  private watermark(): number {
    let w = Infinity;
    for (let c = 0; c < this.lastT.length; c++) if (this.cpuSeen[c] && this.lastT[c]! < w) w = this.lastT[c]!;
    return w === Infinity ? -Infinity : w;
  }

  private growCpus(cpu: number): void {
    const n = Math.max(cpu + 1, 2 * this.lastT.length);
    const t = new Float64Array(n);
    t.set(this.lastT);
    this.lastT = t;
    const s = new Uint8Array(n);
    s.set(this.cpuSeen);
    this.cpuSeen = s;
  }

  private emit(k: number, s: Float64Array): void {
    const I = this.ctx.intervalNs;
    const t0 = Math.max(k * I, this.minT0);
    const t1 = Math.min((k + 1) * I, this.maxT1);
    const { consumers, vmCount } = this.ctx.machine;
    const share = this.equal ? s[this.pool]! / vmCount : 0;
    for (let c = 0; c < this.nCons; c++) {
      const consumer = consumers[c]!;
      const idle = s[2 * c]! + (c < vmCount ? share : 0);
      if (idle !== 0) this.ctx.sink.energy({ t0, t1, consumer, container: null, via: null, device: CPU_DEVICE, kind: 'idle', joules: idle });
      const active = s[2 * c + 1]!;
      if (active !== 0) this.ctx.sink.energy({ t0, t1, consumer, container: null, via: null, device: CPU_DEVICE, kind: 'active', joules: active });
    }
  }
}
