/**
 * `wattrace report`: charts of stored runs as SVG (vega-lite specs rendered by vega in Node, no
 * browser) and one self-contained HTML page that works offline (the SVGs are inlined).
 *
 * - Figure 7-style stacked bars: for every variant of the run's pipeline on the same machine
 *   profile (the run itself for its variant, else the newest run of each), the
 *   power split into base, client CPU, driver CPU idle/active and disk idle/active, with the
 *   measured power (where the run had a measured.csv) as a bar beside it.
 * - Power over time: the run's power per consumer and reporting interval.
 * - For policy runs (rows in cpu_policy / disk_policy): power against the limit and throughput per
 *   manager period and VM.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { WattraceError } from '../core/errors.js';
import { nsToS, perSecond } from '../core/units.js';
import type { DB } from '../store/store.js';
import { matrixCells, pivotMatrix, validationOf, type MatrixCell, type RunInfo, type ValidationRow } from './matrix.js';
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

/** Power per consumer and interval (watts), at most `maxPoints` intervals (coarser bins beyond). */
export function powerOverTime(db: DB, runId: number, maxPoints = 1500): { t: number; consumer: string; watts: number }[] {
  const run = db.prepare('SELECT t0_ns, t1_ns, interval_ns FROM runs WHERE run_id = ?').get(runId) as { t0_ns: number; t1_ns: number; interval_ns: number };
  const I = run.interval_ns;
  const n = Math.max(1, Math.ceil((run.t1_ns - run.t0_ns) / I));
  const bin = I * Math.max(1, Math.ceil(n / maxPoints));
  const rows = db
    .prepare(
      `SELECT CAST(t0_ns / ? AS INTEGER) AS k, consumer, sum(joules) AS j FROM energy WHERE run_id = ? AND container IS NULL GROUP BY k, consumer ORDER BY k`,
    )
    .all(bin, runId) as { k: number; consumer: string; j: number }[];
  const points = rows.map((r) => {
    const a = Math.max(r.k * bin, run.t0_ns);
    const b = Math.min((r.k + 1) * bin, run.t1_ns);
    return { t: nsToS(a - run.t0_ns), consumer: r.consumer, watts: b > a ? perSecond(r.j, b - a) : 0 };
  });
  // The lines step after each point: a closing point at the end draws the last interval too.
  const last = new Map<string, number>();
  for (const p of points) last.set(p.consumer, p.watts);
  for (const [consumer, watts] of last) points.push({ t: nsToS(run.t1_ns - run.t0_ns), consumer, watts });
  return points;
}

export function powerSpec(title: string, points: readonly { t: number; consumer: string; watts: number }[]): vl.TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 640,
    height: 280,
    data: { values: points as unknown as Record<string, unknown>[] },
    mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.2 },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'time (s)' },
      y: { field: 'watts', type: 'quantitative', title: 'power (W)' },
      color: { field: 'consumer', type: 'nominal', title: 'consumer' },
    },
  };
}

/**
 * Policy runs (host-strides, disk-budgets): per manager period and VM, the power against its
 * limit, and the throughput (CPU work per second, disk bytes per second). Empty for runs
 * without a policy stage.
 */
export type PolicyKind = 'cpu' | 'disk' | 'container';

export function policySeries(db: DB, runId: number): { kind: PolicyKind; t: number; vm: string; watts: number; limit: number | null; throughput: number }[] {
  const out: { kind: PolicyKind; t: number; vm: string; watts: number; limit: number | null; throughput: number }[] = [];
  const t0 = (db.prepare('SELECT t0_ns FROM runs WHERE run_id = ?').get(runId) as { t0_ns: number }).t0_ns;
  const sql: Record<PolicyKind, string> = {
    cpu: 'SELECT t_ns, vm, watts, limit_watts, work_s AS amount FROM cpu_policy WHERE run_id = ? ORDER BY vm, t_ns',
    disk: 'SELECT t_ns, vm, watts, limit_watts, bytes AS amount FROM disk_policy WHERE run_id = ? ORDER BY vm, t_ns',
    container: "SELECT t_ns, vm || '/' || container AS vm, watts, limit_watts, work_s AS amount FROM containers WHERE run_id = ? ORDER BY vm, t_ns",
  };
  for (const kind of ['cpu', 'disk', 'container'] as const) {
    const rows = db.prepare(sql[kind]).all(runId) as { t_ns: number; vm: string; watts: number; limit_watts: number | null; amount: number }[];
    // A VM may have no row in a period (cpu_policy: no limit, no demand): it is a zero there. The
    // periods are the row times of all VMs; amounts are per period.
    // A period's length is the time since the previous one, at most the manager's period (the
    // smallest gap: a gap of two periods is one in which no VM had a row).
    const grid = [...new Set(rows.map((r) => r.t_ns))].sort((a, b) => a - b);
    let period = Infinity;
    for (let i = 1; i < grid.length; i++) period = Math.min(period, grid[i]! - grid[i - 1]!);
    const byVm = new Map<string, Map<number, (typeof rows)[number]>>();
    for (const r of rows) {
      if (!byVm.has(r.vm)) byVm.set(r.vm, new Map());
      byVm.get(r.vm)!.set(r.t_ns, r);
    }
    for (const [vm, at] of byVm) {
      for (let i = 0; i < grid.length; i++) {
        const t = grid[i]!;
        const r = at.get(t);
        const dt = nsToS(Math.min(t - (i > 0 ? grid[i - 1]! : t0), period));
        out.push({ kind, t: nsToS(t - t0), vm, watts: r?.watts ?? 0, limit: r?.limit_watts ?? null, throughput: r && dt > 0 ? r.amount / dt : 0 });
      }
    }
  }
  return out;
}

