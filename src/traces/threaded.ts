/**
 * Reading a trace on a second core: a worker thread runs the byte-level reader and the decoder
 * (decode-worker.ts) while the main thread runs the stages and the store, and takes the file's
 * sha256 between batches (a fifth of the reading's cost when done on the worker; measured). The worker's batches
 * live in shared memory: a message names a batch (its columns are shared, not copied) and the
 * main thread names it back when its stages are done, which is both the recycling and the flow
 * control. Falls back to the in-thread reader when the compiled worker is not there (running
 * from TypeScript sources).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { WattraceError, type ErrorCode, type Where } from '../core/errors.js';
import type { Batch } from '../core/events.js';
import type { TraceKind } from '../core/pipeline.js';
import type { Machine } from '../core/machine.js';
import type { TimeBase } from './decoder.js';
import type { DecodeWorkerData } from './decode-worker.js';

export type ToWorker = { type: 'recycle'; id: number } | { type: 'job'; job: DecodeWorkerData };
export type FromWorker =
  | { type: 'batch'; id: number; batch: Batch; bytes: number }
  | { type: 'done'; rows: number; bytes: number; cpus: number[] }
  | { type: 'error'; error: { code: ErrorCode; message: string; where: Where; exitCode: number } }
  | { type: 'crash'; message: string; stack: string };

const WORKER_FILE = fileURLToPath(new URL('./decode-worker.js', import.meta.url));

let warmWorker: Worker | null = null;

/**
 * Starts a decoder thread before its job is known, so that its start-up (~0.1 s of loading
 * modules) overlaps the main thread's (pipeline, profile, store); the next WorkerBatchStream
 * takes it. Does nothing where threads are not used.
 */
export function warmDecoderThread(): void {
  if (warmWorker !== null || !threadedReadingAvailable()) return;
  warmWorker = new Worker(WORKER_FILE, { workerData: null });
  // Not taken (the run failed before reading): it must not keep the process alive.
  warmWorker.unref();
}

/** Stops a started decoder thread that no stream took. */
export function coolDecoderThread(): void {
  void warmWorker?.terminate();
  warmWorker = null;
}

/**
 * True when traces can be decoded on a worker thread (compiled build; WATTRACE_THREADS≠0).
 * WATTRACE_THREADS=1 uses one whatever the trace's size (tests).
 */
export const forceThreads = (): boolean => process.env['WATTRACE_THREADS'] === '1';

export function threadedReadingAvailable(): boolean {
  return process.env['WATTRACE_THREADS'] !== '0' && fs.existsSync(WORKER_FILE);
}

/** Batches of one trace file decoded on a worker thread. Same contract as TraceBatchStream. */
export class WorkerBatchStream implements AsyncIterableIterator<Batch> {
  readonly info: { bytes: number; rows: number; sha256: string | null; cpus: number[] } = { bytes: 0, rows: 0, sha256: null, cpus: [] };
  private readonly worker: Worker;
  private readonly queue: { id: number; batch: Batch }[] = [];
  private lent: number | null = null;
  private done = false;
  private error: unknown = null;
  private wake: (() => void) | null = null;
  private readonly hashing: { result: Promise<string>; stop: () => void };
  private readonly hashed: boolean;

  constructor(kind: TraceKind, file: string, base: TimeBase, machine: Machine, onBytes?: (n: number) => void, hash = true, window = 16) {
    this.hashed = hash;
    this.hashing = hash ? sha256Of(file) : { result: Promise.resolve(''), stop: () => undefined };
    // A read error shows in the worker as well, with its own message: this one is not needed.
    this.hashing.result.catch(() => undefined);
    const job: DecodeWorkerData = { kind, file, base, machine, window };
    const warm = warmWorker;
    warmWorker = null;
    if (warm !== null) {
      this.worker = warm;
      this.worker.ref();
      this.worker.postMessage({ type: 'job', job } satisfies ToWorker);
    } else this.worker = new Worker(WORKER_FILE, { workerData: job });
    this.worker.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'batch':
          onBytes?.(m.bytes - this.info.bytes);
          this.info.bytes = m.bytes;
          this.queue.push({ id: m.id, batch: m.batch });
          break;
        case 'done':
          onBytes?.(m.bytes - this.info.bytes);
          Object.assign(this.info, { rows: m.rows, bytes: m.bytes, cpus: m.cpus });
          this.done = true;
          void this.worker.terminate();
          break;
        case 'error':
          this.fail(new WattraceError(m.error.code, m.error.message, m.error.where, m.error.exitCode));
          break;
        case 'crash':
          this.fail(Object.assign(new Error(m.message), { stack: m.stack }));
          break;
      }
      this.notify();
    });
    this.worker.on('error', (e) => {
      this.fail(e);
      this.notify();
    });
    this.worker.on('exit', (code) => {
      if (!this.done && this.error === null) this.fail(new Error(`the decoder thread for ${file} stopped (exit code ${code}) before the end of the trace`));
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private fail(e: unknown): void {
    if (this.error === null) this.error = e;
    this.hashing.stop();
    void this.worker.terminate();
  }

  async next(): Promise<IteratorResult<Batch>> {
    if (this.lent !== null) {
      if (!this.done && this.error === null) this.worker.postMessage({ type: 'recycle', id: this.lent } satisfies ToWorker);
      this.lent = null;
    }
    for (;;) {
      if (this.error !== null) throw this.error;
      const q = this.queue.shift();
      if (q !== undefined) {
        this.lent = q.id;
        return { value: q.batch, done: false };
      }
      if (this.done) {
        if (this.info.sha256 === null && this.hashed) this.info.sha256 = await this.hashing.result;
        return { value: undefined, done: true };
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  async return(): Promise<IteratorResult<Batch>> {
    this.hashing.stop();
    if (!this.done) await this.worker.terminate();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** The sha256 of a file, read in 1 MiB chunks on this thread's event loop. */
function sha256Of(file: string): { result: Promise<string>; stop: () => void } {
  const hash = createHash('sha256');
  const input = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  const result = new Promise<string>((resolve, reject) => {
    input
      .on('data', (c) => hash.update(c))
      .on('error', (e) => reject(new WattraceError('E_FILE', `cannot read ${file}: ${e.message}`, { file })))
      .on('end', () => resolve(hash.digest('hex')));
  });
  return { result, stop: () => input.destroy() };
}
