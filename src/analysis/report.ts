/**
 * `wattrace report`: charts of stored runs as SVG (vega-lite specs rendered by vega in Node, no
 * browser) and one self-contained HTML page that works offline (the SVGs are inlined).
 *
 * - Figure 7-style stacked bars: for every variant of the run's pipeline on the same machine
 *   profile (the run itself for its variant, else the newest run of each), the
 *   power split into base, client CPU, driver CPU idle/active and disk idle/active, with the
 *   measured power (where the run had a measured.csv) as a bar beside it.
 * - Power over time: the run's power per consumer and reporting interval.
 * - For policy runs (rows in cpu_policy / disk_policy / containers): power against the limit and
 *   throughput per manager period and VM.
 *
 * The charts over time are summed in SQL into at most MAX_SERIES named series and one of the
 * others, at most MAX_POINTS points each, so a run of a thousand VMs and millions of rows makes
 * charts (and uses memory) of the same size as a small one.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { WattraceError } from '../core/errors.js';
import { nsToS, perSecond } from '../core/units.js';
import type { DB } from '../store/store.js';
import { matrixCells, pivotMatrix, validationOf, type MatrixCell, type MatrixTable, type RunInfo, type ValidationRow } from './matrix.js';
import { fmt } from './table.js';

/** Figure 7's blocks, bottom to top, and their colours. */
export const FIG7_CATEGORIES = [
  { id: 'base', label: 'base (CPU not caused by the clients)', color: '#9e9e9e' },
  { id: 'client-cpu', label: 'client CPU active', color: '#4e79a7' },
  { id: 'driver-cpu-idle', label: 'driver CPU idle', color: '#f28e2b' },
  { id: 'driver-cpu-active', label: 'driver CPU active', color: '#e15759' },
  { id: 'disk-idle', label: 'disk idle', color: '#76b7b2' },
  { id: 'disk-active', label: 'disk active', color: '#59a14f' },
] as const;
const MEASURED = { id: 'measured', label: 'measured (DAQ)', color: '#222222' };

export interface Fig7Bar {
  run: number;
  variant: string;
  /** Watts per category id. */
  watts: Record<string, number>;
  measured: number | null;
}

/**
 * Splits a run's matrix into Figure 7's blocks. Clients are the consumers some driver charged
 * (rows with a `via`); their own active CPU is "client CPU"; what drivers spent for them on the
 * CPU is "driver CPU idle/active"; every disk's energy is "disk"; all other CPU energy (the
 * hypervisor, the VMM, every VM's idle share, the clients' idle shares) is "base".
 */
export function fig7Bar(run: number, variant: string, cells: readonly MatrixCell[], validation: readonly ValidationRow[]): Fig7Bar {
  const clients = new Set(cells.filter((c) => c.via !== null).map((c) => c.consumer));
  const w: Record<string, number> = Object.fromEntries(FIG7_CATEGORIES.map((c) => [c.id, 0]));
  const add = (k: string, v: number) => (w[k] = w[k]! + v);
  for (const c of cells) {
    if (c.device !== 'cpu') add(c.kind === 'idle' ? 'disk-idle' : 'disk-active', c.watts);
    else if (c.via !== null) add(c.kind === 'idle' ? 'driver-cpu-idle' : 'driver-cpu-active', c.watts);
    else if (clients.has(c.consumer) && c.kind === 'active') add('client-cpu', c.watts);
    else add('base', c.watts);
  }
  const m = validation.filter((v) => Number.isFinite(v.measuredWatts));
  return { run, variant, watts: w, measured: m.length > 0 ? m.reduce((a, v) => a + v.measuredWatts, 0) : null };
}

/** Variant names in a human order: numbers inside compare as numbers (bs-512 before bs-1024). */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/**
 * The runs to compare with `anchor`: for each variant of its pipeline replayed on the same machine
 * profile, the newest finished run — the anchor itself for its own variant.
 */
