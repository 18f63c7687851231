/**
 * Writing a run on a thread of its own. SQLite spends about a microsecond on each row inserted
 * (measured: 1.0–1.2 µs with 64-row INSERTs, whatever the batch size): 41 % of the PlanetLab
 * day's replay, which writes 5.6 M rows from 265 k while the decoder thread idles. A run that will
 * write more rows than it reads (replay/runner.ts, writerThreadPays) hands its rows to a writer
 * thread (writer-thread.ts) running the same RunWriter, so inserting overlaps the stages. A run
 * bound by reading does not: the decoder fills the second core, and a third thread slowed it.
 *
 * Rows cross as columns: numbers in a Float64Array, strings as ids into a string table that grows
 * as new names appear (a handful per run: VMs, devices, events), 4,096 rows a message, the arrays
 * transferred rather than copied. At most WINDOW messages are in flight; the stages wait for the
 * writer beyond that, so memory stays flat when SQLite is the slower side.
 *
 * The run's calls that need an answer (commit, abort, the run id) block on a shared counter the
 * writer bumps when it has replied, and read the reply synchronously: the RunWriter interface stays
 * synchronous, so a signal handler can still roll a run back (commands/io.ts, undoOnInterrupt).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { WattraceError, type ErrorCode, type Where } from '../core/errors.js';
import type { ContainerRow, CounterRow, CpuPolicyRow, DiskPolicyRow, EnergyRow } from '../core/stage.js';
import { checkStore, RunWriter, type RunFinish, type RunHandle, type RunMeta } from './store.js';

const WORKER_FILE = fileURLToPath(new URL('./writer-thread.js', import.meta.url));

/** Rows per message. */
export const CHUNK_ROWS = 4096;
/** Messages in flight before the stages wait for the writer. */
const WINDOW = 8;
/**
 * Longest wait for the writer. At most WINDOW messages (≈ 33,000 rows, well under a second of
 * inserts) and a commit are ever ahead of it, but SQLite may wait out its busy_timeout (600 s,
 * store.ts) for another process's lock more than once in a transaction; a writer that dies says
 * so at once (SIG_DEAD). So this only ends a writer that hangs.
 */
const ANSWER_MS = 3 * 3_600_000;

/**
 * The tables as they cross: how many number and string columns a row has. The order of the
 * columns is fixed by encode (here) and decode (writer-thread.ts) together.
 */
export const TABLES = {
  energy: { nums: 3, strs: 5 },
  counter: { nums: 3, strs: 2 },
  diskPolicy: { nums: 8, strs: 1 },
  cpuPolicy: { nums: 6, strs: 1 },
  container: { nums: 5, strs: 2 },
} as const;
export type Table = keyof typeof TABLES;

/** Signal slots (Int32Array over a SharedArrayBuffer). */
export const SIG_REPLIES = 0;
export const SIG_ACKS = 1;
export const SIG_ABORTING = 2;
/** Never changed: a slot to sleep on. */
const SIG_NAP = 3;
/** Set by the writer thread as it exits, for whatever reason: the waits below stop waiting. */
export const SIG_DEAD = 4;

export interface Chunk {
  table: Table;
  n: number;
  nums: Float64Array<ArrayBuffer>;
  /** String ids; −1 for null. */
  strs: Int32Array<ArrayBuffer>;
}

export type ToWriter =
  | { type: 'rows'; strings: string[]; chunk: Chunk }
  | { type: 'commit'; finish: RunFinish; metrics: [string, number][] }
  | { type: 'abort' }
  | { type: 'run-id' };

export type FromWriter =
  | { type: 'ok'; runId: number }
  | { type: 'error'; error: { code: ErrorCode; message: string; where: Where; exitCode: number } }
  | { type: 'crash'; message: string; stack: string };

export interface WriterData {
  file: string;
  meta: RunMeta;
  signal: SharedArrayBuffer;
  replies: MessagePort;
}

/** True when a run can be written on a writer thread (compiled build; WATTRACE_THREADS≠0). */
export function threadedWritingAvailable(): boolean {
  return process.env['WATTRACE_THREADS'] !== '0' && fs.existsSync(WORKER_FILE);
}

function newChunk(table: Table): Chunk {
  const t = TABLES[table];
  return { table, n: 0, nums: new Float64Array(CHUNK_ROWS * t.nums), strs: new Int32Array(CHUNK_ROWS * t.strs) };
}

