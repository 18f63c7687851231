/**
 * The demo fixture (fixtures/demo/cswitch.csv): 10 s of a 2-CPU machine running the
 * hypervisor's core, a disk driver VM, two clients and the idle processor. `npm run fixtures`
 * rewrites it; a test checks that the committed file is exactly this generator's output.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../core/json.js';
import { syntheticCswitch, type SyntheticCswitchOptions } from './synthetic-cswitch.js';

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

export const DEMO_CSWITCH = path.join(PROJECT_ROOT, 'fixtures', 'demo', 'cswitch.csv');

export function demoCswitchText(): string {
  return [...syntheticCswitch(DEMO_OPTIONS)].join('');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(PROJECT_ROOT, 'dist', 'generate', 'demo-fixture.js')) {
  fs.writeFileSync(DEMO_CSWITCH, demoCswitchText());
  console.log(`wrote ${DEMO_CSWITCH}`);
}
