/**
 * The importers' shared parts, as Perfetto splits its importers into tokenizers and trackers: a
 * tokenizer (per format) turns a line or record into a typed event; a tracker per concern turns
 * events into rows of wattrace's formats (docs/formats.md); one writer writes them. Each tracker
 * knows nothing of the format it is fed from, so the text and the binary ftrace readers share them.
 *   SwitchTracker  — a context switch on a CPU → a cswitch row naming the VM switched out; keeps
 *                    each CPU's first and last switch, so the summary says how much of each CPU's
 *                    time the trace covers (a short trace's large `(unattributed)` share, explained
 *                    before the replay).
 *   BlockTracker   — block requests issued and completed (ftrace's block_rq_issue/complete),
 *                    paired by device and sector (first in, first out), → disk rows with their
 *                    latency.
 *   BlkRequestTracker — blktrace's request life cycle (Q, M, F, X, R, D, C): each completion
 *                    paired with its client and service time (blkparse.ts feeds it).
 *   DiskRows       — disk rows that are already whole (DiskSim, vscsi, MSR, blkparse): checked to
 *                    be in time order, counted by VM, first and last time kept.
 *   CsvOut         — the one writer: a buffered CSV file with its header, removed again when the
 *                    import fails.
 */
import fs from 'node:fs';
import { WattraceError, type Where } from '../core/errors.js';

/** A CSV output written in blocks; `discard` removes it (an import that failed leaves nothing). */
export class CsvOut {
  private fd: number;
  private buf: string[] = [];
  /** Rows written (the header not counted). */
  rows = 0;

  constructor(
    readonly file: string,
    header: string,
  ) {
    this.fd = fs.openSync(file, 'w');
    this.buf.push(header);
  }

  row(line: string): void {
    this.rows++;
    this.buf.push(line);
    if (this.buf.length >= 8192) this.flush();
  }

  private flush(): void {
    if (this.buf.length > 0) fs.writeSync(this.fd, this.buf.join('\n') + '\n');
    this.buf = [];
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = -1;
  }

  discard(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    fs.rmSync(this.file, { force: true });
  }
}

/** Rows counted by VM, with the first and last time seen. */
export class RowTally {
  rows = 0;
  readonly byVm: Record<string, number> = {};
  first: bigint | null = null;
  last: bigint | null = null;

  add(vm: string, t: bigint): void {
    this.rows++;
    this.byVm[vm] = (this.byVm[vm] ?? 0) + 1;
    this.first ??= t;
    this.last = t;
  }

  get span(): { first: bigint; last: bigint } | null {
    return this.first === null || this.last === null ? null : { first: this.first, last: this.last };
  }
}

/** Per-reason counts of what an import passed over. */
export class Skips {
  readonly counts: Record<string, number> = {};
  add(why: string, n = 1): void {
    this.counts[why] = (this.counts[why] ?? 0) + n;
  }
}

/**
 * Each CPU's first and last switch, so the summary says how much of each CPU's time the trace
 * covers: a CPU whose switches cover a small part of the trace's span replays mostly as
 * `(unattributed)`, and the user learns why before the replay.
 */
export class CpuCoverage {
  private readonly first = new Map<number, bigint>();
  private readonly lastAt = new Map<number, bigint>();

  /** The time of the CPU's last switch seen, if any. */
  last(cpu: number): bigint | undefined {
    return this.lastAt.get(cpu);
  }

  see(cpu: number, ns: bigint): void {
    if (!this.first.has(cpu)) this.first.set(cpu, ns);
    this.lastAt.set(cpu, ns);
  }

  /** Per CPU, the share of the trace's span (first to last switch of any CPU) between its first and last switch. */
  coverage(): { cpu: number; fraction: number }[] {
    const firsts = [...this.first.values()];
    const lasts = [...this.lastAt.values()];
    if (firsts.length === 0) return [];
    const t0 = firsts.reduce((a, b) => (b < a ? b : a));
    const t1 = lasts.reduce((a, b) => (b > a ? b : a));
    const span = Number(t1 - t0);
    return [...this.first.keys()].sort((a, b) => a - b).map((cpu) => ({ cpu, fraction: span > 0 ? Number(this.lastAt.get(cpu)! - this.first.get(cpu)!) / span : 0 }));
  }

  /** The first and last switch of any CPU. */
  span(): { first: bigint; last: bigint } | null {
    const firsts = [...this.first.values()];
    if (firsts.length === 0) return null;
    return { first: firsts.reduce((a, b) => (b < a ? b : a)), last: [...this.lastAt.values()].reduce((a, b) => (b > a ? b : a)) };
  }

