/**
 * Validation against measured power (the paper's DAQ, §4.1; docs/metrics.md): the accounted power of
 * each device per reporting interval (all host-level energy rows of the device) against the mean
 * of the measured samples in that interval. Metrics per device: `validation.<device>.mape` (mean
 * absolute percentage error over the intervals, in percent), `.accounted_watts` and
 * `.measured_watts` (over the run), `.intervals` (how many were compared). Devices that no stage
 * of the pipeline accounts (a disk, without disk-energy) are left out.
 *
 * The replay adds it after the pipeline's stages whenever a measured trace is given: it reads that
 * trace and sees every energy row on its way to the store (taking none). It keeps one small record per interval and device until the end
 * of the run (rows for an interval may come late), so its memory grows with the run's length —
 * by a few numbers per interval, the one exception to the streaming rule (documented).
 */
import type { EventSlice, MeasuredBatch } from '../core/events.js';
import { METRICS } from '../core/metrics.js';
import type { RunSpan } from '../core/span.js';
import { defineStage, type EnergyRow, type Stage, type StageContext } from '../core/stage.js';
import { nsToS, powerOf } from '../core/units.js';
import { WattraceError } from '../core/errors.js';

export class Validator implements Stage {
  private readonly measured = new Map<string, Map<number, [number, number]>>();
  /** The measured trace's file and the span of its samples. */
  private file = '';
  private first = Infinity;
  private last = -Infinity;
  private readonly accounted = new Map<string, Map<number, number>>();
  private readonly intervalNs: number;

  constructor(private readonly ctx: StageContext<unknown>) {
    this.intervalNs = ctx.intervalNs;
  }

  /**
   * Samples that do not overlap the run validate nothing: an error, not a run without a word
   * about it. Samples covering part of the run validate that part: a note says how much.
   */
  private checkOverlap(run: RunSpan): void {
    if (this.first === Infinity) return;
    const f = coveredFraction(this.first, this.last, run);
    const span = `${nsToS(this.first).toFixed(3)} s to ${nsToS(this.last).toFixed(3)} s`;
    const runSpan = `${nsToS(run.t0).toFixed(3)} s to ${nsToS(run.t1).toFixed(3)} s`;
    if (f === 0) {
      throw new WattraceError('E_PIPELINE', `the measured samples (${span} from the run's base time) do not overlap the run (${runSpan}): they validate nothing — is it the recording of another run?`, { file: this.file });
    }
    if (f < 0.999) this.ctx.note(`${this.file}: the measured samples cover ${(100 * f).toFixed(1)} % of the run (${span} of ${runSpan}); the validation compares that part only`);
  }

  energy(row: EnergyRow): boolean {
    if (row.container === null) {
      let m = this.accounted.get(row.device);
      if (!m) this.accounted.set(row.device, (m = new Map()));
      const k = Math.floor(row.t0 / this.intervalNs);
      m.set(k, (m.get(k) ?? 0) + row.joules);
    }
    return false;
  }

  push(slice: EventSlice): void {
    const b = slice.batch as MeasuredBatch;
    this.file = b.file;
    for (let i = slice.from; i < slice.to; i++) {
      if (b.t[i]! < this.first) this.first = b.t[i]!;
      if (b.t[i]! > this.last) this.last = b.t[i]!;
      const dev = b.names[b.device[i]!]!;
      let m = this.measured.get(dev);
      if (!m) this.measured.set(dev, (m = new Map()));
      const k = Math.floor(b.t[i]! / this.intervalNs);
      const c = m.get(k);
      if (c) {
        c[0] += b.watts[i]!;
        c[1]++;
      } else m.set(k, [b.watts[i]!, 1]);
    }
  }

  finish(run: RunSpan): void {
    const I = this.intervalNs;
    const duration = run.t1 - run.t0;
    this.checkOverlap(run);
    for (const [dev, m] of [...this.measured].sort(([a], [b]) => (a < b ? -1 : 1))) {
      // A device no stage of the pipeline accounts (a disk without disk-energy) is not compared.
      const acc = this.accounted.get(dev);
      if (!acc) continue;
      let ape = 0;
      let n = 0;
      let wSum = 0;
      let wN = 0;
      for (const [k, [sum, count]] of m) {
        // Intervals the run covers for at least half their length (samples outside are ignored).
        const len = Math.min((k + 1) * I, run.t1) - Math.max(k * I, run.t0);
        if (len < I / 2) continue;
        wSum += sum;
        wN += count;
        const meas = sum / count;
        if (meas <= 0) continue;
        const accW = powerOf(acc.get(k) ?? 0, len);
        ape += Math.abs(accW - meas) / meas;
        n++;
      }
      let accJ = 0;
      for (const j of acc.values()) accJ += j;
      const device = { device: dev };
      const { metrics } = this.ctx;
      metrics.write(METRICS.valMape, device, n > 0 ? (100 * ape) / n : NaN);
      metrics.write(METRICS.valIntervals, device, n);
      metrics.write(METRICS.valMeasured, device, wN > 0 ? wSum / wN : NaN);
      metrics.write(METRICS.valAccounted, device, duration > 0 ? powerOf(accJ, duration) : NaN);
    }
  }
}

/** How much of `run` the samples of [first, last] cover. */
export function coveredFraction(first: number, last: number, run: RunSpan): number {
  const d = run.t1 - run.t0;
  if (!(d > 0)) return first <= run.t1 && last >= run.t0 ? 1 : 0;
  return Math.max(0, Math.min(last, run.t1) - Math.max(first, run.t0)) / d;
}

/** Not a pipeline stage: the replay adds it, last, whenever a measured trace is given. */
export const VALIDATION = defineStage({
  name: 'validation',
  summary: 'accounted against measured power per device and reporting interval (§4.1)',
  traces: ['measured'],
  reads: [{ port: 'energy', neededBecause: () => null }],
  writes: [],
  settings: () => null,
  create: (ctx) => new Validator(ctx),
});
