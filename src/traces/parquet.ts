/**
 * Traces kept as Parquet (`"traces": { "cswitch": "x.parquet" }`), for teams whose traces live in a
 * data lake. A Parquet trace has the columns of its CSV form (docs/formats.md), in any order the
 * CSV allows, and is checked by the same decoder: before a replay DuckDB streams it into a CSV in a
 * scratch folder (integers printed exactly, INT64 and UINT64 alike), which the replay reads as any
 * other trace; an error found there names the Parquet file and the row (1-based, the CSV's line
 * − 1) and the column. The run's inputs record the Parquet file's path, size and sha256.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WattraceError, quoteValue } from '../core/errors.js';
import { readHead, sha256File } from '../core/files.js';

const MAGIC = Buffer.from('PAR1');

/** Whether a file is Parquet (its first four bytes are PAR1). */
export function isParquet(file: string): boolean {
  try {
    return readHead(file, 4).equals(MAGIC);
  } catch {
    return false;
  }
}

/** A Parquet trace staged as CSV: where each went, and the Parquet file's own identity. */
export interface StagedTrace {
  parquet: string;
  csv: string;
  bytes: number;
  sha256: string;
}

export interface Staged {
  /** The path to read for each trace path given (a Parquet one mapped to its CSV). */
  pathOf(file: string): string;
  traces: readonly StagedTrace[];
  /** An error found in a staged CSV, told of the Parquet file and its row. */
  relocate(e: unknown): unknown;
  cleanup(): void;
}

/**
 * A string with a comma or a line break has no CSV form here (wattrace's CSV is unquoted): refused
 * naming its row and column, before it could split a row in two.
 */
async function refuseUnwritable(c: import('@duckdb/node-api').DuckDBConnection, file: string, q: (s: string) => string): Promise<void> {
  const described = (await c.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${q(file)})`)).getRowObjectsJS() as { column_name: string; column_type: string }[];
  const text = described.filter((d) => d.column_type === 'VARCHAR').map((d) => d.column_name);
  if (text.length === 0) return;
  const id = (n: string) => `"${n.replace(/"/g, '""')}"`;
  const bad = text.map((n) => `SELECT file_row_number + 1 AS r, ${q(n)} AS col, ${id(n)} AS v FROM read_parquet(${q(file)}, file_row_number = true) WHERE regexp_matches(${id(n)}, '[,\r\n]')`);
  const hit = (await c.runAndReadAll(`SELECT * FROM (${bad.join(' UNION ALL ')}) ORDER BY r LIMIT 1`)).getRowObjectsJS()[0] as { r: bigint; col: string; v: string } | undefined;
  if (hit) {
    throw new WattraceError('E_FIELD', `'${quoteValue(hit.v)}' holds a comma or a line break, which no name in a trace may hold`, { file, row: Number(hit.r), columnName: hit.col });
  }
}

/** Converts the Parquet ones among `files` to CSV in a scratch folder; the others pass as they are. */
export async function stageParquetTraces(files: readonly string[]): Promise<Staged> {
  const parquet = [...new Set(files.filter(isParquet))];
  const traces: StagedTrace[] = [];
  const identity: Staged = { pathOf: (f) => f, traces, relocate: (e) => e, cleanup: () => undefined };
  if (parquet.length === 0) return identity;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wattrace-parquet-'));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  // An interrupted replay exits without unwinding: the scratch CSVs go then too.
  process.once('exit', cleanup);
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const duck = await DuckDBInstance.create(':memory:', { threads: '2' });
  const c = await duck.connect();
  try {
    await c.run('SET preserve_insertion_order = true');
    for (const [i, file] of parquet.entries()) {
      const csv = path.join(dir, `${i}-${path.basename(file).replace(/\.parquet$/i, '')}.csv`);
      const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
      try {
        // Row order as stored (DuckDB keeps it for a plain scan); no quoting, as wattrace's CSV has none.
        await refuseUnwritable(c, file, q);
        await c.run(`COPY (SELECT * FROM read_parquet(${q(file)})) TO ${q(csv)} (FORMAT csv, HEADER true, DELIMITER ',', QUOTE '', ESCAPE '', NULLSTR '')`);
      } catch (e) {
        if (e instanceof WattraceError) throw e;
        const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
        throw new WattraceError('E_FIELD', `a Parquet trace that cannot be read: ${msg}`, { file });
      }
      traces.push({ parquet: file, csv, bytes: fs.statSync(file).size, sha256: sha256File(file) });
    }
  } catch (e) {
    cleanup();
    throw e;
  } finally {
    c.closeSync();
    duck.closeSync();
  }
  const byPath = new Map(traces.map((t) => [t.parquet, t]));
  const byCsv = new Map(traces.map((t) => [t.csv, t]));
  return {
    pathOf: (f) => byPath.get(f)?.csv ?? f,
    traces,
    relocate: (e) => {
      if (!(e instanceof WattraceError)) return e;
      const t = e.where.file !== undefined ? byCsv.get(e.where.file) : undefined;
      let message = e.message;
      for (const s of traces) message = message.split(s.csv).join(s.parquet);
      if (!t && message === e.message) return e;
      const { line, column: _column, ...rest } = e.where;
      const where = t ? { ...rest, file: t.parquet, ...(line !== undefined && line > 1 ? { row: line - 1 } : {}) } : e.where;
      return new WattraceError(e.code, message, where, e.exitCode);
    },
    cleanup: () => {
      process.removeListener('exit', cleanup);
      cleanup();
    },
  };
}
