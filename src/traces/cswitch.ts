/**
 * The context-switch PMC log (docs/formats.md): `ts_ns,cpu,vm,tsc,<event>...`, one row per VM
 * switch on a physical CPU with the cumulative counters read at the switch (§3.3.1). The decoder
 * turns consecutive rows of one CPU into periods with counter advances (modulo wrap); `vm` on a row
 * is the VM that ran in the period that ends there. A CPU's first row only opens its first period.
 */
import { newSwitchBatch, type SwitchBatch } from '../core/events.js';
import { resized } from '../core/typed.js';
import type { Machine } from '../core/machine.js';
import { Decoder, type TimeBase } from './decoder.js';
import type { Fields } from './scan.js';
import { PARSED, counterAdvance, formatExact } from './exact.js';
import { nsToMs, ticksIn } from '../core/units.js';

export const MAX_CPU = 4095;
const TSC_BITS = 64;
/** `cpu.tsc_tolerance` when the profile does not set it. */
export const DEFAULT_TSC_TOLERANCE = 0.02;
/**
 * Periods shorter than this are checked against the TSC only to within this much time (timestamps
 * and counters are read apart), longer ones to within `tsc_tolerance`.
 */
const MIN_CHECKED_NS = 1_000_000;
/**
 * `cpu.max_events_per_tick` when the profile does not set it: no hardware event counts more than
 * a few dozen a cycle (retired uops ~8, a turbo clock ~2× the TSC's), so 256 leaves a margin of
 * ten and still refuses a counter that jumped (2^46 uops in 1 ms made 28 kW of CPU active).
 */
export const DEFAULT_MAX_EVENTS_PER_TICK = 256;

/** The most events a counter may advance per ns of a period: `cpu.max_events_per_tick` × tsc_hz. */
export function maxEventsPerNs(machine: Machine): number {
  const cpu = machine.profile.cpu;
  return ticksIn(cpu.max_events_per_tick ?? DEFAULT_MAX_EVENTS_PER_TICK, cpu.tsc_hz);
}

/**
 * The most an event counter may advance in a period of `dt` ns (cswitch.csv and guest.csv): the
 * bound per tick over the period's length by the timestamps (a TSC that stops does not matter),
 * plus 1 ms for the skew of the reads.
 */
export const maxEventAdvance = (perNs: number, dt: number): number => perNs * (dt + MIN_CHECKED_NS);

/** The error text of a counter that advanced beyond `maxEventAdvance` (`what` names it, `since` its previous line). */
export function eventJumpMessage(what: string, since: number, adv: number, dt: number, machine: Machine): string {
  const { tsc_hz: hz, max_events_per_tick: max = DEFAULT_MAX_EVENTS_PER_TICK } = machine.profile.cpu;
  return (
    `${what} advanced ${adv.toExponential(4)} since line ${since}, in ${nsToMs(dt).toFixed(3)} ms: more than the ` +
    `${maxEventAdvance(ticksIn(max, hz), dt).toExponential(4)} that cpu.max_events_per_tick ${max} allows at tsc_hz ${hz} ` +
    `(per tick of the period and 1 ms for the reads' skew): a counter reset or jump, or a corrupt reading`
  );
}

export class CswitchDecoder extends Decoder<SwitchBatch> {
  private readonly nEv: number;
  private readonly bits: number;
  /** The TSC check (docs/formats.md, `cpu.tsc_tolerance`): null with `idle_clock: time`. */
  private readonly tscCheck: { readonly hz: number; readonly tolerance: number; readonly shortSlack: number } | null;
  /** The most events a counter may advance per ns of a period (`cpu.max_events_per_tick` × tsc_hz). */
  private readonly maxEventsPerNs: number;
  private iTs = 0;
  private iCpu = 0;
  private iVm = 0;
  private iTsc = 0;
  private evCol: Int32Array;
  // Per-CPU state of the previous row, indexed by CPU number (grown on demand).
  private seen = new Uint8Array(0);
  private prevT = new Float64Array(0);
  private prevLine = new Float64Array(0);
  private tscHi = new Float64Array(0);
  private tscLo = new Float64Array(0);
  private evHi = new Float64Array(0);
  private evLo = new Float64Array(0);