export function runsOfPipeline(db: DB, anchor: number): { run_id: number; variant: string }[] {
  const a = db.prepare("SELECT pipeline, variant, json_extract(params, '$.profile') AS profile FROM runs WHERE run_id = ?").get(anchor) as { pipeline: string; variant: string; profile: string | null };
  const rows = db
    .prepare(
      "SELECT max(run_id) AS run_id, variant FROM runs WHERE pipeline = ? AND json_extract(params, '$.profile') IS ? AND finished_at IS NOT NULL AND variant <> ? GROUP BY variant",
    )
    .all(a.pipeline, a.profile, a.variant) as { run_id: number; variant: string }[];
  rows.push({ run_id: anchor, variant: a.variant });
  return rows.sort((x, y) => naturalCompare(x.variant, y.variant));
}

/**
 * For the containers chart: the newest run of each variant of `anchor`'s pipeline over the same
 * traces, whatever its profile (host-level and guest-level runs differ in the guest's
 * energy-awareness only).
 */
export function runsOverSameTraces(db: DB, anchor: number): { run_id: number; variant: string }[] {
  const a = db.prepare("SELECT pipeline, variant, json_extract(params, '$.traces') AS traces FROM runs WHERE run_id = ?").get(anchor) as { pipeline: string; variant: string; traces: string };
  const rows = db
    .prepare("SELECT max(run_id) AS run_id, variant FROM runs WHERE pipeline = ? AND json_extract(params, '$.traces') = ? AND finished_at IS NOT NULL AND variant <> ? GROUP BY variant")
    .all(a.pipeline, a.traces, a.variant) as { run_id: number; variant: string }[];
  rows.push({ run_id: anchor, variant: a.variant });
  return rows.sort((x, y) => naturalCompare(x.variant, y.variant));
}

export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function fig7Spec(title: string, bars: readonly Fig7Bar[]): vl.TopLevelSpec {
  const values: Record<string, unknown>[] = [];
  for (const b of bars) {
    FIG7_CATEGORIES.forEach((c, i) => values.push({ variant: b.variant, bar: 'accounted', category: c.label, order: i, watts: b.watts[c.id] }));
    if (b.measured !== null) values.push({ variant: b.variant, bar: 'measured', category: MEASURED.label, order: 99, watts: b.measured });
  }
  const cats = [...FIG7_CATEGORIES, ...(bars.some((b) => b.measured !== null) ? [MEASURED] : [])];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: { step: 26 },
    height: 340,
    data: { values },
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'variant', type: 'nominal', sort: bars.map((b) => b.variant), title: null, axis: { labelAngle: -30 } },
      xOffset: { field: 'bar', type: 'nominal', sort: ['accounted', 'measured'] },
      y: { field: 'watts', type: 'quantitative', stack: 'zero', title: 'power (W)' },
      color: { field: 'category', type: 'nominal', title: null, sort: cats.map((c) => c.label), scale: { domain: cats.map((c) => c.label), range: cats.map((c) => c.color) }, legend: { orient: 'right', labelLimit: 320 } },
      order: { field: 'order', type: 'quantitative', sort: 'ascending' },
      tooltip: [{ field: 'variant' }, { field: 'category' }, { field: 'watts', format: '.3f' }],
    },
  };
}

/**
 * How many series a chart names: the consumers (or VMs) with the most energy. The rest are summed
 * into one "others" series, drawn in a panel of its own, so a run of a thousand VMs makes a chart
 * of ten lines and the points read from the store stay bounded by the chart, not by the run.
 */
export const MAX_SERIES = 9;

/** At most this many points per series; coarser bins (means over several intervals) beyond. */
export const MAX_POINTS = 1500;

/** The series the rest are summed into: `others (1,044 consumers)` (no VM id has a space). */
export function othersLabel(count: number, what: string): string {
  return `others (${count.toLocaleString('en')} ${what})`;
}

export interface PowerPoint {
  /** Seconds since the run's start. */
  t: number;
  consumer: string;
  watts: number;
}

export interface PowerOverTime {
  points: PowerPoint[];
  /** The consumers drawn by name, the `maxSeries` with the most energy, by name. */
  shown: string[];
  /** How many other consumers the `others` series sums (0: there is no such series). */
  othersCount: number;
  others: string;
  /** Reporting intervals per point (1 unless the run has more than `maxPoints`). */
  intervalsPerPoint: number;
  /** What the chart leaves out, in sentences for its subtitle and the page ([] for nothing). */
  note: string[];
}

