/**
 * A small machine simulator for the `generate` scenarios (README.md, generate). It plays the part
 * of the real machine: it decides what runs when, writes the logs the hypervisor and the driver
 * would have written, and keeps its own ground truth of the power each device drew, which a 1 kHz
 * DAQ then samples with noise (`measured.csv`).
 *
 * The truth is deliberately not the accounting's model: the CPU's idle power is off by a small
 * calibration error, a running VM's active power grows slightly superlinearly with its intensity
 * (the accounting's event weights are linear), and the disk's electronics draw a little beyond
 * the two-state model. So validation (accounted vs measured) is not circular.
 */
import { energyOf, msToNs, nsToMs, perSecond, ticksIn } from '../core/units.js';
import { prng } from './synthetic-cswitch.js';

/** Gaussian noise from a uniform PRNG (Box–Muller). */
export function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Energy per 1 ms bin of one device, the ground truth the DAQ samples. */
export class TruthBins {
  private bins = new Float64Array(1024);
  /** Bins written so far (the run's length in ms, rounded up). */
  length = 0;

  /** Adds `joules` spread evenly over [t0, t1) ns. */
  add(t0: number, t1: number, joules: number): void {
    if (joules === 0) return;
    if (t1 <= t0) {
      this.addBin(Math.floor(nsToMs(t0)), joules);
      return;
    }
    const b0 = Math.floor(nsToMs(t0));
    const b1 = Math.ceil(nsToMs(t1)) - 1;
    if (b0 === b1) {
      this.addBin(b0, joules);
      return;
    }
    for (let b = b0; b <= b1; b++) {
      const a = Math.max(t0, msToNs(b));
      const e = Math.min(t1, msToNs(b + 1));
      if (e > a) this.addBin(b, (joules * (e - a)) / (t1 - t0));
    }
  }

  /** Adds `watts` of constant power over [t0, t1) ns. */
  power(t0: number, t1: number, watts: number): void {
    this.add(t0, t1, energyOf(watts, t1 - t0));
  }

  get(b: number): number {
    return this.bins[b] ?? 0;
  }

  private addBin(b: number, j: number): void {
    if (b >= this.bins.length) {
      const n = new Float64Array(Math.max(b + 1, 2 * this.bins.length));
      n.set(this.bins);
      this.bins = n;
    }
    this.bins[b] = this.bins[b]! + j;
    if (b + 1 > this.length) this.length = b + 1;
  }
}

export interface CpuTruth {
  tscHz: number;
  /** The accounting profile's idle power and event weights (what calibration found). */
  idleWatts: number;
  weights: Record<string, number>;
  /** Share of a segment's active energy per event (sums to 1). */
  mix: Record<string, number>;
  /** Truth: the idle power is off by this fraction (calibration error). */
  idleError: number;
  /** Truth: active power × (1 + superlinear · P / 50 W), P the segment's active power. */
  superlinear: number;
}

/**
 * One physical CPU: VMs run segments one after the other; the log gets a row at every switch
 * (docs/formats.md: the VM that ran in the period ending at the row, cumulative counters).
 */
export class CpuSim {
  t = 0;
  private readonly counters: Record<string, number>;
  private readonly events: string[];
  private readonly rows: string[] = [];
  private tsc0 = 7_000_000_000_000;
  truthActiveJ = 0;

  constructor(
    private readonly o: CpuTruth,
    readonly truth: TruthBins,
    private readonly startNs: bigint,
    private readonly cpu = 0,
    private readonly counterStart = 1_000_003,
  ) {
    this.events = Object.keys(o.weights);
    this.counters = Object.fromEntries(this.events.map((e, i) => [e, this.counterStart * (i + 1)]));
    this.rows.push(this.row('idle'));
  }

  header(): string {
    return `ts_ns,cpu,vm,tsc,${this.events.join(',')}`;
  }

  /**
   * `vm` runs for `ns`, spending `activeJ` of active energy (as counted by the profile's
   * weights); `row: false` keeps it running (no switch yet), see switchRow.
   */
  run(vm: string, ns: number, activeJ: number, row = true): void {
    if (ns <= 0) return;
    const t0 = this.t;
    this.t += ns;
    for (const e of this.events) this.counters[e] = this.counters[e]! + Math.round((activeJ * this.o.mix[e]!) / this.o.weights[e]!);
    const p = perSecond(activeJ, ns);
    const truthJ = activeJ * (1 + (this.o.superlinear * p) / 50);
    this.truthActiveJ += truthJ;
    this.truth.add(t0, this.t, truthJ);
    this.truth.power(t0, this.t, this.o.idleWatts * (1 + this.o.idleError));
    if (row) this.rows.push(this.row(vm));
  }

  /** The switch away from `vm`, which has run since the last row. */
  switchRow(vm: string): void {
    this.rows.push(this.row(vm));
  }

  /** A guest container log row (docs/formats.md) read now: `ts_ns,vm,cpu,container,tsc,<events>`. */
  guestRow(vm: string, container: string): string {
    const [ts, cpu, , ...rest] = this.row(vm).split(',');
    return [ts, vm, cpu, container, ...rest].join(',');
  }

  /** The idle processor halts for `ns`. */
  halt(ns: number): void {
    if (ns <= 0) return;
    const t0 = this.t;
    this.t += ns;
    this.truth.power(t0, this.t, this.o.idleWatts * (1 + this.o.idleError));
    this.rows.push(this.row('idle'));
  }

  /** Halts until `t` (no row when already there). */
  haltUntil(t: number): void {
    if (t > this.t) this.halt(t - this.t);
  }

  csv(): string {
    return `${this.header()}\n${this.rows.join('\n')}\n`;
  }

  private row(vm: string): string {
    const tsc = this.tsc0 + Math.round(ticksIn(this.t, this.o.tscHz));
    return `${this.startNs + BigInt(Math.round(this.t))},${this.cpu},${vm},${tsc},${this.events.map((e) => this.counters[e]).join(',')}`;
  }
}

/** What the DAQ saw: per 1 ms bin and device, mean power plus Gaussian noise (σ per device). */
export function measuredCsv(startNs: bigint, devices: { id: string; truth: TruthBins; noiseW: number }[], seed: number, untilNs: number): string {
  const noise = gaussian(prng(seed ^ 0x5eed));
  const out = ['ts_ns,device,watts'];
  const n = Math.floor(nsToMs(untilNs));
  for (let b = 0; b < n; b++) {
    // Sampled at the middle of the bin: the average power over the millisecond around it.
    const ts = startNs + BigInt(msToNs(b) + 500_000);
    for (const d of devices) {
      const w = Math.max(0, d.truth.get(b) * 1e3 + d.noiseW * noise());
      out.push(`${ts},${d.id},${w.toFixed(4)}`);
    }
  }
  return out.join('\n') + '\n';
}
