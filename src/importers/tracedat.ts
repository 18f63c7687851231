/**
 * Native reader of trace-cmd's binary `trace.dat`, file format version 6, so importing a recording
 * needs no trace-cmd installed.
 *
 * Sources of the format: trace-cmd.dat.v6(5) (trace-cmd's `Documentation/trace-cmd/
 * trace-cmd.dat.v6.5.txt`) for the file layout and its options as trace-cmd's
 * `lib/trace-cmd/trace-input.c` reads them; the kernel ring buffer's page and event encoding as
 * libtraceevent's `src/kbuffer-parse.c` decodes it. Event fields are taken from the `format` texts
 * stored in the file, never from fixed offsets.
 *
 * Read: both endiannesses, 4- and 8-byte page `commit` words (from `header_page`), the top-level
 * "flyrecord" buffer, events merged across CPUs by timestamp. Not read: version 7 (sections,
 * compression), "latency" files (their data is text), the extra buffers of `trace-cmd record -B`
 * (option BUFFER), kallsyms and printk formats (skipped, so `bprint` gives raw fields).
 * Timestamps are the ring buffer's own (trace clock units, ns for `local`): the options DATE,
 * OFFSET, TIME_SHIFT and TSC2NSEC, which trace-cmd report would apply, are not, because no file at
 * hand has them to test against; a file holding one (or BUFFER) lists it in
 * `DatInfo.ignoredOptions`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';

/** One event from the ring buffer. */
export interface DatEvent {
  cpu: number;
  /** Trace clock units (ns for the default `local` clock), without any option's offset. */
  ts: bigint;
  /** From the event's format; `unknown_event_<id>` for an id the file has no format for. */
  name: string;
  /** Event system (`sched`, `ftrace`, ...); `''` for an id the file has no format for. */
  system: string;
  pid: number;
  /** From the file's saved cmdlines: `<idle>` for pid 0, `<...>` when the pid is not there. */
  comm: string;
  /**
   * The event's own fields (the `common_*` ones left out), by the names of its format: integers of
   * 1, 2 or 4 bytes as numbers, of 8 bytes as bigints, `char x[N]` and `__data_loc char[]` as
   * strings, other arrays as comma-separated numbers.
   */
  fields: Record<string, number | bigint | string>;
}

export interface DatInfo {
  version: number;
  littleEndian: boolean;
  /** Bytes of a `long` in the traced machine's user space (the file header's). */
  longSize: number;
  pageSize: number;
  cpus: number;
  /** The trace clock the file names (`local`, `global`, `x86-tsc`, ...); null if it names none. */
  clock: string | null;
  /** Data records read, every event of the file (also those `wanted` left out). */
  events: number;
  /**
   * Options in the file that trace-cmd report would act on and this reader does not: DATE, OFFSET,
   * TIME_SHIFT, TSC2NSEC (timestamp shifts or scaling) and BUFFER (extra ring buffers, not read).
   */
  ignoredOptions: string[];
  /** Per CPU, the pages after which events were lost (the ring buffer overran): gaps in the trace. */
  lost: ReadonlyMap<number, number>;
}

/** Reads a file's events; `wanted` limits decoding and delivery to these event names. */
export type DatWanted = ReadonlySet<string>;

const MAGIC = Buffer.from([0x17, 0x08, 0x44, ...Buffer.from('tracing', 'latin1')]);
const SUPPORTED_VERSION = 6;

// Ring-buffer record types above the data lengths 1..28 (kernel `enum ring_buffer_type`).
const TYPE_PADDING = 29;
const TYPE_TIME_EXTEND = 30;
const TYPE_TIME_STAMP = 31;
const TS_SHIFT = 27n;
/** An absolute time stamp lacks the 5 most significant bits: they come from the running time. */
const TS_MSB = 0xf8n << 56n;
/** The low bits of a page's `commit` word are its data size; bits 30 and 31 flag lost events. */
const COMMIT_MASK = (1 << 27) - 1;