/**
 * Power per consumer and interval (watts), summed in SQL: the `maxSeries` consumers with the most
 * energy by name and all others as one series, at most `maxPoints` bins per series (a bin is
 * `intervalsPerPoint` reporting intervals, its power their mean). A consumer without energy in a
 * bin is a zero there.
 */
export function powerOverTime(db: DB, runId: number, maxPoints = MAX_POINTS, maxSeries = MAX_SERIES): PowerOverTime {
  const run = db.prepare('SELECT t0_ns, t1_ns, interval_ns FROM runs WHERE run_id = ?').get(runId) as { t0_ns: number; t1_ns: number; interval_ns: number };
  const I = run.interval_ns;
  const n = Math.max(1, Math.ceil((run.t1_ns - run.t0_ns) / I));
  const perBin = Math.max(1, Math.ceil(n / maxPoints));
  const bin = I * perBin;
  const top = db
    .prepare(
      `SELECT consumer, count(*) OVER () AS n FROM energy WHERE run_id = ? AND container IS NULL GROUP BY consumer ORDER BY sum(joules) DESC, consumer LIMIT ?`,
    )
    .all(runId, maxSeries) as { consumer: string; n: number }[];
  const shown = top.map((r) => r.consumer).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const othersCount = (top[0]?.n ?? 0) - top.length;
  const others = othersLabel(othersCount, othersCount === 1 ? 'consumer' : 'consumers');
  // The "others" row has consumer NULL.
  const rows = db
    .prepare(
      `SELECT CAST(t0_ns / ? AS INTEGER) AS k, CASE WHEN consumer IN (SELECT value FROM json_each(?)) THEN consumer END AS c, sum(joules) AS j
       FROM energy WHERE run_id = ? AND container IS NULL GROUP BY k, c`,
    )
    .all(bin, JSON.stringify(shown), runId) as { k: number; c: string | null; j: number }[];
  const series = [...shown, ...(othersCount > 0 ? [others] : [])];
  const joules = new Map<number, Map<string, number>>();
  for (const r of rows) {
    if (!joules.has(r.k)) joules.set(r.k, new Map());
    joules.get(r.k)!.set(r.c ?? others, r.j);
  }
  const points: PowerPoint[] = [];
  const kFirst = Math.floor(run.t0_ns / bin);
  const kLast = Math.max(kFirst, Math.ceil(run.t1_ns / bin) - 1);
  for (let k = kFirst; k <= kLast; k++) {
    const a = Math.max(k * bin, run.t0_ns);
    const b = Math.min((k + 1) * bin, run.t1_ns);
    const at = joules.get(k);
    for (const consumer of series) {
      const j = at?.get(consumer) ?? 0;
      points.push({ t: nsToS(a - run.t0_ns), consumer, watts: b > a ? perSecond(j, b - a) : 0 });
    }
  }
  // The lines step after each point: a closing point at the end draws the last interval too.
  const last = points.slice(-series.length);
  for (const p of last) points.push({ t: nsToS(run.t1_ns - run.t0_ns), consumer: p.consumer, watts: p.watts });
  const note = aggregationNote(shown.length, othersCount, others, 'consumers with the most energy', perBin, 'reporting intervals');
  return { points, shown, othersCount, others, intervalsPerPoint: perBin, note };
}

/**
 * What a chart leaves out, said in the chart (its subtitle): the series summed into "others" and
 * the bins of several periods. Empty when it shows every series at every period.
 */
function aggregationNote(shown: number, othersCount: number, others: string, which: string, perPoint: number, periods: string): string[] {
  const note: string[] = [];
  if (othersCount > 0) note.push(`The ${shown} ${which}; the other ${othersCount.toLocaleString('en')} are summed as "${others}" (lower panels).`);
  if (perPoint > 1) note.push(`Each point is the mean over ${perPoint} ${periods}.`);
  return note;
}

