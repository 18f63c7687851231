import { describe, expect, it } from 'vitest';
import type { ContainerBatch, DiskBatch, MeasuredBatch, SwitchBatch } from '../../src/core/events.js';
import { resolveProfile } from '../../src/core/profile.js';
import { decodeText, firstTimestampOf } from '../../src/traces/csv.js';
import { CswitchDecoder } from '../../src/traces/cswitch.js';
import { DiskDecoder } from '../../src/traces/disk.js';
import { GuestDecoder } from '../../src/traces/guest.js';
import { MeasuredDecoder } from '../../src/traces/measured.js';
import { machineOf, profileOf } from '../helpers.js';

const base = { hi: 0, lo: 0 };

describe('cswitch reader', () => {
  it('keeps nanoseconds exact above 2^53 by subtracting the first timestamp', () => {
    // 2^63 + k: consecutive values differ by 1 ns, which doubles could not tell apart.
    const t = 9223372036854775808n;
    const text = ['ts_ns,cpu,vm,tsc,uops', `${t},0,a,0,0`, `${t + 1n},0,a,3,1`, `${t + 2n},0,b,6,2`, ''].join('\n');
    const b = decodeText(text, new CswitchDecoder('c.csv', firstTimestampOf(text)!, machineOf()))[0] as SwitchBatch;
    expect(Array.from(b.t.subarray(0, b.length))).toEqual([1, 2]);
    expect(Array.from(b.t0.subarray(0, b.length))).toEqual([0, 1]);
    expect(Array.from(b.dtsc.subarray(0, b.length))).toEqual([3, 3]);
  });

  it('accepts columns in any order, CRLF line ends and a byte-order mark', () => {
    const text = '\uFEFFuops,tsc,vm,cpu,ts_ns\r\n0,0,a,0,100\r\n7,50,b,0,200\r\n';
    const b = decodeText(text, new CswitchDecoder('c.csv', firstTimestampOf(text)!, machineOf()))[0] as SwitchBatch;
    expect(b.length).toBe(1);
    expect([b.t[0], b.t0[0], b.dtsc[0], b.dev[0]]).toEqual([100, 0, 50, 7]);
  });

  it('bounds an event counter by max_events_per_tick over the period plus 1 ms, also where the TSC stops', () => {
    // 1 GHz TSC, 256 events a tick: a period of 1 ms may advance 256 × (1 ms + 1 ms of skew) = 5.12e8.
    const at = (adv: number, clock: 'tsc' | 'time' = 'tsc', max?: number) => {
      const p = profileOf();
      p.cpu.idle_clock = clock;
      if (max !== undefined) p.cpu.max_events_per_tick = max;
      const tsc = clock === 'time' ? 0 : 1_000_000;
      const text = ['ts_ns,cpu,vm,tsc,uops', '0,0,a,0,0', `1000000,0,a,${tsc},${adv}`, ''].join('\n');
      return () => decodeText(text, new CswitchDecoder('c.csv', base, resolveProfile(p, 'm.json')));
    };
    expect(at(512_000_000)).not.toThrow();
    expect(at(512_000_001)).toThrow(/counter uops of cpu 0 advanced 5\.1200e\+8 since line 2, in 1\.000 ms: more than the 5\.1200e\+8 that cpu\.max_events_per_tick 256 allows/);
    // A stopped TSC (idle_clock time) does not shrink the bound: it is taken from the timestamps.
    expect(at(512_000_000, 'time')).not.toThrow();
    expect(at(512_000_001, 'time')).toThrow(/that cpu\.max_events_per_tick 256 allows/);
    // The profile may raise it, for an event that truly counts more (bytes, say).
    expect(at(1e11, 'tsc', 1e5)).not.toThrow();
  });

  it('hands over batches of at most BATCH_CAPACITY rows, none lost', () => {
    const rows = Array.from({ length: 10001 }, (_, i) => `${i},0,a,${i},${i}`);
    const batches = decodeText(['ts_ns,cpu,vm,tsc,uops', ...rows, ''].join('\n'), new CswitchDecoder('c.csv', base, machineOf()));
    expect(batches.reduce((a, b) => a + b.length, 0)).toBe(10000);
    expect(batches.length).toBe(3);
  });
});

