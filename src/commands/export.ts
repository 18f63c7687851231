/**
 * `wattrace export --db FILE... --out DIR`: the runs of one or more stores as a Hive-partitioned
 * Parquet dataset (DESIGN §7), so a fleet's per-host results are queried together by DuckDB, Spark,
 * Trino or ClickHouse:
 *
 *   DIR/_wattrace_dataset.json                      marks the folder as a dataset (and its layout)
 *   DIR/<table>/pipeline=<p>/variant=<v>/part-<export>-<n>.parquet
 *
 * One folder per table of DESIGN §3 (runs, energy, metrics, virtual_counters, cpu_policy,
 * disk_policy, containers; the view energy_matrix is a query over energy and runs). Every row
 * carries `run_uid` (a run's identity across stores: 16 hex digits of the sha256 of its `runs`
 * row), the store's `run_id`, and one column per label key of the exported runs (VARCHAR, NULL where
 * a run lacks the key). Columns keep their types: SQLite INTEGER → BIGINT (ns exact), REAL → DOUBLE,
 * TEXT → VARCHAR.
 *
 * Appending: runs already in the dataset (by `run_uid`) are skipped; new files are added beside the
 * old ones, which are never rewritten. Atomic: the files are written into a staging folder inside
 * DIR and moved into place last; a failure or an interruption removes what this export moved in, so
 * the dataset is as it was. DIR must be missing, empty, or a dataset: a folder holding anything
 * else is refused before anything is written.
 *
 * DuckDB writes the Parquet (README, Libraries: chosen over hyparquet-writer by measurement).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { WattraceError } from '../core/errors.js';
import { TOOL_VERSION } from '../core/version.js';
import { openForReading } from '../store/store.js';
import { signalsTurn, undoOnInterrupt, type IO } from './io.js';

export interface ExportArgs {
  dbs: readonly string[];
  out: string;
}

export interface ExportSummary {
  exported: number;
  skipped: number;
  rows: Record<string, number>;
  files: number;
  bytes: number;
}

/** The file that marks a folder as a wattrace dataset. */
export const DATASET_MARKER = '_wattrace_dataset.json';
const LAYOUT = 1;
/** Rows per appended chunk: DuckDB's vector size. */
const CHUNK = 2048;

/** The tables exported, in order (runs first: it says which runs a dataset holds). */
export const EXPORT_TABLES = ['runs', 'energy', 'metrics', 'virtual_counters', 'cpu_policy', 'disk_policy', 'containers'] as const;

interface RunRow {
  run_id: bigint;
  pipeline: string;
  variant: string;
  labels: Record<string, string>;
  uid: string;
}

type Kind = 'BIGINT' | 'DOUBLE' | 'VARCHAR';

/** A column's DuckDB type from its SQLite declared type. */
function kindOf(declared: string): Kind {
  const t = declared.toUpperCase();
  return t.includes('INT') ? 'BIGINT' : t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB') ? 'DOUBLE' : 'VARCHAR';
}

/** A run's identity across stores: its `runs` row (minus the store's own id) hashed. */
function runUid(row: Record<string, unknown>): string {
  const { run_id: _id, ...rest } = row;
  const canon = JSON.stringify(Object.keys(rest).sort().map((k) => [k, typeof rest[k] === 'bigint' ? String(rest[k]) : rest[k]]));
  return createHash('sha256').update(canon).digest('hex').slice(0, 16);
}

/** Checks that `out` may take a dataset: missing, empty, or one already (with its layout). */
function checkOut(out: string): 'new' | 'append' {
  if (out.trim() === '') throw new WattraceError('E_USAGE', '--out needs a folder for the dataset');
  if (!fs.existsSync(out)) {
    const parent = path.dirname(path.resolve(out));
    if (!fs.existsSync(parent)) throw new WattraceError('E_FILE', `cannot create the dataset: folder ${parent} does not exist`, { file: out });
    return 'new';
  }
  if (!fs.statSync(out).isDirectory()) throw new WattraceError('E_USAGE', 'is a file, not a folder for a dataset', { file: out });
  // The staging folder of an export that was killed (SIGKILL, out of memory) is removed.
  for (const e of fs.readdirSync(out)) {
    const m = /^\.export-(\d+)-\d+$/.exec(e);
    if (m && !alive(Number(m[1]))) fs.rmSync(path.join(out, e), { recursive: true, force: true });
  }
  const entries = fs.readdirSync(out).filter((e) => !/^\.export-\d+-\d+$/.test(e));
  if (entries.length === 0) return 'new';
  const marker = path.join(out, DATASET_MARKER);
  if (!fs.existsSync(marker)) {
    throw new WattraceError('E_USAGE', `holds something other than a wattrace dataset (e.g. '${entries.sort()[0]}', and no ${DATASET_MARKER}); give an empty or new folder, or an earlier export`, { file: out });
  }
  let layout: unknown;
  try {
    layout = (JSON.parse(fs.readFileSync(marker, 'utf8')) as { layout?: unknown }).layout;
  } catch {
    throw new WattraceError('E_JSON', 'is not the JSON a wattrace export writes', { file: marker });
  }
  if (layout !== LAYOUT) throw new WattraceError('E_USAGE', `is a dataset of layout ${String(layout)}; this version writes layout ${LAYOUT}`, { file: marker });
  return 'append';
}

