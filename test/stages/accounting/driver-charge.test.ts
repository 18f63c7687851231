import { describe, expect, it } from 'vitest';
import { resolveProfile, type Profile } from '../../../src/core/profile.js';
import { driverScenario } from '../../../src/generate/driver-scenario.js';
import { cells, relDiff, replayTexts } from '../../helpers.js';

/** One CPU at 24 W idle shared equally by 3 VMs: each VM's idle share is 8 W (Figure 5's driver). */
function fig5Profile(): Profile {
  return {
    cpu: { tsc_hz: 1e9, idle_watts: 24, counter_bits: 48, idle_split: 'equal', events: { uops: 1e-9 } },
    disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5e7, rate_window: 50, idle_period_ms: 50 } },
    vms: [
      { id: 'drv', role: 'driver' },
      { id: 'vm1', role: 'client' },
      { id: 'vm2', role: 'client' },
    ],
    services: [{ id: 'vdisk', driver: 'drv', device: 'disk', clients: ['vm1', 'vm2'] }],
  };
}

const STAGES = ['cpu-split', 'disk-energy', 'driver-charge'] as const;

describe('driver-charge (Figure 5)', () => {
  it('a driver with an 8 W CPU baseline serving two clients charges 4 W of CPU idle to each', async () => {
    const m = resolveProfile(fig5Profile(), 'fig5.json');
    const sc = driverScenario({
      seconds: 20,
      quietS: 2,
      driver: 'drv',
      uopJoules: 1e-9,
      cost: () => 2e-4,
      clients: [
        { vm: 'vm1', perSecond: 40, bytes: 4096 },
        { vm: 'vm2', perSecond: 40, bytes: 4096 },
      ],
    });
    const sink = await replayTexts(m, { cswitch: sc.cswitch, disk: sc.disk }, STAGES);
    const c = cells(sink);
    const T = sc.durationNs / 1e9;
    expect(sink.metrics.get('accounting.driver.drv.baseline_watts')).toBeCloseTo(8, 9);
    expect(relDiff(c.get('vm1|drv|cpu|idle')! / T, 4)).toBeLessThan(1e-9);
    expect(relDiff(c.get('vm2|drv|cpu|idle')! / T, 4)).toBeLessThan(1e-9);
    // Nothing stays with the driver; its active energy is what the scenario spent, split evenly.
    expect([...c.keys()].filter((k) => k.startsWith('drv|'))).toEqual([]);
    const spent = sc.costBy.get('vm1')! + sc.costBy.get('vm2')!;
    const a1 = c.get('vm1|drv|cpu|active')!;
    const a2 = c.get('vm2|drv|cpu|active')!;
    expect(relDiff(a1 + a2, spent)).toBeLessThan(1e-9);
    const share1 = sc.requestsBy.get('vm1')! / (sc.requestsBy.get('vm1')! + sc.requestsBy.get('vm2')!);
    expect(Math.abs(a1 / (a1 + a2) - share1)).toBeLessThan(0.02);
  });
});
