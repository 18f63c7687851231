/**
 * `wattrace compare <pipeline.json>`: replays the base and the variants of a pipeline over the
 * same traces, stores every run, prints their metrics side by side with deltas against a
 * baseline, and checks the pipeline's expectations (`expect` in docs/formats.md; README.md,
 * compare): exit 1 when one breaks.
 *
 * Variants that share their traces and machine profile are replayed together over one reading of
 * the traces (every slice goes to each variant's stage graph); groups with other traces run in
 * parallel, one process each (up to --jobs, default the machine's cores). Each run goes to a
 * scratch database; the finished runs are then copied into --db in one transaction, in the order
 * of the variants — so the store and every figure are the same as separate replays'.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as aq from 'arquero';
import { formatTable } from '../analysis/table.js';
import { catalogueEntriesFor, unwritableBy } from '../core/metrics.js';
import { EXIT_EXPECTATION, WattraceError } from '../core/errors.js';
import { PROJECT_ROOT } from '../core/json.js';
import { loadPipeline, parseTraceArgs, type Expectation, type ResolvedPipeline, type TraceKind } from '../core/pipeline.js';
import { UNATTRIBUTED } from '../core/machine.js';
import { loadProfile } from '../core/profile.js';
import { planStages } from '../replay/graph.js';
import { checkStore, openForReading, RunImport } from '../store/store.js';
import { parseLabels } from '../core/labels.js';
import { signalsTurn, undoOnInterrupt, type IO } from './io.js';

export interface CompareArgs {
  pipeline: string;
  db: string;
  variants?: readonly string[] | undefined;
  baseline?: string | undefined;
  format?: 'table' | 'md' | 'json' | undefined;
  jobs?: number | undefined;
  trace?: readonly string[] | undefined;
  profile?: string | undefined;
  intervalMs?: number | undefined;
  /** Only metrics whose names start with one of these (default: all). */
  metrics?: readonly string[] | undefined;
  /** table and md: every metric, not only those that differ between variants or carry an expectation. */
  all?: boolean | undefined;
  /** `--label KEY=VALUE` pairs for every variant's run. */
  label?: readonly string[] | undefined;
}

export interface ExpectationResult extends Expectation {
  variant: string;
  value: number | null;
  baselineValue: number | null;
  ok: boolean;
  why: string;
}

export interface Comparison {
  pipeline: string;
  baseline: string;
  runs: { variant: string; run_id: number }[];
  /** metric → variant → value */
  metrics: Record<string, Record<string, number>>;
  expectations: ExpectationResult[];
}

const WORKER = path.join(PROJECT_ROOT, 'dist', 'commands', 'replay-many-main.js');

/** The replays running now (killed when compare is interrupted). */
const children = new Set<ChildProcess>();

/** Replays one group of variants (sharing traces and profile) in a child process, reading once. */
function replayGroup(args: CompareArgs, variants: readonly string[], dbs: readonly string[], threads: boolean, notes: Set<string>): Promise<void> {
  const job = { pipeline: args.pipeline, variants, dbs, trace: args.trace, profile: args.profile, intervalMs: args.intervalMs, labels: parseLabels(args.label ?? []) };
  return new Promise((resolve, reject) => {
    // Groups run side by side, one per core: then each decodes on its own thread.
    const env = threads ? process.env : { ...process.env, WATTRACE_THREADS: '0' };
    const child = spawn(process.execPath, [WORKER, JSON.stringify(job)], { stdio: ['ignore', 'ignore', 'pipe'], env });
    children.add(child);
    child.on('exit', () => children.delete(child));
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) {
        // The replays' notes, passed on.
        for (const line of err.split('\n')) if (line.startsWith('wattrace: note: ')) notes.add(line);
        resolve();
      }
      else {
        const msg = err.trim().replace(/^wattrace: /, '') || `the replay of ${variants.join(', ')} ${code === null ? 'was killed' : `exited with ${code}`}`;
        reject(new WattraceError('E_PIPELINE', `variants ${variants.join(', ')}: ${msg}`, {}, code === 2 ? 2 : 70));
      }
    });
  });
}