/** Whether a process runs (a staging folder's owner). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Every Parquet file under a folder, relative to it. */
function parquetFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.parquet')).sort();
}

/** A partition value in a folder name, percent-encoded as DuckDB writes it (readers decode it). */
function hiveEscape(v: string): string {
  return [...Buffer.from(v, 'utf8')].map((b) => (/[A-Za-z0-9._-]/.test(String.fromCharCode(b)) && b < 128 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** A SQL string literal. */
const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

export async function runExport(args: ExportArgs, io: IO): Promise<ExportSummary> {
  if (args.dbs.length === 0) throw new WattraceError('E_USAGE', 'name at least one database (--db FILE...)');
  const mode = checkOut(args.out);
  // Every store opens and lists its runs before anything is written.
  const stores = args.dbs.map((file) => ({ file, db: openForReading(file) }));
  const started = Date.now();
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const created = mode === 'new' && !fs.existsSync(args.out);
  const staging = path.join(args.out, `.export-${process.pid}-${started}`);
  // What this export added to the dataset, to take back: files, then folders (deepest first).
  const moved: string[] = [];
  const madeDirs: string[] = [];
  const undo = () => {
    for (const f of moved) fs.rmSync(f, { force: true });
    fs.rmSync(staging, { recursive: true, force: true });
    for (const d of [...madeDirs].reverse()) {
      try {
        fs.rmdirSync(d);
      } catch {
        // Not empty: something else is in it now.
      }
    }
    if (created) fs.rmSync(args.out, { recursive: true, force: true });
  };
  /** mkdir -p, remembering each folder it made. */
  const makeDir = (dir: string) => {
    const missing: string[] = [];
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      fs.mkdirSync(d);
      madeDirs.push(d);
    }
  };
  // Ctrl-C stops DuckDB first (its COPY writes the partition folders on threads of its own), then
  // undoes: undone while a COPY ran, the COPY made its folders again after the undo.
  const abort = new AbortController();
  let conn: import('@duckdb/node-api').DuckDBConnection | null = null;
  const stop = () => {
    abort.abort();
    conn?.interrupt();
  };
  try {
    return await undoOnInterrupt(io, `the export was undone; ${args.out} is as it was`, undo, async () => {
      const runs: { store: (typeof stores)[number]; run: RunRow }[] = [];
      for (const s of stores) for (const run of runsOf(s.db)) runs.push({ store: s, run });
      fs.mkdirSync(staging, { recursive: true });
      const duck = await DuckDBInstance.create(path.join(staging, 'work.duckdb'), { memory_limit: '256MB', threads: '2' });
      const c = await duck.connect();
      conn = c;
      try {
        // Runs already in the dataset, and a run given twice, are not exported again.
        const have = new Set<string>();
        if (mode === 'append' && parquetFiles(path.join(args.out, 'runs')).length > 0) {
          const r = await c.runAndReadAll(`SELECT DISTINCT run_uid FROM read_parquet(${lit(path.join(args.out, 'runs', '**', '*.parquet'))}, hive_partitioning = true, union_by_name = true)`);
          for (const [uid] of r.getRows()) have.add(String(uid));
        }
        const toExport = runs.filter((r) => {
          if (have.has(r.run.uid)) return false;
          have.add(r.run.uid);
          return true;
        });
        const labelKeys = [...new Set(toExport.flatMap((r) => Object.keys(r.run.labels)))].sort();
        const rows: Record<string, number> = {};
        const tag = `${new Date(started).toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${createHash('sha256').update(toExport.map((r) => r.run.uid).join(',')).digest('hex').slice(0, 8)}`;
        for (const table of EXPORT_TABLES) {
          if (toExport.length === 0) break;
          rows[table] = await exportTable(c, table, toExport, labelKeys, path.join(staging, table), tag, abort.signal);
        }
        c.closeSync();
        duck.closeSync();
        // Stopped meanwhile (the last COPY ended before the interrupt took): nothing moves in.
        abort.signal.throwIfAborted();
        // Into place: the marker first (a dataset from now on), then every new file.
        if (mode === 'new') {
          const marker = path.join(args.out, DATASET_MARKER);
          fs.writeFileSync(marker, `${JSON.stringify({ layout: LAYOUT, written_by: `wattrace ${TOOL_VERSION}`, partitioning: ['pipeline', 'variant'] }, null, 2)}\n`);
          moved.push(marker);
        }
        let bytes = 0;
        const newFiles = EXPORT_TABLES.flatMap((t) => parquetFiles(path.join(staging, t)).map((f) => path.join(t, f)));
        for (const f of newFiles) {
          const to = path.join(args.out, f);
          if (fs.existsSync(to)) throw new WattraceError('E_FILE', 'a file of this export is already in the dataset', { file: to });
          try {
            makeDir(path.dirname(to));
            fs.renameSync(path.join(staging, f), to);
          } catch (e) {
            const why = e instanceof Error && 'code' in e ? String((e as NodeJS.ErrnoException).code) : String(e);
            throw new WattraceError('E_FILE', `cannot move the export's files into the dataset (${why}); what this export moved in was removed again`, { file: to });
          }
          moved.push(to);
          bytes += fs.statSync(to).size;
        }
        fs.rmSync(staging, { recursive: true, force: true });
        // A signal during the (synchronous) moves is heard here and undoes them, before anything
        // is said of the export.
        await signalsTurn();
        abort.signal.throwIfAborted();
        const s: ExportSummary = { exported: toExport.length, skipped: runs.length - toExport.length, rows, files: newFiles.length, bytes };
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        io.out(`exported ${s.exported} run${s.exported === 1 ? '' : 's'} of ${stores.length} database${stores.length === 1 ? '' : 's'} → ${args.out} (${s.files} Parquet files, ${(s.bytes / 1e6).toFixed(2)} MB, ${secs} s)${s.skipped > 0 ? `; ${s.skipped} already in the dataset (or given twice), not exported again` : ''}`);
        if (s.exported > 0) io.out(`  rows: ${Object.entries(rows).map(([t, n]) => `${t} ${n.toLocaleString('en-US')}`).join(', ')}`);
        if (labelKeys.length > 0) io.out(`  label columns: ${labelKeys.join(', ')}`);
        return s;
      } catch (e) {
        try {
          c.closeSync();
          duck.closeSync();
        } catch {
          // Closed already.
        }
        throw e;
      }
    }, stop);
  } catch (e) {
    undo();
    throw e;
  } finally {
    for (const s of stores) s.db.close();
  }
}

/** The finished runs of a store, with their uid and labels (none before schema 3). */
function runsOf(db: Database.Database): RunRow[] {
  const rows = db.prepare('SELECT * FROM runs WHERE finished_at IS NOT NULL ORDER BY run_id').safeIntegers(true).all() as Record<string, unknown>[];
  return rows.map((r) => ({
    run_id: r['run_id'] as bigint,
    pipeline: r['pipeline'] as string,
    variant: r['variant'] as string,
    labels: JSON.parse((r['labels'] as string | undefined) ?? '{}') as Record<string, string>,
    // A store of schema 1 or 2 has no labels column: the uid is the same as after its migration.
    uid: runUid({ labels: '{}', ...r }),
  }));
}

/**
 * One table of the runs into a DuckDB table, then to Parquet partitioned by pipeline and variant.
 * Returns the rows written.
 */
async function exportTable(
  c: import('@duckdb/node-api').DuckDBConnection,
  table: string,
  toExport: readonly { store: { db: Database.Database }; run: RunRow }[],
  labelKeys: readonly string[],
  dir: string,
  tag: string,
  stopped: AbortSignal,
): Promise<number> {
  // The columns as the first store declares them (every schema has them; runs gains labels in 3).
  const declared = (db: Database.Database) =>
    (db.prepare(`SELECT name, type FROM pragma_table_info('${table}')`).all() as { name: string; type: string }[]).filter((col) => col.name !== 'run_id' && col.name !== 'labels');
  const declaredCols = declared(toExport[0]!.store.db);
  const declaredNames = declaredCols.map((col) => col.name);
  const kinds = declaredCols.map((col) => kindOf(col.type));
  const extra = table === 'runs' ? ['labels'] : [];
  const ddl = [
    'run_uid VARCHAR',
    'run_id BIGINT',
    ...declaredCols.map((col, i) => `"${col.name}" ${kinds[i]}`),
    ...(table === 'runs' ? [] : ['pipeline VARCHAR', 'variant VARCHAR']),
    ...extra.map((x) => `"${x}" VARCHAR`),
    ...labelKeys.map((k) => `"${k}" VARCHAR`),
  ];
  stopped.throwIfAborted();
  await c.run(`CREATE OR REPLACE TABLE t (${ddl.join(', ')})`);
  // Appended a column vector of CHUNK rows at a time (DuckDB's vector size): the PlanetLab day's
  // export took 24 s so against 35 s a value at a time (most of the rest is reading SQLite).
  const { DuckDBDataChunk, BIGINT, DOUBLE, VARCHAR } = await import('@duckdb/node-api');
  const types = [VARCHAR, BIGINT, ...kinds.map((k) => (k === 'BIGINT' ? BIGINT : k === 'DOUBLE' ? DOUBLE : VARCHAR)), ...(table === 'runs' ? [VARCHAR] : [VARCHAR, VARCHAR]), ...labelKeys.map(() => VARCHAR)];
  const a = await c.createAppender('t');
  let cols: (bigint | number | string | null)[][] = types.map(() => []);
  // One chunk, refilled: the appender copies what it is given (a chunk per flush held native
  // memory the garbage collector did not see: 1.2 GB peak on the PlanetLab day).
  const chunk = DuckDBDataChunk.create(types, CHUNK);
  const flush = () => {
    if (cols[0]!.length === 0) return;
    chunk.rowCount = cols[0]!.length;
    chunk.setColumns(cols);
    a.appendDataChunk(chunk);
    cols = types.map(() => []);
  };
  let n = 0;
  let chunks = 0;
  for (const { store, run } of toExport) {
    const stmt = store.db.prepare(`SELECT ${declaredNames.map((x) => `"${x}"`).join(', ')} FROM ${table} WHERE run_id = ? ORDER BY rowid`).raw(true).safeIntegers(true);
    const tail = [...(table === 'runs' ? [JSON.stringify(run.labels)] : [run.pipeline, run.variant]), ...labelKeys.map((k) => run.labels[k] ?? null)];
    for (const row of stmt.iterate(run.run_id) as Iterable<unknown[]>) {
      cols[0]!.push(run.uid);
      cols[1]!.push(run.run_id);
      for (let i = 0; i < kinds.length; i++) {
        const v = row[i];
        cols[i + 2]!.push(v === null || v === undefined ? null : kinds[i] === 'BIGINT' ? (typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v)))) : kinds[i] === 'DOUBLE' ? Number(v) : String(v));
      }
      for (let j = 0; j < tail.length; j++) cols[kinds.length + 2 + j]!.push(tail[j]!);
      if (cols[0]!.length === CHUNK) {
        flush();
        // Now and then back to the event loop, so that Ctrl-C is heard within a fraction of a second.
        if (++chunks % 32 === 0) {
          await new Promise((r) => setImmediate(r));
          stopped.throwIfAborted();
        }
      }
      n++;
    }
  }
  flush();
  a.flushSync();
  a.closeSync();
  if (n === 0) {
    // No rows: one empty file with the table's columns, so the table's folder exists and every
    // reader finds its schema (a glob over no file is an error in DuckDB and Trino).
    const { pipeline, variant } = toExport[0]!.run;
    const part = path.join(dir, `pipeline=${hiveEscape(pipeline)}`, `variant=${hiveEscape(variant)}`);
    fs.mkdirSync(part, { recursive: true });
    stopped.throwIfAborted();
    await c.run(`COPY (SELECT * EXCLUDE (pipeline, variant) FROM t) TO ${lit(path.join(part, `part-${tag}-0.parquet`))} (FORMAT parquet, COMPRESSION snappy)`);
    return 0;
  }
  fs.mkdirSync(dir, { recursive: true });
  stopped.throwIfAborted();
  await c.run(`COPY t TO ${lit(dir)} (FORMAT parquet, PARTITION_BY (pipeline, variant), FILENAME_PATTERN ${lit(`part-${tag}-{i}`)}, COMPRESSION snappy)`);
  return n;
}