  constructor(
    file: string,
    base: TimeBase,
    private readonly machine: Machine,
  ) {
    super(file, base, { required: ['ts_ns', 'cpu', 'vm', 'tsc'], events: machine.eventNames }, 'cswitch');
    this.nEv = machine.eventNames.length;
    this.bits = machine.profile.cpu.counter_bits;
    const cpuSpec = machine.profile.cpu;
    this.tscCheck = cpuSpec.idle_clock === 'time' ? null : { hz: cpuSpec.tsc_hz, tolerance: cpuSpec.tsc_tolerance ?? DEFAULT_TSC_TOLERANCE, shortSlack: ticksIn(MIN_CHECKED_NS, cpuSpec.tsc_hz) };
    this.maxEventsPerNs = maxEventsPerNs(machine);
    this.counterRange(this.bits);
    this.evCol = new Int32Array(this.nEv);
  }

  protected newBatch(): SwitchBatch {
    return newSwitchBatch(this.file, this.machine.eventNames.length);
  }

  protected override onHeader(): void {
    this.iTs = this.col('ts_ns');
    this.iCpu = this.col('cpu');
    this.iVm = this.col('vm');
    this.iTsc = this.col('tsc');
    this.machine.eventNames.forEach((e, k) => (this.evCol[k] = this.col(e)));
  }

  /** CPUs seen so far (a CPU whose single row opened a period that never closed too), ascending. */
  override cpus(): number[] {
    const out: number[] = [];
    for (let c = 0; c < this.seen.length; c++) if (this.seen[c]) out.push(c);
    return out;
  }

  private grow(cpu: number): void {
    const n = Math.max(cpu + 1, this.seen.length * 2, 4);
    this.seen = resized(this.seen, n);
    this.prevT = resized(this.prevT, n);
    this.prevLine = resized(this.prevLine, n);
    this.tscHi = resized(this.tscHi, n);
    this.tscLo = resized(this.tscLo, n);
    this.evHi = resized(this.evHi, n * this.nEv);
    this.evLo = resized(this.evLo, n * this.nEv);
  }

