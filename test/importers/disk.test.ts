/** `wattrace import` of block traces: the real samples in ../shared/data/disk and malformed input. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, lines, SHARED, tmpDir } from '../helpers.js';

const DIR = path.join(SHARED, 'data', 'disk');
const HAVE = fs.existsSync(DIR);
if (!HAVE) console.warn(`[wattrace] skipping the block trace importers on real data: ${DIR} not found (CI has it)`);
const dir = tmpDir();



describe.skipIf(!HAVE)('import of the shared block traces', () => {
  it('disksim (mqsim tpcc): every request, devices mapped to VMs, replayable', async () => {
    const map = path.join(dir, 'map.json');
    fs.writeFileSync(map, JSON.stringify({ vms: { vm0: ['^(0|4|8|12)$'], vm1: ['^(1|5|9|13)$'], vm2: ['^(2|6|10|14)$'] }, default: 'vm3' }));
    const out = path.join(dir, 'tpcc');
    const r = await cli(['import', 'disksim', path.join(DIR, 'mqsim_tpcc-small.trace'), '--out', out, '--map', map]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/6,999 requests/);
    const l = lines(path.join(out, 'disk.csv'));
    expect(l[0]).toBe('ts_ns,vm,op,offset,bytes');
    expect(l).toHaveLength(7000);
    expect(l[1]).toBe(`938513000,vm0,W,${264719034 * 512},${16 * 512}`);
    expect(new Set(l.slice(1).map((x) => x.split(',')[1]))).toEqual(new Set(['vm0', 'vm1', 'vm2', 'vm3']));
    // Through the accounting, conserving the disk's energy.
    const profile = path.join(dir, 'tpcc.json');
    fs.writeFileSync(
      profile,
      JSON.stringify({
        cpu: { tsc_hz: 1e9, idle_watts: 10, counter_bits: 48, idle_split: 'equal', events: { uops: 1e-9 } },
        disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5e7, rate_window: 50, idle_period_ms: 50 } },
        vms: ['vm0', 'vm1', 'vm2', 'vm3'].map((id) => ({ id, role: 'client' })),
      }),
    );
    const p = path.join(dir, 'tpcc.pipeline.json');
    fs.writeFileSync(p, JSON.stringify({ name: 'tpcc', profile, traces: { disk: path.join(out, 'disk.csv') }, stages: ['disk-energy'] }));
    expect((await cli(['replay', p, '--db', path.join(dir, 'tpcc.sqlite'), '--quiet'])).code).toBe(0);
  });

  it('disksim wsrch (its last line has no newline), vscsi csv and binary: counts, first and last', async () => {
    const w = await cli(['import', 'disksim', path.join(DIR, 'mqsim_wsrch-small.trace'), '--out', path.join(dir, 'wsrch')]);
    expect(w.out).toMatch(/24,783 requests .*first 11413000, last 60066625000 ns/);
    expect(w.out).toMatch(/dev0 8,340/);
    const c = await cli(['import', 'vscsi-csv', path.join(DIR, 'cloudphysics_vscsi_sample.csv'), '--out', path.join(dir, 'vc')]);
    expect(c.out).toMatch(/113,872 requests .*first 5633898000000000, last 5641098000000000 ns/);
    const b = await cli(['import', 'vscsi', path.join(DIR, 'cloudphysics_vscsi_sample.vscsi'), '--out', path.join(dir, 'vb')]);
    expect(b.out).toMatch(/113,872 requests .*first 5633898368802000, last 5641098458687000 ns/);
    // The same requests: sizes and offsets agree row by row with the CSV.
    const a = lines(path.join(dir, 'vc', 'disk.csv'));
    const bb = lines(path.join(dir, 'vb', 'disk.csv'));
    expect(bb.slice(1, 50).map((x) => x.split(',').slice(2).join())).toEqual(a.slice(1, 50).map((x) => x.split(',').slice(2).join()));
  });
});

describe('import: malformed input is an error naming the line, or a counted skip', () => {
  it('disksim: a bad type, a short line, time going backwards', async () => {
    const f = path.join(dir, 'bad.trace');
    fs.writeFileSync(f, '100 0 8 8 1\n200 1 8 8 7\n');
    let r = await cli(['import', 'disksim', f, '--out', path.join(dir, 'bad1')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.trace:2:5: type is 7; expected 0 \(write\) or 1 \(read\)/);
    fs.writeFileSync(f, '100 0 8 8 1\n200 1 8\n');
    r = await cli(['import', 'disksim', f, '--out', path.join(dir, 'bad2')]);
    expect(r.err).toContain("bad.trace:2: expected arrival_ns and 4 non-negative integers (arrival_ns device lba_sectors size_sectors type, the unit as the file's first lines say: whole ns); got '200 1 8'");
    fs.writeFileSync(f, '100 0 8 8 1\n50 1 8 8 1\n');
    r = await cli(['import', 'disksim', f, '--out', path.join(dir, 'bad3')]);
    expect(r.err).toMatch(/bad\.trace:2: time goes backwards/);
    expect(fs.existsSync(path.join(dir, 'bad3', 'disk.csv'))).toBe(false);
  });

  it("disksim: DiskSim's own arrival in ms with a decimal point reads as MQSim's whole ns would", async () => {
    // Before: refused ("expected 5 non-negative integers"). 1.5 ms = 1,500,000 ns; 12.0000015 ms
    // = 12,000,001.5 ns, cut to whole ns.
    const ds = path.join(dir, 'ds.trace');
    const mq = path.join(dir, 'mq.trace');
    fs.writeFileSync(ds, '0.000000 0 100 8 1\n1.5 0 200 16 0\n12.0000015 1 300 8 1\n');
    fs.writeFileSync(mq, '0 0 100 8 1\n1500000 0 200 16 0\n12000001 1 300 8 1\n');
    expect((await cli(['import', 'disksim', ds, '--out', path.join(dir, 'ds')])).code).toBe(0);
    expect((await cli(['import', 'disksim', mq, '--out', path.join(dir, 'mq')])).code).toBe(0);
    expect(lines(path.join(dir, 'ds', 'disk.csv'))).toEqual(lines(path.join(dir, 'mq', 'disk.csv')));
    expect(lines(path.join(dir, 'ds', 'disk.csv'))[2]).toBe('1500000,dev0,W,102400,8192');
    // A decimal point anywhere in the first lines says ms (a first arrival of 0 has none); the
    // summary says which unit it took.
    const zero = path.join(dir, 'zero.trace');
    fs.writeFileSync(zero, '0 0 100 8 1\n1.5 0 200 16 0\n');
    const z = await cli(['import', 'disksim', zero, '--out', path.join(dir, 'zero')]);
    expect(z.code, z.err).toBe(0);
    expect(lines(path.join(dir, 'zero', 'disk.csv')).map((l) => l.split(',')[0])).toEqual(['ts_ns', '0', '1500000']);
    expect(z.out).toContain("note: zero.trace: arrivals read as milliseconds (DiskSim: a decimal point in the file's first lines)");
    const m = await cli(['import', 'disksim', mq, '--out', path.join(dir, 'mq3')]);
    expect(m.out).toContain('note: mq.trace: arrivals read as whole nanoseconds (MQSim: no decimal point in the first lines; DiskSim writes ms with one)');
  });

  it('vscsi-csv: commands without data are skipped and counted; a bad field is an error', async () => {
    const f = path.join(dir, 'v.csv');
    fs.writeFileSync(f, 'version,time,op,size,lbn\n1,5,28,512,10\n1,5,35,0,0\n1,6,2a,1024,12\n');
    const r = await cli(['import', 'vscsi-csv', f, '--out', path.join(dir, 'v')]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/2 requests/);
    expect(r.out).toMatch(/skipped: 1 × SCSI command 35 \(no data transfer\)/);
    fs.writeFileSync(f, 'version,time,op,size,lbn\n1,5,28,-512,10\n');
    const b = await cli(['import', 'vscsi-csv', f, '--out', path.join(dir, 'v2')]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/v\.csv:2:4 \(column size\): size is not a non-negative integer/);
    expect((await cli(['import', 'iostat', f, '--out', dir])).err).toMatch(/unknown format 'iostat'.*blkparse/);
  });

  it('vscsi-csv: opcodes written 0x2a or 0x028 read as 2a and 28; a file of commands without data says it skipped them all', async () => {
    const plain = path.join(dir, 'v-plain.csv');
    const hex = path.join(dir, 'v-hex.csv');
    fs.writeFileSync(plain, 'version,time,op,size,lbn\n1,5,28,512,10\n1,6,2a,1024,12\n');
    fs.writeFileSync(hex, 'version,time,op,size,lbn\n1,5,0x028,512,10\n1,6,0x2A,1024,12\n');
    expect((await cli(['import', 'vscsi-csv', plain, '--out', path.join(dir, 'vp')])).code).toBe(0);
    const h = await cli(['import', 'vscsi-csv', hex, '--out', path.join(dir, 'vh')]);
    expect(h.code, h.err).toBe(0);
    // Before: both were skipped as "SCSI command 0x28 (no data transfer)", and the import found nothing.
    expect(lines(path.join(dir, 'vh', 'disk.csv'))).toEqual(lines(path.join(dir, 'vp', 'disk.csv')));
    const none = path.join(dir, 'v-none.csv');
    fs.writeFileSync(none, 'version,time,op,size,lbn\n1,5,12,0,0\n1,6,35,0,0\n1,7,35,0,0\n');
    const n = await cli(['import', 'vscsi-csv', none, '--out', path.join(dir, 'vn')]);
    expect(n.code).toBe(2);
    expect(n.err).toContain('; it skipped 1 × SCSI command 12 (no data transfer), 2 × SCSI command 35 (no data transfer); the first line reads');
    // No SCSI opcode is wider than a byte: 0x100 is a located error, not a command without data.
    const wide = path.join(dir, 'v-wide.csv');
    fs.writeFileSync(wide, 'version,time,op,size,lbn\n1,5,28,512,10\n1,6,0x100,512,12\n');
    const w = await cli(['import', 'vscsi-csv', wide, '--out', path.join(dir, 'vw')]);
    expect([w.code, w.err]).toEqual([2, expect.stringMatching(/v-wide\.csv:3:3: op is '0x100'; expected a SCSI opcode: one byte in hex/)]);
  });
});

const PERF = path.join(SHARED, 'data', 'host', 'perf_sched_switch_counters.txt');
describe.skipIf(!fs.existsSync(PERF))('import perf-script (the local 2-vCPU recording)', () => {
  it('every switch, mapped VMs, cumulative counters, a starter profile that replays', async () => {
    const map = path.join(dir, 'perf-map.json');
    fs.writeFileSync(map, JSON.stringify({ vms: { vm1: ['^vm1_cpu$'], vm2: ['^vm2_cpu$'], vm3: ['^vm3_disk$'], drv: ['^kworker', '^ksoftirqd'] }, drivers: ['drv'], core: ['core'], default: 'core' }));
    const out = path.join(dir, 'host');
    const r = await cli(['import', 'perf-script', PERF, '--out', out, '--map', map]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/10,582 switches .*first 500873437000, last 501888813000 ns/);
    expect(r.out).toMatch(/vm1 2,068/);
    const l = lines(path.join(out, 'cswitch.csv'));
    expect(l[0]).toBe('ts_ns,cpu,vm,tsc,cpu_clock,page_faults');
    expect(l).toHaveLength(10_583);
    // The first switch opens CPU 0's first period; the next adds the advances perf printed.
    expect(l[1]).toBe('500873437000,0,core,0,0,0');
    expect(l[2]).toBe('500873457000,0,core,48218,18678,0');
    const profile = JSON.parse(fs.readFileSync(path.join(out, 'machine.json'), 'utf8')) as { cpu: { tsc_hz: number }; vms: { id: string; role: string }[] };
    expect(Math.abs(profile.cpu.tsc_hz / 2.6e9 - 1)).toBeLessThan(0.01);
    expect(profile.vms.find((v) => v.id === 'drv')?.role).toBe('driver');
    const p = path.join(dir, 'host.pipeline.json');
    fs.writeFileSync(p, JSON.stringify({ name: 'host', profile: path.join(out, 'machine.json'), traces: { cswitch: path.join(out, 'cswitch.csv') }, stages: ['cpu-split'] }));
    const rr = await cli(['replay', p, '--db', path.join(dir, 'host.sqlite'), '--quiet']);
    expect(rr.code, rr.err).toBe(0);
    expect(rr.out).toMatch(/10,582 cswitch rows/);
  });

  it('a switch line without prev_comm is an error; stray counter lines are counted', async () => {
    const f = path.join(dir, 'bad-perf.txt');
    fs.writeFileSync(
      f,
      [
        '   a 1/1 [000]   1.000001:      5           msr/tsc/: ',
        '   a 1/1 [000]   1.000002:      1 sched:sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=R ==> next_comm=b next_pid=2 next_prio=120',
        '   a 1/1 [000]   1.000002:      7           msr/tsc/: ',
        '   b 2/2 [000]   1.000009:      1 sched:sched_switch: nonsense',
      ].join('\n') + '\n',
    );
    const r = await cli(['import', 'perf-script', f, '--out', path.join(dir, 'badperf')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad-perf\.txt:4: a sched_switch without the task switched out/);
  });
});

describe('import vscsi: the record version', () => {
  it('a version 2 trace (40-byte records) and a non-vscsi file are refused at record 1, naming why', async () => {
    // Record layout: u32 sn, u32 len, u32 nSG, u16 cmd, u16 ver (version in its high byte), …
    const rec = (ver: number, size: number) => {
      const b = Buffer.alloc(size * 3);
      for (let i = 0; i < 3; i++) {
        b.writeUInt32LE(4096, i * size + 4);
        b.writeUInt16LE(0x28, i * size + 12);
        b.writeUInt16LE(ver << 8, i * size + 14);
      }
      return b;
    };
    fs.writeFileSync(path.join(dir, 'v2.vscsi'), rec(2, 40));
    const a = await cli(['import', 'vscsi', path.join(dir, 'v2.vscsi'), '--out', path.join(dir, 'v2')]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/v2\.vscsi:1: a vscsi version 2 trace \(40-byte records\): this importer reads version 1/);
    fs.writeFileSync(path.join(dir, 'v9.vscsi'), rec(9, 32));
    const b = await cli(['import', 'vscsi', path.join(dir, 'v9.vscsi'), '--out', path.join(dir, 'v9')]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/not a vscsi version 1 record: its version byte is 9/);
    expect(fs.existsSync(path.join(dir, 'v2'))).toBe(false);
  });
});

describe('import msr (MSR Cambridge CSV)', () => {
  it('writes completions in time order with their latency, though they come out of arrival order', async () => {
    const f = path.join(dir, 'msr.csv');
    // Filetime ticks of 100 ns: B arrives after A but completes first. The header most public
    // copies carry is skipped.
    fs.writeFileSync(
      f,
      [
        'Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime',
        '128166372000000000,web,1,Read,4096,4096,50000',
        '128166372000010000,web,1,Write,8192,512,1000',
        '128166372000020000,mail,0,Read,0,65536,20000',
        '',
      ].join('\n'),
    );
    const map = path.join(dir, 'msr-map.json');
    fs.writeFileSync(map, JSON.stringify({ vms: { vm1: ['^web:'], vm2: ['^mail:'] } }));
    const r = await cli(['import', 'msr', f, '--out', path.join(dir, 'msr'), '--map', map]);
    expect(r.code, r.err).toBe(0);
    const l = lines(path.join(dir, 'msr', 'disk.csv'));
    // Rebased from 1601 to the Unix epoch (116444736000000000 ticks): 128166372000000000 ticks is
    // 2007-02-22 (the MSR week), 1172163600 s after 1970 (17:00 UTC); × 100 ns it would not fit int64.
    expect(l).toEqual([
      'ts_ns,vm,op,offset,bytes,latency_ns',
      `${1172163600001000000n + 100000n},vm1,W,8192,512,100000`,
      `${1172163600002000000n + 2000000n},vm2,R,0,65536,2000000`,
      `${1172163600000000000n + 5000000n},vm1,R,4096,4096,5000000`,
    ]);
    expect(r.out).toMatch(/1 × the header line/);
    for (const row of l.slice(1)) expect(BigInt(row.split(',')[0]!) < 2n ** 63n).toBe(true);
    fs.writeFileSync(f, '128166372000000000,web,1,Trim,0,0,1\n');
    const b = await cli(['import', 'msr', f, '--out', path.join(dir, 'msr2')]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/msr\.csv:1:4 \(column Type\): Type is 'Trim'; expected Read or Write/);
  });
});

const FTRACE = path.join(SHARED, 'data', 'host', 'ftrace_sched_block_x86tsc.txt');
describe.skipIf(!fs.existsSync(FTRACE))('import ftrace and replay the local recording end to end', () => {
  it('a --tsc-hz off by 1000 (MHz as kHz) gets a note with the span it makes; a plausible rate none', async () => {
    // The switches span 1,306,383,694 ticks: 0.5025 s at 2,599,998,000 Hz, 502.5 s at 2,599,998 Hz.
    const r = await cli(['import', 'ftrace', FTRACE, '--out', path.join(dir, 'ft-khz'), '--tsc-hz', '2599998']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('note: --tsc-hz 2599998 is outside the rates TSCs tick at (0.4 to 10 GHz): is it in Hz? (at 0.00260 GHz the trace spans 502.5 s)');
    const ok = await cli(['import', 'ftrace', FTRACE, '--out', path.join(dir, 'ft-hz'), '--tsc-hz', '2599998000']);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).not.toContain('--tsc-hz');
  });

  it('switches and paired block requests; the disk client is charged the I/O threads’ CPU via the driver', async () => {
    const map = path.join(dir, 'ft-map.json');
    fs.writeFileSync(map, JSON.stringify({ vms: { vm1: ['^vm1_cpu$'], vm2: ['^vm2_cpu$'], vm3: ['^vm3_disk$'], drv: ['^kworker', '^ksoftirqd'] }, drivers: ['drv'], core: ['core'], default: 'core' }));
    const out = path.join(dir, 'ft');
    const r = await cli(['import', 'ftrace', FTRACE, '--out', out, '--map', map, '--tsc-hz', '2599998000']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/7,051 switches .*2,878 disk requests/);
    expect(r.out).toMatch(/skipped: none/);
    const d = lines(path.join(out, 'disk.csv'));
    expect(d[0]).toBe('ts_ns,vm,op,offset,bytes,latency_ns');
    // The first request: issued at TSC 1310986820175, completed at 1310987452259, 65536 bytes.
    expect(d[1]).toBe(`${(1310987452259n * 1_000_000_000n) / 2599998000n},vm3,W,${502540608n * 512n},65536,${(1310987452259n * 1_000_000_000n) / 2599998000n - (1310986820175n * 1_000_000_000n) / 2599998000n}`);
    const p = path.join(out, 'pipeline.json');
    fs.writeFileSync(p, JSON.stringify({ name: 'host', profile: 'machine.json', traces: { cswitch: 'cswitch.csv', disk: 'disk.csv' }, stages: ['cpu-split', 'disk-energy', 'driver-charge'] }));
    const db = path.join(dir, 'ft.sqlite');
    const rr = await cli(['replay', p, '--db', db, '--quiet']);
    expect(rr.code, rr.err).toBe(0);
    const { default: Database } = await import('better-sqlite3');
    const q = new Database(db, { readonly: true });
    const cells = q.prepare("SELECT consumer, via, device, sum(joules) AS j FROM energy_matrix GROUP BY consumer, via, device").all() as { consumer: string; via: string | null; device: string; j: number }[];
    q.close();
    expect(cells.find((c) => c.consumer === 'vm3' && c.via === 'drv' && c.device === 'cpu')?.j ?? 0).toBeGreaterThan(0);
    expect(cells.some((c) => c.consumer === 'drv')).toBe(false);
  });
});

const PL = path.join(SHARED, 'data', 'vm-cpu', 'planetlab_20110303');
describe.skipIf(!fs.existsSync(PL))('import planetlab', () => {
  it('the 1,052 VMs of the day (names with spaces included) as one cswitch log, replayed through cpu-split and host-strides', async () => {
    const out = path.join(dir, 'pl');
    const r = await cli(['import', 'planetlab', PL, '--out', out, '--cpus', '64']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/1,052 VMs on 64 CPUs, 288 steps of 5 min/);
    const profile = JSON.parse(fs.readFileSync(path.join(out, 'machine.json'), 'utf8')) as { vms: unknown[] };
    expect(profile.vms).toHaveLength(1052);
    const l = lines(path.join(out, 'cswitch.csv'));
    expect(l[0]).toBe('ts_ns,cpu,vm,tsc,cycles');
    // Every row counted (the 64 CPUs' opening idle rows too), and no empty line at the end.
    expect(r.out).toMatch(/→ 264,640 switches/);
    expect(fs.readFileSync(path.join(out, 'cswitch.csv'), 'utf8').endsWith('\n\n')).toBe(false);
    expect(l).toHaveLength(264_641);

    // The day replays through cpu-split and host-strides (periods as in the README's figure, but
    // 60 s / 300 s to keep the store small here): every joule accounted, no work lost.
    const p = path.join(out, 'pipeline.json');
    fs.writeFileSync(p, JSON.stringify({ name: 'planetlab-day', profile: 'machine.json', traces: { cswitch: 'cswitch.csv' }, stages: ['cpu-split', 'host-strides'], interval_ms: 300_000, policy: { cpu: { period_ms: 60_000 } } }));
    const db = path.join(dir, 'pl.sqlite');
    const rr = await cli(['replay', p, '--db', db, '--quiet']);
    expect(rr.code, rr.err).toBe(0);
    const { default: Database } = await import('better-sqlite3');
    const q = new Database(db, { readonly: true });
    const total = (q.prepare('SELECT sum(joules) AS j FROM energy_matrix').get() as { j: number }).j;
    const metric = new Map((q.prepare('SELECT name, value FROM metrics').all() as { name: string; value: number }[]).map((m) => [m.name, m.value]));
    q.close();
    const vms = [...metric.keys()].filter((k) => k.endsWith('.demand_s')).map((k) => k.slice(4, -9));
    expect(vms.length).toBeGreaterThan(1000);
    let busy = 0;
    for (const vm of vms) {
      const m = (k: string) => metric.get(`cpu.${vm}.${k}`)!;
      expect(Math.abs(m('work_s') + m('backlog_s') - m('demand_s')), vm).toBeLessThan(1e-6 * Math.max(1, m('demand_s')));
      busy += m('demand_s');
    }
    // 64 CPUs idle at 10 W for 24 h, plus each busy CPU-second's 2e9 cycles at 5e-9 J (10 W).
    expect(Math.abs(total / (64 * 10 * 86_400 + 10 * busy) - 1)).toBeLessThan(1e-6);
  }, 120_000);
});

describe('import planetlab by hand', () => {
  it('two VMs on one CPU: each step runs them in turn for their share of 300 s, scaled down together when overloaded', async () => {
    const d = path.join(dir, 'pl-hand');
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'a b.txt'), '50\n200\n'); // a name with a space; 200 % counts as 100 %
    fs.writeFileSync(path.join(d, 'c.txt'), '25\n100\n');
    const out = path.join(dir, 'pl-hand-out');
    const r = await cli(['import', 'planetlab', d, '--out', out, '--cpus', '1', '--tsc-hz', '1e9']);
    expect(r.code, r.err).toBe(0);
    // Step 2 wants 200 % of the CPU: both get half of what they asked, 300 CPU-seconds unmet.
    expect(r.out).toMatch(/2 VMs on 1 CPUs, 2 steps of 5 min → 6 switches/);
    expect(r.out).toMatch(/unmet demand \(CPUs overloaded\): 300 CPU-seconds/);
    expect(lines(path.join(out, 'cswitch.csv'))).toEqual([
      'ts_ns,cpu,vm,tsc,cycles',
      '0,0,idle,0,0',
      '150000000000,0,vm0,150000000000,150000000000',
      '225000000000,0,vm1,225000000000,225000000000',
      '300000000000,0,idle,300000000000,225000000000',
      '450000000000,0,vm0,450000000000,375000000000',
      '600000000000,0,vm1,600000000000,525000000000',
    ]);
    fs.writeFileSync(path.join(d, 'c.txt'), '25\nabc\n');
    const bad = await cli(['import', 'planetlab', d, '--out', path.join(dir, 'pl-bad'), '--cpus', '1']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/c\.txt:2.*utilization is not a non-negative decimal number \('abc'\)/);
    expect(r.out).toContain("VMs by file, in input order (a folder's files by name): vm0 = a b.txt, vm1 = c.txt");
  });

  it('a blank line among the steps and a hex number are located errors; blank lines at the end are not', async () => {
    const d = path.join(dir, 'pl-blank');
    fs.mkdirSync(d, { recursive: true });
    // Before: the blank line was dropped, so 30 % ran in step 2, not 3, and every later step moved.
    fs.writeFileSync(path.join(d, 'a'), '10\n20\n\n30\n');
    const blank = await cli(['import', 'planetlab', d, '--out', path.join(dir, 'pl-blank-out'), '--cpus', '1']);
    expect(blank.code).toBe(2);
    expect(blank.err.trim()).toBe(`wattrace: ${path.join(d, 'a')}:3: a blank line among the steps (one line per 5-minute step: it would shift every later step)`);
    fs.writeFileSync(path.join(d, 'a'), '10\n0x1F\n');
    const hex = await cli(['import', 'planetlab', d, '--out', path.join(dir, 'pl-blank-out'), '--cpus', '1']);
    expect(hex.err.trim()).toBe(`wattrace: ${path.join(d, 'a')}:2: utilization is not a non-negative decimal number ('0x1F')`);
    fs.writeFileSync(path.join(d, 'a'), '10\r\n20\r\n30\r\n\r\n\r\n');
    const ok = await cli(['import', 'planetlab', d, '--out', path.join(dir, 'pl-blank-out'), '--cpus', '1']);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/1 VMs on 1 CPUs, 3 steps of 5 min/);
  });
});