const titled = (text: string, note: readonly string[]) => (note.length > 0 ? { text, subtitle: [...note] } : text);

export function powerSpec(title: string, p: PowerOverTime): vl.TopLevelSpec {
  const mark = { type: 'line', interpolate: 'step-after', strokeWidth: 1.2 } as const;
  const x = { field: 't', type: 'quantitative', title: 'time (s)' } as const;
  const color = { field: 'consumer', type: 'nominal', title: 'consumer' } as const;
  const values = p.points as unknown as Record<string, unknown>[];
  if (p.othersCount === 0) {
    return {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: titled(title, p.note),
      width: 640,
      height: 280,
      data: { values },
      mark,
      encoding: { x, y: { field: 'watts', type: 'quantitative', title: 'power (W)' }, color },
    };
  }
  // The sum of hundreds of consumers would flatten the named ones on a shared axis.
  const legend = { ...color, legend: { labelLimit: 320 } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: titled(title, p.note),
    data: { values },
    vconcat: [
      { width: 640, height: 280, transform: [{ filter: { not: { field: 'consumer', equal: p.others } } }], mark, encoding: { x, y: { field: 'watts', type: 'quantitative', title: 'power (W)' }, color: legend } },
      { width: 640, height: 140, transform: [{ filter: { field: 'consumer', equal: p.others } }], mark, encoding: { x, y: { field: 'watts', type: 'quantitative', title: 'others, summed (W)' }, color: legend } },
    ],
  };
}

/**
 * Policy runs (host-strides, disk-budgets, guest containers): per manager period and VM, the power
 * against its limit, and the throughput (CPU work per second, disk bytes per second).
 */
export type PolicyKind = 'cpu' | 'disk' | 'container';

export interface PolicyPoint {
  kind: PolicyKind;
  /** Seconds since the run's start: the end of the period (or of the bin of periods). */
  t: number;
  vm: string;
  watts: number;
  /** The limit, null where there was none (and for the "others" series). */
  limit: number | null;
  throughput: number;
}

export interface PolicySeries {
  kind: PolicyKind;
  points: PolicyPoint[];
  /** The VMs (or containers) drawn by name, by name. */
  shown: string[];
  /** How many others the `others` series sums (0: there is no such series). */
  othersCount: number;
  others: string;
  /** Manager periods per point (1 unless the run has more than `maxPoints`). */
  periodsPerPoint: number;
  /** What the chart leaves out, in sentences for its subtitle and the page ([] for nothing). */
  note: string[];
}

const POLICY_SOURCE: Record<PolicyKind, { table: string; vm: string; amount: string; what: string }> = {
  cpu: { table: 'cpu_policy', vm: 'r.vm', amount: 'r.work_s', what: 'VMs' },
  disk: { table: 'disk_policy', vm: 'r.vm', amount: 'r.bytes', what: 'VMs' },
  container: { table: 'containers', vm: "r.vm || '/' || r.container", amount: 'r.work_s', what: 'containers' },
};

/**
 * One policy table of a run, summed in SQL into at most `maxSeries` VMs by name (those with a
 * limit first, then by energy) and an "others" series of the rest, and at most `maxPoints` points
 * per series. Null for a run without rows in the table.
 *
 * The periods are the row times of all VMs; a VM without a row in a period (cpu_policy: no limit,
 * no demand) is a zero there. A period's length is the time since the previous one, at most the
 * manager's period (the smallest gap: a gap of two periods is one in which no VM had a row).
 * A point of several periods has the time-weighted mean power and limit (over the periods that
 * had one) and the work (or bytes) of all of them per second; "others" has the sum of the
 * others' power and throughput and no limit.
 */
