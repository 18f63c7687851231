/**
 * `wattrace import` for public block traces, streaming, to the disk log of docs/formats.md
 * (`ts_ns,vm,op,offset,bytes`):
 * - `disksim`: DiskSim / MQSim ASCII, `arrival device lba_sectors size_sectors type` (type 1
 *   read, 0 write; the arrival in ms with a decimal point as DiskSim writes it, or in whole ns as
 *   MQSim does, told by the file's first 64 KiB; the summary says which). Only arrival times are recorded: they stand in for completion times. A device
 *   is a VM by the mapping (default `dev<N>`).
 * - `vscsi-csv`: CloudPhysics vscsi CSV, `version,time,op,size,lbn` (time in whole seconds, op a
 *   SCSI opcode in hex, lbn 512-byte sectors); one VM's virtual disk (default VM `vm1`).
 * - `vscsi`: the same requests in binary, 32-byte little-endian records `u32 sn, u32 len, u32 nSG,
 *   u16 cmd, u16 ver, u64 lbn, u64 ts_us` (microseconds).
 * - `msr`: the MSR Cambridge CSV, `Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime`
 *   (a first line equal to that header is skipped; Timestamp and ResponseTime in Windows filetime
 *   ticks of 100 ns, rebased from 1601 to the Unix epoch so that ts_ns fits int64; Type Read/Write).
 *   A request completes at Timestamp + ResponseTime, which is what the disk log's ts_ns is, with
 *   the response time as latency_ns; completions come out of arrival order, so they are held in a
 *   heap and written once no later arrival can complete before them (streaming: the heap holds the
 *   requests in flight). A host and disk is a VM by the mapping (key `host:disk`, default `host`).
 * SCSI commands that move no data (not READ/WRITE 6/10/12/16) are skipped and counted. A request
 * earlier than the previous one cannot go into a disk log (it must not go backwards): that is a
 * clear error naming the line (or record), not a silent reorder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { readHead } from '../core/files.js';
import { NS_PER_S_BIG } from '../core/units.js';
import { textLines } from './text.js';
import { mapper, type Mapping } from './mapping.js';
import type { Importer, ImportSummary } from './importer.js';
import { CsvOut, DiskRows, Skips } from './trackers.js';

export type DiskFormat = 'disksim' | 'vscsi-csv' | 'vscsi' | 'msr';
export const DISK_FORMATS: readonly DiskFormat[] = ['disksim', 'vscsi-csv', 'vscsi', 'msr'];

const SCSI_OP: Record<string, 'R' | 'W'> = { '08': 'R', '28': 'R', a8: 'R', '88': 'R', '0a': 'W', '2a': 'W', aa: 'W', '8a': 'W' };

const UINT = /^\d+$/;
/** DiskSim's arrival: milliseconds, a decimal fraction. */
const MS = /^\d+(\.\d*)?$/;

/** Milliseconds written in decimal to whole ns, exactly (digits past the ns are cut). */
function msToNsExact(v: string): bigint {
  const [whole, frac = ''] = v.split('.') as [string, string?];
  return BigInt(whole) * 1_000_000n + BigInt((frac + '000000').slice(0, 6));
}

/** Each (value, column, name) must be a non-negative integer; else an error naming its column. */
function checkUints(where: { file: string; line: number }, ...fields: (readonly [string, number, string])[]): void {
  for (const [v, column, columnName] of fields) {
    if (!UINT.test(v)) throw new WattraceError('E_FIELD', `${columnName} is not a non-negative integer ('${v}')`, { ...where, column, columnName });
  }
}

const EXPECTS: Record<DiskFormat, string> = {
  disksim: 'DiskSim / MQSim ASCII requests (arrival device lba_sectors size_sectors type; arrival in ms with a decimal point, or whole ns)',
  vscsi: 'CloudPhysics vscsi binary records',
  'vscsi-csv': 'CloudPhysics vscsi CSV (version,time,op,size,lbn)',
  msr: 'MSR Cambridge CSV (Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime)',
};

/** The importer of one disk request format. */
export function diskImporter(format: DiskFormat): Importer {
  return { format, expects: EXPECTS[format], finds: 'requests', run: (inputs, outDir, o) => importDisk(format, inputs, outDir, o.mapping) };
}