// v6 option ids (trace-cmd-private.h, `enum TRACECMD_OPTION_*`).
const OPT_DONE = 0;
const OPT_TRACECLOCK = 4;
const OPT_CPUCOUNT = 8;
const IGNORED_OPTIONS: ReadonlyMap<number, string> = new Map([
  [1, 'DATE'],
  [3, 'BUFFER'],
  [7, 'OFFSET'],
  [11, 'TIME_SHIFT'],
  [14, 'TSC2NSEC'],
]);
/** Bounds on text sections, so a corrupt size fails cleanly instead of building a huge string. */
const MAX_FORMAT_BYTES = 1 << 20;
const MAX_CMDLINES_BYTES = 1 << 28;

/** A field of an event (or the page header) as its `format` text declares it. */
interface FieldFormat {
  readonly name: string;
  readonly type: string;
  readonly offset: number;
  readonly size: number;
  readonly signed: boolean;
  /** `[N]` arrays (empty N or size 0: the rest of the record) and `__data_loc`/`__rel_loc` fields. */
  readonly layout: 'scalar' | 'array' | 'data_loc' | 'rel_loc';
  readonly isChar: boolean;
  readonly elemSize: number;
}

interface EventFormat {
  readonly id: number;
  readonly name: string;
  readonly system: string;
  readonly fields: readonly FieldFormat[];
  readonly common: readonly FieldFormat[];
}

interface PageLayout {
  readonly tsOffset: number;
  readonly commitOffset: number;
  readonly commitSize: number;
  readonly dataOffset: number;
}

interface Header {
  version: number;
  littleEndian: boolean;
  longSize: number;
  pageSize: number;
  page: PageLayout;
  formats: Map<number, EventFormat>;
  cmdlines: Map<number, string>;
  cpus: number;
  clock: string | null;
  ignoredOptions: string[];
  cpuData: { offset: number; size: number }[];
}

/** True when `head` (the first bytes of a file) starts with trace.dat's magic. */
export function isTraceDat(head: Buffer): boolean {
  return head.length >= MAGIC.length && head.subarray(0, MAGIC.length).equals(MAGIC);
}

/**
 * Reads a v6 trace.dat and calls `onEvent` for each event in timestamp order (equal timestamps by
 * CPU number). Reads the header sequentially and each CPU's data one page at a time.
 * Throws WattraceError E_FILE if the file cannot be opened, E_FIELD if it is malformed, truncated
 * or of another version.
 */
