/**
 * Reading a trace on a second core: a worker thread runs csv-parse and the decoder
 * (decode-worker.ts) while the main thread runs the stages and the store. The worker's batches
 * live in shared memory: a message names a batch (its columns are shared, not copied) and the
 * main thread names it back when its stages are done, which is both the recycling and the flow
 * control. Falls back to the in-thread reader when the compiled worker is not there (running
 * from TypeScript sources).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { WattraceError, type ErrorCode, type Where } from '../core/errors.js';
import type { Batch } from '../core/events.js';
import type { TraceKind } from '../core/pipeline.js';
import type { Machine } from '../core/machine.js';
import type { TimeBase } from './decoder.js';

export type ToWorker = { type: 'recycle'; id: number };
export type FromWorker =
  | { type: 'batch'; id: number; batch: Batch; bytes: number }
  | { type: 'done'; rows: number; bytes: number; sha256: string | null }
  | { type: 'error'; error: { code: ErrorCode; message: string; where: Where; exitCode: number } }
  | { type: 'crash'; message: string; stack: string };

const WORKER_FILE = fileURLToPath(new URL('./decode-worker.js', import.meta.url));

/** True when traces can be decoded on a worker thread (compiled build; WATTRACE_THREADS≠0). */
export function threadedReadingAvailable(): boolean {
  return process.env['WATTRACE_THREADS'] !== '0' && fs.existsSync(WORKER_FILE);
}

/** Batches of one trace file decoded on a worker thread. Same contract as CsvBatchStream. */
export class WorkerBatchStream implements AsyncIterableIterator<Batch> {
  readonly info: { bytes: number; rows: number; sha256: string | null } = { bytes: 0, rows: 0, sha256: null };
  private readonly worker: Worker;
  private readonly queue: { id: number; batch: Batch }[] = [];
  private lent: number | null = null;
  private done = false;
  private error: unknown = null;
  private wake: (() => void) | null = null;

  constructor(kind: TraceKind, file: string, base: TimeBase, machine: Machine, onBytes?: (n: number) => void, window = 4) {
    this.worker = new Worker(WORKER_FILE, {
      workerData: { kind, file, base, profile: machine.profile, profileFile: machine.file, window },
    });
    this.worker.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'batch':
          onBytes?.(m.bytes - this.info.bytes);
          this.info.bytes = m.bytes;
          this.queue.push({ id: m.id, batch: m.batch });
          break;
        case 'done':
          onBytes?.(m.bytes - this.info.bytes);
          Object.assign(this.info, { rows: m.rows, bytes: m.bytes, sha256: m.sha256 });
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
      if (this.done) return { value: undefined, done: true };
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  async return(): Promise<IteratorResult<Batch>> {
    if (!this.done) await this.worker.terminate();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