  /** One line for the summary: the CPUs' coverage, the least covered named. */
  line(): string | null {
    const c = this.coverage();
    if (c.length === 0) return null;
    const pct = (f: number) => `${(f * 100).toFixed(f < 0.995 ? 1 : 0)}%`;
    const worst = [...c].sort((a, b) => a.fraction - b.fraction).slice(0, 4);
    const all = c.every((x) => x.fraction >= 0.995);
    return all
      ? `each of the ${c.length} CPUs is covered from its first to its last switch over ≥ 99.5% of the trace's span`
      : `share of the trace's span between each CPU's first and last switch (the rest replays as (unattributed)): ${worst.map((x) => `cpu ${x.cpu} ${pct(x.fraction)}`).join(', ')}${c.length > worst.length ? ` (lowest ${worst.length} of ${c.length})` : ''}`;
  }
}

/** Context switches → cswitch rows `ts_ns,cpu,vm,tsc` (no counter columns). */
export class SwitchTracker {
  switches = 0;
  readonly byVm: Record<string, number> = {};
  readonly cpus = new CpuCoverage();
  private lastAny: { ns: bigint; cpu: number } | null = null;

  constructor(
    private readonly out: CsvOut,
    private readonly vmOf: (comm: string, pid: string) => string,
  ) {}

  /** The task `comm` (pid) left `cpu` at `ns` (TSC reading `tsc`). */
  switchOut(cpu: number, ns: bigint, tsc: bigint, comm: string, pid: string, where: Where): void {
    const prev = this.cpus.last(cpu);
    if (prev !== undefined && ns < prev) {
      throw new WattraceError('E_ORDER', `time goes backwards on cpu ${cpu}: a switch at ${ns} ns after one at ${prev} ns (sort each CPU's events by time)`, where);
    }
    // One stream in time order, as trace-cmd report, the tracefs trace file and perf print it;
    // per-CPU files joined would pair block events wrongly and cannot be replayed.
    if (this.lastAny !== null && ns < this.lastAny.ns) {
      throw new WattraceError('E_ORDER', `time goes backwards across CPUs: a switch at ${ns} ns on cpu ${cpu} after one at ${this.lastAny.ns} ns on cpu ${this.lastAny.cpu} (per-CPU files joined? sort the events by time, as trace-cmd report does)`, where);
    }
    this.lastAny = { ns, cpu };
    this.cpus.see(cpu, ns);
    const vm = this.vmOf(comm, pid);
    this.out.row(`${ns},${cpu},${vm},${tsc}`);
    this.switches++;
    this.byVm[vm] = (this.byVm[vm] ?? 0) + 1;
  }

  coverageLine(): string | null {
    return this.cpus.line();
  }
}

/** Block requests → disk rows `ts_ns,vm,op,offset,bytes,latency_ns`. */
export class BlockTracker {
  requests = 0;
  private readonly issued = new Map<string, { t: bigint; vm: string; bytes: bigint }[]>();
  private lastDisk = -1n;
  /** The device whose requests are the disk log (`maj,min` of the first completion). */
  private device: string | null = null;

  constructor(
    private readonly out: CsvOut,
    private readonly skips: Skips,
  ) {}

  issue(dev: string, sector: string, ns: bigint, vm: string, bytes: bigint): void {
    const key = `${dev}:${sector}`;
    const q = this.issued.get(key);
    if (q) q.push({ t: ns, vm, bytes });
    else this.issued.set(key, [{ t: ns, vm, bytes }]);
  }

  /** A completion; `error` is the kernel's (`[-5]` printed after the extent), '0' for none. */
  complete(dev: string, sector: string, ns: bigint, rwbs: string, where: Where, error = '0'): void {
    const key = `${dev}:${sector}`;
    const q = this.issued.get(key);
    const iss = q?.shift();
    if (q && q.length === 0) this.issued.delete(key);
    if (!iss) {
      this.skips.add('a completion whose issue is not in the trace');
      return;
    }
    if (error !== '0') {
      this.skips.add(`a failed request (error ${error})`);
      return;
    }
    // One disk log, one disk: requests of other devices are counted, not merged into it.
    this.device ??= dev;
    if (dev !== this.device) {
      this.skips.add(`a request on device ${dev}, not on ${this.device} (the first device's requests are the disk log; one device per import)`);
      return;
    }
    if (!/[RW]/.test(rwbs)) {
      this.skips.add(`a request of rwbs ${rwbs} (no data transfer)`);
      return;
    }
    if (ns < this.lastDisk) throw new WattraceError('E_ORDER', 'a completion earlier than the previous one (sort the trace by time)', where);
    this.lastDisk = ns;
    this.out.row(`${ns},${iss.vm},${rwbs.includes('W') ? 'W' : 'R'},${BigInt(sector) * 512n},${iss.bytes},${ns - iss.t}`);
    this.requests++;
  }