export function readTraceDat(file: string, onEvent: (e: DatEvent) => void, wanted?: DatWanted): DatInfo {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new WattraceError('E_FILE', `cannot read ${file}: ${(e as Error).message}`, { file });
  }
  try {
    const cur = new Cursor(fd, fs.fstatSync(fd).size, file);
    const h = readHeader(cur);
    const events = mergeCpus(h, cur, onEvent, wanted);
    return { version: h.version, littleEndian: h.littleEndian, longSize: h.longSize, pageSize: h.pageSize, cpus: h.cpus, clock: h.clock, events, ignoredOptions: h.ignoredOptions, lost: new Map(cur.lost) };
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Sequential reading of the header, with errors naming the part and the byte offset.

class Cursor {
  pos = 0;
  le = true;
  readonly label: string;

  constructor(
    readonly fd: number,
    readonly size: number,
    readonly file: string,
  ) {
    this.label = path.basename(file);
  }

  /** Pages whose commit word flags events lost before them (the ring buffer overran), per CPU. */
  readonly lost = new Map<number, number>();

  fail(message: string): never {
    throw new WattraceError('E_FIELD', message, { file: this.file });
  }

  /** Fails unless `n` more bytes are in the file. */
  need(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0) this.fail(`impossible length ${n} at byte ${this.pos} in the ${what}`);
    const left = Math.max(0, this.size - this.pos);
    if (n > left) this.fail(`truncated at byte ${this.size} in the ${what} (expected ${n - left} more bytes)`);
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = Buffer.allocUnsafe(n);
    readFully(this, b, n, this.pos, what);
    this.pos += n;
    return b;
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }

  u8(what: string): number {
    return this.bytes(1, what)[0]!;
  }

  u16(what: string): number {
    const b = this.bytes(2, what);
    return this.le ? b.readUInt16LE(0) : b.readUInt16BE(0);
  }

  u32(what: string): number {
    const b = this.bytes(4, what);
    return this.le ? b.readUInt32LE(0) : b.readUInt32BE(0);
  }

  /** A 64-bit size or offset; one beyond 2^53 cannot fit any file and is reported as such. */
  u64(what: string): number {
    const at = this.pos;
    const b = this.bytes(8, what);
    const v = this.le ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`impossible value ${v} at byte ${at} in the ${what}`);
    return Number(v);
  }

  /** A NUL-terminated string of at most `max` bytes. */
  cstring(what: string, max = 4096): string {
    const at = this.pos;
    const n = Math.min(max + 1, this.size - at);
    const b = this.bytes(n, what);
    const end = b.indexOf(0);
    if (end < 0) {
      if (n <= max) this.fail(`truncated at byte ${this.size} in the ${what} (expected a NUL-terminated string from byte ${at})`);
      this.fail(`no NUL within ${max} bytes of the string at byte ${at} in the ${what}`);
    }
    this.pos = at + end + 1;
    return b.toString('latin1', 0, end);
  }

  /** `n` bytes of text; more than `max` is taken for a corrupt size. */
  text(n: number, what: string, max: number): string {
    if (n > max) this.fail(`implausible size ${n} before byte ${this.pos} in the ${what} (at most ${max} expected)`);
    return this.bytes(n, what).toString('utf8');
  }
}

function readFully(cur: Cursor, b: Buffer, n: number, at: number, what: string): void {
  let got = 0;
  while (got < n) {
    const r = fs.readSync(cur.fd, b, got, n - got, at + got);
    if (r === 0) cur.fail(`truncated at byte ${at + got} in the ${what} (expected ${n - got} more bytes)`);
    got += r;
  }
}

function readHeader(cur: Cursor): Header {
  const magic = cur.bytes(Math.min(MAGIC.length, cur.size), 'file magic');
  if (!isTraceDat(magic)) cur.fail('not a trace-cmd trace.dat file: bad magic at byte 0 (expected 0x17 0x08 0x44 "tracing")');
  const versionText = cur.cstring('version string', 16);
  const version = /^\d+$/.test(versionText) ? Number(versionText) : NaN;
  if (version !== SUPPORTED_VERSION) {
    cur.fail(`file format version ${JSON.stringify(versionText)} is not supported (this reader reads version ${SUPPORTED_VERSION} only; \`trace-cmd convert --file-version 6 --compression none\` writes it)`);
  }
  const endian = cur.u8('initial header');
  if (endian > 1) cur.fail(`bad endian flag ${endian} at byte ${cur.pos - 1} (expected 0 or 1)`);
  cur.le = endian === 0;
  const longSize = cur.u8('initial header');
  if (longSize !== 4 && longSize !== 8) cur.fail(`bad long size ${longSize} at byte ${cur.pos - 1} (expected 4 or 8)`);
  const pageSize = cur.u32('initial header');
  if (pageSize < 64 || pageSize > 1 << 26) cur.fail(`implausible page size ${pageSize} at byte ${cur.pos - 4}`);

  const page = readHeaderInfo(cur, pageSize);
  const formats = new Map<number, EventFormat>();
  readFtraceFormats(cur, formats);
  readEventFormats(cur, formats);
  cur.skip(cur.u32('kallsyms'), 'kallsyms');
  cur.skip(cur.u32('printk formats'), 'printk formats');
  const cmdlines = parseCmdlines(cur.text(cur.u64('cmdlines'), 'cmdlines', MAX_CMDLINES_BYTES));
  const h: Header = { version, littleEndian: cur.le, longSize, pageSize, page, formats, cmdlines, cpus: cur.u32('CPU count'), clock: null, ignoredOptions: [], cpuData: [] };
  readOptionsAndCpuTable(cur, h);
  return h;
}

