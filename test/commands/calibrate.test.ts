/** `wattrace calibrate`: non-negative event weights from counter rates and measured power. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIO } from '../../src/commands/io.js';
import { calibrate, fitNonNegative } from '../../src/commands/calibrate.js';
import { loadProfile } from '../../src/core/profile.js';
import { cli, perfStat, SHARED, tmpDir } from '../helpers.js';

const NX12 = path.join(SHARED, 'data', 'power', 'kepler_nx12_rapl_CounterOnly.csv');
const HAVE = fs.existsSync(NX12);
if (!HAVE) console.warn(`[wattrace] skipping the calibration on real RAPL data: ${NX12} not found (CI has it)`);

describe('calibrate by hand', () => {
  it('recovers the weights of exact data, and never fits a negative weight', () => {
    // power = 20 W + 2e-9 J·a + 5e-8 J·b; c does nothing (its best weight would be negative noise).
    const X: number[][] = [];
    const y: number[] = [];
    for (let i = 0; i < 60; i++) {
      const a = 1e9 * (1 + (i % 7));
      const b = 1e7 * (1 + ((i * 3) % 5));
      const c = 1e6 * (1 + ((i * 5) % 11));
      X.push([a, b, c]);
      y.push(20 + 2e-9 * a + 5e-8 * b - (i % 2 ? 0.01 : -0.01) * (c / 1e6));
    }
    const fit = fitNonNegative(X, y, ['a', 'b', 'c']);
    expect(fit.idle).toBeCloseTo(20, 0);
    expect(fit.weights['a']! / 2e-9).toBeCloseTo(1, 2);
    expect(fit.weights['b']! / 5e-8).toBeCloseTo(1, 1);
    for (const w of Object.values(fit.weights)) expect(w).toBeGreaterThanOrEqual(0);
    const r = calibrate(['a', 'b'], X.map((x) => x.slice(0, 2)), y, 5);
    expect(r.folds).toHaveLength(5);
    expect(r.mape).toBeLessThan(1);
  });
});

describe.skipIf(!HAVE)('calibrate on the nx12 RAPL samples (../shared/data/power)', () => {
  it('cross-validated MAPE under 10 %, worse without cache misses; writes a loadable starter profile', async () => {
    const out = path.join(tmpDir(), 'machine.json');
    const io = bufferIO();
    expect(await main(['calibrate', '--samples', NX12, '--target', 'package_power', '--out', out], io), io.stderr.join('')).toBe(0);
    const text = io.stdout.join('\n');
    const mape = Number(/^all\s+2202\s+([\d.]+)/m.exec(text)![1]);
    expect(mape).toBeLessThan(10);
    const io2 = bufferIO();
    expect(await main(['calibrate', '--samples', NX12, '--target', 'package_power', '--features', 'cpu_cycles,cpu_instructions'], io2)).toBe(0);
    const without = Number(/^all\s+2202\s+([\d.]+)/m.exec(io2.stdout.join('\n'))![1]);
    expect(without).toBeGreaterThan(mape + 1);
    const m = loadProfile(out);
    expect(m.eventNames).toEqual(['cache_miss', 'cpu_cycles', 'cpu_instructions']);
    expect(m.profile.cpu.idle_watts).toBeGreaterThan(0);
    // --cpus divides the device's idle term among its CPUs, as --into does: idle_watts is per CPU
    // (a replay charges n_cpus × idle_watts). Before, --out ignored it: a 32-CPU log got 32× the idle.
    const per = path.join(tmpDir(), 'per-cpu.json');
    const io3 = bufferIO();
    expect(await main(['calibrate', '--samples', NX12, '--target', 'package_power', '--out', per, '--cpus', '32'], io3)).toBe(0);
    expect(loadProfile(per).profile.cpu.idle_watts * 32).toBeCloseTo(m.profile.cpu.idle_watts, 9);
    expect(io3.stdout.join('\n')).toMatch(/wrote .*per-cpu\.json: idle_watts [\d.]+ W per CPU \([\d.]+ W over 32\)/);
  });

  it('bad input: an unknown target or feature, a non-number', async () => {
    const io = bufferIO();
    expect(await main(['calibrate', '--samples', NX12, '--target', 'watts'], io)).toBe(2);
    expect(io.stderr.join('')).toMatch(/no column 'watts'/);
    const bad = path.join(tmpDir(), 'bad.csv');
    fs.writeFileSync(bad, 'a,p\n' + Array.from({ length: 12 }, (_, i) => `${i},${i === 5 ? 'x' : 10 + i}`).join('\n') + '\n');
    const io2 = bufferIO();
    expect(await main(['calibrate', '--samples', bad, '--target', 'p', '--features', 'a'], io2)).toBe(2);
    expect(io2.stderr.join('')).toMatch(/bad\.csv:7:2 \(column p\): p is not a number \('x'\)/);
  });
});

describe('calibrate from perf stat -I -x, output, into an imported profile', () => {
  const dir = tmpDir();
  it('recovers the weights per event/s and the idle watts per CPU, and writes them into the profile', async () => {
    const samples = path.join(dir, 'stat.csv');
    fs.writeFileSync(samples, perfStat());
    const profile = path.join(dir, 'machine.json');
    fs.writeFileSync(
      profile,
      JSON.stringify({
        cpu: { tsc_hz: 2.6e9, idle_watts: 10, counter_bits: 64, idle_split: 'by-time', events: { cycles: 0, instructions: 0, cache_misses: 0, page_faults: 0 } },
        disks: {},
        vms: [{ id: 'vm1', role: 'client' }],
        services: [],
      }),
    );
    const r = await cli(['calibrate', '--samples', samples, '--target', 'power/energy-pkg/', '--into', profile]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('left out: branch_misses (<not supported>)');
    const m = loadProfile(profile).profile;
    expect(m.cpu.events['cycles']! / 2e-9).toBeCloseTo(1, 5);
    expect(m.cpu.events['instructions']! / 1e-9).toBeCloseTo(1, 5);
    expect(m.cpu.events['cache_misses']! / 5e-8).toBeCloseTo(1, 4);
    expect(m.cpu.events['page_faults']).toBe(0);
    // 16 W of idle over the 2 CPUs perf stat -A printed.
    expect(m.cpu.idle_watts).toBeCloseTo(8, 5);
    expect(r.out).toMatch(/idle_watts 8\.000 W per CPU \(16\.000 W over 2\)/);
  });

  it('perf stat conventions: msec counters in ns, metric continuation lines, <not counted> intervals, --per-socket', async () => {
    // Per socket (`S0,<cpus>,`): cpu-clock in msec (perf script counts ns), a metric line after
    // instructions, and two intervals where cycles were <not counted> (nothing ran).
    const out = ['#           time socket cpus             counts unit events'];
    let t = 0;
    for (let i = 0; i < 14; i++) {
      t += 1;
      const busy = 0.2 + 0.05 * (i % 7); // CPU-seconds per second
      const ins = 1e9 * (1 + ((i * 3) % 5));
      const ts = t.toFixed(9).padStart(15);
      out.push(`${ts},S0,2,${(busy * 1000).toFixed(3)},msec,cpu-clock,${1e9},100.00,${busy.toFixed(3)},CPUs utilized`);
      out.push(`${ts},S0,2,${ins},,instructions,${1e9},100.00,,`);
      out.push(`${ts},S0,2,,,,,,0.30,stalled cycles per insn`);
      out.push(`${ts},S0,2,${i === 3 || i === 9 ? '<not counted>' : '123'},,cycles,0,0.00,,`);
      out.push(`${ts},S0,2,${1000 + 37 * (i % 5)},,cpu/event=0xc0,umask=0x00/,${1e9},100.00,,`); // commas inside
      // 10 W + 20 W per busy CPU-second (2e-8 J per ns of cpu-clock) + 1e-9 J per instruction.
      out.push(`${ts},S0,2,${(10 + 20 * busy + 1e-9 * ins).toFixed(6)},Joules,power/energy-pkg/,${1e9},100.00,,`);
    }
    const samples = path.join(dir, 'socket.csv');
    fs.writeFileSync(samples, out.join('\n') + '\n');
    const r = await cli(['calibrate', '--samples', samples, '--target', 'power/energy-pkg/', '--features', 'cpu-clock,instructions', '--folds', '3']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/= 10\.000 W \+ 2\.0000e-8 J × cpu_clock\/s \+ 1\.0000e-9 J × instructions\/s/);
    const all = await cli(['calibrate', '--samples', samples, '--target', 'power/energy-pkg/', '--folds', '3']);
    expect(all.code, all.err).toBe(0);
    expect(all.out).toContain('left out: 2 interval(s) with an event <not counted>');
    expect(all.out).toContain('J × cpu_event_0xc0_umask_0x00/s');
    // Two sockets of 2 CPUs each: --into divides the idle term by 4.
    const two = out.flatMap((l) => (l.startsWith('#') ? [l] : [l, l.replace(',S0,', ',S1,')]));
    fs.writeFileSync(samples, two.join('\n') + '\n');
    const prof = path.join(dir, 'socket-profile.json');
    fs.writeFileSync(prof, JSON.stringify({ cpu: { tsc_hz: 1e9, idle_watts: 1, counter_bits: 64, idle_split: 'equal', events: { cpu_clock: 0, instructions: 0 } }, disks: {}, vms: [{ id: 'vm1', role: 'client' }], services: [] }));
    const s2 = await cli(['calibrate', '--samples', samples, '--target', 'power/energy-pkg/', '--features', 'cpu-clock,instructions', '--folds', '3', '--into', prof]);
    expect(s2.code, s2.err).toBe(0);
    expect(s2.out).toMatch(/idle_watts 5\.000 W per CPU \(20\.000 W over 4\)/);
    // An event counted in fewer than half the intervals is left out, not the intervals.
    const sparse = out.map((l) => (l.includes(',cycles,') && !l.includes('   1.000000000,') ? l.replace(/,S0,2,123,/, ',S0,2,<not counted>,') : l));
    fs.writeFileSync(samples, sparse.join('\n') + '\n');
    const s3 = await cli(['calibrate', '--samples', samples, '--target', 'power/energy-pkg/', '--folds', '3']);
    expect(s3.code, s3.err).toBe(0);
    expect(s3.out).toMatch(/left out: cycles \(<not counted> in 13 of 14 intervals\)/);
  });

  it('bad input: an event the profile lacks, a target perf could not count, a line that is not perf stat', async () => {
    const samples = path.join(dir, 'stat2.csv');
    fs.writeFileSync(samples, perfStat());
    const profile = path.join(dir, 'small.json');
    const small = { cpu: { tsc_hz: 1e9, idle_watts: 10, counter_bits: 64, idle_split: 'equal', events: { cycles: 0 } }, disks: {}, vms: [{ id: 'vm1', role: 'client' }], services: [] };
    fs.writeFileSync(profile, JSON.stringify(small));
    const a = await cli(['calibrate', '--samples', samples, '--target', 'power/energy-pkg/', '--into', profile]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/no event instructions, cache_misses/);
    expect(JSON.parse(fs.readFileSync(profile, 'utf8'))).toEqual(small);
    // --out into a folder that does not exist: an error, and the --into profile untouched.
    fs.writeFileSync(profile, JSON.stringify({ ...small, cpu: { ...small.cpu, events: { cycles: 0, instructions: 0, cache_misses: 0 } } }));
    const before = fs.readFileSync(profile, 'utf8');
    const o = await cli(['calibrate', '--samples', samples, '--target', 'power/energy-pkg/', '--into', profile, '--out', path.join(dir, 'no', 'such', 'x.json')]);
    expect(o.code).toBe(2);
    expect(o.err).toMatch(/x\.json.*cannot write the profile/);
    expect(fs.readFileSync(profile, 'utf8')).toBe(before);
    fs.writeFileSync(profile, JSON.stringify(small));
    const b = await cli(['calibrate', '--samples', samples, '--target', 'branch-misses']);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/stat2\.csv:6.*branch_misses is not a number in any interval \('<not supported>'\)/);
    fs.writeFileSync(samples, perfStat().replace(/\n(\s+3\.0\d+),CPU1,/, '\n$1;CPU1,'));
    const c = await cli(['calibrate', '--samples', samples, '--target', 'power/energy-pkg/']);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/stat2\.csv:\d+:1.*expected perf stat -I -x, output/);
  });
});
