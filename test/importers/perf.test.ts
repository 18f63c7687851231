/**
 * `import perf-script` without counters: perf's default output (no period column, no pid/tid,
 * no group members) and `perf sched timehist`, both imported time-only. Both layouts are derived
 * from the shared real recording (perf_sched_switch_counters.txt: its sched_switch lines reprinted
 * as perf's defaults print them, and as timehist prints the same switches), so the switches they
 * give must be the counters import's (time, CPU, VM), row for row. An unrecognised file names what
 * was expected and its first line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, lines, SHARED, tmpDir } from '../helpers.js';

const PERF = path.join(SHARED, 'data', 'host', 'perf_sched_switch_counters.txt');
if (!fs.existsSync(PERF)) console.warn(`[wattrace] skipping perf layouts from the local recording: ${PERF} not found (CI has it)`);
const dir = tmpDir();
const map = path.join(dir, 'map.json');
fs.writeFileSync(map, JSON.stringify({ vms: { vm1: ['^vm1_cpu$'], vm2: ['^vm2_cpu$'], vm3: ['^vm3_disk$'], drv: ['^kworker', '^ksoftirqd'] }, default: 'core' }));

const SWITCH = /^\s*(.+?)\s+(\d+)\/(\d+)\s+\[(\d+)\]\s+(\d+\.\d+):\s+\d+\s+sched:sched_switch: (.*)$/;

async function imported(file: string, name: string): Promise<{ rows: string[]; out: string; profile: { cpu: { idle_split: string; events: object } } }> {
  const out = path.join(dir, name);
  const r = await cli(['import', 'perf-script', file, '--out', out, '--map', map]);
  expect(r.code, r.err).toBe(0);
  return { rows: lines(path.join(out, 'cswitch.csv')), out: r.out, profile: JSON.parse(fs.readFileSync(path.join(out, 'machine.json'), 'utf8')) };
}

describe.skipIf(!fs.existsSync(PERF))('import perf-script: without counters, the same switches as with them', () => {
  const text = fs.existsSync(PERF) ? fs.readFileSync(PERF, 'utf8').split('\n') : [];
  const switches = text.map((l) => SWITCH.exec(l)).filter((m): m is RegExpExecArray => m !== null);

  it('perf script with its default fields (`comm pid [cpu] time: event: trace`) imports time-only', async () => {
    expect(switches).toHaveLength(10_582);
    const withCounters = await imported(PERF, 'counters');
    const f = path.join(dir, 'default.txt');
    fs.writeFileSync(f, switches.map((m) => `${m[1]!.padStart(16)} ${m[2]!.padStart(6)} [${m[4]!.padStart(3, '0')}] ${m[5]}: sched:sched_switch: ${m[6]}`).join('\n') + '\n');
    const plain = await imported(f, 'default');
    expect(plain.rows[0]).toBe('ts_ns,cpu,vm,tsc');
    // Time, CPU and VM as with the counters; the TSC column holds the time (tsc_hz 1e9).
    expect(plain.rows.slice(1).map((r) => r.split(',').slice(0, 3).join(','))).toEqual(withCounters.rows.slice(1).map((r) => r.split(',').slice(0, 3).join(',')));
    expect(plain.rows[1]).toBe('500873437000,0,core,500873437000');
    expect(plain.profile.cpu.idle_split).toBe('by-time');
    expect(plain.profile.cpu.events).toEqual({});
  });

  it('perf sched timehist (a row per task switched out) imports time-only', async () => {
    const withCounters = await imported(PERF, 'counters2');
    const f = path.join(dir, 'timehist.txt');
    const head = [
      '           time    cpu  task name                       wait time  sch delay   run time',
      '                        [tid/pid]                          (msec)     (msec)     (msec)',
      '--------------- ------  ------------------------------  ---------  ---------  ---------',
    ];
    const rows = switches.map((m) => {
      const prev = /prev_comm=(.+?) prev_pid=(\d+)/.exec(m[6]!)!;
      const task = prev[2] === '0' ? '<idle>' : `${prev[1]}[${prev[2]}]`;
      return `${m[5]!.padStart(15)} [${m[4]!.padStart(4, '0')}]  ${task.padEnd(30)}  ${'0.000'.padStart(9)}  ${'0.000'.padStart(9)}  ${'0.010'.padStart(9)}`;
    });
    fs.writeFileSync(f, [...head, ...rows].join('\n') + '\n');
    const th = await imported(f, 'timehist');
    expect(th.out).toMatch(/^perf sched timehist: 10,582 switches/);
    expect(th.out).toMatch(/skipped: none/);
    expect(th.rows.slice(1).map((r) => r.split(',').slice(0, 3).join(','))).toEqual(withCounters.rows.slice(1).map((r) => r.split(',').slice(0, 3).join(',')));
  });
});

describe.skipIf(!fs.existsSync(PERF))('import perf-script: a group that lost its msr/tsc/ line', () => {
  const text = fs.existsSync(PERF) ? fs.readFileSync(PERF, 'utf8').split('\n') : [];
  it('at the end (a file cut short) the switch is left out with a note; in the middle it is an error naming the switch', async () => {
    const whole = await imported(PERF, 'tsc-whole');
    // The file ends with a switch's group: sched_switch, cpu-clock, msr/tsc/ (and a final newline).
    expect(text.at(-2)).toMatch(/msr\/tsc\//);
    const cut = path.join(dir, 'cut.txt');
    fs.writeFileSync(cut, text.slice(0, -2).join('\n') + '\n');
    const c = await imported(cut, 'tsc-cut');
    // Before: the last switch was written with a TSC advance of 0.
    expect(c.rows).toEqual(whole.rows.slice(0, -1));
    expect(c.out).toContain(`note: the last sched_switch (line ${text.length - 3}) has no msr/tsc/ line in its group (the file was cut?): that switch is left out`);
    // perf leaves out members that did not change (page-faults here is in 38 groups of 10,582),
    // so only the TSC, which always advances with time, is required.
    const i = text.findIndex((l, k) => k > 1000 && /msr\/tsc\//.test(l));
    const holed = path.join(dir, 'holed.txt');
    fs.writeFileSync(holed, [...text.slice(0, i), ...text.slice(i + 1)].join('\n'));
    const r = await cli(['import', 'perf-script', holed, '--out', path.join(dir, 'holed'), '--map', map]);
    expect(r.code).toBe(2);
    const sw = text.slice(0, i).findLastIndex((l) => /sched:sched_switch/.test(l)) + 1;
    expect(r.err.trim()).toBe(`wattrace: ${holed}:${sw}: the sched_switch has no msr/tsc/ line in its group, though time advanced since its CPU's last switch (the TSC always does): a line is missing`);
  });

  it('msr/tsc/ recorded beside the group (its lines on other CPUs) says to record it in the group', async () => {
    // Every msr/tsc/ line moved to CPU n + 2: none shares its switch's CPU and time.
    const beside = path.join(dir, 'beside.txt');
    fs.writeFileSync(beside, text.map((l) => (/msr\/tsc\//.test(l) ? l.replace(/\[00(\d)\]/, (_, c: string) => `[00${Number(c) + 2}]`) : l)).join('\n'));
    const r = await cli(['import', 'perf-script', beside, '--out', path.join(dir, 'beside'), '--map', map]);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(`wattrace: ${beside}: msr/tsc/ never advanced within a sched_switch group (its lines do not share the switch's CPU and time): record it in the group, '{sched:sched_switch,msr/tsc/,…}:S'`);
  });
});

describe('import perf-script: a layout it cannot read', () => {
  it('names what it expected and shows the first line it could not read', async () => {
    const f = path.join(dir, 'other.txt');
    fs.writeFileSync(f, '# perf report\n# Samples: 1K of event cycles\n     12.50%  app  libc.so  [.] memcpy\n');
    const r = await cli(['import', 'perf-script', f, '--out', path.join(dir, 'other')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/found no sched:sched_switch samples and no perf sched timehist rows; expected `perf script` output of sched:sched_switch .* or `perf sched timehist` output; line 1 reads '# perf report'/);
    expect(fs.existsSync(path.join(dir, 'other'))).toBe(false);
  });
});
