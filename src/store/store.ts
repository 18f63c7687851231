/**
 * The SQLite store (README.md, Store). A run is one transaction: the runs row, its energy rows and
 * its metrics are all committed together or rolled back, leaving the database file byte for byte as
 * it was (a database that did not exist before a failed run is removed again).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { WattraceError } from '../core/errors.js';
import { SCHEMA_DIR } from '../core/json.js';
import type { ContainerRow, CounterRow, CpuPolicyRow, DiskPolicyRow, EnergyRow, RunSink } from '../core/stage.js';

export const SCHEMA_VERSION = 3;

/**
 * What takes a database from version v − 1 to v, before schemas/store.sql (idempotent) adds what
 * is new. Run in the writing run's transaction: a run that fails leaves the database at its old
 * version, unchanged.
 */
const MIGRATIONS: Record<number, string> = {
  // 2: energy and virtual_counters indexed by (run, time) instead of by key (store.sql).
  2: 'DROP INDEX IF EXISTS energy_by_key; DROP INDEX IF EXISTS virtual_counters_by_vm;',
  // 3: runs.labels, the run's --label pairs ('{}' for the runs before).
  3: "ALTER TABLE runs ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';",
};
/** Rows per multi-row INSERT (measured: ~1.4× the rows/s of single-row inserts; README, Benchmark). */
const INSERT_BATCH = 64;

type Value = number | string | null;

/** How long a run waits for another writer's lock on its store (SQLite's busy_timeout elsewhere). */
const LOCK_WAIT_MS = 600_000;

/**
 * Rows of one table inserted INSERT_BATCH at a time through a prepared multi-row INSERT, the rest
 * one by one at flush. The values wait in one reused array: nothing is allocated per row.
 */
class BatchedInsert {
  private readonly many: Database.Statement;
  private readonly one: Database.Statement;
  private readonly values: Value[];
  private n = 0;

  constructor(
    db: DB,
    table: string,
    private readonly columns: readonly string[],
  ) {
    const sql = `INSERT INTO ${table} (${columns.join(', ')}) VALUES `;
    const row = `(${columns.map(() => '?').join(', ')})`;
    this.one = db.prepare(sql + row);
    this.many = db.prepare(sql + Array.from({ length: INSERT_BATCH }, () => row).join(', '));
    this.values = new Array<Value>(INSERT_BATCH * columns.length).fill(null);
  }

  /** Adds a row: exactly one value per column, in order. */
  add(...row: Value[]): void {
    const w = this.columns.length;
    const v = this.values;
    const o = this.n * w;
    for (let i = 0; i < w; i++) v[o + i] = row[i]!;
    if (++this.n === INSERT_BATCH) {
      this.many.run(v);
      this.n = 0;
    }
  }

  flush(): void {
    const w = this.columns.length;
    for (let r = 0; r < this.n; r++) this.one.run(this.values.slice(r * w, (r + 1) * w));
    this.n = 0;
  }
}

export type DB = Database.Database;

function storeError(file: string, e: unknown): WattraceError {
  return new WattraceError('E_STORE', `cannot use the database: ${(e as Error).message}`, { file });
}

/**
 * A run cut short by a crash or a kill leaves a "hot" rollback journal beside the database: the
 * database alone is then inconsistent until SQLite rolls the journal back, which takes write
 * access. A reader recovers it first (opening once read-write: SQLite rolls back on first read);
 * without write access it says what to do.
 */
function recoverHotJournal(file: string): void {
  if (!fs.existsSync(`${file}-journal`)) return;
  let db: DB;
  try {
    db = new Database(file, { fileMustExist: true });
  } catch (e) {
    throw new WattraceError('E_STORE', `the database has an unfinished transaction (${path.basename(file)}-journal) and cannot be recovered here: ${(e as Error).message}; open it once with write access`, { file });
  }
  try {
    db.pragma('busy_timeout = 10000');
    db.prepare('SELECT count(*) FROM sqlite_master').get();
  } finally {
    db.close();
  }
}

/** Opens an existing database read-only for queries (recovering an interrupted run's journal first). */
export function openForReading(file: string): DB {
  if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'database does not exist (run `wattrace replay` first)', { file });
  if (fs.statSync(file).isDirectory()) throw new WattraceError('E_FILE', 'is a folder, not a database', { file });
  recoverHotJournal(file);
  let db: DB;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    const v = db.pragma('user_version', { simple: true }) as number;
    if (v === 0) throw new Error('it is not a wattrace store (no schema version)');
    if (v > SCHEMA_VERSION) throw new Error(`it was written by a newer wattrace (schema ${v}, this one knows ${SCHEMA_VERSION})`);
  } catch (e) {
    throw storeError(file, e);
  }
  return db;
}

