/** `wattrace import ftrace`: the old sched_switch layout (a real ARM Juno trace) and malformed lines. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, lines, SHARED, tmpDir } from '../helpers.js';

const JUNO = path.join(SHARED, 'data', 'sched', 'lisa_juno_ftrace_sched.txt');
if (!fs.existsSync(JUNO)) console.warn(`[wattrace] skipping the ftrace import of the Juno trace: ${JUNO} not found (CI has it)`);
const TRACECOMPASS = path.join(SHARED, 'data', 'sched', 'tracecompass_perf-taskset2.babeltrace2.txt');
if (!fs.existsSync(TRACECOMPASS)) console.warn(`[wattrace] skipping the ftrace import of the Trace Compass trace: ${TRACECOMPASS} not found (CI has it)`);
const dir = tmpDir();

describe.skipIf(!fs.existsSync(TRACECOMPASS))('import ftrace: babeltrace2 text of a perf recording (Trace Compass test trace)', () => {
  it('every switch from perf_cpu and prev_comm; the time of day as ns; other events counted', async () => {
    const out = path.join(dir, 'tc');
    const r = await cli(['import', 'ftrace', TRACECOMPASS, '--out', out]);
    expect(r.code, r.err).toBe(0);
    // `grep -c sched_switch` → 562, `grep -c sched_stat_runtime` → 585 (the data README's counts).
    expect(r.out).toMatch(/^ftrace: 562 switches/);
    expect(r.out).toContain('585 × event sched_stat_runtime');
    const l = lines(path.join(out, 'cswitch.csv'));
    expect(l).toHaveLength(563);
    // Line 2: `[00:16:19.417073483] … perf_cpu = 0, … prev_comm = "swapper/0", prev_pid = 0`:
    // 16 × 60 + 19 = 979 s, the idle task.
    expect(l[1]).toBe('979417073483,0,idle,979417073483');
    // The last switch: `[00:16:19.475381350] … perf_cpu = 3, … prev_comm = "ls"` (unmapped: host).
    expect(l[562]).toBe('979475381350,3,host,979475381350');
  });

  it('a time of day that crosses midnight goes on into the next day (it read as time going backwards)', async () => {
    // The same trace moved to start at 23:59:59.990: its 58 ms cross 00:00:00.
    const text = fs.readFileSync(TRACECOMPASS, 'utf8');
    const start = 979_417_057_183n; // its first line, [00:16:19.417057183]
    const to = 86_399_990_000_000n; // 23:59:59.990000000
    const moved = text.replace(/^\[(\d+):(\d\d):(\d\d)\.(\d{9})\]/gm, (_, h: string, m: string, sec: string, n: string) => {
      const t = ((BigInt(h) * 3600n + BigInt(m) * 60n + BigInt(sec)) * 1_000_000_000n + BigInt(n) - start + to) % 86_400_000_000_000n;
      const s2 = t / 1_000_000_000n;
      const p2 = (v: bigint) => String(v).padStart(2, '0');
      return `[${p2(s2 / 3600n)}:${p2((s2 / 60n) % 60n)}:${p2(s2 % 60n)}.${String(t % 1_000_000_000n).padStart(9, '0')}]`;
    });
    expect(moved).toMatch(/^\[23:59:59\.99/);
    expect(moved).toMatch(/\n\[00:00:00\.0/);
    const f = path.join(dir, 'midnight.txt');
    fs.writeFileSync(f, moved);
    const a = await cli(['import', 'ftrace', TRACECOMPASS, '--out', path.join(dir, 'tc-a')]);
    const b = await cli(['import', 'ftrace', f, '--out', path.join(dir, 'tc-b')]);
    expect(b.code, b.err).toBe(0);
    expect(a.code).toBe(0);
    // Row for row the same switches, every time moved by the same amount.
    const la = lines(path.join(dir, 'tc-a', 'cswitch.csv')).slice(1).map((x) => x.split(','));
    const lb = lines(path.join(dir, 'tc-b', 'cswitch.csv')).slice(1).map((x) => x.split(','));
    expect(lb.map((r) => r.slice(1, 3))).toEqual(la.map((r) => r.slice(1, 3)));
    expect(new Set(lb.map((r, i) => BigInt(r[0]!) - BigInt(la[i]![0]!)))).toEqual(new Set([to - start]));
  });
});

describe('import ftrace: babeltrace2 text of an LTTng kernel trace', () => {
  it('the CPU from cpu_id, the task from prev_comm and prev_tid, seconds as printed; block events counted, not read', async () => {
    const f = path.join(dir, 'lttng.txt');
    fs.writeFileSync(
      f,
      [
        '[12.000000100] (+?.?????????) myhost sched_switch: { cpu_id = 2 }, { prev_comm = "vm1 cpu", prev_tid = 42, prev_prio = 20, prev_state = 1, next_comm = "swapper/2", next_tid = 0, next_prio = 20 }',
        '[12.000000300] (+0.000000200) myhost block_rq_issue: { cpu_id = 2 }, { dev = 8388608, sector = 8, nr_sector = 8, bytes = 4096, tid = 42, rwbs = 8, comm = "vm1 cpu" }',
        '[12.000500000] (+0.000499700) myhost sched_switch: { cpu_id = 2 }, { prev_comm = "swapper/2", prev_tid = 0, prev_prio = 20, prev_state = 0, next_comm = "b", next_tid = 7, next_prio = 20 }',
        '',
      ].join('\n'),
    );
    const map = path.join(dir, 'lttng-map.json');
    fs.writeFileSync(map, JSON.stringify({ vms: { vm1: ['^vm1 cpu$'] } }));
    const r = await cli(['import', 'ftrace', f, '--out', path.join(dir, 'lttng'), '--map', map]);
    expect(r.code, r.err).toBe(0);
    expect(lines(path.join(dir, 'lttng', 'cswitch.csv'))).toEqual(['ts_ns,cpu,vm,tsc', '12000000100,2,vm1,12000000100', '12000500000,2,idle,12000500000']);
    expect(r.out).toContain('1 × a block_rq_issue in babeltrace text (not read: its rwbs is a bit mask)');
  });
});


describe.skipIf(!fs.existsSync(JUNO))('import ftrace: trace-cmd report of an ARM Juno board (old sched_switch layout, seconds clock)', () => {
  it('every switch, mapped VMs, first and last rows; other events and the header counted', async () => {
    const map = path.join(dir, 'juno-map.json');
    fs.writeFileSync(map, JSON.stringify({ vms: { shell: ['^(sh|sshd)$'], kthreads: ['^(kworker|rcu_|watchdog|ksoftirqd|migration)'] }, default: 'other' }));
    const out = path.join(dir, 'juno');
    const r = await cli(['import', 'ftrace', JUNO, '--out', out, '--map', map]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/1,856 switches .*0 disk requests/);
    // `grep -c sched_wakeup:` → 1068; `Version = 6`, the one line that is no event, is the
    // report's header (framing, like `cpus=6`): not counted.
    expect(r.out).toContain('skipped: 1068 × event sched_wakeup, 14 × event print, 3 × event sched_overutilized');
    expect(r.out).not.toContain('a line that is not a trace event');
    const l = lines(path.join(out, 'cswitch.csv'));
    expect(l).toHaveLength(1857);
    expect(l[0]).toBe('ts_ns,cpu,vm,tsc');
    // `<...>-1701 [001] 76.211513: sched_switch: prev_comm=trace-cmd ...`, then `swapper/2` on cpu 2.
    expect(l[1]).toBe('76211513000,1,other,76211513000');
    expect(l[2]).toBe('76211523000,2,idle,76211523000');
    expect(l[1856]).toBe('82888010000,2,idle,82888010000');
    const vms = new Set(l.slice(1).map((x) => x.split(',')[2]));
    expect(vms).toEqual(new Set(['idle', 'other', 'shell', 'kthreads']));
    const profile = JSON.parse(fs.readFileSync(path.join(out, 'machine.json'), 'utf8')) as { cpu: { idle_split: string } };
    expect(profile.cpu.idle_split).toBe('by-time');
  });

  it('--tsc-hz on this seconds clock is said to change nothing (it only rates the TSC column made from time)', async () => {
    const out = path.join(dir, 'juno-hz');
    const r = await cli(['import', 'ftrace', JUNO, '--out', out, '--tsc-hz', '2e9']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("note: --tsc-hz 2000000000 only sets the rate of the TSC column made from time (the trace's seconds clock is not in ticks); it changes no result");
    // The TSC made from time at 2 GHz: 76.211513 s → 152423026000 ticks (no --map: every task is host).
    expect(lines(path.join(out, 'cswitch.csv'))[1]).toBe('76211513000,1,host,152423026000');
  });
});

describe('import ftrace: malformed lines', () => {
  const head = (cpu: number, ts: string) => `          app-10    [00${cpu}] d..2 ${ts}: `;
  it('a sched_switch without prev_comm, time going backwards on a CPU, a block request that does not parse: errors naming the line', async () => {
    const cases: [string, RegExp][] = [
      [[`${head(0, '1.000000')}sched_switch: prev_pid=10 ==> next_comm=b next_pid=11`].join('\n'), /t0\.txt:1.*sched_switch without the task switched out/],
      [[`${head(0, '1.000010')}sched_switch: prev_comm=app prev_pid=10 prev_prio=120 prev_state=R ==> next_comm=b next_pid=11 next_prio=120`, `${head(0, '1.000000')}sched_switch: prev_comm=b prev_pid=11 prev_prio=120 prev_state=R ==> next_comm=app next_pid=10 next_prio=120`].join('\n'), /t1\.txt:2.*backwards on cpu 0/],
      [[`${head(1, '1.000000')}block_rq_issue: 254,0 W 4096 () sector? + 8 [app]`].join('\n'), /t2\.txt:1.*block_rq_issue that does not read/],
    ];
    for (const [i, [text, err]] of cases.entries()) {
      const f = path.join(dir, `t${i}.txt`);
      fs.writeFileSync(f, text + '\n');
      const out = path.join(dir, `bad${i}`);
      const r = await cli(['import', 'ftrace', f, '--out', out]);
      expect(r.code, text).toBe(2);
      expect(r.err).toMatch(err);
      expect(fs.existsSync(path.join(out, 'cswitch.csv'))).toBe(false);
    }
    // A line that is not an event is counted, not silently dropped.
    const f = path.join(dir, 'ok.txt');
    fs.writeFileSync(f, ['# tracer: nop', 'garbage here', `${head(0, '1.000000')}sched_switch: prev_comm=app prev_pid=10 prev_prio=120 prev_state=R ==> next_comm=b next_pid=11 next_prio=120`].join('\n') + '\n');
    const r = await cli(['import', 'ftrace', f, '--out', path.join(dir, 'ok')]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('1 × a line that is not a trace event');
  });
});

describe('import: tasks mapped by pid (QEMU vCPU threads share one name)', () => {
  it('ftrace switches and blkparse requests of two qemu threads go to their VMs by pid; swapper is idle, never a disk client', async () => {
    const map = path.join(dir, 'pid-map.json');
    fs.writeFileSync(map, JSON.stringify({ pids: { vm7: ['42'], vm1: ['^4242$'], vm2: ['4343'] }, vms: { vm9: ['^qemu'] }, default: 'host' })); // '42' is pid 42 only
    const sw = (pid: number, ts: string, next: string) => `  qemu-system-x86-${pid}  [000] d..2 ${ts}: sched_switch: prev_comm=qemu-system-x86 prev_pid=${pid} prev_prio=120 prev_state=R ==> next_comm=${next} next_pid=1 next_prio=120`;
    const f = path.join(dir, 'qemu.txt');
    fs.writeFileSync(
      f,
      [
        sw(4242, '1.000000', 'qemu-system-x86'),
        sw(4343, '1.000100', 'qemu-system-x86'),
        sw(5000, '1.000200', 'swapper/0'),
        `  <idle>-0  [000] d..2 1.000300: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=x next_pid=1 next_prio=120`,
        `  <idle>-0  [000] d.s2 1.000400: block_rq_issue: 254,0 R 4096 () 100 + 8 [swapper/0]`,
        `  <idle>-0  [000] d.h2 1.000500: block_rq_complete: 254,0 R () 100 + 8 [0]`,
      ].join('\n') + '\n',
    );
    const r = await cli(['import', 'ftrace', f, '--out', path.join(dir, 'qemu'), '--map', map]);
    expect(r.code, r.err).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'qemu', 'cswitch.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',')[2])).toEqual(['vm1', 'vm2', 'vm9', 'idle']);
    expect(fs.readFileSync(path.join(dir, 'qemu', 'disk.csv'), 'utf8').trim().split('\n')[1]!.split(',')[1]).toBe('host');
    const b = path.join(dir, 'qemu.blk');
    fs.writeFileSync(
      b,
      ['  8,0    0        1     0.000000000  4343  Q   R 100 + 8 [qemu-system-x86]', '  8,0    0        2     0.000001000  4343  D   R 100 + 8 [qemu-system-x86]', '  8,0    0        3     0.000002000     0  C   R 100 + 8 [0]'].join('\n') + '\n',
    );
    const rb = await cli(['import', 'blkparse', b, '--out', path.join(dir, 'qemu-blk'), '--map', map]);
    expect(rb.code, rb.err).toBe(0);
    expect(rb.out).toMatch(/by VM: vm2 1/);
  });
});
