/**
 * The energy matrix of a finished run (Figure 5): rows are consumers (and, for charged energy,
 * the driver VM it went through), columns are device × {idle, active}. Reads the `energy_matrix`
 * view and pivots it with arquero.
 */
import * as aq from 'arquero';
import { WattraceError } from '../core/errors.js';
import { IDLE_VM, UNATTRIBUTED } from '../core/machine.js';
import { nsToS } from '../core/units.js';
import type { DB } from '../store/store.js';
import { latestRunId } from '../store/store.js';
import { fmt, formatTable } from './table.js';

export interface MatrixCell {
  consumer: string;
  via: string | null;
  device: string;
  kind: 'idle' | 'active';
  joules: number;
  watts: number;
}

export interface RunInfo {
  run_id: number;
  pipeline: string;
  variant: string;
  duration_ns: number;
  /** The reporting interval of its energy rows. */
  interval_ns: number;
  started_at: string;
  /** The run's --label pairs ({} for none, and for a database of schema 1 or 2, read as it is). */
  labels: Record<string, string>;
}

export function resolveRun(db: DB, run: number | undefined, file: string): RunInfo {
  const id = run ?? latestRunId(db);
  if (id === null) throw new WattraceError('E_STORE', 'the database holds no finished run yet', { file });
  // Read-only commands read an older database as it is: before schema 3 runs had no labels.
  const hasLabels = (db.prepare("SELECT 1 FROM pragma_table_info('runs') WHERE name = 'labels'").get() as unknown) !== undefined;
  const row = db.prepare(`SELECT run_id, pipeline, variant, duration_ns, interval_ns, started_at, ${hasLabels ? 'labels' : "'{}' AS labels"} FROM runs WHERE run_id = ? AND finished_at IS NOT NULL`).get(id) as (Omit<RunInfo, 'labels'> & { labels: string }) | undefined;
  if (!row) throw new WattraceError('E_USAGE', `no run ${id} in the database`, { file });
  return { ...row, labels: JSON.parse(row.labels) as Record<string, string> };
}

export function matrixCells(db: DB, runId: number): MatrixCell[] {
  return db.prepare('SELECT consumer, via, device, kind, joules, watts FROM energy_matrix WHERE run_id = ?').all(runId) as MatrixCell[];
}

/** Consumers in a stable, readable order: VMs by name, then `idle`, then `(unattributed)`. */
function consumerRank(c: string): string {
  return c === UNATTRIBUTED ? `2${c}` : c === IDLE_VM ? `1${c}` : `0${c}`;
}

/** Device columns: cpu first, then disks by name; idle before active. */
function columnOrder(cells: readonly MatrixCell[]): { device: string; kind: 'idle' | 'active' }[] {
  const devices = [...new Set(cells.map((c) => c.device))].sort((a, b) => (a === 'cpu' ? -1 : b === 'cpu' ? 1 : a < b ? -1 : 1));
  return devices.flatMap((device) => (['idle', 'active'] as const).map((kind) => ({ device, kind }))).filter((c) =>
    cells.some((x) => x.device === c.device && x.kind === c.kind),
  );
}

export interface MatrixTable {
  columns: { device: string; kind: 'idle' | 'active' }[];
  rows: { consumer: string; via: string | null; watts: number[]; joules: number[]; totalWatts: number; totalJoules: number }[];
}

/** Pivots the run's cells into one row per (consumer, via). */
export function pivotMatrix(cells: readonly MatrixCell[]): MatrixTable {
  const columns = columnOrder(cells);
  if (cells.length === 0) return { columns, rows: [] };
  const keyOf = (device: string, kind: string) => `${device}|${kind}`;
  // Direct consumption has via NULL in SQL, '-' here (no VM id can be '-').
  const DIRECT = '-';
  const table = aq
    .from(cells.map((c) => ({ ...c, via: c.via ?? DIRECT, col: keyOf(c.device, c.kind) })))
    .groupby('consumer', 'via')
    .pivot('col', { w: (d: { watts: number }) => aq.op.sum(d.watts), j: (d: { joules: number }) => aq.op.sum(d.joules) });
  const totals = aq
    .from(cells.map((c) => ({ ...c, via: c.via ?? DIRECT })))
    .groupby('consumer', 'via')
    .rollup({ tw: (d: { watts: number }) => aq.op.sum(d.watts), tj: (d: { joules: number }) => aq.op.sum(d.joules) });
  const joined = table.join(totals, [['consumer', 'via'], ['consumer', 'via']]).objects() as Record<string, unknown>[];
  const rows = joined.map((o) => ({
    consumer: o['consumer'] as string,
    via: o['via'] === DIRECT ? null : (o['via'] as string),
    watts: columns.map((c) => (o[`w_${keyOf(c.device, c.kind)}`] as number | undefined) ?? 0),
    joules: columns.map((c) => (o[`j_${keyOf(c.device, c.kind)}`] as number | undefined) ?? 0),
    totalWatts: o['tw'] as number,
    totalJoules: o['tj'] as number,
  }));
  rows.sort((a, b) => {
    const ka = consumerRank(a.consumer);
    const kb = consumerRank(b.consumer);
    if (ka !== kb) return ka < kb ? -1 : 1;
    return (a.via ?? '') < (b.via ?? '') ? -1 : (a.via ?? '') > (b.via ?? '') ? 1 : 0;
  });
  return { columns, rows };
}