export interface RunMeta {
  pipeline: string;
  variant: string;
  params: unknown;
  toolVersion: string;
  /** `--label KEY=VALUE` pairs. */
  labels?: Readonly<Record<string, string>>;
}

export interface RunFinish {
  inputs: unknown;
  baseTsNs: string;
  t0Ns: number;
  t1Ns: number;
  intervalNs: number;
}

/** A run being written, wherever its rows are inserted (RunWriter, or threaded.ts's writer thread). */
export interface RunHandle extends RunSink {
  /** The run's id in its database. */
  readonly runId: number;
  /** Writes the remaining run fields and the metrics, and commits. */
  commit(f: RunFinish): void;
  /** Rolls the run back; the database is as it was before the run began. Does nothing once committed. */
  abort(): void;
}

/**
 * A write transaction on a store, committed whole or rolled back: a database it created is removed
 * again when it is rolled back. RunWriter (a run) and RunImport (compare's copy) are two.
 */
abstract class StoreTransaction {
  protected closed = false;

  constructor(
    protected readonly db: DB,
    protected readonly file: string,
    private readonly created: boolean,
  ) {}

  /** Does the transaction's last writes (`last`) and commits; on any failure rolls back. */
  protected finish(last: () => void): void {
    try {
      last();
      this.db.exec('COMMIT');
    } catch (e) {
      this.abort();
      throw storeError(this.file, e);
    }
    this.closed = true;
    this.db.close();
  }

  /** Rolls back; the database is as it was before the transaction (removed if it made it). */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
    } finally {
      this.db.close();
      if (this.created) removeDatabase(this.file);
    }
  }
}

/**
 * A run being written: a RunSink whose rows go into an open transaction. `commit` makes the run
 * visible; `abort` rolls everything back.
 */
export class RunWriter extends StoreTransaction implements RunHandle {
  readonly runId: number;
  private readonly insEnergy: BatchedInsert;
  private readonly insCounter: BatchedInsert;
  private readonly insDiskPolicy: BatchedInsert;
  private readonly insCpuPolicy: BatchedInsert;
  private readonly insContainer: BatchedInsert;
  private readonly metrics = new Map<string, number>();

