/**
 * `import ftrace` on the shared trace-cmd recordings (ARM Juno, trappy's tests/, Apache-2.0):
 * natively from trace.dat, and from `trace-cmd report` text in every layout Debian's trace-cmd
 * prints (-t, plain, -l, -R, --ts-diff, -q), which must all give the same switches. The native
 * import must equal the import of `report -t` (nanoseconds) row for row. Without trace-cmd the
 * layouts are skipped with a notice (CI installs it: .ci/run); the native import is then checked
 * against the report text shipped beside each recording (trace-cmd 3.1.5, microseconds).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, lines, SHARED, tmpDir } from '../helpers.js';

const DIR = path.join(SHARED, 'data', 'sched', 'trace-dat');
const there = fs.existsSync(DIR);
if (!there) console.warn(`[wattrace] skipping the trace.dat imports: ${DIR} not found (CI has it)`);
let traceCmd = false;
try {
  execFileSync('trace-cmd', ['--help'], { stdio: 'ignore' });
  traceCmd = true;
} catch (e) {
  // `trace-cmd --help` exits 0 on some versions and 1 on others; only a missing binary is absent.
  traceCmd = (e as NodeJS.ErrnoException).code !== 'ENOENT';
}
if (!traceCmd) console.warn('[wattrace] skipping the trace-cmd report layouts: trace-cmd is not installed (apt-get install trace-cmd; CI installs it)');
const dir = tmpDir();
const map = path.join(dir, 'map.json');
fs.writeFileSync(map, JSON.stringify({ vms: { tracer: ['^trace-cmd$', '^sh$'], kthreads: ['^(kworker|ksoftirqd|kschedfreq|rcu_)'] }, default: 'other' }));

async function importOf(input: string, name: string): Promise<{ rows: string[]; out: string }> {
  const out = path.join(dir, name);
  const r = await cli(['import', 'ftrace', input, '--out', out, '--map', map]);
  expect(r.code, r.err).toBe(0);
  expect(r.err).toBe('');
  return { rows: lines(path.join(out, 'cswitch.csv')).slice(1), out: r.out };
}

/** A row with its time rounded to the microsecond, as trace-cmd report prints it by default. */
const toUs = (row: string) => {
  const [ts, cpu, vm] = row.split(',');
  return `${(BigInt(ts!) + 500n) / 1000n},${cpu},${vm}`;
};

describe.skipIf(!there)('import ftrace: trace.dat natively, and trace-cmd report in every layout', () => {
  for (const [file, switches] of [
    ['raw_trace.dat', 755],
    ['trace_idle.dat', 23],
  ] as const) {
    it(`${file}: ${switches} switches, natively and from the shipped report`, async () => {
      const native = await importOf(path.join(DIR, file), `${file}-native`);
      expect(native.rows).toHaveLength(switches);
      expect(native.out).toMatch(/^ftrace \(trace\.dat\): /);
      const shipped = await importOf(path.join(DIR, file.replace('.dat', '.report.txt')), `${file}-shipped`);
      expect(shipped.rows.map(toUs)).toEqual(native.rows.map(toUs));
    });

    it.skipIf(!traceCmd)(`${file}: report -t equals the native import row for row; -l, -R, --ts-diff, -q and plain give the same switches`, async () => {
      const native = await importOf(path.join(DIR, file), `${file}-native2`);
      for (const opt of ['-t', '', '-l', '-R', '--ts-diff', '-q']) {
        const txt = path.join(dir, `${file}${opt}.txt`);
        fs.writeFileSync(txt, execFileSync('trace-cmd', ['report', ...(opt ? [opt] : []), '-i', path.join(DIR, file)], { stdio: ['ignore', 'pipe', 'ignore'] }));
        const text = await importOf(txt, `${file}${opt}`);
        if (opt === '-t') expect(text.rows, opt).toEqual(native.rows);
        else expect(text.rows.map(toUs), opt || 'plain').toEqual(native.rows.map(toUs));
      }
    });
  }

  it('trace_idle.dat, hand-checked against its report: the first and last switches, their VMs', async () => {
    const { rows, out } = await importOf(path.join(DIR, 'trace_idle.dat'), 'idle-hand');
    // `trace-cmd-6244 [005] 162534.215742: sched_switch: prev_comm=trace-cmd prev_pid=6244 … ==> next_comm=swapper/5`
    // (the file holds 162534.215741800 s: the report rounds to the µs).
    expect(rows[0]).toBe('162534215741800,5,tracer,162534215741800');
    // `<idle>-0 [002] 162534.216056: sched_switch: prev_comm=swapper/2 … ==> next_comm=sh`
    expect(toUs(rows[1]!)).toBe('162534216056,2,idle');
    // The last: `sshd-6036 [000] 162534.219562: sched_switch: prev_comm=sshd …` (unmapped: `other`).
    expect(toUs(rows.at(-1)!)).toBe('162534219562,0,other');
    // Events that are not switches are counted by kind.
    expect(out).toMatch(/skipped: 20 × an event other than sched_switch/);
    expect(out).toMatch(/coverage: /);
  });
});

describe('import ftrace: layouts seen in the wild, by hand', () => {
  const sw = 'sched_switch: prev_comm=app prev_pid=10 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120';
  const cases: [string, string][] = [
    ['tracefs trace, irq-info flags', `             app-10      [000] d..3.  1234.000001: ${sw}`],
    ['tracefs trace, no irq-info', `             app-10      [000]  1234.000001: ${sw}`],
    ['tracefs trace, TGID column', `             app-10      (     10) [000] d..3.  1234.000001: ${sw}`],
    ['tracefs trace, unknown TGID', `             app-10      (-------) [000] d..3  1234.000001: ${sw}`],
    ['Android systrace', `  app-10    ( 10) [000] d..3 1234.000001: ${sw}`],
    ['report -l', `  app-10       0d..3. 1234.000001: ${sw}`],
    ['report --ts-diff', `             app-10  [000] 1234.000001: (+1000) ${sw}`],
    ['report, plugin layout', `             app-10  [000] 1234.000001: sched_switch:  app:10 [120] S ==> swapper/0:0 [120]`],
    ['report -R', `             app-10  [000] 1234.000001: sched_switch:  prev_comm=app prev_pid=10 prev_prio=120 prev_state=1 next_comm=swapper/0 next_pid=0 next_prio=120`],
    ['a comm with spaces and colons', `   rs:main Q:Reg-10  [000] 1234.000001: sched_switch:  rs:main Q:Reg:10 [120] S ==> swapper/0:0 [120]`],
  ];
  for (const [what, line] of cases) {
    it(what, async () => {
      const f = path.join(dir, `${what.replace(/\W+/g, '-')}.txt`);
      fs.writeFileSync(f, ['<html><script class="trace-data">', '# tracer: nop', line, `${line.replace('1234.000001', '1234.000002').replace(/\[000\]/, '[001]').replace(/ 0d/, ' 1d')}`, '</script></html>'].join('\n') + '\n');
      const out = path.join(dir, `out-${what.replace(/\W+/g, '-')}`);
      const r = await cli(['import', 'ftrace', f, '--out', out]);
      expect(r.code, r.err).toBe(0);
      const rows = lines(path.join(out, 'cswitch.csv')).slice(1);
      expect(rows[0]).toBe('1234000001000,0,host,1234000001000');
      expect(rows[1]).toBe('1234000002000,1,host,1234000002000');
      // The HTML around systrace's text is not an event: counted, never silent.
      expect(r.out).toContain('2 × a line that is not a trace event');
    });
  }
});
