/**
 * The byte-level reader of wattrace's own trace formats (docs/formats.md: cswitch, disk, guest,
 * measured). Those are plain comma-separated lines of numbers and identifiers, never quoted, so
 * a line is found with memchr (Buffer.indexOf) and its fields are byte ranges of the chunk read:
 * no string is made per field and numbers are parsed straight from the bytes (parseUintAt). A
 * field becomes a string only when it is a name seen for the first time or an error quotes it.
 *
 * Lines end in "\n" or "\r\n"; a byte-order mark at the start is skipped; the last line needs no
 * newline. A line split across two chunks is joined in a carry buffer (only that line is copied).
 * csv-parse stays where its flexibility pays: the importers' foreign CSV dialects.
 */
import { WattraceError } from '../core/errors.js';
import { EMPTY, OK, PARSED, TOO_LARGE, parseUint } from './exact.js';

/** A line longer than this is no trace line (rows are under 1 KB): an error, not a growing buffer. */
export const MAX_LINE_BYTES = 64 << 20;

/**
 * The fields of one line as byte ranges [start[i], end[i]) of `buf`. Only the first `capacity`
 * fields are kept; `n` counts them all (a line with too many fields is reported, not read).
 */
export class Fields {
  buf: Buffer = Buffer.alloc(0);
  n = 0;
  /** The whole line: buf[lineStart, lineEnd), without its line end. */
  lineStart = 0;
  lineEnd = 0;
  start: Int32Array;
  end: Int32Array;
  /**
   * Field i's value when it is 1 to 15 decimal digits (exact in a double), read in the same pass
   * that finds the commas; NaN otherwise (longer, empty or not a number: parseUintAt decides).
   */
  num: Float64Array;

  constructor(public capacity = 64) {
    this.start = new Int32Array(capacity);
    this.end = new Int32Array(capacity);
    this.num = new Float64Array(capacity);
  }

  /** Keeps at least `capacity` fields of each line from now on. */
  reserve(capacity: number): void {
    if (capacity <= this.capacity) return;
    this.capacity = capacity;
    this.start = new Int32Array(capacity);
    this.end = new Int32Array(capacity);
    this.num = new Float64Array(capacity);
  }

  /** Field `i` as text (UTF-8). */
  text(i: number): string {
    return this.buf.toString('utf8', this.start[i]!, this.end[i]!);
  }

  /** Field `i` has no bytes. */
  isEmpty(i: number): boolean {
    return this.start[i] === this.end[i];
  }

  /** The first byte of field `i` when it is exactly one byte long, else −1. */
  singleByte(i: number): number {
    const s = this.start[i]!;
    return this.end[i]! - s === 1 ? this.buf[s]! : -1;
  }

  /** All fields as strings, however many (the header line). */
  texts(): string[] {
    return this.buf.toString('utf8', this.lineStart, this.lineEnd).split(',');
  }
}

/** Something that takes one line's fields at a time (a Decoder). */
export interface LineSink {
  push(fields: Fields): void;
}

const NL = 10;
const CR = 13;
const COMMA = 44;

/**
 * Splits chunks of bytes into lines and lines into fields, feeding `sink` one line at a time.
 * `scan` can stop early (when `stop()` says so after a line) and continue from where it stopped,
 * so a consumer takes batches as they fill without the scanner running ahead.
 */
export class LineScanner {
  readonly fields = new Fields();
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** The start of a line cut at a chunk's end, in parts (joined once its end comes). */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** 1-based number of the line last fed (for the line-length error). */
  private lines = 0;

  constructor(
    private readonly sink: LineSink,
    private readonly file: string,
  ) {}

  /** Bytes of the current chunk not scanned yet (a stopped scan). */
  get pending(): boolean {
    return this.pos < this.chunk.length;
  }

  /** Takes a new chunk; the previous one must be scanned through. */
  feed(chunk: Buffer): void {
    this.chunk = chunk;
    this.pos = 0;
  }

  /**
   * Scans lines of the current chunk until it is used up or `stop()` returns true after a line.
   * A partial last line waits in the carry buffer for the next chunk.
   */
  scan(stop: () => boolean): void {
    const c = this.chunk;
    let p = this.pos;
    if (this.carryBytes > 0 && p < c.length) {
      const nl = c.indexOf(NL, p);
      if (nl < 0) {
        this.keep(Buffer.from(c.subarray(p)));
        this.pos = c.length;
        return;
      }
      this.carry.push(c.subarray(p, nl));
      const line = Buffer.concat(this.carry);
      this.carry = [];
      this.carryBytes = 0;
      this.pos = nl + 1;
      this.line(line, 0, line.length);
      if (stop()) return;
      p = this.pos;
    }
    while (p < c.length) {
      const nl = c.indexOf(NL, p);
      if (nl < 0) {
        this.keep(Buffer.from(c.subarray(p)));
        p = c.length;
        break;
      }
      this.pos = nl + 1;
      this.line(c, p, nl);
      p = nl + 1;
      if (stop()) return;
    }
    this.pos = p;
  }

  /** The input has ended: a last line without a newline is fed now. */
  end(): void {
    if (this.carryBytes > 0) {
      const line = Buffer.concat(this.carry);
      this.carry = [];
      this.carryBytes = 0;
      this.line(line, 0, line.length);
    }
  }

