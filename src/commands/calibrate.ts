/**
 * `wattrace calibrate --samples FILE --target COLUMN --out profile.json`: the paper's calibration of
 * per-event energy weights (§3.2.1: "we determined the weights … by measuring the energy of test
 * applications with the DAQ and solving the resulting linear system"), from samples of counter
 * rates (events per second) and measured power.
 *
 * Model: power = idle + Σ_e w_e · rate_e, with idle ≥ 0 and every w_e ≥ 0 (an event cannot cost
 * negative energy): a non-negative least-squares fit of the relative errors (each sample weighted
 * by 1/power², which is what MAPE counts; plain least squares favours the high-power samples and
 * misses the low ones by more, relatively). With few events the exact solution is found
 * by trying every subset of events as the free ones (ordinary least squares on the subset, kept
 * when all its coefficients are non-negative) and keeping the best — what an active-set NNLS
 * converges to. Quality: k-fold cross-validation, MAPE and RMSE per fold; folds interleave the
 * samples (every k-th) by default, or are contiguous blocks (`--folds-by blocks`: each fold then
 * holds workloads the fit has not seen, a harder test).
 *
 * Input is refused where it is wrong (file, line, column): a cell of a used column that is not a
 * finite number, a negative counter, a measured power of 0 W or less, a header naming a column
 * twice. A result no profile should come from (a term or metric not finite, a MAPE over
 * MAX_MAPE) is refused naming its worst-predicted sample, and nothing is written.
 */
import fs from 'node:fs';
import { parse } from 'csv-parse/sync';
import { WattraceError, type Where } from '../core/errors.js';
import { NS_PER_MS, NS_PER_S } from '../core/units.js';
import type { IO } from './io.js';
import { fmt, formatTable } from '../analysis/table.js';
import { columnOf } from '../importers/perf-script.js';

export interface CalibrateArgs {
  samples: string;
  target: string;
  out?: string | undefined;
  features?: readonly string[] | undefined;
  folds?: number | undefined;
  foldsBy?: FoldScheme | undefined;
  tscHz?: number | undefined;
  /** An existing profile (e.g. from `import perf-script`) to write the weights and idle power into. */
  into?: string | undefined;
  /** CPUs the samples cover, to turn the idle term into `idle_watts` per CPU (perf stat -A counts them). */
  cpus?: number | undefined;
}

/**
 * The most features the exact fit takes. It solves every subset of them (2^N) for each fold and
 * for the final fit, each over every sample: measured on the project's 2-CPU machine (5 folds,
 * every subset's coefficients non-negative, the slowest case), 10 features take 1.3 s on 300
 * samples and 3.4 s on 2,202 (the nx12 file's size); 12 take 3.2 s on 300, and each one more
 * doubles it (24 would take hours).
 */
export const MAX_FEATURES = 10;

/** A cross-validated MAPE over this (predictions more than 10× off on average) is no calibration. */
export const MAX_MAPE = 1000;

/** Values beyond ±1e150: the fit sums their squares, which would overflow. */
const MAX_VALUE = 1e150;

export interface Samples {
  names: string[];
  X: number[][];
  y: number[];
  /** The line of each sample in the file (of the target's reading, for perf stat), for errors. */
  lines?: number[];
  /** perf stat -A: the CPUs seen. */
  cpus?: number;
  /** perf stat: events and intervals left out, and why. */
  dropped?: string[];
  /** perf stat: events whose unit wattrace does not know, used as printed. */
  notes?: string[];
}

/** Does the file look like `perf stat -I … -x,` output (no header; a timestamp first)? */
function isPerfStat(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(4096);
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  fs.closeSync(fd);
  const first = buf.subarray(0, n).toString('utf8').split('\n').find((l) => l.trim() !== '' && !l.startsWith('#'));
  return first !== undefined && /^\s*\d+\.\d+,/.test(first);
}

