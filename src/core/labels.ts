/**
 * A run's labels: `--label KEY=VALUE` pairs (`host=node17`, `rack=b4`), stored as a JSON object in
 * `runs.labels` and written by `export` as columns of every table (DESIGN §3, §7). A key is a
 * column name in every engine that reads the dataset (DuckDB, Spark, Trino): lower-case letters,
 * digits and `_`, not starting with a digit, and not a name the tables already use.
 */
import { WattraceError, quoteValue } from './errors.js';

export type Labels = Readonly<Record<string, string>>;

/** Lower case: Hive, Spark and Trino fold column names to lower case, so `Host` and `host` would collide. */
const KEY = /^[a-z_][a-z0-9_]{0,62}$/;

/** Column names of the exported tables (and their partition keys): a label may not take one. */
export const RESERVED_LABELS: ReadonlySet<string> = new Set(
  [
    'run_id', 'run_uid', 'pipeline', 'variant', 'params', 'inputs', 'labels', 'started_at', 'finished_at', 'tool_version', 'base_ts_ns',
    't0_ns', 't1_ns', 'duration_ns', 'interval_ns', 't_ns', 'consumer', 'container', 'via', 'device', 'kind', 'joules', 'watts',
    'vm', 'event', 'advance', 'share', 'limit_watts', 'work_s', 'backlog_s', 'throttle', 'budget', 'requests', 'bytes', 'backlog',
    'preempted_ns', 'name', 'value', 'source_db',
  ].map((k) => k.toLowerCase()),
);

/**
 * Words that Trino, Spark SQL or DuckDB reserve (a column so named must be quoted in every query,
 * and `date '…'` even parses as a literal): refused as keys.
 */
const SQL_RESERVED: ReadonlySet<string> = new Set(
  (
    'all alter and any array as asc between both by case cast check collate column constraint create cross cube current_date ' +
    'current_time current_timestamp current_user date deallocate default delete describe distinct drop else end escape except ' +
    'execute exists extract false fetch filter for foreign from full grant group grouping having in inner insert intersect ' +
    'interval into is join lateral leading left like limit localtime localtimestamp natural normalize not null of offset on ' +
    'only or order outer over partition prepare primary range recursive references right rollup row rows select session_user ' +
    'some table then time timestamp to trailing true uescape union unique unnest user using values when where window with'
  ).split(' '),
);

/** `--label` arguments to labels; a malformed, reserved or repeated key is a usage error naming it. */
export function parseLabels(args: readonly string[]): Labels {
  const out: Record<string, string> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq < 0) throw new WattraceError('E_USAGE', `--label '${quoteValue(a)}': expected KEY=VALUE (e.g. --label host=node17)`);
    const key = a.slice(0, eq);
    const value = a.slice(eq + 1);
    if (!KEY.test(key)) throw new WattraceError('E_USAGE', `--label '${quoteValue(a)}': the key '${quoteValue(key)}' is not a column name (lower-case letters, digits and _, not starting with a digit, at most 63; query engines fold names to lower case)`);
    if (SQL_RESERVED.has(key)) throw new WattraceError('E_USAGE', `--label '${quoteValue(a)}': '${key}' is a reserved word in SQL (Trino, Spark, DuckDB); choose another key (e.g. run_${key})`);
    if (RESERVED_LABELS.has(key)) throw new WattraceError('E_USAGE', `--label '${quoteValue(a)}': '${key}' is a column of the stored tables; choose another key`);
    if (key in out) throw new WattraceError('E_USAGE', `--label ${key} is given twice ('${quoteValue(out[key]!)}' and '${quoteValue(value)}'); give each key once`);
    out[key] = value;
  }
  return out;
}