export async function importDisk(format: DiskFormat, inputs: readonly string[], outDir: string, mapping: Mapping): Promise<ImportSummary> {
  fs.mkdirSync(outDir, { recursive: true });
  const columns = { latency: format === 'msr', disk: false };
  const out = new CsvOut(path.join(outDir, 'disk.csv'), DiskRows.header(columns));
  const w = new DiskRows(out, columns);
  const skips = new Skips();
  const notes: string[] = [];
  try {
    for (const file of inputs) {
      if (!fs.existsSync(file)) throw new WattraceError('E_FILE', `${format} input does not exist`, { file });
      if (format === 'vscsi') await readVscsiBinary(file, w, skips, mapper(mapping, () => 'vm1')(path.basename(file)));
      else if (format === 'msr') await readMsr(file, w, skips, mapping);
      else await readLines(file, format, w, skips, mapping, notes);
    }
    out.close();
  } catch (e) {
    out.discard();
    throw e;
  }
  return {
    format,
    outputs: [{ file: out.file, rows: w.tally.rows, what: 'requests' }],
    found: w.tally.rows,
    span: w.tally.span,
    byVm: w.tally.byVm,
    skipped: skips.counts,
    coverage: null,
    profile: null,
    notes,
  };
}

async function readLines(file: string, format: 'disksim' | 'vscsi-csv', w: DiskRows, skips: Skips, mapping: Mapping, notes: string[]): Promise<void> {
  const vmOf = mapper(mapping, (key) => (format === 'disksim' ? `dev${key}` : 'vm1'));
  // The arrival's unit: DiskSim's own traces write milliseconds with a decimal point (0.000000),
  // MQSim's whole nanoseconds. Any arrival with a decimal point in the file's first 64 KiB says ms.
  const ms = format === 'disksim' && /^\s*\d+\.\d*\s/m.test(readHead(file, 64 << 10).toString('latin1'));
  if (format === 'disksim') notes.push(`note: ${path.basename(file)}: arrivals read as ${ms ? "milliseconds (DiskSim: a decimal point in the file's first lines)" : 'whole nanoseconds (MQSim: no decimal point in the first lines; DiskSim writes ms with one)'}`);
  for await (const { line, raw } of textLines(file)) {
    const s = raw.trim();
    const where = { file, line };
    if (s === '') {
      skips.add('empty line');
      continue;
    }
    if (format === 'disksim') {
      const f = s.split(/\s+/);
      const unit = ms ? 'arrival_ms' : 'arrival_ns';
      if (f.length !== 5 || !(ms ? MS.test(f[0]!) : UINT.test(f[0]!)) || !f.slice(1).every((x) => UINT.test(x))) {
        throw new WattraceError('E_FIELD', `expected ${unit} and 4 non-negative integers (${unit} device lba_sectors size_sectors type, the unit as the file's first lines say: ${ms ? 'ms with a decimal point' : 'whole ns'}); got '${s}'`, where);
      }
      const [arrival, device, lba, size, type] = f as [string, string, string, string, string];
      if (type !== '0' && type !== '1') throw new WattraceError('E_FIELD', `type is ${type}; expected 0 (write) or 1 (read)`, { ...where, column: 5 });
      w.row(ms ? msToNsExact(arrival) : BigInt(arrival), vmOf(device), type === '1' ? 'R' : 'W', BigInt(lba) * 512n, BigInt(size) * 512n, where);
    } else {
      if (line === 1) {
        if (s !== 'version,time,op,size,lbn') throw new WattraceError('E_HEADER', `expected the header version,time,op,size,lbn; got '${s}'`, where);
        continue;
      }
      const f = s.split(',');
      if (f.length !== 5) throw new WattraceError('E_FIELD', `expected 5 fields as in the header, found ${f.length}`, where);
      const [, time, op, size, lbn] = f as [string, string, string, string, string];
      checkUints(where, [time, 2, 'time'], [size, 4, 'size'], [lbn, 5, 'lbn']);
      // The opcode: one byte in hex, with or without 0x and leading zeros (2a, 0x2A, 0x02a: WRITE(10)).
      const hex = op.toLowerCase().replace(/^0x/, '');
      if (!/^[0-9a-f]{1,8}$/.test(hex) || parseInt(hex, 16) > 0xff) throw new WattraceError('E_FIELD', `op is '${op}'; expected a SCSI opcode: one byte in hex (2a or 0x2a)`, { ...where, column: 3 });
      const kind = SCSI_OP[parseInt(hex, 16).toString(16).padStart(2, '0')];
      if (!kind) {
        skips.add(`SCSI command ${op} (no data transfer)`);
        continue;
      }
      w.row(BigInt(time) * NS_PER_S_BIG, vmOf(path.basename(file)), kind, BigInt(lbn) * 512n, BigInt(size), where);
    }
  }
}

