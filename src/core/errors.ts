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
    super(message);
    this.name = 'WattraceError';
  }

  /** `file:line:column (name): message`, the shape compilers use, so editors can jump to it. */
  format(): string {
    const { file, line, column, columnName, path } = this.where;
    let at = file ?? '';
    if (line !== undefined) at += `:${line}`;
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
