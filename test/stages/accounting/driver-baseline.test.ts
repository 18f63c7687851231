/**
 * driver-charge's baseline (§3.3.3) on the traces real recordings give: a driver that is never
 * quiet, one that is quiet only at the end, and the estimate's formula by hand.
 */
import { describe, expect, it } from 'vitest';
import { resolveProfile } from '../../../src/core/profile.js';
import type { Profile } from '../../../src/core/machine.js';
import { driverScenario } from '../../../src/generate/driver-scenario.js';
import { addWindow, emptyStats, estimateBaseline, leastSquares, MIN_QUIET_WINDOWS } from '../../../src/stages/accounting/driver-baseline.js';
import { cells, relDiff, replayTexts } from '../../helpers.js';

const STAGES = ['cpu-split', 'disk-energy', 'driver-charge'] as const;
const W = 50e6; // the default baseline window, 50 ms

/** One CPU idling at 24 W; a driver serving three clients: 4 VMs, so each VM's idle share is 6 W. */
function threeClients(): Profile {
  return {
    cpu: { tsc_hz: 1e9, idle_watts: 24, counter_bits: 48, idle_split: 'equal', events: { uops: 1e-9 } },
    disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5e7, rate_window: 50, idle_period_ms: 50 } },
    vms: ['drv', 'vm1', 'vm2', 'vm3'].map((id) => ({ id, role: id === 'drv' ? ('driver' as const) : ('client' as const) })),
    services: [{ id: 'vdisk', driver: 'drv', device: 'disk', clients: ['vm1', 'vm2', 'vm3'] }],
  };
}

describe('the baseline estimate by hand', () => {
  it('prefers enough quiet time, wherever it lies', () => {
    // 12 quiet windows (0.6 s) with 0.03 J each: 0.03 J / 50 ms = 0.6 W.
    const st = emptyStats();
    st.quietJ = 12 * 0.03;
    st.quietNs = 12 * W;
    st.readJ = 10;
    st.coveredNs = 10e9;
    expect(MIN_QUIET_WINDOWS).toBeLessThanOrEqual(12);
    expect(estimateBaseline(st, W, null)).toMatchObject({ watts: 0.6, source: 'quiet' });
    expect(estimateBaseline(st, W, 2)).toMatchObject({ watts: 2, source: 'given' });
  });

  it('without enough quiet time, the intercept of energy on requests', () => {
    // Windows with n = 0..5 requests of 4 mJ on a 0.1 J baseline per window (2 W): E = 0.1 + 0.004 n.
    const st = emptyStats();
    for (let n = 0; n <= 5; n++) addWindow(st, n, 4096 * n, 0.1 + 0.004 * n);
    st.readJ = 100;
    st.coveredNs = 10e9;
    const b = estimateBaseline(st, W, null);
    expect(b.source).toBe('fit');
    expect(b.watts).toBeCloseTo(2, 9);
    // per-byte: E = 0.1 + 0.001 n + 1e-6 bytes with mixed sizes: the intercept is still 0.1 J.
    const pb = emptyStats();
    for (const [n, bytes] of [[1, 4096], [2, 8192], [1, 65536], [3, 12288], [2, 70000], [0, 0]] as const) addWindow(pb, n, bytes, 0.1 + 0.001 * n + 1e-6 * bytes);
    pb.readJ = 100;
    pb.coveredNs = 10e9;
    expect(estimateBaseline(pb, W, null, 'per-byte').watts).toBeCloseTo(2, 9);
    // The constant model's fit on the request count alone cannot separate the 64 KB requests' cost.
    expect(Math.abs(estimateBaseline(pb, W, null, 'constant').watts - 2)).toBeGreaterThan(0.1);
  });

  it('0 W when nothing tells, and never more than the driver consumed on average', () => {
    expect(estimateBaseline(emptyStats(), W, null)).toMatchObject({ watts: 0, source: 'none' });
    const st = emptyStats();
    st.quietJ = 20 * 1;
    st.quietNs = 20 * W; // 20 W while quiet …
    st.readJ = 50;
    st.coveredNs = 10e9; // … but 5 W on average over the run.
    expect(estimateBaseline(st, W, null).watts).toBe(5);
  });

  it('least squares: exact on a plane, undetermined without variation', () => {
    const xx = new Float64Array(9);
    const xe = new Float64Array(3);
    const st = { ...emptyStats(), xx, xe };
    for (const [n, b] of [[1, 2], [2, 1], [3, 5], [0, 0], [4, 4]] as const) addWindow(st, n, b, 3 + 2 * n + 0.5 * b);
    expect(leastSquares(xx, xe, 3)!.map((v) => Math.round(v * 1e9) / 1e9)).toEqual([3, 2, 0.5]);
    const flat = { ...emptyStats() };
    for (let i = 0; i < 5; i++) addWindow(flat, 2, 10, 1);
    expect(leastSquares(flat.xx, flat.xe, 2)).toBeNull();
  });
});