/** A RunHandle whose rows are inserted by a writer thread. Same contract as RunWriter. */
export class ThreadedRunWriter implements RunHandle {
  private readonly worker: Worker;
  private readonly replies: MessagePort;
  private readonly signal: Int32Array;
  private readonly ids = new Map<string, number>();
  private fresh: string[] = [];
  private sent = 0;
  private id: number | null = null;
  private closed = false;
  private readonly metrics = new Map<string, number>();
  private energyChunk = newChunk('energy');
  private counterChunk = newChunk('counter');
  private diskChunk = newChunk('diskPolicy');
  private cpuChunk = newChunk('cpuPolicy');
  private containerChunk = newChunk('container');

  /**
   * Starts a run in `file`. What can be checked without writing is checked here, on the calling
   * thread (the folder exists; an existing file is a store of a schema this version knows), so a
   * wrong --db stops the replay before it reads; the transaction itself starts on the thread.
   */
  static begin(file: string, meta: RunMeta): ThreadedRunWriter {
    checkStore(file);
    const w = new ThreadedRunWriter(file, meta);
    // The transaction is open before anything is read, as on the calling thread: a store that
    // cannot be written, or a lock that does not clear, is the first thing the user hears of,
    // and while it waits here Ctrl-C still stops the process (no roll-back is armed yet).
    void w.runId;
    return w;
  }

  private constructor(
    private readonly file: string,
    meta: RunMeta,
  ) {
    const shared = new SharedArrayBuffer(5 * 4);
    this.signal = new Int32Array(shared);
    const { port1, port2 } = new MessageChannel();
    this.replies = port1;
    const data: WriterData = { file, meta, signal: shared, replies: port2 };
    this.worker = new Worker(WORKER_FILE, { workerData: data, transferList: [port2] });
    // The run blocks on the writer where it needs it: the thread must not keep the process alive.
    this.worker.unref();
    // Its errors arrive as replies; an 'error' event (a crash while loading) is seen by `call`.
    this.worker.on('error', () => undefined);
  }

  /** The run's id (waits for the writer to have started the run). */
  get runId(): number {
    if (this.id === null) this.id = this.call({ type: 'run-id' });
    return this.id;
  }

  private str(s: string): number {
    let k = this.ids.get(s);
    if (k === undefined) {
      k = this.ids.size;
      this.ids.set(s, k);
      this.fresh.push(s);
    }
    return k;
  }

  private strOrNull(s: string | null): number {
    return s === null ? -1 : this.str(s);
  }

  /** Sends a full (or, at the end, partial) chunk; waits while WINDOW chunks are unacknowledged. */
  private send(c: Chunk): void {
    if (this.closed) throw new Error('the run was already committed or rolled back');
    const deadline = Date.now() + ANSWER_MS;
    for (;;) {
      const acked = Atomics.load(this.signal, SIG_ACKS);
      if (this.sent - acked < WINDOW) break;
      if (Atomics.load(this.signal, SIG_DEAD) === 1 || Date.now() > deadline) this.silent();
      Atomics.wait(this.signal, SIG_ACKS, acked, 1000);
    }
    const strings = this.fresh;
    this.fresh = [];
    this.worker.postMessage({ type: 'rows', strings, chunk: c } satisfies ToWriter, [c.nums.buffer, c.strs.buffer]);
    this.sent++;
  }

  energy(r: EnergyRow): void {
    const c = this.energyChunk;
    const i = c.n;
    const f = c.nums;
    const s = c.strs;
    f[i * 3] = r.t0;
    f[i * 3 + 1] = r.t1;
    f[i * 3 + 2] = r.joules;
    s[i * 5] = this.str(r.consumer);
    s[i * 5 + 1] = this.strOrNull(r.container);
    s[i * 5 + 2] = this.strOrNull(r.via);
    s[i * 5 + 3] = this.str(r.device);
    s[i * 5 + 4] = this.str(r.kind);
    if (++c.n === CHUNK_ROWS) {
      this.send(c);
      this.energyChunk = newChunk('energy');
    }
  }

  counter(r: CounterRow): void {
    const c = this.counterChunk;
    const i = c.n;
    c.nums[i * 3] = r.t0;
    c.nums[i * 3 + 1] = r.t1;
    c.nums[i * 3 + 2] = r.advance;
    c.strs[i * 2] = this.str(r.vm);
    c.strs[i * 2 + 1] = this.str(r.event);
    if (++c.n === CHUNK_ROWS) {
      this.send(c);
      this.counterChunk = newChunk('counter');
    }
  }

  diskPolicy(r: DiskPolicyRow): void {
    const c = this.diskChunk;
    const o = c.n * 8;
    const f = c.nums;
    f[o] = r.t;
    f[o + 1] = r.throttle;
    f[o + 2] = r.budget;
    f[o + 3] = r.limitWatts ?? NaN;
    f[o + 4] = r.watts;
    f[o + 5] = r.requests;
    f[o + 6] = r.bytes;
    f[o + 7] = r.backlog;
    c.strs[c.n] = this.str(r.vm);
    if (++c.n === CHUNK_ROWS) {
      this.send(c);
      this.diskChunk = newChunk('diskPolicy');
    }
  }