export function policySeries(db: DB, runId: number, kind: PolicyKind, maxPoints = MAX_POINTS, maxSeries = MAX_SERIES): PolicySeries | null {
  const src = POLICY_SOURCE[kind];
  const t0 = (db.prepare('SELECT t0_ns FROM runs WHERE run_id = ?').get(runId) as { t0_ns: number }).t0_ns;
  // Each period: its index i and the gap since the previous one (ns). The table is read once per
  // query (a CTE of its rows used twice would be copied into a temporary table).
  const gaps = `SELECT t_ns, row_number() OVER w - 1 AS i, t_ns - lag(t_ns, 1, :t0) OVER w AS gap FROM (SELECT DISTINCT t_ns FROM ${src.table} WHERE run_id = :run) WINDOW w AS (ORDER BY t_ns)`;
  const grid = db.prepare(`WITH g AS (${gaps}) SELECT count(*) AS n, min(gap) FILTER (WHERE i > 0) AS period FROM g`).get({ run: runId, t0 }) as { n: number; period: number | null };
  if (grid.n === 0) return null;
  const perBin = Math.max(1, Math.ceil(grid.n / maxPoints));
  // g: each period with its length dt (ns) and the time since the previous period with rows (gap:
  // longer where no VM had a row, as no VM had a limit or demand then); r: the table's rows.
  const withDt = `WITH g AS MATERIALIZED (SELECT t_ns, i, gap, min(gap, coalesce(:period, gap)) AS dt FROM (${gaps}))`;
  const from = `FROM ${src.table} AS r JOIN g USING (t_ns) WHERE r.run_id = :run`;
  const p = { run: runId, t0, period: grid.period };
  const bins = db
    .prepare(`${withDt} SELECT CAST(i / :per AS INTEGER) AS k, max(t_ns) AS t, sum(dt) AS dt, sum(gap) AS span, max(gap) AS gap FROM g GROUP BY k ORDER BY k`)
    .all({ ...p, per: perBin }) as { k: number; t: number; dt: number; span: number; gap: number }[];
  const top = db
    .prepare(`${withDt} SELECT ${src.vm} AS vm, count(*) OVER () AS n ${from} GROUP BY 1 ORDER BY max(r.limit_watts IS NOT NULL) DESC, sum(r.watts * g.dt) DESC, 1 LIMIT :top`)
    .all({ ...p, top: maxSeries }) as { vm: string; n: number }[];
  const shown = top.map((r) => r.vm).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const othersCount = (top[0]?.n ?? 0) - top.length;
  const others = othersLabel(othersCount, othersCount === 1 ? src.what.replace(/s$/, '') : src.what);
  // Per bin and series ("others": vm NULL): power summed, and weighted by period length, for one
  // period or several; the limit likewise over the periods that had one; the work done.
  const sums = db
    .prepare(
      `${withDt} SELECT CAST(g.i / :per AS INTEGER) AS k, CASE WHEN ${src.vm} IN (SELECT value FROM json_each(:shown)) THEN ${src.vm} END AS vm,
         sum(r.watts) AS w, sum(r.watts * g.dt) AS wdt, sum(r.limit_watts) AS l, sum(r.limit_watts * g.dt) AS ldt,
         sum(CASE WHEN r.limit_watts IS NOT NULL THEN g.dt END) AS dtl, sum(${src.amount}) AS amount
       ${from} GROUP BY 1, 2`,
    )
    .all({ ...p, per: perBin, shown: JSON.stringify(shown) }) as { k: number; vm: string | null; w: number; wdt: number; l: number | null; ldt: number | null; dtl: number | null; amount: number }[];
  const at = new Map<string, (typeof sums)[number]>();
  for (const s of sums) at.set(`${s.k}\u0000${s.vm ?? others}`, s);
  const points: PolicyPoint[] = [];
  // Periods without a row had no power, limit or work: the lines (drawn step-before, a point's
  // value from the previous point on) drop to 0 there. Period by period, a point at the start of
  // the period after such a gap; in bins, the mean over the bin's whole span.
  for (const vm of [...shown, ...(othersCount > 0 ? [others] : [])]) {
    for (const b of bins) {
      const s = at.get(`${b.k}\u0000${vm}`);
      if (perBin === 1 && grid.period !== null && b.gap > grid.period) points.push({ kind, t: nsToS(b.t - grid.period - t0), vm, watts: 0, limit: null, throughput: 0 });
      const dt = nsToS(perBin === 1 ? b.dt : b.span);
      const watts = !s ? 0 : perBin === 1 ? s.w : b.span > 0 ? s.wdt / b.span : 0;
      const limit = !s || vm === others ? null : perBin === 1 ? s.l : s.dtl ? s.ldt! / s.dtl : null;
      points.push({ kind, t: nsToS(b.t - t0), vm, watts, limit, throughput: s && dt > 0 ? s.amount / dt : 0 });
    }
  }
  const which = `${src.what} with a limit, then with the most energy`;
  const note = aggregationNote(shown.length, othersCount, others, which, perBin, kind === 'container' ? 'budget periods' : 'manager periods');
  return { kind, points, shown, othersCount, others, periodsPerPoint: perBin, note };
}

