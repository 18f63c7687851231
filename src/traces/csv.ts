/**
 * Adapters that run a decoder over a trace's bytes with the byte-level reader (scan.ts): streaming
 * (a file or in-memory chunks, as an async iterator of batches) and at once (a string, for tests).
 * Both feed the same scanner, so they cannot disagree.
 */
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { checkNotCompressed, readHead } from '../core/files.js';
import { WattraceError } from '../core/errors.js';
import type { Batch } from '../core/events.js';
import type { Decoder, TimeBase } from './decoder.js';
import { OK, PARSED, parseUint } from './exact.js';
import { LineScanner } from './scan.js';

/** Bytes read at a time (measured: 1–16 MiB read alike; README, Benchmark). */
export const READ_CHUNK = 4 << 20;

export interface StreamInfo {
  /** Bytes read so far. */
  bytes: number;
  /** sha256 of everything read, once the stream has ended (null when not hashed). */
  sha256: string | null;
}

/** Where a stream's bytes come from: chunks in order, null at the end. */
export interface ChunkSource {
  read(): Buffer | null;
  close(): void;
}

/**
 * A file read `READ_CHUNK` bytes at a time into one reused buffer (the scanner copies only a line
 * cut at a chunk's end, and asks for the next chunk once it is through the last).
 */
export function fileChunks(file: string, chunkBytes = READ_CHUNK): ChunkSource {
  let fd: number | null;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new WattraceError('E_FILE', `cannot read ${file}: ${(e as Error).message}`, { file });
  }
  const buf = Buffer.allocUnsafe(chunkBytes);
  return {
    read() {
      if (fd === null) return null;
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        throw new WattraceError('E_FILE', `cannot read ${file}: ${(e as Error).message}`, { file });
      }
      if (n === 0) {
        this.close();
        return null;
      }
      return buf.subarray(0, n);
    },
    close() {
      if (fd !== null) fs.closeSync(fd);
      fd = null;
    },
  };
}

/** In-memory chunks (strings or buffers cut anywhere), in order. */
export function memoryChunks(chunks: readonly (string | Buffer)[]): ChunkSource {
  let i = 0;
  return {
    read: () => {
      const c = chunks[i++];
      return c === undefined ? null : typeof c === 'string' ? Buffer.from(c) : c;
    },
    close: () => void (i = chunks.length),
  };
}

/**
 * Streams a source's bytes through the scanner into `decoder`, yielding its batches as they fill;
 * the scanner stops after each batch, so nothing runs ahead of the consumer. A batch yielded is
 * valid until the following call to next(), which recycles it.
 */
export class TraceBatchStream<B extends Batch> implements AsyncIterableIterator<B> {
  readonly info: StreamInfo = { bytes: 0, sha256: null };
  private readonly queue: B[] = [];
  private readonly scanner: LineScanner;
  private readonly hash: Hash | null;
  private done = false;
  private closed = false;
  /** The batch returned by the previous next(): the caller is done with it once it asks again. */
  private lent: B | null = null;

  constructor(
    private readonly source: ChunkSource,
    private readonly decoder: Decoder<B>,
    private readonly onBytes?: (n: number) => void,
    /** False when yielded batches leave this thread (transferred), so they cannot be reused. */
    private readonly recycleOnNext = true,
    hash = true,
  ) {
    this.scanner = new LineScanner(decoder, decoder.file);
    this.hash = hash ? createHash('sha256') : null;
    decoder.onBatch((b) => this.queue.push(b));
  }

  /** Decodes until a batch is ready or the input ends. */
  private fill(): void {
    const d = this.decoder;
    const stop = () => d.emitted;
    while (this.queue.length === 0 && !this.done) {
      if (this.scanner.pending) {
        d.emitted = false;
        this.scanner.scan(stop);
        continue;
      }
      const chunk = this.source.read();
      if (chunk === null) {
        this.scanner.end();
        d.finish();
        if (this.hash) this.info.sha256 = this.hash.digest('hex');
        this.done = true;
        return;
      }
      this.hash?.update(chunk);
      this.info.bytes += chunk.length;
      this.onBytes?.(chunk.length);
      this.scanner.feed(chunk);
    }
  }

