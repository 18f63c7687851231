/** A RunSink that keeps everything in memory: the batch adapter's sink, used by tests. */
import { catalogueEntriesFor } from '../core/metrics.js';
import type { ContainerRow, CounterRow, CpuPolicyRow, DiskPolicyRow, EnergyRow, RunSink } from '../core/stage.js';

export class MemorySink implements RunSink {
  readonly rows: EnergyRow[] = [];
  readonly counters: CounterRow[] = [];
  readonly diskPolicyRows: DiskPolicyRow[] = [];
  readonly cpuPolicyRows: CpuPolicyRow[] = [];
  readonly containerRows: ContainerRow[] = [];
  readonly metrics = new Map<string, number>();

  energy(row: EnergyRow): void {
    this.rows.push(row);
  }

  counter(row: CounterRow): void {
    this.counters.push(row);
  }

  diskPolicy(row: DiskPolicyRow): void {
    this.diskPolicyRows.push(row);
  }

  cpuPolicy(row: CpuPolicyRow): void {
    this.cpuPolicyRows.push(row);
  }

  containerRow(row: ContainerRow): void {
    this.containerRows.push(row);
  }

  /** As the replay's sink: a name outside the catalogue, or written twice, is a bug. */
  metric(name: string, value: number): void {
    if (catalogueEntriesFor(name).length === 0) throw new Error(`metric '${name}' is not in the metrics catalogue`);
    if (this.metrics.has(name)) throw new Error(`metric '${name}' was written twice in one run`);
    this.metrics.set(name, value);
  }

  /** Joules summed by `key(row)` over host-level rows. */
  sumBy(key: (r: EnergyRow) => string): Map<string, number> {
    const m = new Map<string, number>();
    for (const r of this.rows) if (r.container === null) m.set(key(r), (m.get(key(r)) ?? 0) + r.joules);
    return m;
  }

  total(filter: (r: EnergyRow) => boolean = () => true): number {
    let s = 0;
    for (const r of this.rows) if (r.container === null && filter(r)) s += r.joules;
    return s;
  }
}