export function policySpec(title: string, s: PolicySeries): vl.TopLevelSpec {
  const { kind } = s;
  const x = { field: 't', type: 'quantitative' as const, title: 'time (s)' };
  const color = s.othersCount > 0 ? { field: 'vm', type: 'nominal' as const, legend: { labelLimit: 320 } } : { field: 'vm', type: 'nominal' as const };
  const step = { type: 'line', interpolate: 'step-before' } as const;
  const throughput = kind === 'disk' ? 'throughput (bytes/s)' : 'work (CPU s per s)';
  const named = s.othersCount > 0 ? { transform: [{ filter: { not: { field: 'vm', equal: s.others } } }] } : {};
  const others = { transform: [{ filter: { field: 'vm', equal: s.others } }] };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: titled(title, s.note),
    data: { values: s.points as unknown as Record<string, unknown>[] },
    vconcat: [
      {
        width: 640,
        height: 200,
        ...named,
        layer: [
          { mark: step, encoding: { x, y: { field: 'watts', type: 'quantitative', title: `${kind} power (W)` }, color } },
          { mark: { ...step, strokeDash: [4, 3] }, encoding: { x, y: { field: 'limit', type: 'quantitative' }, color } },
        ],
      },
      { width: 640, height: 160, ...named, mark: step, encoding: { x, y: { field: 'throughput', type: 'quantitative', title: throughput }, color } },
      // The others' sum on axes of their own (it would flatten the named ones), without a limit.
      ...(s.othersCount > 0
        ? [
            { width: 640, height: 120, ...others, mark: step, encoding: { x, y: { field: 'watts', type: 'quantitative' as const, title: `others' ${kind} power (W)` }, color } },
            { width: 640, height: 120, ...others, mark: step, encoding: { x, y: { field: 'throughput', type: 'quantitative' as const, title: `others' ${throughput}` }, color } },
          ]
        : []),
    ],
  };
}

/**
 * Figure 9 style, across the variants of the run's pipeline: each VM's power (`cpu.<vm>.mean_watts`,
 * whichever level controls it) and its containers' power and work.
 */
export function containerBars(db: DB, runs: readonly { run_id: number; variant: string }[]): { variant: string; series: string; what: 'power (W)' | 'work (s)'; value: number }[] {
  const out: { variant: string; series: string; what: 'power (W)' | 'work (s)'; value: number }[] = [];
  const q = db.prepare("SELECT name, value FROM metrics WHERE run_id = ? AND (name LIKE 'container.%' OR name LIKE 'cpu.%.mean_watts')");
  for (const r of runs) {
    const m = q.all(r.run_id) as { name: string; value: number }[];
    const vmsWithContainers = new Set(m.filter((x) => x.name.startsWith('container.')).map((x) => x.name.split('.')[1]!));
    for (const x of m) {
      const parts = x.name.split('.');
      if (parts[0] === 'container' && parts.length === 4) {
        if (parts[3] === 'mean_watts') out.push({ variant: r.variant, series: `${parts[1]}/${parts[2]}`, what: 'power (W)', value: x.value });
        if (parts[3] === 'work_s') out.push({ variant: r.variant, series: `${parts[1]}/${parts[2]}`, what: 'work (s)', value: x.value });
      } else if (parts[0] === 'cpu' && parts[2] === 'mean_watts' && vmsWithContainers.has(parts[1]!)) {
        out.push({ variant: r.variant, series: `${parts[1]} (the VM)`, what: 'power (W)', value: x.value });
      }
    }
  }
  return out;
}