/** Runs `work` on the items, `jobs` at a time; after a failure no new item starts (and the first failure is thrown once all running ones are done). */
async function pool<T>(items: readonly T[], jobs: number, work: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const runners = Array.from({ length: Math.min(jobs, items.length) }, async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        await work(items[i]!, i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  });
  const results = await Promise.allSettled(runners);
  const bad = results.find((r) => r.status === 'rejected');
  if (bad) throw (bad as PromiseRejectedResult).reason;
}

export function checkExpectations(expect: readonly Expectation[], variants: readonly string[], baseline: string, metrics: Comparison['metrics']): ExpectationResult[] {
  const out: ExpectationResult[] = [];
  for (const e of expect) {
    // An expectation of a variant not compared this time is skipped (compare names those).
    for (const v of e.variant !== undefined ? [e.variant] : variants) {
      if (!variants.includes(v)) continue;
      const value = metrics[e.metric]?.[v] ?? null;
      const base = metrics[e.metric]?.[baseline] ?? null;
      const broken: string[] = [];
      if (value === null) broken.push('the run has no such metric');
      else {
        const f = (x: number) => formatMetric(e.metric, x);
        if (e.min !== undefined && value < e.min) broken.push(`${f(value)} < min ${f(e.min)}`);
        if (e.max !== undefined && value > e.max) broken.push(`${f(value)} > max ${f(e.max)}`);
        if (e.max_delta !== undefined) {
          if (base === null) broken.push(`the baseline '${baseline}' has no such metric`);
          else if (Math.abs(value - base) > e.max_delta) broken.push(`|${f(value)} − ${f(base)}| > max_delta ${f(e.max_delta)}`);
        }
      }
      out.push({ ...e, variant: v, value, baselineValue: base, ok: broken.length === 0, why: broken.join('; ') });
    }
  }
  return out;
}

/**
 * Which metrics the table and md show: by default those whose values differ between the variants
 * (beyond float noise, or missing in some) and those an expectation names; with `all`, or when
 * one variant is compared, every one.
 */
export function shownMetrics(c: Comparison, all: boolean): Set<string> {
  const expected = new Set(c.expectations.map((e) => e.metric));
  const variants = c.runs.map((r) => r.variant);
  const out = new Set<string>();
  for (const [name, byVariant] of Object.entries(c.metrics)) {
    const vs = variants.map((v) => byVariant[v]);
    const present = vs.filter((v): v is number => v !== undefined);
    const differ = present.length !== vs.length || present.some((v) => Math.abs(v - present[0]!) > 1e-9 * Math.max(Math.abs(v), Math.abs(present[0]!), 1e-300));
    // One variant alone has nothing to differ from: all of its metrics are shown.
    if (all || variants.length === 1 || differ || expected.has(name)) out.add(name);
  }
  return out;
}

/** A metric's value in its catalogue unit, at a precision that suits it. */
export function formatMetric(name: string, v: number | null, signed = false): string {
  if (v === null) return '–';
  const unit = catalogueEntriesFor(name)[0]?.unit;
  const sign = signed ? (v > 0 ? '+' : v < 0 ? '−' : '±') : v < 0 ? '−' : '';
  const a = Math.abs(v);
  const num = (x: number, d: number) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  switch (unit) {
    case 'W':
      return `${sign}${num(a, a >= 1000 ? 1 : 3)} W`;
    case 'J':
      return `${sign}${num(a, a >= 100 ? 1 : 3)} J`;
    case 's':
      return `${sign}${num(a, 3)} s`;
    case 'bytes':
      return a >= 1e6 ? `${sign}${num(a / 1e6, 2)} MB` : `${sign}${num(a, 0)} B`;
    case 'B/s':
      return `${sign}${num(a / 1e6, 3)} MB/s`;
    case 'fraction':
      return `${sign}${num(100 * a, 1)} %`;
    case 'percent':
      return `${sign}${num(a, 2)} %`;
    case 'J/byte':
      return `${sign}${a.toExponential(3)} J/B`;
    default:
      return Number.isInteger(v) ? `${sign}${num(a, 0)}` : a >= 1e6 ? `${sign}${a.toExponential(4)}` : `${sign}${num(a, 3)}`;
  }
}