  private constructor(db: DB, file: string, createdFile: boolean, meta: RunMeta) {
    super(db, file, createdFile);
    db.exec('BEGIN IMMEDIATE');
    try {
      migrate(db);
      const r = db
        .prepare('INSERT INTO runs (pipeline, variant, params, inputs, started_at, tool_version, labels) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(meta.pipeline, meta.variant, JSON.stringify(meta.params), '{}', new Date().toISOString(), meta.toolVersion, JSON.stringify(meta.labels ?? {}));
      this.runId = Number(r.lastInsertRowid);
      const cols = (s: string) => s.split(', ');
      this.insEnergy = new BatchedInsert(db, 'energy', cols('run_id, t0_ns, t1_ns, consumer, container, via, device, kind, joules'));
      this.insCounter = new BatchedInsert(db, 'virtual_counters', cols('run_id, t0_ns, t1_ns, vm, event, advance'));
      this.insDiskPolicy = new BatchedInsert(db, 'disk_policy', cols('run_id, t_ns, vm, throttle, budget, limit_watts, watts, requests, bytes, backlog'));
      this.insCpuPolicy = new BatchedInsert(db, 'cpu_policy', cols('run_id, t_ns, vm, share, limit_watts, watts, work_s, backlog_s'));
      this.insContainer = new BatchedInsert(db, 'containers', cols('run_id, t_ns, vm, container, limit_watts, watts, work_s, preempted_ns'));
    } catch (e) {
      this.abort();
      throw storeError(file, e);
    }
  }

  /** Opens (creating if needed) the database at `file` and starts a run in a transaction. */
  static begin(file: string, meta: RunMeta): RunWriter {
    const existed = fs.existsSync(file);
    if (!existed) {
      const dir = path.dirname(path.resolve(file));
      if (!fs.existsSync(dir)) throw new WattraceError('E_FILE', `cannot create the database: folder ${dir} does not exist`, { file });
    } else if (fs.statSync(file).isDirectory()) {
      throw new WattraceError('E_FILE', 'is a folder, not a database', { file });
    }
    let db: DB;
    try {
      db = new Database(file);
      db.pragma('busy_timeout = 600000');
      // Energy rows are appended in a few key ranges: 4 MB of page cache is plenty, and it keeps
      // the replay's memory flat (better-sqlite3's default is 16 MB).
      db.pragma('cache_size = -4000');
      db.pragma('foreign_keys = ON');
      const v = db.pragma('user_version', { simple: true }) as number;
      if (v > SCHEMA_VERSION) throw new Error(`it was written by a newer wattrace (schema ${v}, this one knows ${SCHEMA_VERSION})`);
      if (v === 0 && existed && (db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n > 0) {
        throw new Error('it is not a wattrace store (it has tables but no wattrace schema version)');
      }
    } catch (e) {
      if (!existed) removeDatabase(file);
      throw storeError(file, e);
    }
    return new RunWriter(db, file, !existed, meta);
  }

  energy(r: EnergyRow): void {
    this.insEnergy.add(this.runId, Math.round(r.t0), Math.round(r.t1), r.consumer, r.container, r.via, r.device, r.kind, r.joules);
  }

  counter(r: CounterRow): void {
    this.insCounter.add(this.runId, Math.round(r.t0), Math.round(r.t1), r.vm, r.event, r.advance);
  }

  diskPolicy(r: DiskPolicyRow): void {
    this.insDiskPolicy.add(this.runId, Math.round(r.t), r.vm, r.throttle, r.budget, r.limitWatts, r.watts, r.requests, r.bytes, r.backlog);
  }

  cpuPolicy(r: CpuPolicyRow): void {
    this.insCpuPolicy.add(this.runId, Math.round(r.t), r.vm, r.share, r.limitWatts, r.watts, r.workS, r.backlogS);
  }

  containerRow(r: ContainerRow): void {
    this.insContainer.add(this.runId, Math.round(r.t), r.vm, r.container, r.limitWatts, r.watts, r.workS, Math.round(r.preemptedNs));
  }

  metric(name: string, value: number): void {
    this.metrics.set(name, value);
  }

  /** Writes the remaining run fields and the metrics, and commits. */
  commit(f: RunFinish): void {
    this.finish(() => {
      for (const t of [this.insEnergy, this.insCounter, this.insDiskPolicy, this.insCpuPolicy, this.insContainer]) t.flush();
      this.db
        .prepare('UPDATE runs SET inputs = ?, finished_at = ?, base_ts_ns = ?, t0_ns = ?, t1_ns = ?, duration_ns = ?, interval_ns = ? WHERE run_id = ?')
        .run(JSON.stringify(f.inputs), new Date().toISOString(), f.baseTsNs, Math.round(f.t0Ns), Math.round(f.t1Ns), Math.round(f.t1Ns - f.t0Ns), Math.round(f.intervalNs), this.runId);
      const ins = this.db.prepare('INSERT INTO metrics (run_id, name, value) VALUES (?, ?, ?)');
      for (const [k, v] of [...this.metrics].sort(([a], [b]) => (a < b ? -1 : 1))) ins.run(this.runId, k, v);
    });
  }
}

function removeDatabase(file: string): void {
  for (const f of [file, `${file}-journal`, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
}

/** Creates or updates the schema (schemas/store.sql is idempotent). */
export function migrate(db: DB): void {
  const from = db.pragma('user_version', { simple: true }) as number;
  if (from > 0) for (let v = from + 1; v <= SCHEMA_VERSION; v++) if (MIGRATIONS[v]) db.exec(MIGRATIONS[v]!);
  db.exec(fs.readFileSync(path.join(SCHEMA_DIR, 'store.sql'), 'utf8'));
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}

export function latestRunId(db: DB): number | null {
  const r = db.prepare('SELECT max(run_id) AS id FROM runs WHERE finished_at IS NOT NULL').get() as { id: number | null };
  return r.id;
}

/** The tables that hold a run's rows, with their columns after run_id. */
const RUN_TABLES: Record<string, string> = {
  energy: 't0_ns, t1_ns, consumer, container, via, device, kind, joules',
  metrics: 'name, value',
  virtual_counters: 't0_ns, t1_ns, vm, event, advance',
  cpu_policy: 't_ns, vm, share, limit_watts, watts, work_s, backlog_s',
  disk_policy: 't_ns, vm, throttle, budget, limit_watts, watts, requests, bytes, backlog',
  containers: 't_ns, vm, container, limit_watts, watts, work_s, preempted_ns',
};

/**
 * Copies finished runs from other databases (written by parallel replays) into `file`, in one
 * transaction, in the order given; returns their new run ids. The sources are left as they were.
 */
/**
 * Checks that `file` can take runs, as RunWriter.begin does (its folder exists; if it exists, it
 * is a wattrace store of a schema this version knows), without writing anything.
 */
export function checkStore(file: string): void {
  if (!fs.existsSync(file)) {
    const dir = path.dirname(path.resolve(file));
    if (!fs.existsSync(dir)) throw new WattraceError('E_FILE', `cannot create the database: folder ${dir} does not exist`, { file });
    return;
  }
  // As openForReading says it (SQLite's own words differ by how the folder is opened).
  if (fs.statSync(file).isDirectory()) throw new WattraceError('E_FILE', 'is a folder, not a database', { file });
  let db: DB | null = null;
  try {
    db = new Database(file, { readonly: true });
    const v = db.pragma('user_version', { simple: true }) as number;
    if (v > SCHEMA_VERSION) throw new Error(`it was written by a newer wattrace (schema ${v}, this one knows ${SCHEMA_VERSION})`);
    if (v === 0 && (db.prepare('SELECT count(*) AS n FROM sqlite_master').get() as { n: number }).n > 0) {
      throw new Error('it is not a wattrace store (it has tables but no wattrace schema version)');
    }
  } catch (e) {
    throw storeError(file, e);
  } finally {
    db?.close();
  }
}

/**
 * Copies finished runs of other stores (compare's scratch databases) into `file` as new runs, in
 * one transaction: `copy` returns their new run ids, `commit` stores them, `abort` (at any point,
 * also from a signal handler while `copy` waits) rolls everything back and removes a database the
 * import created. `copy` lets the event loop run every 50 ms, so Ctrl-C is seen during a long copy.
 * The sources are read through connections of their own (SQLite attaches at most 10 databases)
 * and left as they were.
 */
export class RunImport extends StoreTransaction {
  /** Connects to `file` (creating it if needed); `begin` opens the transaction. */
  constructor(file: string) {
    checkStore(file);
    // Asked before the connection creates the file.
    const created = !fs.existsSync(file);
    super(new Database(file), file, created);
  }

  /**
   * Opens the import's transaction. A store another run is writing is waited for (up to
   * LOCK_WAIT_MS, as a replay waits) between turns of the event loop, so Ctrl-C still ends the
   * wait (and `abort` removes a database the import created); SQLite's own busy wait would hold
   * the thread.
   */
  async begin(): Promise<void> {
    try {
      this.db.pragma('busy_timeout = 0');
      const deadline = Date.now() + LOCK_WAIT_MS;
      for (;;) {
        try {
          this.db.exec('BEGIN IMMEDIATE');
          break;
        } catch (e) {
          if ((e as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw e;
          await new Promise((resolve) => setTimeout(resolve, 50));
          if (this.closed) throw new Error('the import was aborted');
        }
      }
      this.db.pragma('busy_timeout = 600000');
      migrate(this.db);
    } catch (e) {
      this.abort();
      throw storeError(this.file, e);
    }
  }

  async copy(sources: readonly { file: string; runId: number }[]): Promise<number[]> {
    try {
      const cols = ['pipeline', 'variant', 'params', 'inputs', 'started_at', 'finished_at', 'tool_version', 'base_ts_ns', 't0_ns', 't1_ns', 'duration_ns', 'interval_ns', 'labels'];
      const insRun = this.db.prepare(`INSERT INTO runs (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
      const ids: number[] = [];
      let turn = Date.now();
      for (const src of sources) {
        const from = new Database(src.file, { readonly: true });
        try {
          const run = from.prepare(`SELECT ${cols.join(', ')} FROM runs WHERE run_id = ? AND finished_at IS NOT NULL`).raw().get(src.runId) as unknown[] | undefined;
          if (!run) throw new Error(`run ${src.runId} of ${src.file} is not a finished run`);
          const id = Number(insRun.run(...run).lastInsertRowid);
          for (const [t, c] of Object.entries(RUN_TABLES)) {
            const n = c.split(',').length;
            const ins = this.db.prepare(`INSERT INTO ${t} (run_id, ${c}) VALUES (?, ${Array.from({ length: n }, () => '?').join(', ')})`);
            let k = 0;
            for (const row of from.prepare(`SELECT ${c} FROM ${t} WHERE run_id = ?`).raw().iterate(src.runId) as Iterable<unknown[]>) {
              ins.run(id, ...row);
              if ((++k & 4095) === 0 && Date.now() - turn > 50) {
                await new Promise((resolve) => setImmediate(resolve));
                if (this.closed) throw new Error('the import was aborted');
                turn = Date.now();
              }
            }
          }
          ids.push(id);
        } finally {
          from.close();
        }
      }
      return ids;
    } catch (e) {
      this.abort();
      throw storeError(this.file, e);
    }
  }

  /** Stores the copied runs. */
  commit(): void {
    this.finish(() => undefined);
  }
}