  /** Issues still waiting at the end are counted as skipped. */
  finish(): void {
    let n = 0;
    for (const q of this.issued.values()) n += q.length;
    if (n > 0) this.skips.add('an issue whose completion is not in the trace', n);
  }
}

/**
 * Whole disk requests → disk rows `ts_ns,vm,op,offset,bytes[,latency_ns][,disk]`, in time order
 * (per disk where a disk column is written): a row earlier than the one before is an error.
 */
export class DiskRows {
  readonly tally = new RowTally();
  readonly byDisk: Record<string, number> = {};
  private readonly lastT = new Map<string, bigint>();

  constructor(
    readonly out: CsvOut,
    private readonly columns: { latency: boolean; disk: boolean },
  ) {}

  static header(columns: { latency: boolean; disk: boolean }): string {
    return `ts_ns,vm,op,offset,bytes${columns.latency ? ',latency_ns' : ''}${columns.disk ? ',disk' : ''}`;
  }

  row(t: bigint, vm: string, op: 'R' | 'W', offset: bigint, bytes: bigint, where: Where, latency?: bigint, disk = ''): void {
    const last = this.lastT.get(disk);
    if (last !== undefined && t < last) {
      throw new WattraceError('E_ORDER', `time goes backwards (${t} after ${last}${disk ? ` on ${disk}` : ''}): a disk log must be in time order; sort the input first`, where);
    }
    this.lastT.set(disk, t);
    this.out.row(`${t},${vm},${op},${offset},${bytes}${this.columns.latency ? `,${latency ?? ''}` : ''}${this.columns.disk ? `,${disk}` : ''}`);
    this.tally.add(vm, t);
    if (this.columns.disk) this.byDisk[disk] = (this.byDisk[disk] ?? 0) + 1;
  }
}

/** blktrace's request kinds: reads, writes, discards, and requests without data (flushes). */
export type BlkKind = 'R' | 'W' | 'D' | 'N';

/** rwbs (`WS`, `RA`, `D`, `FN`, …) to the kind of request. */
export const blkKindOf = (rwbs: string): BlkKind => (rwbs.includes('D') ? 'D' : rwbs.includes('W') ? 'W' : rwbs.includes('R') ? 'R' : 'N');

interface BlkQueued {
  t: bigint;
  vm: string;
  kind: BlkKind;
}
interface BlkIssued extends BlkQueued {
  sectors: bigint;
}

/**
 * A block request's life cycle as blktrace records it, keyed by device and start sector (first in,
 * first out when two are in flight at one sector; an entry matches only its own kind):
 * queued (`Q`) → merged (`M` back, `F` front) or split (`X`) → dispatched (`D`, requeued `R`) →
 * completed (`C`). `complete` returns the client and the start of the service time, or null with
 * the reason counted as a skip.
 */
export class BlkRequestTracker {
  /** Queued bios by `dev:sector`: client, time, kind. */
  private readonly queued = new Map<string, BlkQueued[]>();
  /** Dispatched requests by `dev:sector`: client, dispatch time, sectors left, kind. */
  private readonly issued = new Map<string, BlkIssued[]>();

  constructor(private readonly skips: Skips) {}

  private static take<T extends { kind: BlkKind }>(m: Map<string, T[]>, key: string, kind: BlkKind): T | undefined {
    const list = m.get(key);
    const i = list ? list.findIndex((x) => x.kind === kind) : -1;
    if (i < 0) return undefined;
    const [x] = list!.splice(i, 1);
    if (list!.length === 0) m.delete(key);
    return x;
  }

  private static put<T>(m: Map<string, T[]>, key: string, x: T, front = false): void {
    const list = m.get(key);
    if (!list) m.set(key, [x]);
    else if (front) list.unshift(x);
    else list.push(x);
  }

  /** Devices that remap their I/O to others (device-mapper, md: the source of an `A`). */
  private readonly remapping = new Set<string>();
  /** The client of a remapped bio, for its `Q` on the device below. */
  private readonly remappedClient = new Map<string, string>();

  /** `Q`: a bio of client `vm` queued at `sector` (a remapped bio keeps its client from above). */
  queue(dev: string, sector: bigint, kind: BlkKind, t: bigint, vm: string): void {
    const key = `${dev}:${sector}`;
    const from = this.remappedClient.get(key);
    if (from !== undefined) this.remappedClient.delete(key);
    BlkRequestTracker.put(this.queued, key, { vm: from ?? vm, t, kind });
  }