  protected decode(f: Fields): void {
    const t = this.time(f, this.iTs);
    // A one-digit CPU number is the common case; anything else goes through the full check.
    const c0 = f.singleByte(this.iCpu) - 48;
    const cpu = c0 >= 0 && c0 <= 9 ? c0 : this.smallInt(f, this.iCpu, MAX_CPU);
    const vm = this.vmIndex(f, this.iVm, this.machine, true);
    this.uint(f, this.iTsc);
    const tHi = PARSED.hi;
    const tLo = PARSED.lo;
    if (cpu >= this.seen.length) this.grow(cpu);
    const nEv = this.nEv;
    const bits = this.bits;
    const { evCol, evHi, evLo } = this;
    const o = cpu * nEv;
    const seen = this.seen[cpu] === 1;
    const b = this.batch;
    const i = b.length;
    const d = i * nEv;
    // One pass over the events: parse, range-check, advance against this CPU's previous row.
    for (let e = 0; e < nEv; e++) {
      const c = evCol[e]!;
      this.counter(f, c);
      const hi = PARSED.hi;
      const lo = PARSED.lo;
      if (seen) {
        const adv = counterAdvance(hi, lo, evHi[o + e]!, evLo[o + e]!, bits);
        if (adv < 0) this.backwards(f, c, cpu, evHi[o + e]!, evLo[o + e]!, bits);
        b.dev[d + e] = adv;
      }
      evHi[o + e] = hi;
      evLo[o + e] = lo;
    }
    if (seen) {
      const t0 = this.prevT[cpu]!;
      if (t < t0) {
        this.fail('E_ORDER', `time goes backwards on cpu ${cpu}: ${f.text(this.iTs)} is before the previous row of that CPU (line ${this.prevLine[cpu]})`, this.iTs);
      }
      const dtsc = counterAdvance(tHi, tLo, this.tscHi[cpu]!, this.tscLo[cpu]!, TSC_BITS);
      if (dtsc < 0) this.backwards(f, this.iTsc, cpu, this.tscHi[cpu]!, this.tscLo[cpu]!, TSC_BITS);
      const chk = this.tscCheck;
      if (chk !== null) {
        // The TSC is the clock of idle energy (§3.2.1): it must run at tsc_hz with the timestamps.
        // A period under MIN_CHECKED_NS may be off by up to that much (the two are read apart),
        // not by more: a jump inside a short period was accounted silently (10^15 ticks in
        // 0.99 ms made 1.4 MW of idle power).
        const expected = ticksIn(t - t0, chk.hz);
        const slack = t - t0 >= MIN_CHECKED_NS ? chk.tolerance * expected : chk.shortSlack;
        if (Math.abs(dtsc - expected) > slack) this.tscJump(f, cpu, t - t0, dtsc, expected, t - t0 >= MIN_CHECKED_NS ? `cpu.tsc_tolerance ${chk.tolerance}` : '1 ms of ticks, the slack of a period under 1 ms');
      }
      // An event counter that jumped within its range is no error of the wrap check, but its
      // energy is impossible: at most max_events_per_tick per TSC tick of the period's length
      // (by the timestamps, so a TSC that stops does not matter), plus 1 ms for the reads' skew.
      const maxAdv = maxEventAdvance(this.maxEventsPerNs, t - t0);
      for (let e = 0; e < nEv; e++) if (b.dev[d + e]! > maxAdv) this.eventJump(f, evCol[e]!, cpu, t - t0, b.dev[d + e]!);
      b.t[i] = t;
      b.t0[i] = t0;
      b.cpu[i] = cpu;
      b.vm[i] = vm;
      b.dtsc[i] = dtsc;
      b.line[i] = this.line;
      b.length = i + 1;
    } else {
      this.seen[cpu] = 1;
    }
    this.prevT[cpu] = t;
    this.prevLine[cpu] = this.line;
    this.tscHi[cpu] = tHi;
    this.tscLo[cpu] = tLo;
  }

  private backwards(f: Fields, c: number, cpu: number, phi: number, plo: number, bits: number): never {
    this.fail(
      'E_COUNTER',
      `counter ${this.columnName(c)} goes backwards or jumps on cpu ${cpu}, from ${formatExact(phi, plo)} (line ${this.prevLine[cpu]}) to ${f.text(c)}, ` +
        `which is no plausible advance of a ${bits}-bit counter (it must advance by less than 2^${bits - 1}, a wrap included)`,
      c,
    );
  }

  private eventJump(f: Fields, c: number, cpu: number, dt: number, adv: number): never {
    this.fail('E_COUNTER', eventJumpMessage(`counter ${this.columnName(c)} of cpu ${cpu}`, this.prevLine[cpu]!, adv, dt, this.machine), c);
  }

  private tscJump(f: Fields, cpu: number, dt: number, dtsc: number, expected: number, beyond: string): never {
    const fmt = (x: number) => (Math.abs(x) >= 1e6 ? x.toExponential(4) : x.toFixed(0));
    this.fail(
      'E_COUNTER',
      `the TSC of cpu ${cpu} advanced ${fmt(dtsc)} ticks since line ${this.prevLine[cpu]}, but ${(nsToMs(dt)).toFixed(3)} ms at tsc_hz ${this.tscCheck!.hz} ` +
        `is ${fmt(expected)} ticks (beyond ${beyond}): a TSC reset or jump, or a wrong tsc_hz` +
        ` (a TSC that stops in deep idle: set cpu.idle_clock to "time")`,
      this.iTsc,
    );
  }
}
