/**
 * Worker thread that reads and decodes one trace file (the byte-level reader + the trace's
 * decoder) and posts its batches, which live in shared memory, to the main thread. The main thread names each batch
 * back once its stages are done with it: that is both the flow control and the recycling.
 * Errors travel back as plain data and become the same WattraceError on the other side.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { allocateBatchesInSharedMemory, type Batch } from '../core/events.js';
import { isWattraceError } from '../core/errors.js';
import type { TraceKind } from '../core/pipeline.js';
import type { Machine } from '../core/machine.js';
import { makeDecoder } from './decoders.js';
import type { TimeBase } from './decoder.js';
import { openTraceStream } from './csv.js';
import type { FromWorker, ToWorker } from './threaded.js';

export interface DecodeWorkerData {
  kind: TraceKind;
  file: string;
  base: TimeBase;
  /** The resolved profile (plain data: structured-cloned, so the worker loads no JSON Schema code). */
  machine: Machine;
  /** Batches in flight before the worker waits for one to come back. */
  window: number;
}

async function run(port: NonNullable<typeof parentPort>, d: DecodeWorkerData): Promise<void> {
  allocateBatchesInSharedMemory();
  const decoder = makeDecoder(d.kind, d.file, d.base, d.machine);
  let inFlight = 0;
  let credit: (() => void) | null = null;
  const ids = new Map<Batch, number>();
  let nextId = 0;
  const byId = new Map<number, Batch>();
  port.on('message', (m: ToWorker) => {
    if (m.type === 'recycle') {
      const b = byId.get(m.id)!;
      if (!decoder.recycle(b)) {
        byId.delete(m.id);
        ids.delete(b);
      }
      inFlight--;
      const c = credit;
      credit = null;
      c?.();
    }
  });
  const send = (m: FromWorker) => port.postMessage(m);
  let bytes = 0;
  // The file's sha256 is taken on the main thread (threaded.ts), which has time to spare.
  const stream = openTraceStream(d.file, decoder, (n) => (bytes += n), false, false);
  try {
    for await (const b of stream as AsyncIterable<Batch>) {
      while (inFlight >= d.window) await new Promise<void>((r) => (credit = r));
      inFlight++;
      let id = ids.get(b);
      if (id === undefined) {
        id = nextId++;
        ids.set(b, id);
        byId.set(id, b);
      }
      send({ type: 'batch', id, batch: b, bytes });
    }
    send({ type: 'done', rows: decoder.rows, bytes, cpus: decoder.cpus() });
  } catch (e) {
    if (isWattraceError(e)) send({ type: 'error', error: { code: e.code, message: e.message, where: e.where, exitCode: e.exitCode } });
    else send({ type: 'crash', message: (e as Error)?.message ?? String(e), stack: (e as Error)?.stack ?? '' });
  }
}

// Started with its job, or started early (threaded.ts, warmDecoderThread) and sent it later.
if (parentPort) {
  const port = parentPort;
  if (workerData) void run(port, workerData as DecodeWorkerData);
  else port.once('message', (m: { type: 'job'; job: DecodeWorkerData }) => void run(port, m.job));
}