/** `header_page` gives the page header's layout; `header_event` only confirms the encoding. */
function readHeaderInfo(cur: Cursor, pageSize: number): PageLayout {
  expectLabel(cur, 'header_page', 'header_page');
  const at = cur.pos + 8;
  const fields = parseFields(cur.text(cur.u64('header_page'), 'header_page', MAX_FORMAT_BYTES));
  const ts = fields.find((f) => f.name === 'timestamp');
  const commit = fields.find((f) => f.name === 'commit');
  const data = fields.find((f) => f.name === 'data');
  if (!ts || ts.size !== 8) cur.fail(`header_page at byte ${at} has no 8-byte timestamp field`);
  if (!commit || (commit.size !== 4 && commit.size !== 8)) cur.fail(`header_page at byte ${at} has no 4- or 8-byte commit field`);
  if (!data || data.offset >= pageSize) cur.fail(`header_page at byte ${at} has no data field inside the ${pageSize}-byte page`);
  if (ts.offset + ts.size > data.offset || commit.offset + commit.size > data.offset) cur.fail(`header_page at byte ${at} puts timestamp or commit after the data's start`);
  expectLabel(cur, 'header_event', 'header_event');
  const eventAt = cur.pos + 8;
  const eventText = cur.text(cur.u64('header_event'), 'header_event', MAX_FORMAT_BYTES);
  if (!/type_len\s*:\s*5 bits/.test(eventText)) cur.fail(`header_event at byte ${eventAt} does not describe the 5-bit type_len encoding (ring buffer of Linux 2.6.30 or older?)`);
  return { tsOffset: ts.offset, commitOffset: commit.offset, commitSize: commit.size, dataOffset: data.offset };
}

function expectLabel(cur: Cursor, label: string, what: string): void {
  const at = cur.pos;
  const got = cur.bytes(label.length + 1, what);
  if (got.toString('latin1') !== `${label}\0`) cur.fail(`expected "${label}" at byte ${at}, found ${JSON.stringify(got.toString('latin1'))}`);
}

function readFtraceFormats(cur: Cursor, into: Map<number, EventFormat>): void {
  const count = cur.u32('ftrace event formats');
  for (let i = 0; i < count; i++) addFormat(cur, into, 'ftrace', 'ftrace event formats');
}

function readEventFormats(cur: Cursor, into: Map<number, EventFormat>): void {
  const systems = cur.u32('event formats');
  for (let s = 0; s < systems; s++) {
    const system = cur.cstring('event formats', 256);
    const count = cur.u32('event formats');
    for (let i = 0; i < count; i++) addFormat(cur, into, system, 'event formats');
  }
}

function addFormat(cur: Cursor, into: Map<number, EventFormat>, system: string, what: string): void {
  const at = cur.pos;
  const text = cur.text(cur.u64(what), what, MAX_FORMAT_BYTES);
  const f = parseFormat(text, system);
  if (!f) cur.fail(`event format at byte ${at} in the ${what} has no "name:" or "ID:" line`);
  into.set(f.id, f);
}

// ---------------------------------------------------------------------------------------------
// Format texts.

const FIELD_LINE = /^\s*field:\s*(.+?);\s*offset:\s*(\d+);\s*size:\s*(\d+);(?:\s*signed:\s*(\d+);)?/;

/** An event's `format` text: `name:`, `ID:` and every `field:` line; undefined without name or ID. */
function parseFormat(text: string, system: string): EventFormat | undefined {
  const name = /^name:\s*(\S+)/m.exec(text)?.[1];
  const id = /^ID:\s*(\d+)/m.exec(text)?.[1];
  if (name === undefined || id === undefined) return undefined;
  const all = parseFields(text);
  return { id: Number(id), name, system, fields: all.filter((f) => !f.name.startsWith('common_')), common: all.filter((f) => f.name.startsWith('common_')) };
}