export function containerBarsSpec(title: string, rows: ReturnType<typeof containerBars>, variants: readonly string[]): vl.TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values: rows as unknown as Record<string, unknown>[] },
    facet: { column: { field: 'what', type: 'nominal', title: null } },
    spec: {
      width: { step: 22 },
      height: 260,
      mark: 'bar',
      encoding: {
        x: { field: 'variant', type: 'nominal', sort: [...variants], title: null, axis: { labelAngle: -30 } },
        xOffset: { field: 'series', type: 'nominal' },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 320 } },
        tooltip: [{ field: 'variant' }, { field: 'series' }, { field: 'value', format: '.3f' }],
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A chart's aggregation note as a paragraph below it (nothing when it shows everything). */
const noteHtml = (note: readonly string[]) => (note.length > 0 ? `\n<p class="note">${esc(note.join(' '))}</p>` : '');

/** Rows of the energy matrix the page lists by name; the rest are summed into one row. */
export const PAGE_MATRIX_ROWS = 40;

/**
 * The matrix as the page shows it: every row when there are at most PAGE_MATRIX_ROWS (+ 1), else
 * the PAGE_MATRIX_ROWS rows with the most energy, in the matrix's order, and one `others` row
 * summing the rest (the PlanetLab day has 1,053 rows: a 1.5 MB page), with a note naming the
 * command that prints them all.
 */
export function pageMatrix(m: MatrixTable, runId: number): MatrixTable & { note: string[] } {
  if (m.rows.length <= PAGE_MATRIX_ROWS + 1) return { ...m, note: [] };
  const keep = new Set([...m.rows].sort((a, b) => b.totalJoules - a.totalJoules).slice(0, PAGE_MATRIX_ROWS));
  const rest = m.rows.filter((r) => !keep.has(r));
  const sum = (f: (r: MatrixTable['rows'][number]) => number) => rest.reduce((a, r) => a + f(r), 0);
  const others = {
    consumer: othersLabel(rest.length, 'rows'),
    via: null,
    watts: m.columns.map((_, i) => sum((r) => r.watts[i]!)),
    joules: m.columns.map((_, i) => sum((r) => r.joules[i]!)),
    totalWatts: sum((r) => r.totalWatts),
    totalJoules: sum((r) => r.totalJoules),
  };
  return {
    columns: m.columns,
    rows: [...m.rows.filter((r) => keep.has(r)), others],
    note: [`The ${PAGE_MATRIX_ROWS} rows with the most energy of ${m.rows.length.toLocaleString('en')}; the others are summed. Every row: wattrace matrix --run ${runId}.`],
  };
}

export interface Report {
  /** File name → content. */
  files: Map<string, string>;
}