/** Names for a one-line message: as many as fit in about 120 characters, then how many more. */
function listNames(names: readonly string[]): string {
  const shown: string[] = [];
  let len = 0;
  for (const n of names) {
    const next = len + (shown.length > 0 ? 2 : 0) + n.length;
    if (shown.length > 0 && next > 120) break;
    shown.push(n);
    len = next;
  }
  const rest = names.length - shown.length;
  return shown.join(', ') + (rest > 0 ? `, … and ${rest} more` : '');
}

/**
 * Refuses more features than MAX_FEATURES before any fitting: `candidates` found in the file,
 * `features` given with --features, or a `fit` asked for directly.
 */
function checkFeatureCount(names: readonly string[], how: 'candidates' | 'features' | 'fit', file?: string): void {
  if (names.length <= MAX_FEATURES) return;
  const every = `(${listNames(names)}); the exact fit tries every subset of them (2^${names.length} per fold)`;
  if (how === 'candidates') throw new WattraceError('E_USAGE', `${names.length} candidate feature columns ${every}: choose at most ${MAX_FEATURES} with --features`, file === undefined ? {} : { file });
  throw new WattraceError('E_USAGE', `${how === 'features' ? '--features names' : 'fitting'} ${names.length} columns ${every}: choose at most ${MAX_FEATURES}`);
}

/** --features as given: each once, at most MAX_FEATURES. */
function checkFeatureList(names: readonly string[]): void {
  const twice = names.find((n, j) => names.indexOf(n) < j);
  if (twice !== undefined) throw new WattraceError('E_USAGE', `--features names ${twice} twice`);
  checkFeatureCount(names, 'features');
}

/** A cell of a used column as a number: finite and within ±MAX_VALUE, or a located error. */
function cellValue(s: string, name: string, where: Where): number {
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v)) throw new WattraceError('E_FIELD', `${name} is not a number ('${s}')`, where);
  if (Math.abs(v) > MAX_VALUE) throw new WattraceError('E_FIELD', `${name} is too large to fit ('${s}': above 1e150, its square overflows)`, where);
  return v;
}

/** The measured power must be above 0 W (the fit weighs each sample by 1/power²). */
function powerError(name: string, got: string, where: Where): WattraceError {
  return new WattraceError('E_FIELD', `${name} is the measured power and must be above 0 W (${got})`, where);
}

/** A number in three significant digits, in exponent form when large or tiny. */
function g3(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(Number(v.toPrecision(3)));
}

/** perf stat's units to the ones perf script prints (time counters in ns); other units as printed. */
const UNIT_SCALE: Record<string, number> = { '': 1, Joules: 1, msec: NS_PER_MS, usec: 1e3, ns: 1, sec: NS_PER_S };

/**
 * `perf stat -a [-A | --per-socket | --per-die | --per-core] -I <ms> -x, -e <events>,power/energy-pkg/`
 * output to samples: one sample per interval, each event's count (summed over CPUs, sockets, …)
 * divided by the interval's length — events per second (time counters such as cpu-clock in ns,
 * as perf script prints them, so `msec` values are scaled), and for the energy event joules per
 * second, i.e. watts. Column names as the perf-script importer names trace columns
 * (`cache-misses` → `cache_misses`), so the weights fit an imported profile. Lines:
 * `time,[CPUn | S0,cpus | S0-D0,cpus | S0-D0-C0,cpus,]value,unit,event,run_time,pct,...`; metric
 * continuation lines (no value, no event) are passed over. An event perf never counted
 * (`<not supported>`) is left out; an interval in which a used event was not counted
 * (`<not counted>`), or that lacks one (a cut-off last interval), is left out and counted. Any
 * other value of a used event that is not a finite number, a negative count and an interval of
 * 0 J of the target are errors at their line.
 */
