/**
 * Adapters that run a decoder over CSV text with csv-parse: streaming (a file or any Readable,
 * with backpressure, as an async iterator of batches) and at once (a string, for tests).
 * Both use the same options, so they cannot disagree.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { parse, type Options } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { WattraceError } from '../core/errors.js';
import type { Batch } from '../core/events.js';
import type { Decoder, TimeBase } from './decoder.js';
import { OK, PARSED, parseUint } from './exact.js';

/**
 * csv-parse in its fastest configuration (measured; README, Benchmark): arrays of strings, no casting, no quote
 * handling. Trace fields are numbers and identifiers, so quotes are never needed; a record is
 * always one line, which keeps line numbers exact. Field counts are checked by the decoders.
 */
export const CSV_OPTIONS: Options = {
  cast: false,
  quote: false,
  relax_column_count: true,
  bom: true,
  skip_empty_lines: false,
};

const READ_CHUNK = 1 << 20;
const HIGH_WATER_BATCHES = 4;

export interface StreamInfo {
  /** Bytes read so far. */
  bytes: number;
  /** sha256 of everything read, once the stream has ended. */
  sha256: string | null;
}

/**
 * Streams `input` through csv-parse into `decoder`, yielding its batches as they fill. A batch
 * yielded is valid until the following call to next(), which recycles it.
 */
export class CsvBatchStream<B extends Batch> implements AsyncIterableIterator<B> {
  readonly info: StreamInfo = { bytes: 0, sha256: null };
  private readonly queue: B[] = [];
  private done = false;
  private error: unknown = null;
  private wake: (() => void) | null = null;
  /** The batch returned by the previous next(): the caller is done with it once it asks again. */
  private lent: B | null = null;
  private readonly input: Readable;
  private readonly parser: ReturnType<typeof parse>;

