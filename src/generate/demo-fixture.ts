/**
 * The demo fixtures (fixtures/demo/cswitch.csv, disk.csv): 10 s of a 2-CPU machine running the
 * hypervisor's core, a disk driver VM, two clients and the idle processor, and the clients' disk
 * requests through the driver. `npm run fixtures`
 * rewrites it; a test checks that the committed file is exactly this generator's output.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../core/json.js';
import { syntheticCswitch, type SyntheticCswitchOptions } from './synthetic-cswitch.js';
import { syntheticDisk, type SyntheticDiskOptions } from './synthetic-disk.js';

export const DEMO_OPTIONS: SyntheticCswitchOptions = {
  rows: 5000,
  cpus: 2,
  seed: 2007,
  tscHz: 3.0e9,
  counterBits: 48,
  meanPeriodNs: 4_000_000,
  events: ['uops', 'l2_miss'],
  // The counters of this log start 50 million events below the 48-bit wrap, so it wraps early on.
  startBelowWrap: 50_000_000,
  vms: [
    { id: 'core', weight: 0.5, rates: { uops: 0.6, l2_miss: 0.002 } },
    { id: 'drv', weight: 1.5, rates: { uops: 1.1, l2_miss: 0.004 } },
    { id: 'vm1', weight: 2.5, rates: { uops: 2.2, l2_miss: 0.001 } },
    { id: 'vm2', weight: 1.5, rates: { uops: 1.4, l2_miss: 0.012 } },
    { id: 'idle', weight: 2.0, rates: {} },
  ],
};

/**
 * The disk log: after 1.5 quiet seconds (which show the driver's baseline),
 * vm1 reads 4 KB blocks often and vm2 writes 64 KB blocks, until the CPU log ends.
 */
export const DEMO_DISK_OPTIONS: SyntheticDiskOptions = {
  startNs: 1_732_400_001_500_000_000n,
  seconds: 8.4,
  rateBps: 5.0e7,
  seed: 2007,
  clients: [
    { vm: 'vm1', perSecond: 45, bytes: 4096, op: 'R' },
    { vm: 'vm2', perSecond: 15, bytes: 65536, op: 'W', container: 'bzip2-a' },
  ],
};

export const DEMO_CSWITCH = path.join(PROJECT_ROOT, 'fixtures', 'demo', 'cswitch.csv');
export const DEMO_DISK = path.join(PROJECT_ROOT, 'fixtures', 'demo', 'disk.csv');

/**
 * The driver's work for the requests (§3.3.3): 1e-2 J + 2e-7 J per byte of CPU energy each (at the
 * profile's 4e-9 J per uop), done in the driver's first period after the request completes.
 */
export const DEMO_DRIVER_COST = (bytes: number): number => 1e-2 + 2e-7 * bytes;

export function demoCswitchText(): string {
  const requests = demoDiskText()
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((l) => l.split(','))
    .map((f) => ({ t: BigInt(f[0]!), bytes: Number(f[4]) }));
  let next = 0;
  const work = (vm: string, to: bigint) => {
    if (vm !== 'drv') return null;
    let joules = 0;
    while (next < requests.length && requests[next]!.t <= to) joules += DEMO_DRIVER_COST(requests[next++]!.bytes);
    return { uops: joules / 4.0e-9 };
  };
  return [...syntheticCswitch({ ...DEMO_OPTIONS, work })].join('');
}

export function demoDiskText(): string {
  return [...syntheticDisk(DEMO_DISK_OPTIONS)].join('');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(PROJECT_ROOT, 'dist', 'generate', 'demo-fixture.js')) {
  fs.writeFileSync(DEMO_CSWITCH, demoCswitchText());
  fs.writeFileSync(DEMO_DISK, demoDiskText());
  console.log(`wrote ${DEMO_CSWITCH} and ${DEMO_DISK}`);
}
