import { describe, expect, it } from 'vitest';
import { resolveProfile } from '../../../src/core/profile.js';
import type { Profile } from '../../../src/core/machine.js';
import { cells, relDiff, replayTexts } from '../../helpers.js';

/** A 2 W active-over-idle disk at 1 MB/s nominal, rate re-estimated every 2 requests, 100 ms idle periods. */
function diskProfile(): Profile {
  return {
    cpu: { tsc_hz: 1e9, idle_watts: 10, counter_bits: 48, idle_split: 'equal', events: { uops: 1e-9 } },
    disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 1e6, rate_window: 2, idle_period_ms: 100 } },
    vms: [
      { id: 'drv', role: 'driver' },
      { id: 'vm1', role: 'client' },
      { id: 'vm2', role: 'client' },
    ],
    services: [{ id: 'vdisk', driver: 'drv', device: 'disk', clients: ['vm1', 'vm2'] }],
  };
}

const m = resolveProfile(diskProfile(), 'disk.json');
const close = (got: number | undefined, want: number) => expect(relDiff(got ?? NaN, want), `${got} vs ${want}`).toBeLessThan(1e-12);

describe('disk-energy by hand (§3.2.2, §3.3.2)', () => {
  // vm1 1000 B at 0 (2 ms), vm2 3000 B at 10 ms (1 ms), vm1 4000 B at 140 ms.
  // Rate: in the first window, the latencies so far where faster than the 1e6 B/s nominal: the
  // first's 1000 B / 2 ms = 5e5 B/s is not (1e6), the second's 4000 B / 3 ms = 1.333e6 B/s is;
  // then the window's 4000 B / 3 ms.
  // Active: 1000 / 1e6 = 1 ms → 2 W × 1 ms = 2 mJ; 3000 / 1.333e6 = 2.25 ms → 4.5 mJ; 4000 / 1.333e6 = 3 ms → 6 mJ.
  // Idle: [0, 100 ms) 0.36 J by utilization 1 : 2.25 → vm1 0.36·1/3.25, vm2 0.36·2.25/3.25; [100, 140 ms) 0.144 J → vm1.
  const withLatency = ['ts_ns,vm,op,offset,bytes,latency_ns,container', '0,vm1,R,0,1000,2000000,web', '10000000,vm2,W,0,3000,1000000,', '140000000,vm1,R,0,4000,500000,db', ''].join('\n');

  it('charges active energy per request and idle energy by utilization, via the driver', async () => {
    const sink = await replayTexts(m, { disk: withLatency }, ['disk-energy']);
    const c = cells(sink);
    close(c.get('vm1|drv|disk|active'), 0.002 + 0.006);
    close(c.get('vm2|drv|disk|active'), 0.0045);
    close(c.get('vm1|drv|disk|idle'), 0.36 / 3.25 + 0.144);
    close(c.get('vm2|drv|disk|idle'), (0.36 * 2.25) / 3.25);
    expect(c.size).toBe(4);
    close(sink.metrics.get('accounting.disk.disk.rate_bps'), 4000 / 0.003);
    close(sink.metrics.get('accounting.disk.disk.idle_joules'), 3.6 * 0.14);
    // The containers named in the log get their requests' active energy, as extra rows.
    const web = sink.rows.filter((r) => r.container === 'web');
    expect(web.map((r) => [r.consumer, r.via, r.kind])).toEqual([['vm1', 'drv', 'active']]);
    close(web[0]!.joules, 0.002);
    close(sink.rows.filter((r) => r.container === 'db')[0]!.joules, 0.006);
  });

  it('a request of more than 1 TiB is an error at its bytes field, not gigawatts', async () => {
    // 2^64 − 1 bytes with a 1 ms latency: 1.8e13 s of activity at the nominal 1e6 B/s, and its own
    // latency would have made the rate estimate 1.8e22 B/s. Before: exit 0 with 857 GW on the demo.
    const bad = withLatency.replace('3000,1000000,', '18446744073709551615,1000000,');
    const run = replayTexts(m, { disk: bad }, ['disk-energy']);
    await expect(run).rejects.toThrow(/^a request of 1\.8447e\+19 bytes: more than 1 TiB in one request is no disk request/);
    await expect(run).rejects.toMatchObject({ code: 'E_FIELD', where: { line: 3, columnName: 'bytes' } });
    // 1 TiB itself is let through.
    const big = withLatency.replace('3000,1000000,', `${2 ** 40},1000000,`);
    await expect(replayTexts(m, { disk: big }, ['disk-energy'])).resolves.toBeDefined();
  });

  it("the time before the first request is charged by its idle period's utilization, however dense the CPU log", async () => {
    // The CPU log runs from 0 to 300 ms on one CPU, vm1 and vm2 taking turns; vm2 reads 1000 B at
    // 60 ms (1 ms at the nominal 1e6 B/s), nothing else. Idle periods of 100 ms from 0: the first,
    // [0, 100 ms), was used by vm2 alone, so its 3.6 W × 0.1 s = 0.36 J go to vm2, the rest
    // (200 ms nobody used: 0.72 J) equally. By hand: vm2 0.36 + 0.36 = 0.72 J, vm1 0.36 J.
    // Before, with a row every 100 ms the request came before the CPU log's first period, and
    // [0, 60 ms) went equally (vm1 0.468, vm2 0.612); with a row every 1 ms, by utilization.
    const disk = ['ts_ns,vm,op,offset,bytes,latency_ns,container', '60000000,vm2,R,0,1000,,', ''].join('\n');
    for (const stepMs of [100, 1]) {
      const rows = ['ts_ns,cpu,vm,tsc,uops'];
      for (let t = 0; t <= 300; t += stepMs) rows.push(`${t * 1_000_000},0,${(t / stepMs) % 2 === 0 ? 'vm1' : 'vm2'},${t * 1_000_000},0`);
      const sink = await replayTexts(m, { cswitch: rows.join('\n') + '\n', disk }, ['cpu-split', 'disk-energy']);
      const c = cells(sink);
      close(c.get('vm2|drv|disk|idle'), 0.72);
      close(c.get('vm1|drv|disk|idle'), 0.36);
    }
  });

  it('a fast disk with latencies is charged its recorded busy time from the first request, not the nominal rate', async () => {
    // 1000 requests of 1 MiB, one every 1 ms, each 1 ms busy (1 GiB/s; the profile says 1 MB/s):
    // busy 1000 × 1 ms = 1 s in all, so 2 W × 1 s = 2 J of active energy, however the windows fall.
    // At the nominal rate the first window (2 requests here, 50 by default) alone would be 2 × 1.05 s.
    const rows = Array.from({ length: 1000 }, (_, i) => `${(i + 1) * 1_000_000},vm1,R,${i * 1048576},1048576,1000000,`);
    const sink = await replayTexts(m, { disk: ['ts_ns,vm,op,offset,bytes,latency_ns,container', ...rows, ''].join('\n') }, ['disk-energy']);
    close(cells(sink).get('vm1|drv|disk|active'), 2);
    close(sink.metrics.get('accounting.disk.disk.active_s'), 1);
  });

  it('without latencies, busy time comes from completion gaps', async () => {
    // The first request has no previous completion; the second's gap is 10 ms: 3000 B / 10 ms.
    const text = ['ts_ns,vm,op,offset,bytes', '0,vm1,R,0,1000', '10000000,vm2,W,0,3000', '140000000,vm1,R,0,4000', ''].join('\n');
    const c = cells(await replayTexts(m, { disk: text }, ['disk-energy']));
    close(c.get('vm1|drv|disk|active'), 0.002 + 2 * (4000 / 3e5));
    close(c.get('vm2|drv|disk|idle'), 0.27);
  });

  it('shares the idle energy of periods nobody used equally among the clients', async () => {
    const text = ['ts_ns,vm,op,offset,bytes', '0,vm1,R,0,1000', '350000000,vm1,R,0,1000', ''].join('\n');
    const c = cells(await replayTexts(m, { disk: text }, ['disk-energy']));
    // [0,100) vm1's; [100,300) nobody's: 0.72 J in halves; [300,350) vm1's.
    close(c.get('vm1|drv|disk|idle'), 0.36 + 0.36 + 0.18);
    close(c.get('vm2|drv|disk|idle'), 0.36);
  });

  it('accounts several disks separately, each conserving its energy', async () => {
    const p = diskProfile();
    p.disks['ssd'] = { active_watts: 3, idle_watts: 1, nominal_rate_bps: 2e8, rate_window: 50, idle_period_ms: 50 };
    p.services.push({ id: 'vssd', driver: 'drv', device: 'ssd', clients: ['vm2'] });
    const mm = resolveProfile(p, 'disks.json');
    const text = ['ts_ns,vm,op,offset,bytes,disk', '0,vm1,R,0,1000,disk', '5000000,vm2,R,0,200000,ssd', '90000000,vm2,W,0,4000,ssd', '200000000,vm1,R,0,1000,disk', ''].join('\n');
    const sink = await replayTexts(mm, { disk: text }, ['disk-energy']);
    const c = cells(sink);
    close(c.get('vm2|drv|ssd|active'), 2 * (204000 / 2e8));
    close(sink.total((r) => r.device === 'ssd'), 1 * 0.2 + 2 * (204000 / 2e8));
    close(sink.total((r) => r.device === 'disk'), 3.6 * 0.2 + 2 * 0.002);
    // vm1 never used the ssd and is no client of its service: none of its energy.
    expect([...c.keys()].filter((k) => k.startsWith('vm1|') && k.includes('ssd'))).toEqual([]);
  });
});
