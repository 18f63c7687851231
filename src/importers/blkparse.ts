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
 * - a requeued request (`R`) keeps its client; its service time is from its last dispatch;
 * - a remap (`A … <- (253,0) s`, device-mapper or md) hands the bio's client to the device below,
 *   and the remapping device's own completions are skipped: the I/O is counted once, below.
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
 * name them, else `dev<maj>_<min>`. The starter profile lists each disk with starter figures to replace with measured ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { NS_PER_S_BIG } from '../core/units.js';
import { textLines } from './text.js';
import { matcher, STARTER_DISK, STARTER_IDLE_WATTS, starterServices, starterVms, taskMapper, writeProfile, type Mapping } from './mapping.js';
import type { Importer, ImportSummary } from './importer.js';
import { BlkRequestTracker, blkKindOf, CsvOut, DiskRows, Skips } from './trackers.js';

/** `maj,min cpu seq sec.nsec pid action rwbs rest` */
const EVENT = /^\s*(\d+),(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\.(\d{9})\s+(\d+)\s+([A-Za-z]{1,2})\s+([A-Z]+)\s*(.*)$/;
/** `sector + nr_sectors [(duration)] [comm or error]` (the duration with blkparse -t) */
const EXTENT = /^(\d+)\s+\+\s+(\d+)(?:\s+\(\s*\d+\))?(?:\s+\[(.*)\])?/;
const STARTS_LIKE_EVENT = /^\s*\d+,\d+\s/;
const SUMMARY = /^(CPU\d+|Total) \(.*\):$/;

export const blkparseImporter: Importer = {
  format: 'blkparse',
  expects: "blkparse's default output (lines 'maj,min cpu seq sec.nsec pid action rwbs …' with Q/D/C events)",
  finds: 'requests',
  run: (inputs, outDir, o) => importBlkparse(inputs, outDir, o.mapping),
};

export async function importBlkparse(inputs: readonly string[], outDir: string, mapping: Mapping): Promise<ImportSummary> {
  const vmOf = taskMapper(mapping, false);
  const diskId = matcher(mapping.disks);
  const diskOf = (dev: string) => diskId(dev) ?? `dev${dev.replace(',', '_')}`;
  if (inputs.length !== 1) throw new WattraceError('E_USAGE', 'blkparse imports one output at a time (blkparse itself merges the per-CPU files of a recording; each output counts time from its own first event)');
  const file = inputs[0]!;
  if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'blkparse input does not exist', { file });

  fs.mkdirSync(outDir, { recursive: true });
  const columns = { latency: true, disk: true };
  const out = new CsvOut(path.join(outDir, 'disk.csv'), DiskRows.header(columns));
  const rows = new DiskRows(out, columns);
  const skips = new Skips();
  const requests = new BlkRequestTracker(skips);
  try {
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
        } else if (raw.trim() !== '') skips.add('a line that is not a blkparse event');
        continue;
      }
      const [, maj, min, , , sec, nsec, pid, action, rwbs, rest] = m as unknown as [string, string, string, string, string, string, string, string, string, string, string];
      const t = BigInt(sec) * NS_PER_S_BIG + BigInt(nsec);
      const dev = `${maj},${min}`;
      const kind = blkKindOf(rwbs);
      const x = EXTENT.exec(rest);
      if (action === 'X') {
        // A split: `sector / new_sector [comm]`; the remainder from new_sector has the same client.
        const sp = /^(\d+)\s+\/\s+(\d+)/.exec(rest);
        if (sp) requests.split(dev, BigInt(sp[1]!), BigInt(sp[2]!), kind, t, () => vmOf(/\[(.*)\]\s*$/.exec(rest)?.[1] ?? '', pid));
        continue;
      }
      if (action === 'A') {
        // A remap: `sector + n <- (maj,min) from_sector`.
        const a = /^(\d+)\s+\+\s+\d+\s+<-\s+\((\d+),\s*(\d+)\)\s+(\d+)/.exec(rest);
        if (a) requests.remap(dev, BigInt(a[1]!), `${a[2]},${a[3]}`, BigInt(a[4]!), kind);
        continue;
      }
      if (!x) {
        if (action === 'C') skips.add(`a request without a sector (a flush or a SCSI command; rwbs ${rwbs})`);
        continue;
      }
      const sector = BigInt(x[1]!);
      const n = BigInt(x[2]!);
      const task = () => vmOf(x[3] ?? '', pid);
      if (action === 'Q') requests.queue(dev, sector, kind, t, task());
      else if (action === 'M') requests.backMerge(dev, sector, kind);
      else if (action === 'F') requests.frontMerge(dev, sector, n, kind);
      else if (action === 'R') requests.requeue(dev, sector, kind);
      else if (action === 'D') requests.dispatch(dev, sector, n, kind, t, task);
      else if (action === 'C') {
        const done = requests.complete(dev, sector, n, kind, rwbs, x[3] ?? '0');
        if (!done) continue;
        const where = { file, line };
        try {
          rows.row(t, done.vm, kind as 'R' | 'W', sector * 512n, n * 512n, where, t - done.since, diskOf(dev));
        } catch (e) {
          if (e instanceof WattraceError && e.code === 'E_ORDER') throw new WattraceError('E_ORDER', `a completion earlier than the previous one on ${dev}: blkparse sorts events by time, so the input is not its output`, where);
          throw e;
        }
      }
      // G, I, P, U, T, S, B, m: steps of a request that Q, D and C already follow.
    }
    requests.finish();
    out.close();
  } catch (e) {
    out.discard();
    throw e;
  }
  const s: ImportSummary = {
    format: 'blkparse',
    outputs: [{ file: out.file, rows: rows.tally.rows, what: 'requests' }],
    found: rows.tally.rows,
    span: rows.tally.span,
    byVm: rows.tally.byVm,
    byDisk: rows.byDisk,
    skipped: skips.counts,
    coverage: null,
    profile: path.join(outDir, 'machine.json'),
    notes: [],
  };
  writeStarterProfile(s, mapping, inputs);
  return s;
}

function writeStarterProfile(s: ImportSummary, mapping: Mapping, inputs: readonly string[]): void {
  const vms = Object.keys(s.byVm).sort();
  const disks = Object.keys(s.byDisk ?? {}).sort();
  writeProfile(s.profile!, {
    description: `Starter profile from wattrace import blkparse (${inputs.map((f) => path.basename(f)).join(', ')}): the disks' power figures are starter values to replace with measured ones; the CPU section is only there because every profile has one (blkparse records no CPU time).`,
    cpu: { tsc_hz: 1e9, idle_watts: STARTER_IDLE_WATTS, counter_bits: 64, idle_split: 'by-time', events: {} },
    disks: Object.fromEntries(disks.map((d) => [d, STARTER_DISK])),
    vms: starterVms([...new Set([...vms, ...(mapping.drivers ?? [])])].sort(), mapping),
    services: starterServices(vms, mapping, disks.map((d) => ({ id: `v${d}`, device: d }))),
  });
}
