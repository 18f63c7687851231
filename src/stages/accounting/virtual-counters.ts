/**
 * Stage 4, virtual-counters: virtualized performance counters (§3.4.1, Figure 6).
 *
 * Each VM sees a private counter that "factors out the events of other, simultaneously running
 * VMs": its reading is the hardware counter minus all advances that occurred on that CPU while
 * other VMs ran, which the hypervisor's counter log records. So a VM's virtual counter advances by
 * exactly its own periods' advances, and over all VMs (with `idle`, the idle processor's halt
 * periods) the virtual advances add up to the hardware advances.
 *
 * - `virtual_counters` rows: per reporting interval, VM and event (`tsc` and the profile's events),
 *   the VM's virtual advance; a period straddling intervals is split in proportion to time.
 * - Guest container logs (read with the hardware counters inside the guest) are translated here:
 *   for a container period [t0, t1] of VM v on CPU c, the virtual advance is the hardware advance
 *   minus the advances of other VMs' periods on c that ended in (t0, t1]. The translated periods
 *   are handed on (the `guest-periods` port) to host-strides and guest-containers. This relies on
 *   the two logs agreeing on time: a guest row is written while its VM runs.
 */
import type { ContainerBatch, EventSlice, SwitchBatch } from '../../core/events.js';
import { IntervalAccumulator, spread } from '../../core/intervals.js';
import { METRICS } from '../../core/metrics.js';
import type { RunSpan } from '../../core/span.js';
import type { GuestPeriods, Stage, StageContext } from '../../core/stage.js';
import { ns } from '../../core/units.js';
import { CpuClocks } from '../../core/cpu-clocks.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class VirtualCounters implements Stage {
  readonly name = 'virtual-counters' as const;
  private readonly nCons: number;
  /** Counters per VM: tsc, then the profile's events. */
  private readonly nCtr: number;
  private readonly acc: IntervalAccumulator;
  private readonly eventNames: readonly string[];
  /** Per CPU: cumulative advances of all periods; per (CPU, VM): of that VM's own periods. */
  private readonly all = new Map<number, Float64Array>();
  private readonly own = new Map<number, Float64Array>();
  /** Per guest lane (vm, cpu): the other VMs' cumulative advances at the lane's last row. */
  private readonly laneOthers = new Map<number, Float64Array>();
  private readonly tmp: Float64Array;
  private readonly clocks = new CpuClocks();
  /** Totals over the run, for the conservation check: hardware and Σ virtual, per counter. */
  readonly hardware: Float64Array;
  translated = 0;
  private guest: Mutable<GuestPeriods> | null = null;

  constructor(private readonly ctx: StageContext<unknown>) {
    const m = ctx.machine;
    this.nCons = m.consumers.length;
    this.eventNames = ['tsc', ...m.eventNames];
    this.nCtr = this.eventNames.length;
    this.tmp = new Float64Array(this.nCtr);
    this.hardware = new Float64Array(this.nCtr);
    this.acc = new IntervalAccumulator(ctx.intervalNs, this.nCons * this.nCtr, (k, s) => this.emit(k, s));
  }

  push(slice: EventSlice): void {
    if (slice.batch.kind === 'switch') this.periods(slice as EventSlice<SwitchBatch>);
    else this.translate(slice as EventSlice<ContainerBatch>);
  }

  private periods(slice: EventSlice<SwitchBatch>): void {
    const b = slice.batch;
    const nEv = b.nEvents;
    const nCtr = this.nCtr;
    const I = this.ctx.intervalNs;
    const adv = this.tmp;
    for (let i = slice.from; i < slice.to; i++) {
      const cpu = b.cpu[i]!;
      const vm = b.vm[i]!;
      const t0 = b.t0[i]!;
      const t1 = b.t[i]!;
      adv[0] = b.dtsc[i]!;
      for (let e = 0; e < nEv; e++) adv[e + 1] = b.dev[i * nEv + e]!;
      const all = this.cumulative(this.all, cpu);
      const own = this.cumulative(this.own, cpu * this.nCons + vm);
      for (let e = 0; e < nCtr; e++) {
        all[e] = all[e]! + adv[e]!;
        own[e] = own[e]! + adv[e]!;
        this.hardware[e] = this.hardware[e]! + adv[e]!;
      }
      const base = vm * nCtr;
      const k0 = Math.floor(t0 / I);
      if (t1 <= t0 || Math.ceil(t1 / I) - 1 <= k0) {
        const s = this.acc.slots(k0);
        for (let e = 0; e < nCtr; e++) s[base + e] = s[base + e]! + adv[e]!;
      } else {
        spread(t0, t1, I, (k, f) => {
          const s = this.acc.slots(k);
          for (let e = 0; e < nCtr; e++) s[base + e] = s[base + e]! + adv[e]! * f;
        });
      }
      this.clocks.see(cpu, t1);
    }
    this.acc.flushBefore(this.clocks.min());
  }

  /** The translated periods of one slice, in arrays owned by this stage (grown when needed). */
  private guestOut(b: ContainerBatch, n: number): Mutable<GuestPeriods> {
    let g = this.guest;
    if (g === null || g.vm.length < n || g.nEvents !== b.nEvents) {
      const cap = Math.max(n, b.capacity);
      g = { length: 0, vm: new Int32Array(cap), cpu: new Int32Array(cap), container: new Int32Array(cap), t0: new Float64Array(cap), t1: new Float64Array(cap), vtsc: new Float64Array(cap), vev: new Float64Array(cap * b.nEvents), nEvents: b.nEvents, names: b.names };
      this.guest = g;
    }
    g.names = b.names;
    g.length = 0;
    return g;
  }

  /** Guest container periods: hardware advances → the VM's virtual advances. */
  private translate(slice: EventSlice<ContainerBatch>): void {
    const b = slice.batch;
    const nEv = b.nEvents;
    const nCtr = this.nCtr;
    const others = this.tmp;
    const g = this.guestOut(b, slice.to - slice.from);
    for (let i = slice.from; i < slice.to; i++) {
      const vm = b.vm[i]!;
      const cpu = b.cpu[i]!;
      const all = this.all.get(cpu);
      const own = this.own.get(cpu * this.nCons + vm);
      for (let e = 0; e < nCtr; e++) others[e] = (all ? all[e]! : 0) - (own ? own[e]! : 0);
      const key = vm * 65536 + cpu;
      let prev = this.laneOthers.get(key);
      if (!prev) {
        prev = Float64Array.from(others);
        this.laneOthers.set(key, prev);
      }
      const o = g.length++;
      g.vm[o] = vm;
      g.cpu[o] = cpu;
      g.container[o] = b.container[i]!;
      g.t0[o] = b.t0[i]!;
      g.t1[o] = b.t[i]!;
      g.vtsc[o] = b.dtsc[i]! - (others[0]! - prev[0]!);
      for (let e = 0; e < nEv; e++) g.vev[o * nEv + e] = b.dev[i * nEv + e]! - (others[e + 1]! - prev[e + 1]!);
      prev.set(others);
      this.translated++;
    }
    this.ctx.emit('guest-periods', g);
  }

  finish(_run: RunSpan): void {
    this.acc.flushAll();
    const { metrics } = this.ctx;
    this.eventNames.forEach((event, i) => metrics.write(METRICS.hardwareAdvance, { event }, this.hardware[i]!));
    metrics.write(METRICS.guestTranslated, {}, this.translated);
  }

  private cumulative(m: Map<number, Float64Array>, key: number): Float64Array {
    let a = m.get(key);
    if (!a) m.set(key, (a = new Float64Array(this.nCtr)));
    return a;
  }

  private emit(k: number, s: Float64Array): void {
    const I = this.ctx.intervalNs;
    const span = this.ctx.span;
    const t0 = Math.max(k * I, span.t0);
    const t1 = Math.min((k + 1) * I, span.t1);
    const { consumers } = this.ctx.machine;
    for (let c = 0; c < this.nCons; c++) {
      for (let e = 0; e < this.nCtr; e++) {
        const advance = s[c * this.nCtr + e]!;
        if (advance !== 0) this.ctx.out.counter({ t0: ns(t0), t1: ns(t1), vm: consumers[c]!, event: this.eventNames[e]!, advance });
      }
    }
  }
}