function parseFields(text: string): FieldFormat[] {
  const out: FieldFormat[] = [];
  for (const line of text.split('\n')) {
    const m = FIELD_LINE.exec(line);
    if (m) out.push(parseDeclaration(m[1]!, Number(m[2]), Number(m[3]), m[4]));
  }
  return out;
}

/** `unsigned short common_type`, `char comm[16]`, `__data_loc char[] name`, `u32 buf[]`. */
function parseDeclaration(decl: string, offset: number, size: number, signedText: string | undefined): FieldFormat {
  const m = /^(.*?)\s*([A-Za-z_][\w]*)\s*(?:\[([^\]]*)\])?\s*$/.exec(decl.trim());
  const type = (m?.[1] ?? '').trim();
  const name = m?.[2] ?? decl.trim();
  const dims = m?.[3];
  const isChar = /\bchar\b/.test(type);
  const signed = signedText !== undefined ? signedText === '1' : !/\bunsigned\b|\bu(8|16|32|64)\b/.test(type);
  let layout: FieldFormat['layout'] = 'scalar';
  if (type.startsWith('__data_loc')) layout = 'data_loc';
  else if (type.startsWith('__rel_loc')) layout = 'rel_loc';
  else if (dims !== undefined || size === 0) layout = 'array'; // old kernels: `u32 buf; size:0;`
  const n = dims !== undefined && /^\d+$/.test(dims) ? Number(dims) : 0;
  const elemSize = layout === 'array' && n > 0 ? Math.max(1, Math.floor(size / n)) : elementSize(type);
  return { name, type, offset, size, signed, layout, isChar, elemSize };
}

function elementSize(type: string): number {
  if (/\b(char|u8|s8|bool)\b/.test(type)) return 1;
  if (/\b(short|u16|s16)\b/.test(type)) return 2;
  if (/\blong\s+long\b|\b(u64|s64)\b/.test(type)) return 8;
  if (/\blong\b/.test(type)) return 8;
  return 4;
}

function parseCmdlines(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s(.*)$/.exec(line);
    if (m) out.set(Number(m[1]), m[2]!);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Options (v6) and the flyrecord CPU table.

function readOptionsAndCpuTable(cur: Cursor, h: Header): void {
  let kind = readKind(cur);
  let hasClockOption = false;
  if (kind === 'options  ') {
    for (;;) {
      const at = cur.pos;
      const id = cur.u16('options');
      if (id === OPT_DONE) break;
      const data = cur.bytes(cur.u32('options'), 'options');
      if (id === OPT_TRACECLOCK) {
        hasClockOption = true;
        h.clock = bracketedClock(data.toString('latin1', 0, Math.min(data.length, 4096))) ?? h.clock;
      } else if (id === OPT_CPUCOUNT) {
        if (data.length < 4) cur.fail(`CPUCOUNT option at byte ${at} has ${data.length} bytes (expected 4)`);
        h.cpus = cur.le ? data.readUInt32LE(0) : data.readUInt32BE(0);
      } else {
        const name = IGNORED_OPTIONS.get(id);
        if (name !== undefined && !h.ignoredOptions.includes(name)) h.ignoredOptions.push(name);
      }
    }
    kind = readKind(cur);
  }
  if (kind === 'latency  ') cur.fail('holds a latency trace (text data), not a flyrecord; only flyrecord files are read');
  if (kind !== 'flyrecord') cur.fail(`expected "options", "latency" or "flyrecord" at byte ${cur.pos - 10}, found ${JSON.stringify(kind)}`);
  if (h.cpus > 4096) cur.fail(`implausible CPU count ${h.cpus}`);
  for (let cpu = 0; cpu < h.cpus; cpu++) {
    const offset = cur.u64('flyrecord CPU table');
    const size = cur.u64('flyrecord CPU table');
    if (size > 0 && offset + size > cur.size) cur.fail(`truncated at byte ${cur.size}: CPU ${cpu} data ends at byte ${offset + size} (expected ${offset + size - cur.size} more bytes)`);
    h.cpuData.push({ offset, size });
  }
  // With the TRACECLOCK option, v6 stores the trace_clock file after the table (trace-input.c).
  if (hasClockOption && cur.size - cur.pos >= 8) {
    const n = cur.u64('trace clock');
    if (n <= 4096 && n <= cur.size - cur.pos) h.clock = bracketedClock(cur.text(n, 'trace clock', 4096)) ?? h.clock;
  }
}

function readKind(cur: Cursor): string {
  return cur.bytes(10, 'options or flyrecord marker').toString('latin1').replace(/\0+$/, '');
}

/** `[local] global counter ...` → `local`. */
function bracketedClock(text: string): string | null {
  return /\[([^\]\s]+)\]/.exec(text)?.[1] ?? null;
}