export function readPerfStat(file: string, target: string, features?: readonly string[]): Samples {
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/);
  const tcol = columnOf(target);
  const intervals: { t: number; v: Map<string, number>; bad: Set<string>; at: Map<string, Where> }[] = [];
  const counted = new Set<string>();
  const firstBad = new Map<string, { line: number; value: string }>();
  // An event's first value that is neither a count nor perf's marker: an error if the event is used.
  const invalid = new Map<string, WattraceError>();
  const odd = new Map<string, string>();
  const cpus = new Set<string>();
  const aggCpus = new Map<string, number>();
  const order: string[] = [];
  lines.forEach((raw, i) => {
    if (raw.trim() === '' || raw.startsWith('#')) return;
    const f = raw.split(',').map((x) => x.trim());
    const where = { file, line: i + 1 };
    const t = Number(f[0]);
    if (!Number.isFinite(t) || f[0] === '') throw new WattraceError('E_FIELD', `expected perf stat -I -x, output (a timestamp first); got '${raw.trim()}'`, { ...where, column: 1 });
    const agg = f[1] ?? '';
    const k = /^CPU\d+$/.test(agg) ? 2 : /^(S\d+(-D\d+)?(-C\d+)?|N\d+)$/.test(agg) ? 3 : 1;
    if (k === 2) cpus.add(agg);
    // --per-socket/die/core/node: the next column counts the CPUs aggregated.
    if (k === 3 && !/-C\d+$/.test(agg)) aggCpus.set(agg, Number(f[2]));
    // A raw PMU event (`cpu/event=0xc0,umask=0x00/`) has commas inside its slashes: rejoin it.
    let e = k + 2;
    let event = f[e];
    while (event !== undefined && (event.split('/').length - 1) % 2 === 1 && e + 1 < f.length) event = `${event},${f[++e]}`;
    const [value, unit] = [f[k], f[k + 1] ?? ''];
    if ((value ?? '') === '' && (event ?? '') === '') return; // a metric's continuation line
    if (value === undefined || event === undefined || event === '') throw new WattraceError('E_FIELD', `expected time,[CPU,]value,unit,event,...; got '${raw.trim()}'`, where);
    const name = columnOf(event);
    let cur = intervals[intervals.length - 1];
    if (!cur || cur.t !== t) {
      if (cur && t < cur.t) throw new WattraceError('E_ORDER', `the interval's time ${t} is before the previous one (${cur.t})`, { ...where, column: 1 });
      intervals.push((cur = { t, v: new Map(), bad: new Set(), at: new Map() }));
    }
    if (!order.includes(name)) order.push(name);
    const cell = { ...where, column: k + 1, columnName: name };
    if (!cur.at.has(name)) cur.at.set(name, cell);
    // perf's own markers: <not counted>, <not supported>.
    if (/^<.*>$/.test(value)) {
      cur.bad.add(name);
      if (!firstBad.has(name)) firstBad.set(name, { line: i + 1, value });
      return;
    }
    let v: number;
    try {
      v = cellValue(value, name, cell);
      if (v < 0) throw new WattraceError('E_FIELD', `${name} is negative ('${value}'); a count is at least 0`, cell);
    } catch (e) {
      if (!invalid.has(name)) invalid.set(name, e as WattraceError);
      return;
    }
    counted.add(name);
    const scale = UNIT_SCALE[unit];
    if (scale === undefined) odd.set(name, unit);
    cur.v.set(name, (cur.v.get(name) ?? 0) + v * (scale ?? 1));
  });
  if (!order.includes(tcol)) throw new WattraceError('E_HEADER', `no event '${target}' in the perf stat output (its events are ${order.join(', ')})`, { file });
  const never = (n: string) => !counted.has(n);
  if (invalid.has(tcol)) throw invalid.get(tcol)!;
  if (never(tcol)) {
    const b = firstBad.get(tcol)!;
    throw new WattraceError('E_FIELD', `${tcol} is not a number in any interval ('${b.value}'): the event is not counted on this machine`, { file, line: b.line });
  }
  const dropped: string[] = [];
  let names: string[];
  if (features && features.length > 0) {
    names = features.map(columnOf);
    checkFeatureList(names);
    for (const n of names) {
      if (!order.includes(n)) throw new WattraceError('E_HEADER', `no feature event '${n}' (the events are ${order.join(', ')})`, { file });
      if (invalid.has(n)) throw invalid.get(n)!;
      if (never(n)) throw new WattraceError('E_FIELD', `${n} is not a number in any interval ('${firstBad.get(n)!.value}')`, { file, line: firstBad.get(n)!.line });
    }
  } else {
    names = order.filter((n) => {
      if (n === tcol) return false;
      const other = n === 'msr_tsc' || /energy|power/.test(n);
      if (!other && invalid.has(n)) throw invalid.get(n)!;
      const gap = firstBad.get(n);
      if (never(n) && gap) return dropped.push(`${n} (${gap.value})`), false;
      const gaps = intervals.filter((iv) => iv.bad.has(n)).length;
      if (gaps * 2 > intervals.length) return dropped.push(`${n} (${firstBad.get(n)!.value} in ${gaps} of ${intervals.length} intervals)`), false;
      if (other) return dropped.push(`${n} (${n === 'msr_tsc' ? 'the TSC' : 'another energy reading'})`), false;
      return true;
    });
    checkFeatureCount(names, 'candidates', file);
  }
  if (names.length === 0) throw new WattraceError('E_EMPTY', `no counter event to fit beside ${tcol}`, { file });
  const notes = [...odd].filter(([n]) => names.includes(n)).map(([n, u]) => `${n} in ${u}, as printed`);
  const X: number[][] = [];
  const y: number[] = [];
  const sampleLines: number[] = [];
  let skipped = 0;
  let lacking = 0;
  intervals.forEach((iv, j) => {
    const dt = iv.t - (j === 0 ? 0 : intervals[j - 1]!.t);
    if (!(dt > 0)) return;
    if (iv.bad.has(tcol) || names.some((n) => iv.bad.has(n))) {
      skipped++;
      return;
    }
    if (![tcol, ...names].every((n) => iv.v.has(n))) {
      lacking++;
      return;
    }
    const energy = iv.v.get(tcol)!;
    const at = iv.at.get(tcol)!;
    if (!(energy > 0)) throw powerError(tcol, `${energy} J in ${fmt(dt, 3)} s`, at);
    X.push(names.map((n) => iv.v.get(n)! / dt));
    y.push(energy / dt);
    sampleLines.push(at.line!);
  });
  if (skipped > 0) dropped.push(`${skipped} interval(s) with an event <not counted>`);
  if (lacking > 0) dropped.push(`${lacking} interval(s) lacking an event (cut off?)`);
  if (X.length < 10) throw new WattraceError('E_EMPTY', `only ${X.length} intervals; a calibration needs at least 10`, { file });
  const nCpus = cpus.size > 0 ? cpus.size : [...aggCpus.values()].every((c) => Number.isInteger(c) && c > 0) ? [...aggCpus.values()].reduce((a, c) => a + c, 0) : 0;
  return { names, X, y, lines: sampleLines, ...(nCpus > 0 ? { cpus: nCpus } : {}), dropped, notes };
}