/** The metrics side by side: one row per metric, a value (and a delta) per variant. */
function sideBySide(c: Comparison): { metric: string; values: (number | null)[]; deltas: (number | null)[] }[] {
  // Variant columns are prefixed, so no variant name can clash with the metric column.
  const key = (v: string) => `v:${v}`;
  const long = Object.entries(c.metrics).flatMap(([metric, byVariant]) => Object.entries(byVariant).map(([variant, value]) => ({ metric, variant: key(variant), value })));
  if (long.length === 0) return [];
  const wide = aq
    .from(long)
    .groupby('metric')
    .pivot('variant', { value: (d: { value: number }) => aq.op.any(d.value) })
    .orderby('metric')
    .objects() as Record<string, unknown>[];
  const variants = c.runs.map((r) => key(r.variant));
  return wide.map((o) => {
    const values = variants.map((v) => (typeof o[v] === 'number' ? (o[v] as number) : null));
    const base = typeof o[key(c.baseline)] === 'number' ? (o[key(c.baseline)] as number) : null;
    return { metric: o['metric'] as string, values, deltas: values.map((x) => (x === null || base === null ? null : x - base)) };
  });
}

/** A delta in the metric's unit; `±0` when nothing shows at the printed precision. */
function delta(name: string, v: number | null): string {
  if (v === null) return '';
  const s = formatMetric(name, v, true);
  return /^[±+−]0(\.0+)?( |$)/.test(s) ? '±0' : s;
}

function bounds(e: Expectation): string {
  const b: string[] = [];
  if (e.min !== undefined) b.push(`≥ ${formatMetric(e.metric, e.min)}`);
  if (e.max !== undefined) b.push(`≤ ${formatMetric(e.metric, e.max)}`);
  if (e.max_delta !== undefined) b.push(`Δ ≤ ${formatMetric(e.metric, e.max_delta)}`);
  return b.join(', ');
}