// ---------------------------------------------------------------------------------------------
// One CPU's ring-buffer pages, read page by page.

class CpuStream {
  /** Running timestamp; after `advance()` the current record's. */
  ts = 0n;
  /** The current data record: its bytes in `page` from `dataOff`, `dataLen` long. */
  dataOff = 0;
  dataLen = 0;
  readonly page: Buffer;
  private nextPage: number;
  private pageAt = 0;
  private pos = 0;
  private end = 0;

  constructor(
    readonly cpu: number,
    private readonly cur: Cursor,
    private readonly layout: PageLayout,
    pageSize: number,
    private readonly limit: number,
    start: number,
  ) {
    this.page = Buffer.alloc(pageSize);
    this.nextPage = start;
  }

  /** Moves to the next data record; false at the end of this CPU's data. */
  advance(): boolean {
    for (;;) {
      if (this.pos >= this.end && !this.loadPage()) return false;
      if (this.pos >= this.end) continue;
      if (this.record()) return true;
    }
  }

  private fail(what: string): never {
    return this.cur.fail(`malformed CPU ${this.cpu} data at byte ${this.pageAt + this.pos}: ${what}`);
  }

  private u32(at: number): number {
    return this.cur.le ? this.page.readUInt32LE(at) : this.page.readUInt32BE(at);
  }

  /** Decodes the record at `pos`; true if it is a data record (then current). */
  private record(): boolean {
    const at = this.pos;
    if (this.end - at < 4) this.fail(`${this.end - at} bytes left in the page, too few for a record header`);
    const word = this.u32(at);
    const typeLen = this.cur.le ? word & 31 : word >>> 27;
    const delta = this.cur.le ? word >>> 5 : word & 0x7ffffff;
    if (typeLen === TYPE_PADDING) {
      // A zero delta marks the rest of the page as unused; otherwise the next word is the length.
      // The delta is added as libtraceevent's kbuffer does (trace-cmd report agrees with it).
      if (delta === 0 || this.end - at < 8) {
        this.pos = this.end;
        return false;
      }
      this.ts += BigInt(delta);
      this.pos = Math.min(this.end, at + 4 + this.u32(at + 4));
      return false;
    }
    if (typeLen === TYPE_TIME_EXTEND || typeLen === TYPE_TIME_STAMP) {
      if (this.end - at < 8) this.fail('time record cut by the end of the page data');
      const t = (BigInt(this.u32(at + 4)) << TS_SHIFT) + BigInt(delta);
      this.ts = typeLen === TYPE_TIME_EXTEND ? this.ts + t : t | (this.ts & TS_MSB);
      this.pos = at + 8;
      return false;
    }
    let data = at + 4;
    let len = typeLen * 4;
    if (typeLen === 0) {
      if (this.end - at < 8) this.fail('record length cut by the end of the page data');
      const raw = this.u32(at + 4);
      if (raw < 4) this.fail(`record length ${raw} (expected at least 4)`);
      len = (raw - 4 + 3) & ~3;
      data = at + 8;
    }
    if (data + len > this.end) this.fail(`a ${len}-byte record runs past the page data's end at byte ${this.pageAt + this.end}`);
    this.ts += BigInt(delta);
    this.dataOff = data;
    this.dataLen = len;
    this.pos = data + len;
    return true;
  }