  /** Keeps a copy of a line's start (the chunk it is in will be reused). */
  private keep(partial: Buffer): void {
    this.carryBytes += partial.length;
    if (this.carryBytes > MAX_LINE_BYTES) {
      throw new WattraceError('E_FIELD', `line ${this.lines + 1} is longer than ${MAX_LINE_BYTES >> 20} MiB without a newline: this is not a trace in a wattrace format (docs/formats.md)`, {
        file: this.file,
        line: this.lines + 1,
      });
    }
    this.carry.push(partial);
  }

  /** Splits buf[s, e) (a line without its "\n") at commas and feeds it. */
  private line(buf: Buffer, s: number, e: number): void {
    this.lines++;
    if (e > s && buf[e - 1] === CR) e--;
    // A UTF-8 byte-order mark before the first line (whole, however the chunks were cut).
    if (this.lines === 1 && e - s >= 3 && buf[s] === 0xef && buf[s + 1] === 0xbb && buf[s + 2] === 0xbf) s += 3;
    const f = this.fields;
    const start = f.start;
    const end = f.end;
    const num = f.num;
    const cap = f.capacity;
    f.buf = buf;
    f.lineStart = s;
    f.lineEnd = e;
    let n = 0;
    let from = s;
    // The value of the field so far; NaN once a byte is no digit.
    let v = 0;
    for (let i = s; i < e; i++) {
      const d = buf[i]! - 48;
      if (d >= 0 && d <= 9) v = v * 10 + d;
      else if (d === COMMA - 48) {
        if (n < cap) {
          start[n] = from;
          end[n] = i;
          num[n] = i - from > 0 && i - from <= 15 ? v : NaN;
        }
        n++;
        from = i + 1;
        v = 0;
      } else v = NaN;
    }
    if (n < cap) {
      start[n] = from;
      end[n] = e;
      num[n] = e - from > 0 && e - from <= 15 ? v : NaN;
    }
    f.n = n + 1;
    this.sink.push(f);
  }
}

const U64_MAX_HI = 18446744073;
const U64_MAX_LO = 709551615;

/**
 * Parses buf[s, e) as an unsigned decimal integer into PARSED.{hi,lo} (exact.ts: hi · 1e9 + lo).
 * Returns OK, or the same status parseUint gives for the field's text (the slow path classifies).
 */
export function parseUintAt(buf: Uint8Array, s: number, e: number): number {
  const n = e - s;
  if (n === 0) return EMPTY;
  if (n > 20) return parseUint(Buffer.from(buf.buffer, buf.byteOffset + s, n).toString('utf8'));
  const split = n > 9 ? e - 9 : s;
  let hi = 0;
  let lo = 0;
  let i = s;
  for (; i < split; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return parseUint(Buffer.from(buf.buffer, buf.byteOffset + s, n).toString('utf8'));
    hi = hi * 10 + d;
  }
  for (; i < e; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return parseUint(Buffer.from(buf.buffer, buf.byteOffset + s, n).toString('utf8'));
    lo = lo * 10 + d;
  }
  if (n === 20 && (hi > U64_MAX_HI || (hi === U64_MAX_HI && lo > U64_MAX_LO))) return TOO_LARGE;
  PARSED.hi = hi;
  PARSED.lo = lo;
  return OK;
}

/**
 * Names looked up by their bytes (the VM, container and disk columns), without making a string
 * per row: an open-addressing table over a 32-bit FNV-1a hash, each hit confirmed byte by byte.
 * `intern` adds names as they come (a string is made once per new name).
 */
export class ByteNames {
  private slots: Int32Array;
  private readonly keys: Buffer[] = [];
  private readonly values: number[] = [];

  constructor(entries: Iterable<readonly [string, number]> = []) {
    this.slots = new Int32Array(16).fill(-1);
    for (const [name, value] of entries) this.add(Buffer.from(name, 'utf8'), value);
  }

  get size(): number {
    return this.keys.length;
  }

  /** The value of the name at buf[s, e), or −1. */
  get(buf: Uint8Array, s: number, e: number): number {
    const mask = this.slots.length - 1;
    let h = hashOf(buf, s, e) & mask;
    for (;;) {
      const k = this.slots[h]!;
      if (k < 0) return -1;
      if (sameBytes(this.keys[k]!, buf, s, e)) return this.values[k]!;
      h = (h + 1) & mask;
    }
  }

  /** The value of the name at buf[s, e), adding it with `value` when new. */
  intern(buf: Buffer, s: number, e: number, value: () => number): number {
    const v = this.get(buf, s, e);
    if (v >= 0) return v;
    const nv = value();
    this.add(Buffer.from(buf.subarray(s, e)), nv);
    return nv;
  }

  private add(key: Buffer, value: number): void {
    if ((this.keys.length + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    const mask = this.slots.length - 1;
    let h = hashOf(key, 0, key.length) & mask;
    while (this.slots[h]! >= 0) h = (h + 1) & mask;
    this.slots[h] = this.keys.length;
    this.keys.push(key);
    this.values.push(value);
  }

  private rehash(size: number): void {
    this.slots = new Int32Array(size).fill(-1);
    const mask = size - 1;
    this.keys.forEach((key, k) => {
      let h = hashOf(key, 0, key.length) & mask;
      while (this.slots[h]! >= 0) h = (h + 1) & mask;
      this.slots[h] = k;
    });
  }
}

function hashOf(buf: Uint8Array, s: number, e: number): number {
  let h = 0x811c9dc5;
  for (let i = s; i < e; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

function sameBytes(key: Uint8Array, buf: Uint8Array, s: number, e: number): boolean {
  if (key.length !== e - s) return false;
  for (let i = 0; i < key.length; i++) if (key[i] !== buf[s + i]) return false;
  return true;
}