export interface Fit {
  idle: number;
  weights: Record<string, number>;
}

export interface CalibrationResult {
  features: string[];
  fit: Fit;
  folds: { fold: number; n: number; mape: number; rmse: number }[];
  mape: number;
  rmse: number;
  /** The sample the folds predicted worst (largest relative error; index into X). */
  worst: { sample: number; predicted: number; measured: number };
}

/** Solves A x = b (small, dense) by Gaussian elimination with partial pivoting; null if singular. */
function solve(A: number[][], b: number[]): number[] | null {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    if (Math.abs(M[p]![c]!) < 1e-12) return null;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k] = M[r]![k]! - f * M[c]![k]!;
    }
  }
  return M.map((row, i) => row[n]! / row[i]!);
}

/** Non-negative least squares of y on [1, X] (columns scaled for conditioning). */
export function fitNonNegative(X: readonly number[][], y: readonly number[], names: readonly string[]): Fit {
  checkFeatureCount(names, 'fit');
  const m = names.length;
  const scale = names.map((_, j) => Math.sqrt(X.reduce((a, r) => a + r[j]! * r[j]!, 0) / Math.max(1, X.length)) || 1);
  const huge = names.find((_, j) => !Number.isFinite(scale[j]));
  if (huge !== undefined) throw new WattraceError('E_FIELD', `the values of ${huge} are too large to fit (their squares overflow)`);
  let best: { sse: number; coef: number[] } | null = null;
  for (let mask = 0; mask < 1 << m; mask++) {
    const cols = names.map((_, j) => j).filter((j) => mask & (1 << j));
    // Normal equations for [1, X_cols / scale].
    const k = cols.length + 1;
    const A = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    const b = new Array<number>(k).fill(0);
    for (let i = 0; i < X.length; i++) {
      const v = [1, ...cols.map((j) => X[i]![j]! / scale[j]!)];
      // Relative errors are what MAPE counts: weight each sample by 1/y².
      const w = y[i]! > 0 ? 1 / (y[i]! * y[i]!) : 0;
      for (let p = 0; p < k; p++) {
        b[p] = b[p]! + w * v[p]! * y[i]!;
        for (let q = 0; q < k; q++) A[p]![q] = A[p]![q]! + w * v[p]! * v[q]!;
      }
    }
    const x = solve(A, b);
    if (!x || x.some((c) => c < 0)) continue;
    const coef = new Array<number>(m + 1).fill(0);
    coef[0] = x[0]!;
    cols.forEach((j, p) => (coef[j + 1] = x[p + 1]! / scale[j]!));
    let sse = 0;
    for (let i = 0; i < X.length; i++) {
      let pred = coef[0]!;
      for (let j = 0; j < m; j++) pred += coef[j + 1]! * X[i]![j]!;
      sse += y[i]! > 0 ? ((pred - y[i]!) / y[i]!) ** 2 : 0;
    }
    if (!best || sse < best.sse) best = { sse, coef };
  }
  if (!best) throw new WattraceError('E_FIELD', 'no non-negative fit exists for these samples (is the target power positive?)');
  return { idle: best.coef[0]!, weights: Object.fromEntries(names.map((n, j) => [n, best!.coef[j + 1]!])) };
}