  /** Reads the next page and its header; false when the CPU's data is done. */
  private loadPage(): boolean {
    const { layout } = this;
    while (this.nextPage < this.limit) {
      const at = this.nextPage;
      const n = Math.min(this.page.length, this.limit - at);
      this.nextPage += this.page.length;
      this.pageAt = at;
      if (n < layout.dataOffset) this.cur.fail(`malformed CPU ${this.cpu} data: ${n} bytes at byte ${at}, too few for a page header`);
      readFully(this.cur, this.page, n, at, `CPU ${this.cpu} data`);
      this.ts = this.cur.le ? this.page.readBigUInt64LE(layout.tsOffset) : this.page.readBigUInt64BE(layout.tsOffset);
      const commitAt = layout.commitSize === 8 && !this.cur.le ? layout.commitOffset + 4 : layout.commitOffset;
      const word = this.u32(commitAt);
      const commit = word & COMMIT_MASK;
      // Bit 31: events were lost before this page (the ring buffer was full).
      if (word & 0x80000000) this.cur.lost.set(this.cpu, (this.cur.lost.get(this.cpu) ?? 0) + 1);
      if (layout.dataOffset + commit > n) this.cur.fail(`malformed CPU ${this.cpu} data: page at byte ${at} commits ${commit} bytes, more than its ${n - layout.dataOffset} bytes of data`);
      this.pos = layout.dataOffset;
      this.end = layout.dataOffset + commit;
      return true;
    }
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// k-way merge over the CPUs and event decoding.

function before(a: CpuStream, b: CpuStream): boolean {
  return a.ts < b.ts || (a.ts === b.ts && a.cpu < b.cpu);
}

function siftDown(heap: CpuStream[], i: number): void {
  const n = heap.length;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) return;
    const r = l + 1;
    const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
    if (!before(heap[c]!, heap[i]!)) return;
    [heap[c], heap[i]] = [heap[i]!, heap[c]!];
    i = c;
  }
}

function mergeCpus(h: Header, cur: Cursor, onEvent: (e: DatEvent) => void, wanted?: DatWanted): number {
  const heap: CpuStream[] = [];
  h.cpuData.forEach(({ offset, size }, cpu) => {
    const s = new CpuStream(cpu, cur, h.page, h.pageSize, offset + size, offset);
    if (size > 0 && s.advance()) heap.push(s);
  });
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(heap, i);
  const decoder = new EventDecoder(h, cur);
  let count = 0;
  while (heap.length > 0) {
    const s = heap[0]!;
    count++;
    const e = decoder.decode(s, wanted);
    if (e) onEvent(e);
    if (!s.advance()) {
      const last = heap.pop()!;
      if (heap.length === 0) break;
      heap[0] = last;
    }
    siftDown(heap, 0);
  }
  return count;
}

class EventDecoder {
  private readonly typeField: FieldFormat;
  private readonly pidField: FieldFormat;

  constructor(
    private readonly h: Header,
    private readonly cur: Cursor,
  ) {
    // Every format carries the same common fields; the first that declares them is the layout.
    let type: FieldFormat | undefined;
    let pid: FieldFormat | undefined;
    for (const f of h.formats.values()) {
      type ??= f.common.find((c) => c.name === 'common_type');
      pid ??= f.common.find((c) => c.name === 'common_pid');
      if (type && pid) break;
    }
    this.typeField = type ?? parseDeclaration('unsigned short common_type', 0, 2, '0');
    this.pidField = pid ?? parseDeclaration('int common_pid', 4, 4, '1');
  }

