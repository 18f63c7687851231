/**
 * One error type for everything a user can fix. It says where (file, line, column or JSON path)
 * and what was expected; the CLI prints `format()` without a stack and exits with `exitCode`.
 */

/** Exit statuses of the CLI (see STYLE.md): bad input, broken expectation, internal bug. */
export const EXIT_BAD_INPUT = 2;
export const EXIT_EXPECTATION = 1;
export const EXIT_INTERNAL = 70;

export type ErrorCode =
  | 'E_FILE' // a file is missing or unreadable
  | 'E_JSON' // a JSON file does not parse
  | 'E_SCHEMA' // a profile or pipeline breaks its JSON Schema
  | 'E_PROFILE' // a profile is well-formed but inconsistent (duplicate VM, service cycle, ...)
  | 'E_PIPELINE' // a pipeline is well-formed but unusable (unknown variant, missing trace, ...)
  | 'E_EMPTY' // a trace has no header or no rows
  | 'E_HEADER' // a trace header is wrong
  | 'E_FIELD' // a field does not parse or is out of range
  | 'E_VM' // a trace names a VM (or container) the profile does not know
  | 'E_ORDER' // time goes backwards
  | 'E_COUNTER' // a counter goes backwards beyond any plausible wrap
  | 'E_STORE' // the database cannot be used
  | 'E_EXPECT' // a compared variant breaks an expectation of its pipeline (exit 1)
  | 'E_USAGE'; // the command line is wrong

export interface Where {
  readonly file?: string;
  readonly line?: number;
  /** 1-based row of a Parquet trace (it has rows, not lines). */
  readonly row?: number;
  /** 1-based column number in a CSV row. */
  readonly column?: number;
  /** Name of the CSV column, shown next to its number. */
  readonly columnName?: string;
  /** JSON pointer into a JSON file (`/cpu/tsc_hz`). */
  readonly path?: string;
}

export class WattraceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly where: Where = {},
    readonly exitCode: number = EXIT_BAD_INPUT,
  ) {
    super(sanitize(message));
    this.name = 'WattraceError';
  }

  /** `file:line:column (name): message`, the shape compilers use, so editors can jump to it. */
  format(): string {
    const { file, line, row, column, columnName, path } = this.where;
    let at = file ?? '';
    if (line !== undefined) at += `:${line}`;
    if (row !== undefined) at += ` row ${row}`;
    if (column !== undefined) at += `:${column}`;
    if (columnName !== undefined) at += ` (column ${columnName})`;
    if (path !== undefined) at += ` at ${path === '' ? '/' : path}`;
    return at === '' ? this.message : `${at}: ${this.message}`;
  }
}

/** A broken `expect` bound: not bad input, so exit 1. */
export class ExpectationError extends WattraceError {
  constructor(message: string) {
    super('E_PIPELINE', message, {}, EXIT_EXPECTATION);
  }
}

export function isWattraceError(e: unknown): e is WattraceError {
  return e instanceof WattraceError;
}

/**
 * A value from the input, fit to quote in one line of an error: control characters and
 * non-printable bytes escaped, cut to `max` characters (a 10 MB field is not echoed whole).
 */
export function quoteValue(v: string, max = 60): string {
  const cut = v.length > max ? v.slice(0, max) : v;
  const escaped = cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffd]/g, (c) => (c === '\ufffd' ? '\\ufffd' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
  return v.length > max ? `${escaped}… (${v.length.toLocaleString('en-US')} characters)` : escaped;
}

/**
 * An error message fit for one line of a terminal, whatever the input put in it: values quoted in
 * it ('…') and any other run of 80 or more characters without a space are cut and escaped.
 */
function sanitize(message: string): string {
  return message
    .replace(/'([^'\n]*)'/g, (_, inner: string) => `'${quoteValue(inner)}'`)
    .replace(/[^\s']{80,}/g, (run) => quoteValue(run, 60))
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