export function predict(fit: Fit, names: readonly string[], row: readonly number[]): number {
  return names.reduce((a, n, j) => a + fit.weights[n]! * row[j]!, fit.idle);
}

/** Does a cell spell a number? nan and inf count: they mark a gap in a counter column, not text. */
function spellsNumber(cell: string): boolean {
  const c = cell.trim();
  return c !== '' && (Number.isFinite(Number(c)) || /^[+-]?(nan|inf|infinity)$/i.test(c));
}

/**
 * Reads the samples: a header row (each name once), then a row per sample. The used columns are
 * --features, or else every counter column: most of its non-empty cells spell numbers (so a
 * column of host names is not one, and one of counts with a gap is), its numbers vary, and its
 * name is not a time, power, ratio or type. In a used column a cell that is not a finite number
 * or is negative is an error at its line and column, as is a target (power) of 0 W or less.
 */
export function readSamples(file: string, target: string, features?: readonly string[]): Samples {
  if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'samples file does not exist', { file });
  if (isPerfStat(file)) return readPerfStat(file, target, features);
  let rows: string[][];
  let lineOf: number[];
  try {
    const records = parse(fs.readFileSync(file), { relax_column_count: false, skip_empty_lines: true, bom: true, info: true }) as unknown as { record: string[]; info: { lines: number } }[];
    rows = records.map((r) => r.record);
    lineOf = records.map((r) => r.info.lines);
  } catch (e) {
    // csv-parse's errors carry the line; its message may quote the whole offending value.
    const err = e as Error & { lines?: number; code?: string };
    const cut = err.message.indexOf(', value is');
    const why = (cut >= 0 ? err.message.slice(0, cut) : err.message).replace(/ (on|at) line \d+$/, '');
    throw new WattraceError('E_FIELD', `not a CSV of samples: ${why}`, { file, ...(err.lines !== undefined ? { line: err.lines } : {}) });
  }
  const header = rows[0] ?? [];
  header.forEach((h, j) => {
    const first = header.indexOf(h);
    if (first < j) throw new WattraceError('E_HEADER', `the header names column '${h}' twice (columns ${first + 1} and ${j + 1})`, { file, line: lineOf[0]!, column: j + 1, columnName: h });
  });
  const ti = header.indexOf(target);
  if (ti < 0) throw new WattraceError('E_HEADER', `no column '${target}' (the columns are ${header.join(', ')})`, { file, line: 1 });
  const data = rows.slice(1);
  const isCounter = (j: number) => {
    const cells = data.map((r) => r[j]!).filter((c) => c.trim() !== '');
    return cells.filter(spellsNumber).length * 2 > cells.length;
  };
  const varies = (j: number) => new Set(data.map((r) => r[j]!).filter((c) => c.trim() !== '').map(Number).filter(Number.isFinite)).size > 1;
  let names: string[];
  if (features && features.length > 0) {
    checkFeatureList(features);
    for (const f of features) if (!header.includes(f)) throw new WattraceError('E_HEADER', `no feature column '${f}'`, { file, line: 1 });
    names = [...features];
  } else {
    // Every varying counter column but the target, times, other power readings and ratios.
    names = header.filter((h, j) => j !== ti && !/time|power|ratio|type/i.test(h) && isCounter(j) && varies(j));
    checkFeatureCount(names, 'candidates', file);
  }
  const idx = names.map((n) => header.indexOf(n));
  const X: number[][] = [];
  const y: number[] = [];
  data.forEach((r, i) => {
    const line = lineOf[i + 1]!;
    const at = (j: number): Where => ({ file, line, column: j + 1, columnName: header[j]! });
    X.push(
      idx.map((j) => {
        const v = cellValue(r[j]!, header[j]!, at(j));
        if (v < 0) throw new WattraceError('E_FIELD', `${header[j]} is negative ('${r[j]}'); a counter rate is at least 0`, at(j));
        return v;
      }),
    );
    const p = cellValue(r[ti]!, target, at(ti));
    if (!(p > 0)) throw powerError(target, `'${r[ti]}'`, at(ti));
    y.push(p);
  });
  if (X.length < 10) throw new WattraceError('E_EMPTY', `only ${X.length} samples; a calibration needs at least 10`, { file });
  return { names, X, y, lines: data.map((_, i) => lineOf[i + 1]!) };
}