  decode(s: CpuStream, wanted?: DatWanted): DatEvent | undefined {
    const id = this.integer(s, this.typeField);
    const fmt = this.h.formats.get(Number(id));
    const name = fmt?.name ?? `unknown_event_${id}`;
    if (wanted && !wanted.has(name)) return undefined;
    const pid = Number(this.integer(s, this.pidField));
    const fields: Record<string, number | bigint | string> = {};
    for (const f of fmt?.fields ?? []) fields[f.name] = this.value(s, f, `${name} event`);
    return { cpu: s.cpu, ts: s.ts, name, system: fmt?.system ?? '', pid, comm: this.comm(pid), fields };
  }

  private comm(pid: number): string {
    if (pid === 0) return '<idle>';
    return this.h.cmdlines.get(pid) ?? '<...>';
  }

  private fail(s: CpuStream, name: string, f: FieldFormat, what: string): never {
    return this.cur.fail(`malformed ${name} on CPU ${s.cpu} at ts ${s.ts}: field ${f.name} ${what}`);
  }

  private integer(s: CpuStream, f: FieldFormat): number | bigint {
    if (f.offset + f.size > s.dataLen) this.fail(s, 'event', f, `(bytes ${f.offset}..${f.offset + f.size}) lies past the ${s.dataLen}-byte record`);
    return readInt(s.page, s.dataOff + f.offset, f.size, f.signed, this.cur.le);
  }

  private value(s: CpuStream, f: FieldFormat, name: string): number | bigint | string {
    const size = f.layout === 'array' && f.size === 0 ? s.dataLen - f.offset : f.size;
    if (f.offset + size > s.dataLen || size < 0) this.fail(s, name, f, `(bytes ${f.offset}..${f.offset + size}) lies past the ${s.dataLen}-byte record`);
    const at = s.dataOff + f.offset;
    if (f.layout === 'scalar') return size === 1 || size === 2 || size === 4 || size === 8 ? readInt(s.page, at, size, f.signed, this.cur.le) : s.page.toString('hex', at, at + size);
    if (f.layout === 'array') return this.sequence(s.page, at, size, f);
    if (size !== 4) this.fail(s, name, f, `is a ${size}-byte dynamic-location word (expected 4)`);
    const loc = this.cur.le ? s.page.readUInt32LE(at) : s.page.readUInt32BE(at);
    const start = (loc & 0xffff) + (f.layout === 'rel_loc' ? f.offset + f.size : 0);
    const len = loc >>> 16;
    if (start + len > s.dataLen) this.fail(s, name, f, `points at bytes ${start}..${start + len}, past the ${s.dataLen}-byte record`);
    return this.sequence(s.page, s.dataOff + start, len, f);
  }

  private sequence(page: Buffer, at: number, len: number, f: FieldFormat): string {
    if (f.isChar) {
      const nul = page.indexOf(0, at);
      return page.toString('utf8', at, nul >= 0 && nul < at + len ? nul : at + len);
    }
    const parts: string[] = [];
    const step = f.elemSize === 1 || f.elemSize === 2 || f.elemSize === 4 || f.elemSize === 8 ? f.elemSize : 1;
    for (let o = 0; o + step <= len; o += step) parts.push(String(readInt(page, at + o, step, f.signed, this.cur.le)));
    return parts.join(',');
  }
}

function readInt(b: Buffer, at: number, size: number, signed: boolean, le: boolean): number | bigint {
  switch (size) {
    case 1:
      return signed ? b.readInt8(at) : b.readUInt8(at);
    case 2:
      return signed ? (le ? b.readInt16LE(at) : b.readInt16BE(at)) : le ? b.readUInt16LE(at) : b.readUInt16BE(at);
    case 4:
      return signed ? (le ? b.readInt32LE(at) : b.readInt32BE(at)) : le ? b.readUInt32LE(at) : b.readUInt32BE(at);
    case 8:
      return signed ? (le ? b.readBigInt64LE(at) : b.readBigInt64BE(at)) : le ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at);
    default:
      return 0;
  }
}
