/**
 * The benchmark's traces, also replayed by the identity test (test/replay/identity.test.ts): a
 * generated cswitch trace (8 VMs incl. idle, 2 CPUs, 4 events, mean period 0.5 ms), a disk request
 * log over the same span (400 requests/s through the driver VM) and a profile and pipelines for
 * them. Deterministic for a given row count (seed 42).
 */
import fs from 'node:fs';
import path from 'node:path';
import { standardVms, syntheticCswitch } from '../generate/synthetic-cswitch.js';
import { syntheticDisk } from '../generate/synthetic-disk.js';

export const BENCH_EVENTS = ['uops', 'l2_miss', 'branch_miss', 'fp_ops'];
export const FULL_ACCOUNTING = ['cpu-split', 'disk-energy', 'driver-charge', 'virtual-counters'];

export function writeBenchCswitch(file: string, rows: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (const chunk of syntheticCswitch(
      { rows, cpus: 2, vms: standardVms(8, BENCH_EVENTS), events: BENCH_EVENTS, seed: 42, tscHz: 3e9, counterBits: 48, meanPeriodNs: 500_000 },
      65536,
    )) {
      fs.writeSync(fd, chunk);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The disk log over the span of a cswitch trace of `rows` rows (mean period 0.5 ms on 2 CPUs). */
export function writeBenchDisk(file: string, rows: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    const seconds = (rows * 0.5e-3) / 2;
    const clients = standardVms(8, BENCH_EVENTS)
      .filter((v) => v.id.startsWith('vm'))
      .map((v, i) => ({ vm: v.id, perSecond: 400 / 5, bytes: 4096 << (i % 5), op: i % 2 === 0 ? ('R' as const) : ('W' as const) }));
    for (const chunk of syntheticDisk({ startNs: 1_732_400_000_000_000_000n, seconds, clients, rateBps: 2e8, seed: 42 }, 65536)) fs.writeSync(fd, chunk);
  } finally {
    fs.closeSync(fd);
  }
}

/** The bench machine profile in `dir` (machine.json); returns its path. */
export function writeBenchProfile(dir: string): string {
  const profile = path.join(dir, 'machine.json');
  const vms = standardVms(8, BENCH_EVENTS).filter((v) => v.id !== 'idle');
  fs.writeFileSync(
    profile,
    JSON.stringify({
      cpu: { tsc_hz: 3e9, idle_watts: 42, counter_bits: 48, idle_split: 'equal', events: { uops: 4e-9, l2_miss: 2e-7, branch_miss: 5e-8, fp_ops: 6e-9 } },
      disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5e7, rate_window: 50, idle_period_ms: 50 } },
      vms: vms.map((v) => ({ id: v.id, role: v.id === 'core' ? 'core' : v.id === 'drv' ? 'driver' : 'client' })),
      services: [{ id: 'vdisk', driver: 'drv', device: 'disk', clients: vms.filter((v) => v.id.startsWith('vm')).map((v) => v.id) }],
    }),
  );
  return profile;
}

/**
 * A pipeline over the bench traces in `dir`: `stages` over the cswitch trace (and the disk log
 * when given); `policy` as a pipeline file has it. Returns its path.
 */
export function writeBenchPipeline(dir: string, name: string, o: { cswitch: string; disk?: string; stages: readonly string[]; policy?: unknown; intervalMs?: number }): string {
  const profile = writeBenchProfile(dir);
  const p = path.join(dir, `${name}.pipeline.json`);
  const traces = o.disk ? { cswitch: o.cswitch, disk: o.disk } : { cswitch: o.cswitch };
  fs.writeFileSync(p, JSON.stringify({ name, profile, traces, interval_ms: o.intervalMs ?? 100, stages: o.stages, ...(o.policy ? { policy: o.policy } : {}) }));
  return p;
}