export type FoldScheme = 'blocks' | 'interleaved';

/** k folds of n samples: an integer from 2 to n (each fold tests at least one sample). */
function checkFolds(k: number, n: number, file?: string): void {
  if (!Number.isInteger(k) || k < 2) throw new WattraceError('E_USAGE', `--folds must be an integer of at least 2; got ${k}`);
  if (k > n) throw new WattraceError('E_USAGE', `--folds ${k} is more than the ${n} samples${file === undefined ? '' : ` of ${file}`}: each fold needs at least one`);
}

export function calibrate(names: readonly string[], X: readonly number[][], y: readonly number[], k = 5, scheme: FoldScheme = 'interleaved'): CalibrationResult {
  const n = X.length;
  checkFolds(k, n);
  const folds: CalibrationResult['folds'] = [];
  let worst: CalibrationResult['worst'] = { sample: 0, predicted: NaN, measured: NaN };
  let worstRel = -1;
  let apeSum = 0;
  let apeN = 0;
  let seSum = 0;
  const foldOf = (i: number) => (scheme === 'blocks' ? Math.min(k - 1, Math.floor((i * k) / n)) : i % k);
  for (let f = 0; f < k; f++) {
    const test: number[] = [];
    const trainX: number[][] = [];
    const trainY: number[] = [];
    for (let i = 0; i < n; i++) {
      if (foldOf(i) === f) test.push(i);
      else {
        trainX.push(X[i]! as number[]);
        trainY.push(y[i]!);
      }
    }
    const fit = fitNonNegative(trainX, trainY, names);
    let ape = 0;
    let se = 0;
    let cnt = 0;
    for (const i of test) {
      const p = predict(fit, names, X[i]!);
      const rel = Math.abs(p - y[i]!) / y[i]!;
      // NaN (a broken fit) is the worst of all.
      if (!(rel <= worstRel)) {
        worst = { sample: i, predicted: p, measured: y[i]! };
        worstRel = Number.isNaN(rel) ? Infinity : rel;
      }
      se += (p - y[i]!) ** 2;
      if (y[i]! > 0) {
        ape += Math.abs(p - y[i]!) / y[i]!;
        cnt++;
      }
    }
    folds.push({ fold: f + 1, n: test.length, mape: (100 * ape) / Math.max(1, cnt), rmse: Math.sqrt(se / Math.max(1, test.length)) });
    apeSum += ape;
    apeN += cnt;
    seSum += se;
  }
  return { features: [...names], fit: fitNonNegative(X, y, names), folds, mape: (100 * apeSum) / Math.max(1, apeN), rmse: Math.sqrt(seSum / n), worst };
}

