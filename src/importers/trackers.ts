/**
 * The importers' shared parts, as Perfetto splits its importers into tokenizers and trackers: a
 * tokenizer (per format) turns a line or record into a typed event; a tracker per concern turns
 * events into rows of wattrace's formats (docs/formats.md); one writer writes them. Each tracker
 * knows nothing of the format it is fed from, so the text and the binary ftrace readers share them.
 *   SwitchTracker  — a context switch on a CPU → a cswitch row naming the VM switched out; keeps
 *                    each CPU's first and last switch, so the summary says how much of each CPU's
 *                    time the trace covers (a short trace's large `(unattributed)` share, explained
 *                    before the replay).
 *   BlockTracker   — block requests issued and completed, paired by device and sector (first in,
 *                    first out), → disk rows with their latency.
 *   CsvOut         — a buffered CSV file with its header, removed again when the import fails.
 */
import fs from 'node:fs';
import { WattraceError, type Where } from '../core/errors.js';

/** A CSV output written in blocks; `discard` removes it (an import that failed leaves nothing). */
export class CsvOut {
  private fd: number;
  private buf: string[] = [];

  constructor(
    readonly file: string,
    header: string,
  ) {
    this.fd = fs.openSync(file, 'w');
    this.buf.push(header);
  }

  row(line: string): void {
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

/** Per-reason counts of what an import passed over. */
export class Skips {
  readonly counts: Record<string, number> = {};
  add(why: string, n = 1): void {
    this.counts[why] = (this.counts[why] ?? 0) + n;
  }
}

/** Context switches → cswitch rows `ts_ns,cpu,vm,tsc` (no counter columns). */
export class SwitchTracker {
  switches = 0;
  readonly byVm: Record<string, number> = {};
  private readonly first = new Map<number, bigint>();
  private readonly last = new Map<number, bigint>();

  constructor(
    private readonly out: CsvOut,
    private readonly vmOf: (comm: string, pid: string) => string,
  ) {}

  /** The task `comm` (pid) left `cpu` at `ns` (TSC reading `tsc`). */
  switchOut(cpu: number, ns: bigint, tsc: bigint, comm: string, pid: string, where: Where): void {
    const prev = this.last.get(cpu);
    if (prev !== undefined && ns < prev) {
      throw new WattraceError('E_ORDER', `time goes backwards on cpu ${cpu}: a switch at ${ns} ns after one at ${prev} ns (sort each CPU's events by time)`, where);
    }
    if (prev === undefined) this.first.set(cpu, ns);
    this.last.set(cpu, ns);
    const vm = this.vmOf(comm, pid);
    this.out.row(`${ns},${cpu},${vm},${tsc}`);
    this.switches++;
    this.byVm[vm] = (this.byVm[vm] ?? 0) + 1;
  }

  /**
   * Per CPU, the share of the trace's span (first to last switch of any CPU) between that CPU's
   * first and last switch: the rest is time nobody can be charged with (`(unattributed)`).
   */
  coverage(): { cpu: number; fraction: number }[] {
    const firsts = [...this.first.values()];
    const lasts = [...this.last.values()];
    if (firsts.length === 0) return [];
    const t0 = firsts.reduce((a, b) => (b < a ? b : a));
    const t1 = lasts.reduce((a, b) => (b > a ? b : a));
    const span = Number(t1 - t0);
    return [...this.first.keys()].sort((a, b) => a - b).map((cpu) => ({ cpu, fraction: span > 0 ? Number(this.last.get(cpu)! - this.first.get(cpu)!) / span : 0 }));
  }

  /** One line for the summary: the CPUs' coverage, the least covered named. */
  coverageLine(): string | null {
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

/** Block requests → disk rows `ts_ns,vm,op,offset,bytes,latency_ns`. */
export class BlockTracker {
  requests = 0;
  private readonly issued = new Map<string, { t: bigint; vm: string; bytes: bigint }[]>();
  private lastDisk = -1n;

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

  complete(dev: string, sector: string, ns: bigint, rwbs: string, where: Where): void {
    const key = `${dev}:${sector}`;
    const q = this.issued.get(key);
    const iss = q?.shift();
    if (q && q.length === 0) this.issued.delete(key);
    if (!iss) {
      this.skips.add('a completion whose issue is not in the trace');
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