export type MatrixUnit = 'W' | 'J';

/** Accounted vs measured power of one device over a run (from the `validation.*` metrics). */
export interface ValidationRow {
  device: string;
  accountedWatts: number;
  measuredWatts: number;
  mape: number;
  intervals: number;
}

export function validationOf(db: DB, runId: number): ValidationRow[] {
  const rows = db.prepare("SELECT name, value FROM metrics WHERE run_id = ? AND name LIKE 'validation.%'").all(runId) as { name: string; value: number }[];
  const by = new Map<string, Partial<ValidationRow>>();
  for (const r of rows) {
    const rest = r.name.slice('validation.'.length);
    const dot = rest.lastIndexOf('.');
    const device = rest.slice(0, dot);
    const v = by.get(device) ?? { device };
    const key = rest.slice(dot + 1);
    if (key === 'accounted_watts') v.accountedWatts = r.value;
    else if (key === 'measured_watts') v.measuredWatts = r.value;
    else if (key === 'mape') v.mape = r.value;
    else if (key === 'intervals') v.intervals = r.value;
    by.set(device, v);
  }
  return [...by.values()].map((v) => ({ accountedWatts: NaN, measuredWatts: NaN, mape: NaN, intervals: 0, ...v }) as ValidationRow).sort((a, b) => (a.device < b.device ? -1 : 1));
}

/**
 * The Figure 5 layout as a text table: a row per consumer and driver it went through (`via` '-'
 * for its own consumption), a column per device × {idle, active}, in watts (mean over the run) or
 * joules, with the row's total in both.
 */
export function renderMatrix(info: RunInfo, cells: readonly MatrixCell[], unit: MatrixUnit = 'W', validation: readonly ValidationRow[] = []): string {
  const m = pivotMatrix(cells);
  const pick = (r: MatrixTable['rows'][number]) => (unit === 'W' ? r.watts : r.joules);
  const headers = ['consumer', 'via', ...m.columns.map((c) => `${c.device} ${c.kind} ${unit}`), 'total W', 'total J'];
  const numeric = headers.map((_, i) => i >= 2);
  const body = m.rows.map((r) => [r.consumer, r.via ?? '-', ...pick(r).map((w) => fmt(w, 3)), fmt(r.totalWatts, 3), fmt(r.totalJoules, 3)]);
  const sumCol = (i: number) => m.rows.reduce((a, r) => a + (pick(r)[i] ?? 0), 0);
  body.push([
    'total',
    '',
    ...m.columns.map((_, i) => fmt(sumCol(i), 3)),
    fmt(m.rows.reduce((a, r) => a + r.totalWatts, 0), 3),
    fmt(m.rows.reduce((a, r) => a + r.totalJoules, 0), 3),
  ]);
  // A value that would read ambiguously (a comma, a space, a quote, empty) is quoted as JSON.
  const labels = Object.entries(info.labels).map(([k, v]) => `${k}=${/^[^\s,"'=]+$/.test(v) ? v : JSON.stringify(v)}`).join(', ');
  const title = `Energy matrix: run ${info.run_id}, pipeline '${info.pipeline}', variant '${info.variant}', ${fmt(nsToS(info.duration_ns), 3)} s${labels ? `, labels ${labels}` : ''}`;
  let out = `${title}\n${formatTable(headers, body, numeric)}`;
  if (validation.length > 0) {
    // accounted W is the run's mean, measured W the compared intervals': their error only when the
    // samples cover the run (every whole interval compared).
    const whole = info.interval_ns > 0 ? Math.floor(info.duration_ns / info.interval_ns) : 0;
    const partial = validation.filter((v) => v.intervals < whole);
    const vh = ['device', 'accounted W', 'measured W', 'error %', 'MAPE %', 'intervals'];
    const vb = validation.map((v) => [
      v.device,
      fmt(v.accountedWatts, 3),
      fmt(v.measuredWatts, 3),
      v.intervals < whole ? '–' : fmt((100 * (v.accountedWatts - v.measuredWatts)) / v.measuredWatts, 2),
      fmt(v.mape, 2),
      String(v.intervals),
    ]);
    out += `\n\nValidation against measured power (per reporting interval)\n${formatTable(vh, vb, vh.map((_, i) => i >= 1))}`;
    if (partial.length > 0) {
      out += `\nerror % is left out where the samples cover part of the run (${partial.map((v) => `${v.device}: ${v.intervals} of ${whole} intervals`).join(', ')}): accounted W is the whole run's mean, measured W that of the compared intervals; MAPE compares interval by interval.`;
    }
  }
  return out;
}