async function readVscsiBinary(file: string, w: DiskRows, skips: Skips, vm: string): Promise<void> {
  let rest: Buffer = Buffer.alloc(0);
  let record = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const buf: Buffer = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    let o = 0;
    for (; o + 32 <= buf.length; o += 32) {
      record++;
      // The version is the high byte of `ver` (as libCacheSim's reader tests it): 1 here.
      if (record === 1) {
        const ver = buf.readUInt16LE(o + 14) >> 8;
        if (ver === 2) throw new WattraceError('E_FIELD', 'a vscsi version 2 trace (40-byte records): this importer reads version 1 (32-byte records)', { file, line: 1 });
        if (ver !== 1) throw new WattraceError('E_FIELD', `not a vscsi version 1 record: its version byte is ${ver}`, { file, line: 1 });
      }
      const len = buf.readUInt32LE(o + 4);
      const cmd = buf.readUInt16LE(o + 12);
      const kind = SCSI_OP[cmd.toString(16).padStart(2, '0')];
      if (!kind) {
        skips.add(`SCSI command ${cmd.toString(16)} (no data transfer)`);
        continue;
      }
      w.row(buf.readBigUInt64LE(o + 24) * 1000n, vm, kind, buf.readBigUInt64LE(o + 16) * 512n, BigInt(len), { file, line: record });
    }
    rest = buf.subarray(o);
  }
  if (rest.length > 0) throw new WattraceError('E_FIELD', `the file ends inside a record (${rest.length} of 32 bytes)`, { file, line: record + 1 });
}

/** A binary min-heap of completions (ts, then input order). */
class Heap<T extends { t: bigint; seq: number }> {
  private a: T[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): T | undefined {
    return this.a[0];
  }
  private less(x: T, y: T): boolean {
    return x.t < y.t || (x.t === y.t && x.seq < y.seq);
  }
  push(v: T): void {
    const a = this.a;
    a.push(v);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Windows filetime ticks (100 ns since 1601) to ns. */
const TICK = 100n;
/** 1601-01-01 to 1970-01-01 in filetime ticks: ns since 1601 exceed int64 (2^63 ns ≈ 292 years). */
const FILETIME_UNIX_EPOCH = 116444736000000000n;
/** The header most public copies of the MSR traces carry (the SNIA originals have none). */
const MSR_HEADER = 'timestamp,hostname,disknumber,type,offset,size,responsetime';

async function readMsr(file: string, w: DiskRows, skips: Skips, mapping: Mapping): Promise<void> {
  const vmOf = mapper(mapping, () => 'host');
  const heap = new Heap<{ t: bigint; seq: number; vm: string; op: 'R' | 'W'; offset: bigint; bytes: bigint; lat: bigint; line: number }>();
  let lastArrival = -1n;
  // Filetimes (since 1601) are rebased to the Unix epoch, so ts_ns fits int64; a trace whose
  // timestamps are already small (relative copies) is kept as it is. Decided on the first row.
  let rebase: bigint | null = null;
  for await (const { line, raw } of textLines(file)) {
    const s = raw.trim();
    const where = { file, line };
    if (s === '') {
      skips.add('empty line');
      continue;
    }
    if (line === 1 && s.replace(/\s+/g, '').toLowerCase() === MSR_HEADER) {
      skips.add('the header line');
      continue;
    }
    const f = s.split(',');
    if (f.length !== 7) throw new WattraceError('E_FIELD', `expected 7 fields (Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime), found ${f.length}`, where);
    const [ts, host, disk, type, offset, size, resp] = f as [string, string, string, string, string, string, string];
    checkUints(where, [ts, 1, 'Timestamp'], [disk, 3, 'DiskNumber'], [offset, 5, 'Offset'], [size, 6, 'Size'], [resp, 7, 'ResponseTime']);
    const op = /^read$/i.test(type) ? 'R' : /^write$/i.test(type) ? 'W' : null;
    if (!op) throw new WattraceError('E_FIELD', `Type is '${type}'; expected Read or Write`, { ...where, column: 4, columnName: 'Type' });
    rebase ??= BigInt(ts) >= FILETIME_UNIX_EPOCH ? FILETIME_UNIX_EPOCH : 0n;
    const arrival = (BigInt(ts) - rebase) * TICK;
    if (arrival < 0n) throw new WattraceError('E_ORDER', 'Timestamp is before the first row\'s epoch (1601 or relative): the trace mixes absolute and relative times', { ...where, column: 1 });
    if (arrival < lastArrival) throw new WattraceError('E_ORDER', 'Timestamp goes backwards: the MSR traces are in arrival order', { ...where, column: 1 });
    lastArrival = arrival;
    // Every request still in flight that completes before this arrival can be written now.
    for (let top = heap.peek(); top && top.t <= arrival; top = heap.peek()) {
      const r = heap.pop()!;
      w.row(r.t, r.vm, r.op, r.offset, r.bytes, { file, line: r.line }, r.lat);
    }
    const lat = BigInt(resp) * TICK;
    heap.push({ t: arrival + lat, seq: line, vm: vmOf(`${host}:${disk}`), op, offset: BigInt(offset), bytes: BigInt(size), lat, line });
  }
  for (let r = heap.pop(); r; r = heap.pop()) w.row(r.t, r.vm, r.op, r.offset, r.bytes, { file, line: r.line }, r.lat);
}