  /**
   * `A … <- (fromDev) fromSector`: the bio at `fromDev:fromSector` goes on at `dev:sector`. Its
   * client goes with it; `fromDev`'s own completions are then not counted (its I/O is counted on
   * the device below: a device-mapper or md device is no disk of its own).
   */
  remap(dev: string, sector: bigint, fromDev: string, fromSector: bigint, kind: BlkKind): void {
    this.remapping.add(fromDev);
    const q = this.queued.get(`${fromDev}:${fromSector}`)?.find((e) => e.kind === kind);
    if (q) this.remappedClient.set(`${dev}:${sector}`, q.vm);
  }

  /** `M`: the bio at `sector` joined the request before it, and rides with it. */
  backMerge(dev: string, sector: bigint, kind: BlkKind): void {
    BlkRequestTracker.take(this.queued, `${dev}:${sector}`, kind);
  }

  /** `F`: the bio at `sector` (n sectors) joined the request after it, which now starts at `sector`. */
  frontMerge(dev: string, sector: bigint, n: bigint, kind: BlkKind): void {
    BlkRequestTracker.take(this.queued, `${dev}:${sector}`, kind);
    const req = BlkRequestTracker.take(this.queued, `${dev}:${sector + n}`, kind);
    if (req) BlkRequestTracker.put(this.queued, `${dev}:${sector}`, req);
  }

  /** `X a / b`: the part from `b` has the client of the bio at `a` (else `vm`, the splitting task's). */
  split(dev: string, sector: bigint, newSector: bigint, kind: BlkKind, t: bigint, vm: () => string): void {
    const q = this.queued.get(`${dev}:${sector}`)?.find((e) => e.kind === kind);
    BlkRequestTracker.put(this.queued, `${dev}:${newSector}`, { vm: q?.vm ?? vm(), t: q?.t ?? t, kind });
  }

  /** `R`: requeued, first in line again at its sector with its client. */
  requeue(dev: string, sector: bigint, kind: BlkKind): void {
    const i = BlkRequestTracker.take(this.issued, `${dev}:${sector}`, kind);
    if (i) BlkRequestTracker.put(this.queued, `${dev}:${sector}`, { vm: i.vm, t: i.t, kind }, true);
  }

  /** `D`: dispatched to the driver; the client is its queueing's, else `vm` (the dispatching task's). */
  dispatch(dev: string, sector: bigint, n: bigint, kind: BlkKind, t: bigint, vm: () => string): void {
    const q = BlkRequestTracker.take(this.queued, `${dev}:${sector}`, kind);
    BlkRequestTracker.put(this.issued, `${dev}:${sector}`, { t, vm: q?.vm ?? vm(), sectors: n, kind });
  }

  /**
   * `C` of n sectors from `sector`, with blktrace's error (`'0'` for none): the dispatch it
   * completes (on a bio-based device without dispatches, the queueing). A partial completion
   * leaves the rest in flight from the next sector. Returns the client and the service time's
   * start, or null (counted) for a discard, a request without data, a failure, or one whose
   * queueing and dispatch precede the trace.
   */
  complete(dev: string, sector: bigint, n: bigint, kind: BlkKind, rwbs: string, error: string): { vm: string; since: bigint } | null {
    const key = `${dev}:${sector}`;
    const iss: BlkQueued | undefined = BlkRequestTracker.take(this.issued, key, kind) ?? BlkRequestTracker.take(this.queued, key, kind);
    if (this.remapping.has(dev)) {
      this.skips.add(`a completion on ${dev}, which remaps its I/O to another device (device-mapper, md): counted on the device below`);
      return null;
    }
    const failed = error !== '0';
    if (iss && 'sectors' in iss && !failed) {
      const left = (iss as BlkIssued).sectors - n;
      if (left > 0n) BlkRequestTracker.put(this.issued, `${dev}:${sector + n}`, { ...(iss as BlkIssued), sectors: left });
    }
    if (kind === 'D') this.skips.add('a discard');
    else if (kind === 'N') this.skips.add(`a request without data (rwbs ${rwbs})`);
    else if (failed) this.skips.add(`a failed request (error ${error})`);
    else if (!iss) this.skips.add('a completion whose queueing or dispatch is not in the trace');
    else return { vm: iss.vm, since: iss.t };
    return null;
  }

  /** What is still in flight at the end is counted as skipped. */
  finish(): void {
    const left = (m: Map<string, unknown[]>) => [...m.values()].reduce((a, l) => a + l.length, 0);
    if (left(this.issued) > 0) this.skips.add('a dispatch whose completion is not in the trace', left(this.issued));
    if (left(this.queued) > 0) this.skips.add('a queued bio neither dispatched nor completed in the trace', left(this.queued));
  }
}
