/**
 * A deterministic synthetic disk request log (docs/formats.md, disk.csv) for the demo fixture and
 * the benchmark: clients issue requests at random times at their own rates and sizes; the disk
 * serves them one at a time (seek 1–8 ms plus bytes / rate), so completions come in order and the
 * latency column is the service time. It knows nothing of the accounting code.
 */
import { sToNs, transferNs } from '../core/units.js';
import { prng } from './synthetic-cswitch.js';

export interface SyntheticDiskClient {
  vm: string;
  perSecond: number;
  bytes: number;
  op: 'R' | 'W';
  container?: string;
}

export interface SyntheticDiskOptions {
  /** First timestamp (ns), any size. */
  startNs: bigint;
  seconds: number;
  clients: readonly SyntheticDiskClient[];
  rateBps: number;
  seed: number;
}

/** Yields the CSV text in chunks of about `chunkRows` rows, header first. */
export function* syntheticDisk(o: SyntheticDiskOptions, chunkRows = 8192): Generator<string> {
  const rand = prng(o.seed);
  const total = o.clients.reduce((a, c) => a + c.perSecond, 0);
  const end = sToNs(o.seconds);
  const withContainers = o.clients.some((c) => c.container !== undefined);
  let out = `ts_ns,vm,op,offset,bytes,latency_ns${withContainers ? ',container' : ''}\n`;
  let n = 0;
  let arrival = 0;
  let free = 0;
  let offset = 0;
  for (;;) {
    // Poisson arrivals of all clients together; each request is one client's by its rate.
    arrival += sToNs(-Math.log(1 - rand()) / total);
    if (arrival >= end) break;
    let r = rand() * total;
    let c = o.clients[o.clients.length - 1]!;
    for (const k of o.clients) if ((r -= k.perSecond) < 0) {
      c = k;
      break;
    }
    const service = Math.round(1e6 + rand() * 7e6 + transferNs(c.bytes, o.rateBps));
    const start = Math.max(arrival, free);
    const done = Math.round(start + service);
    if (done >= end) break;
    free = done;
    offset = rand() < 0.7 ? offset + c.bytes : Math.floor(rand() * 2 ** 30) * 512;
    out += `${o.startNs + BigInt(done)},${c.vm},${c.op},${offset},${c.bytes},${service}${withContainers ? `,${c.container ?? ''}` : ''}\n`;
    if (++n % chunkRows === 0) {
      yield out;
      out = '';
    }
  }
  if (out !== '') yield out;
}