export function renderComparison(c: Comparison, format: 'table' | 'md' | 'json', all = false): string {
  if (format === 'json') return JSON.stringify(c, null, 2);
  const shown = shownMetrics(c, all);
  const rows = sideBySide(c).filter((r) => shown.has(r.metric));
  const hidden = Object.keys(c.metrics).length - rows.length;
  const variants = c.runs.map((r) => r.variant);
  const headers = ['metric', ...variants.flatMap((v) => (v === c.baseline ? [v] : [v, `Δ ${v}`]))];
  const body = rows.map((r) => [
    r.metric,
    ...variants.flatMap((v, i) => (v === c.baseline ? [formatMetric(r.metric, r.values[i]!)] : [formatMetric(r.metric, r.values[i]!), delta(r.metric, r.deltas[i]!)])),
  ]);
  const broken = c.expectations.filter((e) => !e.ok);
  const note = hidden > 0 ? `${hidden} metric${hidden > 1 ? 's' : ''} equal in every variant not shown (--all shows them).` : '';
  const expectation = (e: ExpectationResult) => `\`${e.metric}\` (${e.variant}) ${bounds(e)}: ${e.ok ? formatMetric(e.metric, e.value) : e.why}`;
  if (format === 'md') {
    const line = (cells: string[]) => `| ${cells.map((x) => x.replace(/\|/g, '\\|')).join(' | ')} |`;
    const out = [`### wattrace compare: \`${c.pipeline}\``, ''];
    if (c.expectations.length > 0) {
      out.push(`**Expectations: ${c.expectations.length - broken.length} of ${c.expectations.length} met.**`, '');
      for (const e of c.expectations) out.push(`- ${e.ok ? '✅' : '❌'} ${expectation(e)}`);
      out.push('');
    }
    out.push(`Runs: ${c.runs.map((r) => `${r.variant} (run ${r.run_id})`).join(', ')}; deltas against \`${c.baseline}\`.`, '');
    if (rows.length > 0) out.push(line(headers), line(headers.map((_, i) => (i === 0 ? '---' : '---:'))), ...body.map(line), '');
    if (note) out.push(`<sub>${note}</sub>`, '');
    return out.join('\n');
  }
  const out = [`Compare: pipeline '${c.pipeline}', ${c.runs.map((r) => `${r.variant} = run ${r.run_id}`).join(', ')}; deltas against '${c.baseline}'`];
  if (c.expectations.length > 0) {
    out.push('', `Expectations: ${c.expectations.length - broken.length} of ${c.expectations.length} met`);
    for (const e of c.expectations) out.push(`  ${e.ok ? 'ok    ' : 'BROKEN'}  ${expectation(e).replace(/`/g, '')}`);
  }
  out.push('', rows.length > 0 ? formatTable(headers, body, headers.map((_, i) => i > 0)) : Object.keys(c.metrics).length === 0 ? 'No metric to show.' : 'No metric differs between the variants.');
  if (note) out.push(note);
  return out.join('\n');
}

export async function compare(args: CompareArgs, io: IO): Promise<Comparison> {
  parseLabels(args.label ?? []);
  const over = { traces: parseTraceArgs(args.trace ?? []), ...(args.profile !== undefined ? { profile: args.profile } : {}), ...(args.intervalMs !== undefined ? { intervalMs: args.intervalMs } : {}) };
  const base = loadPipeline(args.pipeline, over);
  const all = ['base', ...base.variantNames];
  const variants = args.variants && args.variants.length > 0 ? [...new Set(args.variants)] : all;
  for (const v of variants) {
    if (!all.includes(v)) throw new WattraceError('E_USAGE', `--variants: the pipeline has no variant '${v}' (it has ${all.join(', ')})`);
  }
  base.expect.forEach((e, i) => {
    if (e.variant !== undefined && !all.includes(e.variant)) {
      throw new WattraceError('E_PIPELINE', `expectation ${i + 1} (${e.metric}) names variant '${e.variant}', which the pipeline does not have (it has ${all.join(', ')})`, {
        file: base.file,
        path: `/expect/${i}/variant`,
      });
    }
  });
  const skipped = base.expect.filter((e) => e.variant !== undefined && !variants.includes(e.variant));
  checkStore(args.db);
  const baseline = args.baseline ?? (variants.includes('base') ? 'base' : variants[0]!);
  if (!variants.includes(baseline)) throw new WattraceError('E_USAGE', `--baseline '${baseline}' is not among the compared variants (${variants.join(', ')})`);
  if (args.baseline === undefined && baseline !== 'base' && variants.length > 1) {
    io.err(`wattrace: note: 'base' is not compared: deltas (and max_delta expectations) are against '${baseline}', the first variant given (--baseline chooses)`);
  }
  const jobs = args.jobs ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  if (!Number.isInteger(jobs) || jobs < 1) throw new WattraceError('E_USAGE', `--jobs must be a positive integer; got ${jobs}`);
  // Every variant must load and plan before anything runs: a bad override is exit 2, no run stored.
  const resolved: ResolvedPipeline[] = variants.map((v) => loadPipeline(args.pipeline, { ...over, variant: v }));
  const machines = resolved.map((p) => loadProfile(p.profilePath));
  const plans = resolved.map((p, i) => planStages(p, machines[i]!));
  // An expectation on a metric a variant it applies to cannot write is bad input, found before
  // anything runs (not a broken expectation after the replays).
  base.expect.forEach((e, i) => {
    resolved.forEach((p, k) => {
      if (e.variant !== undefined && e.variant !== p.variant) return;
      const stages = new Set<string>([...p.stages, ...(plans[k]!.traces.includes('measured') ? ['validation'] : [])]);
      const m = machines[k]!;
      const why = unwritableBy(e.metric, stages, { vm: new Set(m.profile.vms.map((v) => v.id)), consumer: new Set([...m.consumers, UNATTRIBUTED]) });
      if (why !== null) {
        throw new WattraceError('E_PIPELINE', `expectation ${i + 1} names metric '${e.metric}', which variant '${p.variant}' cannot write: ${why}`, { file: base.file, path: `/expect/${i}/metric` });
      }
    });
  });
  // As replay: a trace given that no stage of a variant reads is not used (say so once).
  const unused = new Set<string>();
  resolved.forEach((p, i) => {
    for (const k of Object.keys(p.traces) as TraceKind[]) if (!plans[i]!.traces.includes(k)) unused.add(`the ${k} trace in variant '${p.variant}'`);
  });
  for (const u of unused) io.err(`wattrace: note: no stage reads ${u}; it is not used`);
  if (!fs.existsSync(WORKER)) throw new Error(`compare runs the built replay (${WORKER}); build it first with npm run build`);

  // Variants over the same traces and profile are replayed together, reading the traces once.
  const groups = new Map<string, number[]>();
  resolved.forEach((p, i) => {
    // Variants that read the same traces share a pass (the run's span and inputs are then the
    // same); their stages may differ, since no stage changes what another reads.
    const key = JSON.stringify([p.profilePath, p.traces, plans[i]!.traces]);
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'wattrace-compare-'));
  let runIds: number[];
  try {
    const dbs = variants.map((_, i) => path.join(scratch, `${i}.sqlite`));
    const list = [...groups.values()];
    const parallel = Math.min(jobs, list.length);
    const notes = new Set<string>();
    // Interrupted, the replays stop and their scratch databases go; --db is untouched until the
    // import, one transaction.
    // The import into --db is inside as well, its commit included (io.ts, undoOnInterrupt).
    let importing: RunImport | null = null;
    let stored: number[] | null = null;
    runIds = await undoOnInterrupt(
      io,
      () => (stored ? `runs ${stored.join(', ')} were stored in ${args.db} before it` : `no run was added; ${args.db} is as it was`),
      () => {
        for (const c of children) c.kill('SIGTERM');
        importing?.abort();
        fs.rmSync(scratch, { recursive: true, force: true });
      },
      async () => {
        await pool(list, parallel, (g) => replayGroup(args, g.map((i) => variants[i]!), g.map((i) => dbs[i]!), parallel === 1, notes));
        for (const n of notes) io.err(n);
        importing = new RunImport(args.db);
        await importing.begin();
        const ids = await importing.copy(dbs.map((f) => ({ file: f, runId: 1 })));
        await signalsTurn(); // a signal sent during the copy's last stretch rolls it back
        importing.commit();
        stored = ids;
        await signalsTurn();
        return ids;
      },
    );
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }

  const db = openForReading(args.db);
  const metrics: Comparison['metrics'] = {};
  try {
    const q = db.prepare('SELECT name, value FROM metrics WHERE run_id = ?');
    variants.forEach((v, i) => {
      for (const r of q.all(runIds[i]!) as { name: string; value: number }[]) {
        if (args.metrics && args.metrics.length > 0 && !args.metrics.some((p) => r.name.startsWith(p))) continue;
        (metrics[r.name] ??= {})[v] = r.value;
      }
    });
    // Expectations see every metric, whatever is printed.
    const allMetrics: Comparison['metrics'] = {};
    variants.forEach((v, i) => {
      for (const r of q.all(runIds[i]!) as { name: string; value: number }[]) (allMetrics[r.name] ??= {})[v] = r.value;
    });
    if (args.metrics && args.metrics.length > 0 && Object.keys(metrics).length === 0) {
      const heads = [...new Set(Object.keys(allMetrics).map((n) => `${n.split('.')[0]}.`))].sort();
      io.err(`wattrace: note: no metric starts with --metrics ${args.metrics.join(', ')} (the runs' metrics start with ${heads.join(', ')})`);
    }
    const c: Comparison = {
      pipeline: base.name,
      baseline,
      runs: variants.map((v, i) => ({ variant: v, run_id: runIds[i]! })),
      metrics,
      expectations: checkExpectations(base.expect, variants, baseline, allMetrics),
    };
    io.out(renderComparison(c, args.format ?? 'table', args.all ?? false));
    for (const e of skipped) io.err(`wattrace: note: expectation on ${e.metric} (${e.variant}) skipped: that variant was not compared`);
    const broken = c.expectations.filter((e) => !e.ok);
    if (broken.length > 0) {
      throw new WattraceError(
        'E_EXPECT',
        `${broken.length} expectation${broken.length > 1 ? 's' : ''} broken: ${broken.map((e) => `${e.metric} (${e.variant}): ${e.why}`).join('; ')}`,
        { file: path.resolve(args.pipeline), path: '/expect' },
        EXIT_EXPECTATION,
      );
    }
    return c;
  } finally {
    db.close();
  }
}