describe('disk reader', () => {
  it('reads required and optional columns', () => {
    const text = ['ts_ns,vm,op,offset,bytes,latency_ns,container', '100,a,R,0,4096,80,web', '200,b,W,4096,512,,', '300,a,R,8192,65536,1200,db', ''].join('\n');
    const b = decodeText(text, new DiskDecoder('d.csv', base, machineOf()))[0] as DiskBatch;
    expect(b.length).toBe(3);
    expect(Array.from(b.op.subarray(0, 3))).toEqual([0, 1, 0]);
    expect(Array.from(b.bytes.subarray(0, 3))).toEqual([4096, 512, 65536]);
    expect(b.latency[0]).toBe(80);
    expect(Number.isNaN(b.latency[1]!)).toBe(true);
    expect([...b.container.subarray(0, 3)].map((i) => (i < 0 ? null : b.names[i]))).toEqual(['web', null, 'db']);
  });

  it('rejects a bad op, a negative size and an unknown disk', () => {
    const m = machineOf();
    expect(() => decodeText('ts_ns,vm,op,offset,bytes\n1,a,X,0,1\n', new DiskDecoder('d.csv', base, m))).toThrow(/op is 'X'; expected R or W/);
    expect(() => decodeText('ts_ns,vm,op,offset,bytes\n1,a,R,0,-4096\n', new DiskDecoder('d.csv', base, m))).toThrow(/bytes is negative/);
    expect(() => decodeText('ts_ns,vm,op,offset,bytes,disk\n1,a,R,0,1,sdz\n', new DiskDecoder('d.csv', base, m))).toThrow(/unknown disk 'sdz'/);
    expect(() => decodeText('ts_ns,vm,op,offset,bytes\n5,a,R,0,1\n4,a,R,0,1\n', new DiskDecoder('d.csv', base, m))).toThrow(/time goes backwards/);
  });

  it('needs a disk column when the profile has several disks', () => {
    const p = profileOf();
    p.disks['ssd'] = { active_watts: 3, idle_watts: 1, nominal_rate_bps: 5e8, rate_window: 50, idle_period_ms: 50 };
    const m = resolveProfile(p, 'm.json');
    expect(() => decodeText('ts_ns,vm,op,offset,bytes\n1,a,R,0,1\n', new DiskDecoder('d.csv', base, m))).toThrow(/needs a 'disk' column/);
    const b = decodeText('ts_ns,vm,op,offset,bytes,disk\n1,a,R,0,1,ssd\n2,b,R,0,1,disk\n', new DiskDecoder('d.csv', base, m))[0] as DiskBatch;
    expect([b.names[b.disk[0]!], b.names[b.disk[1]!]]).toEqual(['ssd', 'disk']);
  });
});

describe('guest reader', () => {
  const p = profileOf();
  p.vms[1]!.energy_aware = true;
  const m = resolveProfile(p, 'm.json');

  it('forms container periods per (vm, cpu); the first row of a lane is an empty period', () => {
    const text = ['ts_ns,vm,cpu,container,tsc,uops', '0,b,0,x,0,0', '0,b,1,y,0,0', '10,b,0,x,10,5', '12,b,1,y,12,6', '20,b,0,z,20,9', ''].join('\n');
    const g = decodeText(text, new GuestDecoder('g.csv', base, m))[0] as ContainerBatch;
    expect(g.length).toBe(5);
    expect([...g.container.subarray(0, 5)].map((i) => g.names[i])).toEqual(['x', 'y', 'x', 'y', 'z']);
    expect(Array.from(g.dev.subarray(0, 5))).toEqual([0, 0, 5, 6, 4]);
    expect(Array.from(g.dtsc.subarray(0, 5))).toEqual([0, 0, 10, 12, 10]);
    expect(Array.from(g.t0.subarray(0, 5))).toEqual([0, 0, 0, 0, 10]);
    expect(Array.from(g.t.subarray(0, 5))).toEqual([0, 0, 10, 12, 20]);
  });

  it('bounds a guest lane\'s event counter as the cswitch reader does', () => {
    // Lane (a, cpu 0): 2 ms apart at 1 GHz → at most 256 × (2 ms + 1 ms) = 7.68e8 uops.
    const text = (adv: number) => `ts_ns,vm,cpu,container,tsc,uops\n0,a,0,x,0,0\n2000000,a,0,y,2000000,${adv}\n`;
    expect(() => decodeText(text(768_000_000), new GuestDecoder('g.csv', base, m))).not.toThrow();
    expect(() => decodeText(text(768_000_001), new GuestDecoder('g.csv', base, m))).toThrow(/counter uops of a on cpu 0 advanced 7\.6800e\+8 since line 2, in 2\.000 ms: more than the 7\.6800e\+8 that cpu\.max_events_per_tick 256 allows/);
  });

  it('reads the tasks of a guest that is not energy-aware too (host-level control credits them)', () => {
    const g = decodeText('ts_ns,vm,cpu,container,tsc,uops\n0,a,0,x,0,0\n5,a,0,y,5,1\n', new GuestDecoder('g.csv', base, m))[0] as ContainerBatch;
    expect(g.length).toBe(2);
    expect(() => decodeText('ts_ns,vm,cpu,container,tsc,uops\n0,zz,0,x,0,0\n', new GuestDecoder('g.csv', base, m))).toThrow(/unknown VM 'zz'/);
  });
});

describe('measured reader', () => {
  it('reads watts per device and rejects unknown devices', () => {
    const b = decodeText('ts_ns,device,watts\n0,cpu,42.5\n1,disk,3.6\n', new MeasuredDecoder('m.csv', base, machineOf()))[0] as MeasuredBatch;
    expect(Array.from(b.watts.subarray(0, 2))).toEqual([42.5, 3.6]);
    expect(() => decodeText('ts_ns,device,watts\n0,gpu,1\n', new MeasuredDecoder('m.csv', base, machineOf()))).toThrow(/unknown device 'gpu'/);
    expect(() => decodeText('ts_ns,device,watts\n0,cpu,-1\n', new MeasuredDecoder('m.csv', base, machineOf()))).toThrow(/negative/);
  });
});