describe('a driver that is never quiet (a recording started under load)', () => {
  // Requests of vm1 and vm2 from the first moment, 100/s each: no 50 ms window is free of them.
  // The driver's kernel draws B = 3 W throughout; each request costs it 5 mJ more.
  const sc = driverScenario({
    seconds: 20,
    quietS: 0,
    driver: 'drv',
    uopJoules: 1e-9,
    cost: () => 5e-3,
    baselineWatts: 3,
    seed: 4,
    clients: [
      { vm: 'vm1', perSecond: 100, bytes: 4096 },
      { vm: 'vm2', perSecond: 100, bytes: 4096 },
    ],
  });
  const T = sc.durationNs / 1e9;

  it('estimates the baseline from the fit and charges every client its third of the idle share and baseline', async () => {
    const m = resolveProfile(threeClients(), 'three.json');
    const sink = await replayTexts(m, { cswitch: sc.cswitch, disk: sc.disk }, STAGES);
    const c = cells(sink);
    expect(sink.metrics.get('accounting.driver.drv.quiet_s')!).toBeLessThan(0.1);
    expect(sink.metrics.get('accounting.driver.drv.baseline_source')).toBe(3); // the fit
    const B = sink.metrics.get('accounting.driver.drv.baseline_watts')!;
    expect(Math.abs(B - 3)).toBeLessThan(0.06);
    // Each of the three clients: (6 W idle share + B) / 3, as CPU idle — vm3 too, though it issued
    // nothing. Its idle share exactly; its baseline part as far as the baseline is charged.
    const idleShare = (6 * T) / 3;
    const baseline = sink.metrics.get('accounting.driver.drv.baseline_joules')! / 3;
    for (const vm of ['vm1', 'vm2', 'vm3']) expect(relDiff(c.get(`${vm}|drv|cpu|idle`)!, idleShare + baseline), vm).toBeLessThan(1e-9);
    expect(relDiff(baseline * 3, B * T)).toBeLessThan(0.01);
    expect(c.get('vm3|drv|cpu|active') ?? 0).toBe(0);
    // The requests' cost is active, split by requests (about 1:1).
    const spent = sc.costBy.get('vm1')! + sc.costBy.get('vm2')!;
    const active = c.get('vm1|drv|cpu|active')! + c.get('vm2|drv|cpu|active')!;
    expect(relDiff(active, spent)).toBeLessThan(0.05);
    expect(Math.abs(c.get('vm1|drv|cpu|active')! / active - sc.requestsBy.get('vm1')! / (sc.requestsBy.get('vm1')! + sc.requestsBy.get('vm2')!))).toBeLessThan(0.02);
  });
});

describe('a driver quiet only at the end of the trace', () => {
  // Requests for the first 12 s, then 4 s of quiet. The baseline measured there (2 W) applies
  // from the start: the clients' idle via the driver in the first second is already (8 + 2) / 2.
  const sc = driverScenario({
    seconds: 16,
    quietS: 0,
    driver: 'drv',
    uopJoules: 1e-9,
    cost: () => 4e-3,
    baselineWatts: 2,
    requestsUntilS: 12,
    seed: 9,
    clients: [
      { vm: 'vm1', perSecond: 60, bytes: 4096 },
      { vm: 'vm2', perSecond: 60, bytes: 4096 },
    ],
  });

  it('back-dates the baseline to the start of the run', async () => {
    const profile: Profile = { ...threeClients(), vms: ['drv', 'vm1', 'vm2'].map((id) => ({ id, role: id === 'drv' ? ('driver' as const) : ('client' as const) })), services: [{ id: 'vdisk', driver: 'drv', device: 'disk', clients: ['vm1', 'vm2'] }] };
    const m = resolveProfile(profile, 'two.json');
    const sink = await replayTexts(m, { cswitch: sc.cswitch, disk: sc.disk }, STAGES, { intervalMs: 1000 });
    expect(sink.metrics.get('accounting.driver.drv.baseline_source')).toBe(2); // quiet windows
    expect(sink.metrics.get('accounting.driver.drv.quiet_s')!).toBeGreaterThan(3.5);
    expect(sink.metrics.get('accounting.driver.drv.baseline_watts')!).toBeCloseTo(2, 2);
    // The first second: idle share 24 W / 3 VMs = 8 W, baseline 2 W, half each: 5 J per client.
    const first = sink.rows.filter((r) => r.t0 < 1e9 && r.via === 'drv' && r.device === 'cpu' && r.kind === 'idle' && r.consumer === 'vm1');
    expect(Math.abs(first.reduce((a, r) => a + r.joules, 0) - 5)).toBeLessThan(0.05);
    // And the requests' active energy is their cost, not the baseline's.
    const c = cells(sink);
    const charged = c.get('vm1|drv|cpu|active')! + c.get('vm2|drv|cpu|active')!;
    expect(relDiff(charged, sc.costBy.get('vm1')! + sc.costBy.get('vm2')!)).toBeLessThan(0.05);
  });
});
