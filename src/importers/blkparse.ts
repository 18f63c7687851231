/**
 * `wattrace import blkparse`: the default text output of blkparse(1) to a disk request log
 * (docs/formats.md, `ts_ns,vm,op,offset,bytes,latency_ns,disk`) and a starter profile, streaming.
 *
 * A line of the default format is `maj,min cpu seq sec.nsec pid action rwbs rest`, e.g.
 * `254,0  1  4  0.000069000  77  D  WS 200000 + 128 [kworker/1:1H]`. A request is followed from
 * its queueing (`Q`, in the context of the task that submitted it: that task's VM is the client)
 * through its dispatch to the driver (`D`, often in a kworker's context) to its completion (`C`),
 * keyed by device and start sector (first in, first out when two are in flight at one sector, a
 * completion matched to a dispatch of its own direction), the way the block layer's trace points
 * pair up:
 * - the client is the VM of the `Q` at the request's start sector; a bio back-merged into a
 *   request (`M`) rides with it, a front merge (`F`) moves the request's start to the bio's sector
 *   and keeps its client, a split (`X a / b`) gives the part from b the client of a; without a
 *   `Q` in the trace, the client is the task of the `D`;
 * - the completion is the disk log row: `ts_ns` the `C` time, bytes from its `+ sectors`, op R or W
 *   from rwbs, `latency_ns` = C − D (the device's service time, as with ftrace's issue/complete);
 *   a partial completion writes its part and the rest stays in flight from the next sector; on a
 *   bio-based device (dm, md: `Q` then `C`, no `D`) the service time is C − Q;
 * - a requeued request (`R`) keeps its client; its service time is from its last dispatch.
 * Counted skips (never silent): completions with an error, discards, requests that move no data
 * or have no sector (flushes, SCSI commands), completions whose queueing or dispatch precedes the
 * trace, dispatches still in flight at its end, lines that are not events (notes, `-s` per-program
 * statistics). The per-CPU and total statistics blkparse appends (`CPU0 (vda):` …) end the
 * events; an event after them (outputs run together) or a line that starts like an event but
 * does not parse is an error naming it. One blkparse output per import (blkparse merges the
 * per-CPU files of a recording itself).
 *
 * Times: blkparse prints seconds since the first event (`%5T.%9t`), which become `ts_ns`. Disks:
 * one disk log for all devices, with a `disk` column: the mapping's `disks` (regexes on `maj,min`)
 * name them, else `dev<maj>_<min>`. The starter profile lists each disk with placeholder figures.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { NS_PER_S_BIG } from '../core/units.js';
import { textLines } from './text.js';
import { matcher, STARTER_DISK, STARTER_IDLE_WATTS, starterServices, starterVms, taskMapper, writeProfile, type Mapping } from './mapping.js';

/** Reads, writes, discards, and requests without data (flushes). */
type Kind = 'R' | 'W' | 'D' | 'N';

/** rwbs (`WS`, `RA`, `D`, `FN`, …) to the kind of request. */
const kindOf = (rwbs: string): Kind => (rwbs.includes('D') ? 'D' : rwbs.includes('W') ? 'W' : rwbs.includes('R') ? 'R' : 'N');

interface Queued {
  t: bigint;
  vm: string;
  kind: Kind;
}

interface Issued extends Queued {
  sectors: bigint;
}

export interface BlkparseSummary {
  format: 'blkparse';
  written: number;
  skipped: Record<string, number>;
  byVm: Record<string, number>;
  byDisk: Record<string, number>;
  first: string | null;
  last: string | null;
  out: string;
  profile: string;
}

