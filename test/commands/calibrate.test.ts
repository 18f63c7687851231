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

/** A samples CSV: a header and rows, one line each. */
function samplesFile(name: string, header: string, rows: string[]): string {
  const f = path.join(tmpDir(), name);
  fs.writeFileSync(f, [header, ...rows].join('\n') + '\n');
  return f;
}

/** 50 exact samples of p = 20 W + 1e-5 J·a + 2e-6 J·b, with a host name column and a time. */
function exactRows(n = 50): { a: number; b: number; p: number; cells: string[] }[] {
  return Array.from({ length: n }, (_, i) => {
    const a = 1e5 * (1 + (i % 7));
    const b = 1e6 * (1 + ((i * 3) % 5));
    const p = 20 + 1e-5 * a + 2e-6 * b;
    return { a, b, p, cells: [String(1000 + i), `node${i % 3}`, String(a), String(b), String(p)] };
  });
}
const EXACT_HEADER = 'time,host,a,b,p';

describe('calibrate: how many features the exact fit tries', () => {
  it('refuses more candidate columns than MAX (10) before fitting, naming them; an explicit --features too', async () => {
    // 13 varying counters: every subset is 8192 fits per fold (24 took minutes before the cap).
    const names = Array.from({ length: 13 }, (_, j) => `c${String(j + 1).padStart(2, '0')}`);
    // c_j varies (i·(j+1) mod 17 runs through 17 values); watts = 30 W + 1e-6 J × c01.
    const cell = (i: number, j: number) => 1e6 * (1 + ((i * (j + 1)) % 17));
    const rows = Array.from({ length: 40 }, (_, i) => [String(i), ...names.map((_, j) => String(cell(i, j))), String(30 + 1e-6 * cell(i, 0))].join(','));
    const f = samplesFile('wide.csv', ['timestamp', ...names, 'watts'].join(','), rows);
    const t0 = Date.now();
    const r = await cli(['calibrate', '--samples', f, '--target', 'watts']);
    expect(r.code, r.out).toBe(2);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(r.err).toBe(`wattrace: ${f}: 13 candidate feature columns (c01, c02, c03, c04, c05, c06, c07, c08, c09, c10, c11, c12, c13); the exact fit tries every subset of them (2^13 per fold): choose at most 10 with --features`);
    const eleven = await cli(['calibrate', '--samples', f, '--target', 'watts', '--features', names.slice(0, 11).join(',')]);
    expect(eleven.code).toBe(2);
    expect(eleven.err).toBe(`wattrace: --features names 11 columns (c01, c02, c03, c04, c05, c06, c07, c08, c09, c10, c11); the exact fit tries every subset of them (2^11 per fold): choose at most 10`);
    // Ten is allowed.
    const ten = await cli(['calibrate', '--samples', f, '--target', 'watts', '--features', names.slice(0, 10).join(','), '--folds', '2']);
    expect(ten.code, ten.err).toBe(0);
    // Long names are cut: the first are named, then how many more.
    const long = names.map((n) => `a_counter_with_a_rather_long_name_${n}`);
    const g = samplesFile('long.csv', ['timestamp', ...long, 'watts'].join(','), rows);
    const l = await cli(['calibrate', '--samples', g, '--target', 'watts']);
    expect(l.code).toBe(2);
    expect(l.err).toMatch(/: 13 candidate feature columns \(a_counter_with_a_rather_long_name_c01, a_counter_with_a_rather_long_name_c02, a_counter_with_a_rather_long_name_c03, … and 10 more\); .*choose at most 10 with --features$/);
    expect(() => fitNonNegative([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]], [1], long.slice(0, 11))).toThrow(/choose at most 10/);
  });

  it('the cap holds for perf stat output too', async () => {
    const out: string[] = [];
    for (let i = 0; i < 12; i++) {
      const ts = (i + 1).toFixed(9).padStart(15);
      for (let e = 0; e < 11; e++) out.push(`${ts},${1000 * (1 + ((i * (e + 1)) % 5))},,event${e},1000000000,100.00,,`);
      out.push(`${ts},${(20 + i).toFixed(3)},Joules,power/energy-pkg/,1000000000,100.00,,`);
    }
    const f = path.join(tmpDir(), 'stat.csv');
    fs.writeFileSync(f, out.join('\n') + '\n');
    const r = await cli(['calibrate', '--samples', f, '--target', 'power/energy-pkg/']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/stat\.csv: 11 candidate feature columns \(event0, event1, .*event10\); .*choose at most 10 with --features$/);
  });
});

