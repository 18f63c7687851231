/**
 * The push core shared by all trace readers: header checks, line counting, field errors, and
 * batch hand-off. A decoder sees one line at a time as byte ranges (scan.ts: Fields) and has no
 * I/O, so the streaming reader (a file) and the in-memory adapter (a string) feed the same code.
 */
import { WattraceError, type ErrorCode } from '../core/errors.js';
import type { Batch } from '../core/events.js';
import type { Machine } from '../core/machine.js';
import { OK, PARSED, describeStatus, diffExact, maxOfBits } from './exact.js';
import { ByteNames, parseUintAt, type Fields, type LineSink } from './scan.js';

/** The time origin of a run: the exact first timestamp, as hi · 1e9 + lo. */
export interface TimeBase {
  readonly hi: number;
  readonly lo: number;
}

export interface ColumnSpec {
  /** Columns that must be present (fixed names). */
  readonly required: readonly string[];
  /** Columns that may be present. */
  readonly optional?: readonly string[];
  /** Event columns: must match the profile's events exactly. */
  readonly events?: readonly string[];
}

export abstract class Decoder<B extends Batch> implements LineSink {
  /** Current 1-based line: the header is line 1. */
  line = 0;
  rows = 0;
  /** The CPUs the trace names, for a trace of CPU rows (cswitch); none for the others. */
  cpus(): number[] {
    return [];
  }
  protected cols = new Map<string, number>();
  protected nCols = 0;
  /** The batch being filled; created once the header is known (subclasses are set up by then). */
  protected batch!: B;
  /** Batches handed back by the consumer, reused so the record path allocates nothing. */
  private readonly free: B[] = [];
  private sink: ((b: B) => void) | null = null;

  constructor(
    readonly file: string,
    protected readonly base: TimeBase,
    private readonly spec: ColumnSpec,
    protected readonly traceName: string,
  ) {}

  protected abstract newBatch(): B;
  /** Decodes the line at `this.line`; may append to `this.batch`. */
  protected abstract decode(fields: Fields): void;

  /** Where full batches go. A batch handed over is never written again. */
  onBatch(sink: (b: B) => void): this {
    this.sink = sink;
    return this;
  }

  /** A batch was handed over since this was last cleared (the reader stops scanning then). */
  emitted = false;

  /** Feeds one line (the first is the header). */
  push(fields: Fields): void {
    this.line++;
    if (this.line === 1) {
      this.header(fields.texts());
      fields.reserve(this.nCols + 1);
      return;
    }
    if (fields.n !== this.nCols) {
      if (fields.n === 1 && fields.isEmpty(0)) this.fail('E_FIELD', `empty line; expected ${this.nCols} comma-separated fields`);
      this.fail('E_FIELD', `expected ${this.nCols} fields as in the header, found ${fields.n}`);
    }
    this.rows++;
    this.decode(fields);
    if (this.batch.length === this.batch.capacity) this.flush();
  }

  /** Ends the input: hands over the last partial batch; an input without a header is an error. */
  finish(): void {
    if (this.line === 0) {
      throw new WattraceError('E_EMPTY', `${this.traceName} trace is empty; expected a header line (${this.expectedHeader()})`, { file: this.file, line: 1 });
    }
    this.flush();
  }

  protected flush(): void {
    if (this.batch.length === 0) return;
    const b = this.batch;
    this.batch = this.nextBatch();
    this.emitted = true;
    this.sink?.(b);
  }

  private nextBatch(): B {
    const b = this.free.pop();
    if (b === undefined) return this.newBatch();
    b.length = 0;
    return b;
  }

  /**
   * The consumer is done with `b` (no stage holds on to it): it may be filled again. Returns
   * false when enough batches are spare already and `b` is let go.
   */
  recycle(b: B): boolean {
    if (this.free.length >= 16) return false;
    this.free.push(b);
    return true;
  }

  private expectedHeader(): string {
    return [...this.spec.required, ...(this.spec.events ?? [])].join(',');
  }

  private header(fields: string[]): void {
    const { required, optional = [], events } = this.spec;
    const eventSet = new Set(events ?? []);
    const known = new Set([...required, ...optional]);
    const names = fields.map((f) => f.trim());
    const lacking = required.filter((r) => !names.includes(r));
    fields.forEach((raw, i) => {
      const name = raw.trim();
      const at = { file: this.file, line: 1, column: i + 1, columnName: name };
      if (name === '') throw new WattraceError('E_HEADER', `${this.traceName} header has an empty column name; expected ${this.expectedHeader()}`, at);
      if (this.cols.has(name)) {
        throw new WattraceError('E_HEADER', `${this.traceName} header names column '${name}' twice (first at column ${this.cols.get(name)! + 1})`, at);
      }
      if (!known.has(name) && !eventSet.has(name)) {
        if (events && lacking.length === 0) {
          throw new WattraceError(
            'E_HEADER',
            `unknown event column '${name}': the profile has no weight for it (its events: ${events.join(', ') || 'none'})`,
            at,
          );
        }
        const lacks = lacking.length ? ` (it lacks ${lacking.join(', ')})` : '';
        throw new WattraceError(
          'E_HEADER',
          `unknown column '${name}' in ${this.traceName} header${lacks}; expected ${this.expectedHeader()}${optional.length ? ` and optionally ${optional.join(', ')}` : ''}`,
          at,
        );
      }
      this.cols.set(name, i);
    });
    for (const r of [...required, ...(events ?? [])]) {
      if (!this.cols.has(r)) {
        const what = eventSet.has(r) ? `event column '${r}', which the profile gives a weight` : `column '${r}'`;
        throw new WattraceError('E_HEADER', `${this.traceName} header lacks ${what}; expected ${this.expectedHeader()}`, { file: this.file, line: 1 });
      }
    }
    this.nCols = fields.length;
    this.batch = this.nextBatch();
    this.onHeader();
  }

