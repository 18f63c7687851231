/**
 * Validation against measured power (DESIGN §1, §6; the paper's DAQ, §4.1): the accounted power of
 * each device per reporting interval (all host-level energy rows of the device) against the mean
 * of the measured samples in that interval. Metrics per device: `validation.<device>.mape` (mean
 * absolute percentage error over the intervals, in percent), `.accounted_watts` and
 * `.measured_watts` (over the run), `.intervals` (how many were compared). Devices that no stage
 * of the pipeline accounts (a disk, without disk-energy) are left out.
 *
 * It sits between the stages and the store as a sink, so it sees every row as written, and reads
 * the measured trace as a stage. It keeps one small record per interval and device until the end
 * of the run (rows for an interval may come late), so its memory grows with the run's length —
 * by a few numbers per interval, the one exception to the streaming rule (documented).
 */
import type { EventSlice, MeasuredBatch } from './events.js';
import type { RunSpan } from './span.js';
import type { ContainerRow, CounterRow, CpuPolicyRow, DiskPolicyRow, EnergyRow, RunSink, Stage } from './stage.js';

export class Validator implements Stage, RunSink {
  readonly name = 'validation' as const;
  readonly consumes = ['measured'] as const;
  private readonly measured = new Map<string, Map<number, [number, number]>>();
  private readonly accounted = new Map<string, Map<number, number>>();

  constructor(
    private readonly inner: RunSink,
    private readonly intervalNs: number,
  ) {}

  energy(row: EnergyRow): void {
    if (row.container === null) {
      let m = this.accounted.get(row.device);
      if (!m) this.accounted.set(row.device, (m = new Map()));
      const k = Math.floor(row.t0 / this.intervalNs);
      m.set(k, (m.get(k) ?? 0) + row.joules);
    }
    this.inner.energy(row);
  }

  counter(row: CounterRow): void {
    this.inner.counter(row);
  }

  diskPolicy(row: DiskPolicyRow): void {
    this.inner.diskPolicy(row);
  }

  cpuPolicy(row: CpuPolicyRow): void {
    this.inner.cpuPolicy(row);
  }

  containerRow(row: ContainerRow): void {
    this.inner.containerRow(row);
  }

  metric(name: string, value: number): void {
    this.inner.metric(name, value);
  }

  push(slice: EventSlice): void {
    const b = slice.batch as MeasuredBatch;
    for (let i = slice.from; i < slice.to; i++) {
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
        const accW = ((acc.get(k) ?? 0) * 1e9) / len;
        ape += Math.abs(accW - meas) / meas;
        n++;
      }
      let accJ = 0;
      for (const j of acc.values()) accJ += j;
      this.inner.metric(`validation.${dev}.mape`, n > 0 ? (100 * ape) / n : NaN);
      this.inner.metric(`validation.${dev}.intervals`, n);
      this.inner.metric(`validation.${dev}.measured_watts`, wN > 0 ? wSum / wN : NaN);
      this.inner.metric(`validation.${dev}.accounted_watts`, duration > 0 ? (accJ * 1e9) / duration : NaN);
    }
  }
}