  async next(): Promise<IteratorResult<B>> {
    if (this.lent !== null) {
      if (this.recycleOnNext) this.decoder.recycle(this.lent);
      this.lent = null;
    }
    if (this.closed) return { value: undefined, done: true };
    try {
      this.fill();
    } catch (e) {
      this.close();
      throw e;
    }
    const b = this.queue.shift();
    if (b === undefined) {
      this.close();
      return { value: undefined, done: true };
    }
    this.lent = b;
    return { value: b, done: false };
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.source.close();
  }

  async return(): Promise<IteratorResult<B>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export function openTraceStream<B extends Batch>(file: string, decoder: Decoder<B>, onBytes?: (n: number) => void, recycleOnNext = true, hash = true): TraceBatchStream<B> {
  return new TraceBatchStream(fileChunks(file), decoder, onBytes, recycleOnNext, hash);
}

/** Streams in-memory chunks (strings or buffers cut anywhere) through the same path as a file. */
export function chunkStream<B extends Batch>(chunks: readonly (string | Buffer)[], decoder: Decoder<B>): TraceBatchStream<B> {
  return new TraceBatchStream(memoryChunks(chunks), decoder);
}

/** Decodes a whole text at once (the batch adapter). */
export function decodeText<B extends Batch>(text: string, decoder: Decoder<B>): B[] {
  const out: B[] = [];
  decoder.onBatch((b) => out.push(b));
  const scanner = new LineScanner(decoder, decoder.file);
  scanner.feed(Buffer.from(text));
  scanner.scan(() => false);
  scanner.end();
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
  checkNotCompressed(file);
  return st.size;
}

/**
 * The smallest `ts_ns` among the complete data rows in a CSV trace's first 64 KiB, exactly (rows
 * of different CPUs may interleave, so the first row need not be the earliest); null when there
 * is none there (the decoder reports a malformed file properly later).
 */
export function peekFirstTimestamp(file: string): TimeBase | null {
  return firstTimestampOf(readHead(file, 64 * 1024).toString('utf8'));
}

export function firstTimestampOf(text: string): TimeBase | null {
  return extremeTimestamp(text, false);
}

/**
 * The smallest (or with `largest` the largest) `ts_ns` among the complete rows under the header
 * of `text`: a last row without its newline is taken as cut by the window and left out.
 */
function extremeTimestamp(text: string, largest: boolean): TimeBase | null {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (!text.endsWith('\n')) lines.pop(); // a row cut by the 64 KiB window
  const header = (lines[0] ?? '').replace(/\r$/, '').split(',').map((s) => s.trim());
  const i = header.indexOf('ts_ns');
  if (i < 0) return null;
  let best: TimeBase | null = null;
  for (let k = 1; k < lines.length; k++) {
    const field = lines[k]!.replace(/\r$/, '').split(',')[i];
    if (field === undefined || parseUint(field) !== OK) continue;
    const t = { hi: PARSED.hi, lo: PARSED.lo };
    best = largest ? maxBase(best, t) : minBase(best, t);
  }
  return best;
}

/** The larger of two time bases (null-tolerant). */
export function maxBase(a: TimeBase | null, b: TimeBase | null): TimeBase | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.hi > b.hi || (a.hi === b.hi && a.lo >= b.lo) ? a : b;
}

/** The smaller of two time bases (null-tolerant). */
export function minBase(a: TimeBase | null, b: TimeBase | null): TimeBase | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.hi < b.hi || (a.hi === b.hi && a.lo <= b.lo) ? a : b;
}

/**
 * A trace's first and last timestamps, exactly, as far as its first and last 64 KiB tell: the
 * smallest `ts_ns` of the first rows and the largest of the last; null when either has none.
 */
export function peekRange(file: string): { first: TimeBase; last: TimeBase } | null {
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
    const last = extremeTimestamp(`${header}\n${rows.endsWith('\n') ? rows : `${rows}\n`}`, true);
    return last === null ? null : { first, last };
  } finally {
    fs.closeSync(fd);
  }
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