export async function buildReport(db: DB, info: RunInfo): Promise<Report> {
  const files = new Map<string, string>();
  const runs = runsOfPipeline(db, info.run_id);
  if (runs.length === 0) throw new WattraceError('E_STORE', `no finished run of pipeline '${info.pipeline}'`);
  // The anchor's own cells serve its bar and its matrix table (summing a big run takes a second).
  const cells = matrixCells(db, info.run_id);
  const bars = runs.map((r) => fig7Bar(r.run_id, r.variant, r.run_id === info.run_id ? cells : matrixCells(db, r.run_id), validationOf(db, r.run_id)));
  const barsSvg = await renderSvg(fig7Spec(`Power by variant of '${info.pipeline}' (Figure 7 layout)`, bars));
  files.set('energy-by-variant.svg', barsSvg);
  const power = powerOverTime(db, info.run_id);
  const powerSvg = await renderSvg(powerSpec(`Power over time, run ${info.run_id} (${info.variant})`, power));
  files.set(`power-run-${info.run_id}.svg`, powerSvg);

  const policyFigures: { svg: string; note: readonly string[] }[] = [];
  const titles: Record<PolicyKind, string> = {
    cpu: 'CPU power (dashed: limit) and throughput per manager period',
    disk: 'Disk power (dashed: limit) and throughput per manager period',
    container: "Containers' power as the guest sees it (dashed: limit) and throughput per budget period",
  };
  for (const kind of ['cpu', 'disk', 'container'] as const) {
    const policy = policySeries(db, info.run_id, kind);
    if (!policy) continue;
    const svg = await renderSvg(policySpec(`${titles[kind]}, run ${info.run_id}`, policy));
    files.set(`${kind}-policy-run-${info.run_id}.svg`, svg);
    policyFigures.push({ svg, note: policy.note });
  }
  const sameTraces = runsOverSameTraces(db, info.run_id);
  const contRows = containerBars(db, sameTraces);
  let contSvg = '';
  if (contRows.length > 0) {
    contSvg = await renderSvg(containerBarsSpec(`Containers by variant of '${info.pipeline}' (Figure 9 layout)`, contRows, sameTraces.map((r) => r.variant)));
    files.set('containers-by-variant.svg', contSvg);
  }
  const m = pageMatrix(pivotMatrix(cells), info.run_id);
  const val = validationOf(db, info.run_id);
  const matrixHtml = `<table><tr><th>consumer</th><th>via</th>${m.columns.map((c) => `<th>${esc(c.device)} ${c.kind} W</th>`).join('')}<th>total W</th><th>total J</th></tr>${m.rows
    .map((r) => `<tr><td>${esc(r.consumer)}</td><td>${esc(r.via ?? '-')}</td>${r.watts.map((w) => `<td>${fmt(w, 3)}</td>`).join('')}<td>${fmt(r.totalWatts, 3)}</td><td>${fmt(r.totalJoules, 3)}</td></tr>`)
    .join('')}</table>${noteHtml(m.note)}`;
  const valHtml =
    val.length === 0
      ? '<p>No measured power in this run.</p>'
      : `<table><tr><th>device</th><th>accounted W</th><th>measured W</th><th>MAPE %</th><th>intervals</th></tr>${val
          .map((v) => `<tr><td>${esc(v.device)}</td><td>${fmt(v.accountedWatts, 3)}</td><td>${fmt(v.measuredWatts, 3)}</td><td>${fmt(v.mape, 2)}</td><td>${v.intervals}</td></tr>`)
          .join('')}</table>`;
  const barTable = `<table><tr><th>variant</th><th>run</th>${FIG7_CATEGORIES.map((c) => `<th>${esc(c.label)} W</th>`).join('')}<th>measured W</th></tr>${bars
    .map((b) => `<tr><td>${esc(b.variant)}</td><td>${b.run}</td>${FIG7_CATEGORIES.map((c) => `<td>${fmt(b.watts[c.id]!, 3)}</td>`).join('')}<td>${b.measured === null ? '–' : fmt(b.measured, 3)}</td></tr>`)
    .join('')}</table>`;
  files.set(
    'index.html',
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wattrace report: ${esc(info.pipeline)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em}td,th{padding:3px 9px;text-align:right;border-bottom:1px solid #ddd}td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}
figure{margin:1em 0}svg{max-width:100%;height:auto}</style></head>
<body>
<h1>wattrace report — pipeline '${esc(info.pipeline)}'</h1>
<p>Run ${info.run_id} (variant '${esc(info.variant)}'), ${fmt(nsToS(info.duration_ns), 3)} s of trace, stored ${esc(info.started_at)}.</p>
<h2>Power by variant (Figure 7 layout)</h2>
<figure>${barsSvg}</figure>
${barTable}
<h2>Power over time, run ${info.run_id}</h2>
<figure>${powerSvg}</figure>${noteHtml(power.note)}
${policyFigures.map((f) => `<h2>Policy, run ${info.run_id}</h2>\n<figure>${f.svg}</figure>${noteHtml(f.note)}`).join('\n')}
${contSvg ? `<h2>Containers by variant (Figure 9 layout): host-level against guest-level</h2>\n<figure>${contSvg}</figure>` : ''}
<h2>Energy matrix, run ${info.run_id}</h2>
${matrixHtml}
<h2>Validation against measured power, run ${info.run_id}</h2>
${valHtml}
</body></html>
`,
  );
  return { files };
}