describe('calibrate: which columns are counters, and bad cells in them', () => {
  it('a textual column is left out; a counter column with one empty, NaN or inf cell is an error where it is', async () => {
    const rows = exactRows();
    // `note` holds text but one number: still text. Before, `b` with one bad cell was dropped silently.
    const header = `${EXACT_HEADER},note`;
    const ok = samplesFile('ok.csv', header, rows.map((r, i) => [...r.cells, i === 7 ? '42' : 'busy'].join(',')));
    const good = await cli(['calibrate', '--samples', ok, '--target', 'p']);
    expect(good.code, good.err).toBe(0);
    // Exact data: 20 W + 1e-5 J × a + 2e-6 J × b, and nothing for host or note.
    expect(good.out).toMatch(/: p = 20\.000 W \+ 1\.0000e-5 J × a\/s \+ 2\.0000e-6 J × b\/s\n/);
    for (const bad of ['', 'NaN', 'inf', '-Infinity', 'n/a', ' ']) {
      // Row 11 (0-based) is line 13; b is column 4.
      const f = samplesFile('bad.csv', header, rows.map((r, i) => [...r.cells.slice(0, 3), i === 11 ? bad : r.cells[3], r.cells[4], 'busy'].join(',')));
      const e = await cli(['calibrate', '--samples', f, '--target', 'p']);
      expect(e.code, `'${bad}': ${e.out}`).toBe(2);
      expect(e.err).toBe(`wattrace: ${f}:13:4 (column b): b is not a number ('${bad}')`);
    }
    // Lines count the blank lines csv-parse skips.
    const blank = path.join(tmpDir(), 'blank.csv');
    fs.writeFileSync(blank, [EXACT_HEADER, '', ...rows.map((r, i) => [...r.cells.slice(0, 3), i === 0 ? '' : r.cells[3], r.cells[4]].join(','))].join('\n') + '\n');
    const bl = await cli(['calibrate', '--samples', blank, '--target', 'p']);
    expect(bl.err).toBe(`wattrace: ${blank}:3:4 (column b): b is not a number ('')`);
  });

  it('a duplicate header column and a negative counter are located errors', async () => {
    const rows = exactRows();
    const dup = samplesFile('dup.csv', 'time,host,a,a,p', rows.map((r) => r.cells.join(',')));
    const d = await cli(['calibrate', '--samples', dup, '--target', 'p']);
    expect(d.code).toBe(2);
    expect(d.err).toBe(`wattrace: ${dup}:1:4 (column a): the header names column 'a' twice (columns 3 and 4)`);
    const neg = samplesFile('neg.csv', EXACT_HEADER, rows.map((r, i) => [...r.cells.slice(0, 2), i === 6 ? '-5' : r.cells[2], ...r.cells.slice(3)].join(',')));
    for (const features of [[], ['--features', 'a,b']]) {
      const n = await cli(['calibrate', '--samples', neg, '--target', 'p', ...features]);
      expect(n.code).toBe(2);
      expect(n.err).toBe(`wattrace: ${neg}:8:3 (column a): a is negative ('-5'); a counter rate is at least 0`);
    }
    const twice = await cli(['calibrate', '--samples', neg, '--target', 'p', '--features', 'a,b,a']);
    expect(twice.code).toBe(2);
    expect(twice.err).toBe(`wattrace: --features names a twice`);
  });

  it('a measured power of 0 W or less, and a value too large to square, are located errors', async () => {
    const rows = exactRows();
    for (const p of ['0', '-3.5']) {
      const f = samplesFile('zero.csv', EXACT_HEADER, rows.map((r, i) => [...r.cells.slice(0, 4), i === 20 ? p : r.cells[4]].join(',')));
      const e = await cli(['calibrate', '--samples', f, '--target', 'p']);
      expect(e.code).toBe(2);
      expect(e.err).toBe(`wattrace: ${f}:22:5 (column p): p is the measured power and must be above 0 W ('${p}')`);
    }
    const out = path.join(tmpDir(), 'never.json');
    const f = samplesFile('huge.csv', EXACT_HEADER, rows.map((r, i) => [...r.cells.slice(0, 3), i === 3 ? '1e300' : r.cells[3], r.cells[4]].join(',')));
    const e = await cli(['calibrate', '--samples', f, '--target', 'p', '--out', out]);
    expect(e.code).toBe(2);
    expect(e.err).toBe(`wattrace: ${f}:5:4 (column b): b is too large to fit ('1e300': above 1e150, its square overflows)`);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('a result no profile should come from (an outlier predicted 1e7 W against 25 W) is refused, and nothing is written', async () => {
    const rows = exactRows();
    // Row 23 (line 25, in fold 4 of the interleaved 5): a = 1e12 events/s with 25 W measured. The
    // other folds' fits must give a ~0 weight to fit it; fold 4's fit, from exact samples, has
    // 1e-5 J per a and predicts 20 + 1e-5·1e12 + 2e-6·b ≈ 1.00e7 W for it.
    const f = samplesFile('outlier.csv', EXACT_HEADER, rows.map((r, i) => (i === 23 ? ['1023', 'node2', '1e12', '1000000', '25'] : r.cells).join(',')));
    const out = path.join(tmpDir(), 'never.json');
    const profile = path.join(tmpDir(), 'machine.json');
    const before = JSON.stringify({ cpu: { tsc_hz: 1e9, idle_watts: 1, counter_bits: 64, idle_split: 'equal', events: { a: 0, b: 0 } }, disks: {}, vms: [{ id: 'vm1', role: 'client' }], services: [] });
    fs.writeFileSync(profile, before);
    const e = await cli(['calibrate', '--samples', f, '--target', 'p', '--out', out, '--into', profile]);
    expect(e.code).toBe(2);
    expect(e.err).toMatch(new RegExp(`^wattrace: ${f.replace(/[.]/g, '\\.')}:25: no usable fit: fold 4's MAPE is [\\d.]+e\\+\\d+ % \\(over 1000 %\\); the worst sample, line 25, is predicted 1\\.00e\\+7 W against 25 W measured: check its values$`));
    expect(e.out).toBe('');
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readFileSync(profile, 'utf8')).toBe(before);
  });

  it('--folds beyond the number of samples is a usage error; as many as the samples is leave-one-out', async () => {
    const f = samplesFile('s.csv', EXACT_HEADER, exactRows(12).map((r) => r.cells.join(',')));
    const e = await cli(['calibrate', '--samples', f, '--target', 'p', '--folds', '13']);
    expect(e.code).toBe(2);
    expect(e.err).toBe(`wattrace: --folds 13 is more than the 12 samples of ${f}: each fold needs at least one`);
    const loo = await cli(['calibrate', '--samples', f, '--target', 'p', '--folds', '12']);
    expect(loo.code, loo.err).toBe(0);
    expect(loo.out).toMatch(/^12\s+1\s/m);
  });

  it('perf stat output: a negative count, a non-number and an interval of 0 W are located errors', async () => {
    const base = perfStat();
    const lines = base.split('\n');
    // Line 4 is the first interval's CPU0 instructions; its value is column 3.
    expect(lines[3]).toMatch(/,CPU0,\d+,,instructions,/);
    for (const [v, why] of [['-12', "instructions is negative ('-12'); a count is at least 0"], ['nan', "instructions is not a number ('nan')"]] as const) {
      const f = path.join(tmpDir(), 'stat.csv');
      fs.writeFileSync(f, lines.map((l, i) => (i === 3 ? l.replace(/,CPU0,\d+,/, `,CPU0,${v},`) : l)).join('\n'));
      const r = await cli(['calibrate', '--samples', f, '--target', 'power/energy-pkg/']);
      expect(r.code).toBe(2);
      expect(r.err).toBe(`wattrace: ${f}:4:3 (column instructions): ${why}`);
    }
    // The third interval's energy (line 3 + 3·9 − 1 = 29, 1-based) is 0 J.
    const f = path.join(tmpDir(), 'stat0.csv');
    expect(lines[28]).toMatch(/power\/energy-pkg\//);
    fs.writeFileSync(f, lines.map((l, i) => (i === 28 ? l.replace(/,CPU0,[\d.]+,Joules,/, ',CPU0,0,Joules,') : l)).join('\n'));
    const z = await cli(['calibrate', '--samples', f, '--target', 'power/energy-pkg/']);
    expect(z.code).toBe(2);
    expect(z.err).toBe(`wattrace: ${f}:29:3 (column power_energy_pkg): power_energy_pkg is the measured power and must be above 0 W (0 J in 1.002 s)`);
    // A bad value of an event the fit does not use is no error; of one it would use by default, it is.
    expect(lines[5]).toMatch(/,CPU0,<not supported>,,branch-misses,/);
    const u = path.join(tmpDir(), 'unused.csv');
    fs.writeFileSync(u, lines.map((l, i) => (i === 5 ? l.replace('<not supported>', 'nan') : l)).join('\n'));
    const used = await cli(['calibrate', '--samples', u, '--target', 'power/energy-pkg/', '--features', 'cycles,instructions,cache-misses']);
    expect(used.code, used.err).toBe(0);
    const all = await cli(['calibrate', '--samples', u, '--target', 'power/energy-pkg/']);
    expect(all.err).toBe(`wattrace: ${u}:6:3 (column branch_misses): branch_misses is not a number ('nan')`);
  });

  it('perf stat output: a cut-off last interval (no energy reading) is left out and counted, not a 0 W sample', async () => {
    const lines = perfStat().split('\n');
    // The file ends with the last interval's energy line and a newline.
    expect(lines.at(-2)).toMatch(/Joules,power\/energy-pkg\//);
    const f = path.join(tmpDir(), 'cut.csv');
    fs.writeFileSync(f, [...lines.slice(0, -2), ''].join('\n'));
    const r = await cli(['calibrate', '--samples', f, '--target', 'power/energy-pkg/']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('left out: branch_misses (<not supported>), 1 interval(s) lacking an event (cut off?)');
    // helpers.perfStat: 16 W + 2e-9 J per cycle + 1e-9 J per instruction + 5e-8 J per cache miss, on 29 intervals.
    expect(r.out).toMatch(/on 29 samples .*= 16\.000 W \+ 2\.0000e-9 J × cycles\/s \+ 1\.0000e-9 J × instructions\/s \+ 5\.0000e-8 J × cache_misses\/s\n/);
  });
});

describe.skipIf(!HAVE)('calibrate: bad cells in the nx12 RAPL samples', () => {
  it("one empty, NaN or inf cpu_cycles cell is the same located error with --features or without (before, the column was dropped: MAPE 18 %)", async () => {
    const text = fs.readFileSync(NX12, 'utf8').split('\n');
    for (const bad of ['', 'NaN', 'inf']) {
      const f = path.join(tmpDir(), 'nx12.csv');
      fs.writeFileSync(f, text.map((l, i) => (i === 50 ? l.split(',').map((c, j) => (j === 2 ? bad : c)).join(',') : l)).join('\n'));
      for (const features of [[], ['--features', 'cache_miss,cpu_cycles,cpu_instructions']]) {
        const r = await cli(['calibrate', '--samples', f, '--target', 'package_power', ...features]);
        expect(r.code, r.out).toBe(2);
        expect(r.err).toBe(`wattrace: ${f}:51:3 (column cpu_cycles): cpu_cycles is not a number ('${bad}')`);
      }
    }
    const f = path.join(tmpDir(), 'nx12big.csv');
    fs.writeFileSync(f, text.map((l, i) => (i === 50 ? l.split(',').map((c, j) => (j === 2 ? '1e300' : c)).join(',') : l)).join('\n'));
    const out = path.join(tmpDir(), 'never.json');
    const r = await cli(['calibrate', '--samples', f, '--target', 'package_power', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`wattrace: ${f}:51:3 (column cpu_cycles): cpu_cycles is too large to fit ('1e300': above 1e150, its square overflows)`);
    expect(fs.existsSync(out)).toBe(false);
  });
});