  cpuPolicy(r: CpuPolicyRow): void {
    const c = this.cpuChunk;
    const o = c.n * 6;
    const f = c.nums;
    f[o] = r.t;
    f[o + 1] = r.share;
    f[o + 2] = r.limitWatts ?? NaN;
    f[o + 3] = r.watts;
    f[o + 4] = r.workS;
    f[o + 5] = r.backlogS;
    c.strs[c.n] = this.str(r.vm);
    if (++c.n === CHUNK_ROWS) {
      this.send(c);
      this.cpuChunk = newChunk('cpuPolicy');
    }
  }

  containerRow(r: ContainerRow): void {
    const c = this.containerChunk;
    const o = c.n * 5;
    const f = c.nums;
    f[o] = r.t;
    f[o + 1] = r.limitWatts ?? NaN;
    f[o + 2] = r.watts;
    f[o + 3] = r.workS;
    f[o + 4] = r.preemptedNs;
    c.strs[c.n * 2] = this.str(r.vm);
    c.strs[c.n * 2 + 1] = this.str(r.container);
    if (++c.n === CHUNK_ROWS) {
      this.send(c);
      this.containerChunk = newChunk('container');
    }
  }

  metric(name: string, value: number): void {
    this.metrics.set(name, value);
  }

  /** Sends the partly filled chunks, then the remaining run fields and the metrics; commits. */
  commit(f: RunFinish): void {
    for (const c of [this.energyChunk, this.counterChunk, this.diskChunk, this.cpuChunk, this.containerChunk]) if (c.n > 0) this.send(c);
    const id = this.call({ type: 'commit', finish: f, metrics: [...this.metrics] });
    this.id ??= id;
    this.closed = true;
    void this.worker.terminate();
  }

  /** Rolls the run back (the rows still queued are dropped unwritten); the database is as it was. */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.signal, SIG_ABORTING, 1);
    try {
      this.call({ type: 'abort' });
    } finally {
      void this.worker.terminate();
    }
  }

  /** Posts a request and blocks until the writer has answered it. */
  private call(m: ToWriter): number {
    const before = Atomics.load(this.signal, SIG_REPLIES);
    this.worker.postMessage(m);
    const deadline = Date.now() + ANSWER_MS;
    while (Atomics.load(this.signal, SIG_REPLIES) === before) {
      if (Atomics.load(this.signal, SIG_DEAD) === 1 || Date.now() > deadline) this.silent();
      Atomics.wait(this.signal, SIG_REPLIES, before, 1000);
    }
    let r = receiveMessageOnPort(this.replies);
    // The reply is posted before the counter is bumped; a moment more in the rare case it is not yet visible.
    for (let i = 0; r === undefined && i < 1000; i++) {
      Atomics.wait(this.signal, SIG_NAP, 0, 1);
      r = receiveMessageOnPort(this.replies);
    }
    if (r === undefined) throw new WattraceError('E_STORE', 'the database writer thread answered nothing', { file: this.file }, 70);
    const reply = r.message as FromWriter;
    if (reply.type === 'ok') return reply.runId;
    this.closed = true;
    void this.worker.terminate();
    if (reply.type === 'error') throw new WattraceError(reply.error.code, reply.error.message, reply.error.where, reply.error.exitCode);
    throw Object.assign(new Error(reply.message), { stack: reply.stack });
  }

  /**
   * The writer has not answered for ANSWER_MS: it died (its exit cannot be seen while this thread
   * waits) or hangs. The run is lost; SQLite rolls its journal back at the next open.
   */
  private silent(): never {
    this.closed = true;
    const dead = Atomics.load(this.signal, SIG_DEAD) === 1;
    void this.worker.terminate();
    throw new WattraceError('E_STORE', dead ? 'the database writer thread stopped without an answer; the run is not stored' : `the database writer thread has not answered for ${ANSWER_MS / 3_600_000} hours; the run is not stored`, { file: this.file }, 70);
  }
}

/**
 * Starts a run: on a writer thread when `threaded` and the compiled thread is there, else on the
 * calling thread. Both run the same RunWriter.
 */
export function beginRun(file: string, meta: RunMeta, threaded: boolean): RunHandle {
  return threaded && threadedWritingAvailable() ? ThreadedRunWriter.begin(file, meta) : RunWriter.begin(file, meta);
}