/** `maj,min cpu seq sec.nsec pid action rwbs rest` */
const EVENT = /^\s*(\d+),(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\.(\d{9})\s+(\d+)\s+([A-Za-z]{1,2})\s+([A-Z]+)\s*(.*)$/;
/** `sector + nr_sectors [comm or error]` */
const EXTENT = /^(\d+)\s+\+\s+(\d+)(?:\s+\[(.*)\])?/;
const STARTS_LIKE_EVENT = /^\s*\d+,\d+\s/;
const SUMMARY = /^(CPU\d+|Total) \(.*\):$/;

export async function importBlkparse(inputs: readonly string[], outDir: string, mapping: Mapping): Promise<BlkparseSummary> {
  const vmOf = taskMapper(mapping, false);
  const diskId = matcher(mapping.disks);
  const diskOf = (dev: string) => diskId(dev) ?? `dev${dev.replace(',', '_')}`;

  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, 'disk.csv');
  const fd = fs.openSync(out, 'w');
  let buf = ['ts_ns,vm,op,offset,bytes,latency_ns,disk'];
  const s: BlkparseSummary = { format: 'blkparse', written: 0, skipped: {}, byVm: {}, byDisk: {}, first: null, last: null, out, profile: path.join(outDir, 'machine.json') };
  const skip = (why: string) => (s.skipped[why] = (s.skipped[why] ?? 0) + 1);
  /** Queued bios by `dev:sector` (FIFO: two bios may start at one sector): client, time, kind. */
  const queued = new Map<string, Queued[]>();
  /** Dispatched requests by `dev:sector`: client, dispatch time, sectors left, kind. */
  const issued = new Map<string, Issued[]>();
  const lastT = new Map<string, bigint>();
  /** The first entry at `key` of the given kind (none of another kind). */
  const take = <T extends { kind: Kind }>(m: Map<string, T[]>, key: string, kind: Kind): T | undefined => {
    const list = m.get(key);
    const i = list ? list.findIndex((x) => x.kind === kind) : -1;
    if (i < 0) return undefined;
    const [x] = list!.splice(i, 1);
    if (list!.length === 0) m.delete(key);
    return x;
  };
  const put = <T>(m: Map<string, T[]>, key: string, x: T, front = false) => {
    const list = m.get(key);
    if (!list) m.set(key, [x]);
    else if (front) list.unshift(x);
    else list.push(x);
  };
  if (inputs.length !== 1) throw new WattraceError('E_USAGE', 'blkparse imports one output at a time (blkparse itself merges the per-CPU files of a recording; each output counts time from its own first event)');
  const file = inputs[0]!;

  try {
    if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'blkparse input does not exist', { file });
    let inSummary = false;
    for await (const { line, raw } of textLines(file)) {
      const m = EVENT.exec(raw);
      if (inSummary) {
        if (m) throw new WattraceError('E_FIELD', 'an event after blkparse\'s closing statistics: several outputs run together? Import one at a time', { file, line });
        continue;
      }
      if (!m) {
        if (SUMMARY.test(raw)) inSummary = true;
        else if (STARTS_LIKE_EVENT.test(raw)) {
          throw new WattraceError('E_FIELD', `a line that does not read 'maj,min cpu seq sec.nsec pid action rwbs ...' (blkparse's default format): '${raw.trim()}'`, { file, line });
        } else if (raw.trim() !== '') skip('a line that is not a blkparse event');
        continue;
      }
      const [, maj, min, , , sec, nsec, pid, action, rwbs, rest] = m as unknown as [string, string, string, string, string, string, string, string, string, string, string];
      const t = BigInt(sec) * NS_PER_S_BIG + BigInt(nsec);
      const dev = `${maj},${min}`;
      const x = EXTENT.exec(rest);
      const at = (sector: bigint) => `${dev}:${sector}`;
      if (action === 'X') {
        // A split: `sector / new_sector [comm]`; the remainder from new_sector has the same client.
        const sp = /^(\d+)\s+\/\s+(\d+)/.exec(rest);
        if (sp) {
          const kind = kindOf(rwbs);
          const q = queued.get(at(BigInt(sp[1]!)))?.find((e) => e.kind === kind);
          put(queued, at(BigInt(sp[2]!)), { vm: q?.vm ?? vmOf(/\[(.*)\]\s*$/.exec(rest)?.[1] ?? '', pid), t: q?.t ?? t, kind });
        }
        continue;
      }
      if (!x) {
        if (action === 'C') skip(`a request without a sector (a flush or a SCSI command; rwbs ${rwbs})`);
        continue;
      }
      const sector = BigInt(x[1]!);
      const n = BigInt(x[2]!);
      const kind = kindOf(rwbs);
      if (action === 'Q') put(queued, at(sector), { vm: vmOf(x[3] ?? '', pid), t, kind });
      else if (action === 'M') take(queued, at(sector), kind); // the bio joined the request before it
      else if (action === 'F') {
        // The bio joined the request after it, which now starts at the bio's sector.
        take(queued, at(sector), kind);
        const req = take(queued, at(sector + n), kind);
        if (req) put(queued, at(sector), req);
      } else if (action === 'R') {
        // Requeued: first in line again at its sector, with its client.
        const i = take(issued, at(sector), kind);
        if (i) put(queued, at(sector), { vm: i.vm, t: i.t, kind }, true);
      } else if (action === 'D') {
        const q = take(queued, at(sector), kind);
        put(issued, at(sector), { t, vm: q?.vm ?? vmOf(x[3] ?? '', pid), sectors: n, kind });
      } else if (action === 'C') {
        const where = { file, line };
        // The dispatch it completes, or on a bio-based device (dm, md: no dispatch) the queueing.
        const iss: Queued | undefined = take(issued, at(sector), kind) ?? take(queued, at(sector), kind);
        const failed = (x[3] ?? '0') !== '0';
        if (iss && 'sectors' in iss && !failed) {
          const left = (iss as Issued).sectors - n;
          // A partial completion: the rest of the request goes on from the next sector.
          if (left > 0n) put(issued, at(sector + n), { ...(iss as Issued), sectors: left });
        }
        if (kind === 'D') {
          skip('a discard');
          continue;
        }
        if (kind === 'N') {
          skip(`a request without data (rwbs ${rwbs})`);
          continue;
        }
        if (failed) {
          skip(`a failed request (error ${x[3]})`);
          continue;
        }
        if (!iss) {
          skip('a completion whose queueing or dispatch is not in the trace');
          continue;
        }
        const op = kind;
        const disk = diskOf(dev);
        const last = lastT.get(disk);
        if (last !== undefined && t < last) throw new WattraceError('E_ORDER', `a completion earlier than the previous one on ${dev}: blkparse sorts events by time, so the input is not its output`, where);
        lastT.set(disk, t);
        buf.push(`${t},${iss.vm},${op},${sector * 512n},${n * 512n},${t - iss.t},${disk}`);
        s.written++;
        s.byVm[iss.vm] = (s.byVm[iss.vm] ?? 0) + 1;
        s.byDisk[disk] = (s.byDisk[disk] ?? 0) + 1;
        s.first ??= t.toString();
        s.last = t.toString();
        if (buf.length >= 8192) {
          fs.writeSync(fd, buf.join('\n') + '\n');
          buf = [];
        }
      }
      // G, I, P, U, T, S, A, B, m: steps of a request that Q, D and C already follow.
    }
    if (buf.length > 0) fs.writeSync(fd, buf.join('\n') + '\n');
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(out, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  const left = (m: Map<string, unknown[]>) => [...m.values()].reduce((a, l) => a + l.length, 0);
  if (left(issued) > 0) s.skipped['a dispatch whose completion is not in the trace'] = left(issued);
  if (left(queued) > 0) s.skipped['a queued bio neither dispatched nor completed in the trace'] = left(queued);
  writeStarterProfile(s, mapping, inputs);
  return s;
}
function writeStarterProfile(s: BlkparseSummary, mapping: Mapping, inputs: readonly string[]): void {
  const vms = Object.keys(s.byVm).sort();
  const disks = Object.keys(s.byDisk).sort();
  writeProfile(s.profile, {
    description: `Starter profile from wattrace import blkparse (${inputs.map((f) => path.basename(f)).join(', ')}): the disks' power figures are placeholders to measure; the CPU section is only there because every profile has one (blkparse records no CPU time).`,
    cpu: { tsc_hz: 1e9, idle_watts: STARTER_IDLE_WATTS, counter_bits: 64, idle_split: 'by-time', events: {} },
    disks: Object.fromEntries(disks.map((d) => [d, STARTER_DISK])),
    vms: starterVms([...new Set([...vms, ...(mapping.drivers ?? [])])].sort(), mapping),
    services: starterServices(vms, mapping, disks.map((d) => ({ id: `v${d}`, device: d }))),
  });
}
