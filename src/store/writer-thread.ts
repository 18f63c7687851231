/**
 * Writer thread (threaded.ts): runs one RunWriter — the same transaction, the same SQL — on the
 * rows the stages send as columns. Every request that needs an answer (the run id, commit, abort)
 * is answered on the replies port, then the shared reply counter is bumped and notified; every
 * chunk of rows is acknowledged on the shared ack counter (the stages' flow control). An error
 * while inserting is kept and answered at the next request; later rows are dropped.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isWattraceError } from '../core/errors.js';
import type { EnergyKind } from '../core/stage.js';
import type { Joules, Ns, Seconds, Watts } from '../core/units.js';
import { RunWriter } from './store.js';
import { SIG_ABORTING, SIG_ACKS, SIG_DEAD, SIG_REPLIES, type Chunk, type FromWriter, type ToWriter, type WriterData } from './threaded.js';

function failure(e: unknown): FromWriter {
  if (isWattraceError(e)) return { type: 'error', error: { code: e.code, message: e.message, where: e.where, exitCode: e.exitCode } };
  return { type: 'crash', message: (e as Error)?.message ?? String(e), stack: (e as Error)?.stack ?? '' };
}

/** Inserts one chunk through the writer's own methods (one row object at a time, short-lived). */
function insert(w: RunWriter, strings: readonly string[], c: Chunk): void {
  const f = c.nums;
  const s = c.strs;
  const str = (i: number) => strings[s[i]!]!;
  const orNull = (i: number) => (s[i]! < 0 ? null : strings[s[i]!]!);
  const num = (x: number) => (Number.isNaN(x) ? null : x);
  switch (c.table) {
    case 'energy':
      for (let i = 0; i < c.n; i++) {
        w.energy({ t0: f[i * 3]! as Ns, t1: f[i * 3 + 1]! as Ns, joules: f[i * 3 + 2]! as Joules, consumer: str(i * 5), container: orNull(i * 5 + 1), via: orNull(i * 5 + 2), device: str(i * 5 + 3), kind: str(i * 5 + 4) as EnergyKind });
      }
      break;
    case 'counter':
      for (let i = 0; i < c.n; i++) w.counter({ t0: f[i * 3]! as Ns, t1: f[i * 3 + 1]! as Ns, advance: f[i * 3 + 2]!, vm: str(i * 2), event: str(i * 2 + 1) });
      break;
    case 'diskPolicy':
      for (let i = 0, o = 0; i < c.n; i++, o += 8) {
        w.diskPolicy({ t: f[o]! as Ns, throttle: f[o + 1]!, budget: f[o + 2]!, limitWatts: num(f[o + 3]!) as Watts | null, watts: f[o + 4]! as Watts, requests: f[o + 5]!, bytes: f[o + 6]!, backlog: f[o + 7]!, vm: str(i) });
      }
      break;
    case 'cpuPolicy':
      for (let i = 0, o = 0; i < c.n; i++, o += 6) {
        w.cpuPolicy({ t: f[o]! as Ns, share: f[o + 1]!, limitWatts: num(f[o + 2]!) as Watts | null, watts: f[o + 3]! as Watts, workS: f[o + 4]! as Seconds, backlogS: f[o + 5]! as Seconds, vm: str(i) });
      }
      break;
    case 'container':
      for (let i = 0, o = 0; i < c.n; i++, o += 5) {
        w.containerRow({ t: f[o]! as Ns, limitWatts: num(f[o + 1]!) as Watts | null, watts: f[o + 2]! as Watts, workS: f[o + 3]! as Seconds, preemptedNs: f[o + 4]! as Ns, vm: str(i * 2), container: str(i * 2 + 1) });
      }
      break;
  }
}

function run(port: NonNullable<typeof parentPort>, d: WriterData): void {
  const signal = new Int32Array(d.signal);
  // However this thread ends (an uncaught error too), the run's waits learn it at once.
  process.on('exit', () => {
    Atomics.store(signal, SIG_DEAD, 1);
    Atomics.notify(signal, SIG_REPLIES);
    Atomics.notify(signal, SIG_ACKS);
  });
  const reply = (m: FromWriter) => {
    d.replies.postMessage(m);
    Atomics.add(signal, SIG_REPLIES, 1);
    Atomics.notify(signal, SIG_REPLIES);
  };
  let writer: RunWriter | null = null;
  let error: unknown = null;
  try {
    writer = RunWriter.begin(d.file, d.meta);
  } catch (e) {
    error = e;
  }
  const strings: string[] = [];
  port.on('message', (m: ToWriter) => {
    switch (m.type) {
      case 'rows':
        for (const s of m.strings) strings.push(s);
        if (error === null && writer !== null && Atomics.load(signal, SIG_ABORTING) === 0) {
          try {
            insert(writer, strings, m.chunk);
          } catch (e) {
            error = e;
          }
        }
        Atomics.add(signal, SIG_ACKS, 1);
        Atomics.notify(signal, SIG_ACKS);
        break;
      case 'run-id':
        reply(error === null ? { type: 'ok', runId: writer!.runId } : failure(error));
        break;
      case 'commit':
        if (error === null) {
          try {
            for (const [k, v] of m.metrics) writer!.metric(k, v);
            writer!.commit(m.finish);
          } catch (e) {
            error = e;
          }
        } else {
          try {
            writer?.abort();
          } catch {
            // The error already kept is the one to report.
          }
        }
        reply(error === null ? { type: 'ok', runId: writer!.runId } : failure(error));
        port.close();
        break;
      case 'abort':
        try {
          writer?.abort();
          reply({ type: 'ok', runId: writer?.runId ?? 0 });
        } catch (e) {
          reply(failure(e));
        }
        port.close();
        break;
    }
  });
}

if (parentPort) run(parentPort, workerData as WriterData);