/**
 * Refuses a result no profile should be written from: an idle term or weight that is not finite,
 * a fold's RMSE that is not finite, or a fold's MAPE not finite or over MAX_MAPE; the error names
 * the sample the folds predicted worst (its line, when known).
 */
export function checkResult(r: CalibrationResult, file?: string, lines?: readonly number[]): void {
  const terms: [string, number][] = [['the idle term', r.fit.idle], ...Object.entries(r.fit.weights).map(([e, w]): [string, number] => [`the weight of ${e}`, w])];
  const term = terms.find(([, v]) => !Number.isFinite(v));
  const badness = (f: CalibrationResult['folds'][number]) => (Number.isFinite(f.rmse) && Number.isFinite(f.mape) ? f.mape : Infinity);
  const fold = r.folds.reduce((a, f) => (badness(f) > badness(a) ? f : a));
  let why: string | undefined;
  if (term) why = `${term[0]} is ${term[1]}`;
  else if (!Number.isFinite(fold.rmse)) why = `fold ${fold.fold}'s RMSE is ${fold.rmse}`;
  else if (!(fold.mape <= MAX_MAPE)) why = `fold ${fold.fold}'s MAPE is ${g3(fold.mape)} % (over ${MAX_MAPE} %)`;
  if (why === undefined) return;
  const line = lines?.[r.worst.sample];
  const sample = line === undefined ? `sample ${r.worst.sample + 1}` : `line ${line}`;
  throw new WattraceError('E_FIELD', `no usable fit: ${why}; the worst sample, ${sample}, is predicted ${g3(r.worst.predicted)} W against ${g3(r.worst.measured)} W measured: check its values`, {
    ...(file === undefined ? {} : { file }),
    ...(line === undefined ? {} : { line }),
  });
}