  constructor(
    input: Readable,
    private readonly decoder: Decoder<B>,
    onBytes?: (n: number) => void,
    /** False when yielded batches leave this thread (transferred), so they cannot be reused. */
    private readonly recycleOnNext = true,
  ) {
    this.input = input;
    const parser = parse(CSV_OPTIONS);
    this.parser = parser;
    const hash = createHash('sha256');
    decoder.onBatch((b) => {
      this.queue.push(b);
      if (this.queue.length >= HIGH_WATER_BATCHES) parser.pause();
      this.notify();
    });
    input.on('data', (chunk: Buffer | string) => {
      hash.update(chunk);
      this.info.bytes += chunk.length;
      onBytes?.(chunk.length);
    });
    input.on('error', (e) => this.fail(new WattraceError('E_FILE', `cannot read ${decoder.file}: ${(e as Error).message}`, { file: decoder.file })));
    parser.on('data', (record: string[]) => {
      if (this.error !== null) return;
      try {
        decoder.push(record);
      } catch (e) {
        this.fail(e);
      }
    });
    parser.on('error', (e: Error & { lines?: number }) =>
      this.fail(new WattraceError('E_FIELD', `malformed CSV: ${e.message}`, { file: decoder.file, ...(e.lines ? { line: e.lines } : {}) })),
    );
    parser.on('end', () => {
      if (this.error !== null) return;
      try {
        decoder.finish();
      } catch (e) {
        this.fail(e);
        return;
      }
      this.info.sha256 = hash.digest('hex');
      this.done = true;
      this.notify();
    });
    input.pipe(parser);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private fail(e: unknown): void {
    if (this.error !== null) return;
    this.error = e;
    this.input.unpipe(this.parser);
    this.input.destroy();
    this.parser.destroy();
    this.notify();
  }

  async next(): Promise<IteratorResult<B>> {
    if (this.lent !== null) {
      if (this.recycleOnNext) this.decoder.recycle(this.lent);
      this.lent = null;
    }
    for (;;) {
      if (this.error !== null) throw this.error;
      const b = this.queue.shift();
      if (b !== undefined) {
        if (this.queue.length < HIGH_WATER_BATCHES / 2 && this.parser.isPaused()) this.parser.resume();
        this.lent = b;
        return { value: b, done: false };
      }
      if (this.done) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<B>> {
    if (!this.done) this.fail(new Error('closed'));
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export function openTraceStream<B extends Batch>(file: string, decoder: Decoder<B>, onBytes?: (n: number) => void, recycleOnNext = true): CsvBatchStream<B> {
  return new CsvBatchStream(fs.createReadStream(file, { highWaterMark: READ_CHUNK }), decoder, onBytes, recycleOnNext);
}

/** Streams in-memory chunks (strings or buffers cut anywhere) through the same path as a file. */
export function chunkStream<B extends Batch>(chunks: readonly (string | Buffer)[], decoder: Decoder<B>): CsvBatchStream<B> {
  return new CsvBatchStream(Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))), decoder);
}

/** Decodes a whole CSV text at once (the batch adapter). */
export function decodeText<B extends Batch>(text: string, decoder: Decoder<B>): B[] {
  const out: B[] = [];
  decoder.onBatch((b) => out.push(b));
  let records: string[][];
  try {
    records = parseSync(text, CSV_OPTIONS) as string[][];
  } catch (e) {
    throw new WattraceError('E_FIELD', `malformed CSV: ${(e as Error).message}`, { file: decoder.file });
  }
  for (const r of records) decoder.push(r);
  decoder.finish();
  return out;
}

/** Checks that a trace file exists and is a readable file, before anything is started. */
export function checkTraceFile(file: string, kind: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new WattraceError('E_FILE', `${kind} trace file does not exist`, { file });
  }
  if (!st.isFile()) throw new WattraceError('E_FILE', `${kind} trace is not a regular file`, { file });
  return st.size;
}

/**
 * The smallest `ts_ns` among the complete data rows in a CSV trace's first 64 KiB, exactly (rows
 * of different CPUs may interleave, so the first row need not be the earliest); null when there
 * is none there (the decoder reports a malformed file properly later).
 */
export function peekFirstTimestamp(file: string): TimeBase | null {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return firstTimestampOf(buf.subarray(0, n).toString('utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

export function firstTimestampOf(text: string): TimeBase | null {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (!text.endsWith('\n')) lines.pop(); // a row cut by the 64 KiB window
  const header = (lines[0] ?? '').replace(/\r$/, '').split(',').map((s) => s.trim());
  const i = header.indexOf('ts_ns');
  if (i < 0) return null;
  let best: TimeBase | null = null;
  for (let k = 1; k < lines.length; k++) {
    const field = lines[k]!.replace(/\r$/, '').split(',')[i];
    if (field === undefined || parseUint(field) !== OK) continue;
    best = minBase(best, { hi: PARSED.hi, lo: PARSED.lo });
  }
  return best;
}

/** The smaller of two time bases (null-tolerant). */
export function minBase(a: TimeBase | null, b: TimeBase | null): TimeBase | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.hi < b.hi || (a.hi === b.hi && a.lo <= b.lo) ? a : b;
}


/**
 * The span a trace covers, roughly, in ns: from its first rows' smallest timestamp to its last
 * rows' largest (the first and last 64 KiB). For planning only (how much a run will write).
 */
export function peekSpanNs(file: string): number | null {
  const first = peekFirstTimestamp(file);
  if (first === null) return null;
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(4096, size));
    fs.readSync(fd, head, 0, head.length, 0);
    const header = head.toString('utf8').split('\n')[0] ?? '';
    const buf = Buffer.alloc(Math.min(64 * 1024, size));
    const n = fs.readSync(fd, buf, 0, buf.length, size - buf.length);
    const tail = buf.subarray(0, n).toString('utf8');
    // The rows after the first full line of the tail window, under the file's own header.
    const rows = tail.slice(tail.indexOf('\n') + 1);
    const last = firstTimestampOfMax(`${header}\n${rows.endsWith('\n') ? rows : `${rows}\n`}`);
    if (last === null) return null;
    return (last.hi - first.hi) * 1e9 + (last.lo - first.lo);
  } finally {
    fs.closeSync(fd);
  }
}

/** Like firstTimestampOf, the largest timestamp of the rows in `text`. */
function firstTimestampOfMax(text: string): TimeBase | null {
  const lines = text.split('\n');
  const header = (lines[0] ?? '').replace(/^\uFEFF/, '').replace(/\r$/, '').split(',').map((s) => s.trim());
  const i = header.indexOf('ts_ns');
  if (i < 0) return null;
  let best: TimeBase | null = null;
  for (let k = 1; k < lines.length; k++) {
    const field = lines[k]!.replace(/\r$/, '').split(',')[i];
    if (field === undefined || parseUint(field) !== OK) continue;
    const t = { hi: PARSED.hi, lo: PARSED.lo };
    if (best === null || t.hi > best.hi || (t.hi === best.hi && t.lo > best.lo)) best = t;
  }
  return best;
}

/**
 * A note when a file's last line has no newline: it was read (it parsed whole), but a file cut
 * short while being copied or written ends so too, with its last value possibly shortened.
 */
export function missingNewlineNote(file: string): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size === 0) return null;
    const size = st.size;
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, size - 1);
    return b[0] === 0x0a ? null : `${file} ends without a newline: its last line was read as it stands, but it may have been cut short`;
  } finally {
    fs.closeSync(fd);
  }
}