  /** Called once the header is known to be good. */
  protected onHeader(): void {}

  protected col(name: string): number {
    return this.cols.get(name) ?? -1;
  }

  protected columnName(index: number): string {
    for (const [k, v] of this.cols) if (v === index) return k;
    return `#${index + 1}`;
  }

  fail(code: ErrorCode, message: string, column?: number): never {
    throw new WattraceError(code, message, {
      file: this.file,
      line: this.line,
      ...(column !== undefined ? { column: column + 1, columnName: this.columnName(column) } : {}),
    });
  }

  /** Parses field `i` as an unsigned integer into PARSED, or fails naming the column. */
  protected uint(f: Fields, i: number): void {
    const v = f.num[i]!;
    if (v === v) {
      // Read while scanning (1–15 digits, exact): split as parseUint does.
      const hi = Math.floor(v / 1e9);
      PARSED.hi = hi;
      PARSED.lo = v - hi * 1e9;
      return;
    }
    const st = parseUintAt(f.buf, f.start[i]!, f.end[i]!);
    if (st !== OK) this.fail('E_FIELD', `${this.columnName(i)} ${describeStatus(st, f.text(i))}`, i);
  }

  private counterMaxHi = Infinity;
  private counterMaxLo = Infinity;
  private counterBits = 64;

  /** Sets the width of the event counters that `counter` checks. */
  protected counterRange(bits: number): void {
    this.counterBits = bits;
    [this.counterMaxHi, this.counterMaxLo] = maxOfBits(bits);
  }

  /** Parses event counter field `i` into PARSED; fails when it is above the counter's range. */
  protected counter(f: Fields, i: number): void {
    this.uint(f, i);
    if (PARSED.hi > this.counterMaxHi || (PARSED.hi === this.counterMaxHi && PARSED.lo > this.counterMaxLo)) {
      this.fail('E_FIELD', `${this.columnName(i)} is ${f.text(i)}, above the ${this.counterBits}-bit counter range of the profile (counter_bits)`, i);
    }
  }

  /** Field `i` as a timestamp relative to the run's base, in ns (exact while within ~104 days). */
  protected time(f: Fields, i: number): number {
    this.uint(f, i);
    const dh = PARSED.hi - this.base.hi;
    // The common case inline (|Δ| < 2^53 surely); diffExact handles the rest exactly.
    if (dh > -9e6 && dh < 9e6) return dh * 1e9 + (PARSED.lo - this.base.lo);
    return diffExact(PARSED.hi, PARSED.lo, this.base.hi, this.base.lo);
  }

  /** Field `i` as a small non-negative integer (a CPU number). */
  protected smallInt(f: Fields, i: number, max: number): number {
    this.uint(f, i);
    if (PARSED.hi !== 0 || PARSED.lo > max) this.fail('E_FIELD', `${this.columnName(i)} is ${f.text(i)}; expected at most ${max}`, i);
    return PARSED.lo;
  }

  private vmNames: ByteNames | null = null;

  /**
   * Field `i` as the consumer index of a profile VM; `idle` (the idle processor) only where
   * `allowIdle`. Fails naming the VMs the profile has.
   */
  protected vmIndex(f: Fields, i: number, machine: Machine, allowIdle: boolean): number {
    const names = (this.vmNames ??= new ByteNames(machine.consumerIndex));
    const vm = names.get(f.buf, f.start[i]!, f.end[i]!);
    if (vm < 0 || (!allowIdle && vm >= machine.vmCount)) {
      const idle = allowIdle ? " (and 'idle', the idle processor)" : '';
      this.fail('E_VM', `unknown VM '${f.text(i)}': the profile's VMs are ${machine.consumers.slice(0, machine.vmCount).join(', ')}${idle}`, i);
    }
    return vm;
  }

  /** Field `i` as a finite non-negative decimal number (watts). */
  protected nonNegativeNumber(f: Fields, i: number): number {
    const s = f.text(i);
    const v = s.trim() === '' ? NaN : Number(s);
    if (!Number.isFinite(v)) this.fail('E_FIELD', `${this.columnName(i)} is not a number ('${s}')`, i);
    if (v < 0) this.fail('E_FIELD', `${this.columnName(i)} is negative ('${s}'); expected a value ≥ 0`, i);
    return v;
  }
}

/** Interns names into a shared table so batches carry small integers. */
export class NameTable {
  readonly names: string[] = [];
  private readonly index = new Map<string, number>();

  private readonly bytes = new ByteNames();

  /** The index of the name in field `i` (a string is made once per new name). */
  internField(f: Fields, i: number): number {
    return this.bytes.intern(f.buf, f.start[i]!, f.end[i]!, () => this.intern(f.text(i)));
  }

  intern(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.index.set(name, i);
    }
    return i;
  }
}