export function policySpec(title: string, kind: PolicyKind, points: ReturnType<typeof policySeries>): vl.TopLevelSpec {
  const values = points.filter((p) => p.kind === kind) as unknown as Record<string, unknown>[];
  const x = { field: 't', type: 'quantitative' as const, title: 'time (s)' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values },
    vconcat: [
      {
        width: 640,
        height: 200,
        layer: [
          { mark: { type: 'line', interpolate: 'step-before' }, encoding: { x, y: { field: 'watts', type: 'quantitative', title: `${kind} power (W)` }, color: { field: 'vm', type: 'nominal' } } },
          { mark: { type: 'line', strokeDash: [4, 3], interpolate: 'step-before' }, encoding: { x, y: { field: 'limit', type: 'quantitative' }, color: { field: 'vm', type: 'nominal' } } },
        ],
      },
      {
        width: 640,
        height: 160,
        mark: { type: 'line', interpolate: 'step-before' },
        encoding: { x, y: { field: 'throughput', type: 'quantitative', title: kind === 'disk' ? 'throughput (bytes/s)' : 'work (CPU s per s)' }, color: { field: 'vm', type: 'nominal' } },
      },
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

export interface Report {
  /** File name → content. */
  files: Map<string, string>;
}

export async function buildReport(db: DB, info: RunInfo): Promise<Report> {
  const files = new Map<string, string>();
  const runs = runsOfPipeline(db, info.run_id);
  if (runs.length === 0) throw new WattraceError('E_STORE', `no finished run of pipeline '${info.pipeline}'`);
  const bars = runs.map((r) => fig7Bar(r.run_id, r.variant, matrixCells(db, r.run_id), validationOf(db, r.run_id)));
  const barsSvg = await renderSvg(fig7Spec(`Power by variant of '${info.pipeline}' (Figure 7 layout)`, bars));
  files.set('energy-by-variant.svg', barsSvg);
  const powerSvg = await renderSvg(powerSpec(`Power over time, run ${info.run_id} (${info.variant})`, powerOverTime(db, info.run_id)));
  files.set(`power-run-${info.run_id}.svg`, powerSvg);

  const policy = policySeries(db, info.run_id);
  const policySvgs: string[] = [];
  const titles: Record<PolicyKind, string> = {
    cpu: 'CPU power (dashed: limit) and throughput per manager period',
    disk: 'Disk power (dashed: limit) and throughput per manager period',
    container: "Containers' power as the guest sees it (dashed: limit) and throughput per budget period",
  };
  for (const kind of ['cpu', 'disk', 'container'] as const) {
    if (!policy.some((p) => p.kind === kind)) continue;
    const svg = await renderSvg(policySpec(`${titles[kind]}, run ${info.run_id}`, kind, policy));
    files.set(`${kind}-policy-run-${info.run_id}.svg`, svg);
    policySvgs.push(svg);
  }
  const sameTraces = runsOverSameTraces(db, info.run_id);
  const contRows = containerBars(db, sameTraces);
  let contSvg = '';
  if (contRows.length > 0) {
    contSvg = await renderSvg(containerBarsSpec(`Containers by variant of '${info.pipeline}' (Figure 9 layout)`, contRows, sameTraces.map((r) => r.variant)));
    files.set('containers-by-variant.svg', contSvg);
  }
  const cells = matrixCells(db, info.run_id);
  const m = pivotMatrix(cells);
  const val = validationOf(db, info.run_id);
  const matrixHtml = `<table><tr><th>consumer</th><th>via</th>${m.columns.map((c) => `<th>${esc(c.device)} ${c.kind} W</th>`).join('')}<th>total W</th><th>total J</th></tr>${m.rows
    .map((r) => `<tr><td>${esc(r.consumer)}</td><td>${esc(r.via ?? '-')}</td>${r.watts.map((w) => `<td>${fmt(w, 3)}</td>`).join('')}<td>${fmt(r.totalWatts, 3)}</td><td>${fmt(r.totalJoules, 3)}</td></tr>`)
    .join('')}</table>`;
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
<figure>${powerSvg}</figure>
${policySvgs.map((svg) => `<h2>Policy, run ${info.run_id}</h2>\n<figure>${svg}</figure>`).join('\n')}
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