export function runCalibrate(args: CalibrateArgs, io: IO): CalibrationResult {
  const k = args.folds ?? 5;
  checkFolds(k, Infinity);
  const { names, X, y, lines, cpus, dropped, notes } = readSamples(args.samples, args.target, args.features);
  checkFolds(k, X.length, args.samples);
  const r = calibrate(names, X, y, k, args.foldsBy ?? 'interleaved');
  checkResult(r, args.samples, lines);
  if (dropped && dropped.length > 0) io.out(`left out: ${dropped.join(', ')}`);
  if (notes && notes.length > 0) io.out(`units: ${notes.join(', ')}`);
  io.out(`calibrated ${args.target} on ${X.length} samples of ${args.samples}: ${args.target} = ${fmt(r.fit.idle, 3)} W + ${names.map((n) => `${r.fit.weights[n]!.toExponential(4)} J × ${n}/s`).join(' + ')}`);
  io.out(formatTable(['fold', 'samples', 'MAPE %', 'RMSE W'], [...r.folds.map((f) => [String(f.fold), String(f.n), fmt(f.mape, 2), fmt(f.rmse, 3)]), ['all', String(X.length), fmt(r.mape, 2), fmt(r.rmse, 3)]], [false, true, true, true]));
  // Both outputs are checked before either is written.
  const n = args.cpus ?? cpus;
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new WattraceError('E_USAGE', `--cpus must be a positive integer; got ${n}`);
  const into = args.into ? prepareInto(args.into, r, n) : null;
  if (args.out) {
    // idle_watts is per physical CPU (a replay's CPU energy is n_cpus × idle_watts × duration + access):
    // the fit's idle term is the measured device's, so it is divided by the CPUs the samples cover.
    const perCpu = r.fit.idle / (n ?? 1);
    const over = n === undefined ? `the fit's idle term for the whole measured device, as if it had one CPU (give --cpus, or record with perf stat -A)` : `the fit's idle term ${fmt(r.fit.idle, 3)} W over ${n} CPU(s)`;
    const profile = {
      description: `Starter profile from wattrace calibrate (${args.samples}, target ${args.target}, ${k}-fold MAPE ${fmt(r.mape, 2)} %). idle_watts is ${over}; set the VMs, tsc_hz and disks for your machine.`,
      cpu: { tsc_hz: args.tscHz ?? 3.0e9, idle_watts: perCpu, counter_bits: 48, idle_split: 'equal', events: r.fit.weights },
      disks: {},
      vms: [{ id: 'vm1', role: 'client' }],
      services: [],
    };
    try {
      fs.writeFileSync(args.out, JSON.stringify(profile, null, 2) + '\n');
    } catch (e) {
      throw new WattraceError('E_FILE', `cannot write the profile: ${(e as Error).message}`, { file: args.out });
    }
    io.out(`wrote ${args.out}: idle_watts ${fmt(perCpu, 3)} W per CPU (${fmt(r.fit.idle, 3)} W over ${n ?? 1}${n === undefined ? ' — give --cpus, or record with perf stat -A' : ''})`);
  }
  if (into) {
    fs.writeFileSync(into.file, into.text);
    io.out(into.message);
  }
  return r;
}

/**
 * The fitted weights put into an existing profile's `cpu.events` (each fitted event must be one of
 * its events: the trace's columns) and the idle term, per CPU, as `idle_watts`: checked and
 * returned as text, written by the caller once every output is known to be writable.
 */
function prepareInto(file: string, r: CalibrationResult, cpus: number | undefined): { file: string; text: string; message: string } {
  if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'the profile to calibrate does not exist', { file });
  let p: { cpu?: { idle_watts?: number; events?: Record<string, number>; description?: string }; description?: string };
  try {
    p = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof p;
  } catch (e) {
    throw new WattraceError('E_JSON', `the profile is not valid JSON: ${(e as Error).message}`, { file });
  }
  const events = p.cpu?.events;
  if (!p.cpu || !events) throw new WattraceError('E_PROFILE', 'the profile has no cpu.events to calibrate', { file });
  const missing = r.features.filter((n) => !(n in events));
  if (missing.length > 0) {
    throw new WattraceError('E_PROFILE', `the profile has no event ${missing.join(', ')} (its events, the trace's columns, are ${Object.keys(events).join(', ') || 'none'}); record them, or fit others with --features`, { file });
  }
  const n = cpus ?? 1;
  if (!(Number.isInteger(n) && n >= 1)) throw new WattraceError('E_USAGE', `--cpus must be a positive integer; got ${n}`);
  for (const e of r.features) events[e] = r.fit.weights[e]!;
  p.cpu.idle_watts = r.fit.idle / n;
  p.description = `${p.description ?? ''} Calibrated by wattrace calibrate: weights for ${r.features.join(', ')}, idle ${fmt(r.fit.idle, 3)} W over ${n} CPU(s), ${r.folds.length}-fold MAPE ${fmt(r.mape, 2)} %.`.trim();
  return {
    file,
    text: JSON.stringify(p, null, 2) + '\n',
    message: `wrote the weights and idle_watts ${fmt(r.fit.idle / n, 3)} W per CPU (${fmt(r.fit.idle, 3)} W over ${n}${cpus === undefined ? ' — give --cpus, or record with perf stat -A' : ''}) into ${file}`,
  };
}
