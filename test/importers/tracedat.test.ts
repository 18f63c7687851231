/**
 * Native trace.dat reader against `trace-cmd report` (trace-cmd 3.1.5) of the same real files:
 * `../shared/data/sched/trace-dat/` (ARM Juno, from ARM-software/trappy, see shared/data/README.md).
 * The report prints microseconds rounded to nearest (libtraceevent's print_event_time adds div/2
 * before dividing: the first event, 106439.675570920 s, prints as .675571), so timestamps are
 * compared rounded, not truncated. The report's comm-pid column comes from the file's cmdlines
 * (`ls-4734` switches out as prev_comm=trace-cmd: the cmdline was saved after the exec).
 * The byte layouts the real files lack (big-endian, 4-byte commit, padding, long records,
 * absolute time stamps) are checked on small files written here by hand.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WattraceError } from '../../src/core/errors.js';
import { isTraceDat, readTraceDat, type DatEvent, type DatInfo } from '../../src/importers/tracedat.js';
import { cli, tmpDir } from '../helpers.js';

const DIR = path.resolve(import.meta.dirname, '../../../shared/data/sched/trace-dat');
const HAVE = fs.existsSync(DIR);
if (!HAVE) console.warn(`[wattrace] skipping the trace.dat comparisons: ${DIR} is absent (only in the project's shared workspace)`);

interface ReportLine {
  comm: string;
  pid: number;
  cpu: number;
  us: bigint;
  name: string;
  rest: string;
}

/** `comm-pid [cpu] sec.usec: event: fields`; other lines (the `cpus=6` head, the second line of a
 * bprint whose format holds a newline) are not events. */
const LINE = /^\s*(.+)-(\d+)\s+\[(\d+)\]\s+(\d+)\.(\d{6}):\s+(\w+):\s*(.*)$/;
const SWITCH = /^prev_comm=(.*) prev_pid=(\d+) prev_prio=(-?\d+) prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+) next_prio=(-?\d+)$/;

function report(name: string): { events: ReportLine[]; lines: number } {
  const text = fs.readFileSync(path.join(DIR, `${name}.report.txt`), 'utf8').replace(/\n$/, '');
  const events: ReportLine[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (m) events.push({ comm: m[1]!, pid: Number(m[2]), cpu: Number(m[3]), us: BigInt(m[4]!) * 1_000_000n + BigInt(m[5]!), name: m[6]!, rest: m[7]! });
  }
  return { events, lines: text.split('\n').length };
}

function read(file: string, wanted?: ReadonlySet<string>): { info: DatInfo; events: DatEvent[] } {
  const events: DatEvent[] = [];
  const info = readTraceDat(file, (e) => events.push(e), wanted);
  return { info, events };
}

const roundUs = (ts: bigint) => (ts + 500n) / 1000n;

/** A switch as the report prints it, without prev_state (letters there, a number here). */
function switchOf(e: DatEvent): string {
  const f = e.fields;
  return `${e.cpu} ${roundUs(e.ts)} ${f.prev_comm}/${f.prev_pid}/${f.prev_prio} ==> ${f.next_comm}/${f.next_pid}/${f.next_prio}`;
}

function reportSwitchOf(r: ReportLine): string {
  const m = SWITCH.exec(r.rest);
  if (!m) throw new Error(`unparsed switch: ${r.rest}`);
  return `${r.cpu} ${r.us} ${m[1]}/${m[2]}/${m[3]} ==> ${m[5]}/${m[6]}/${m[7]}`;
}

function expectWattraceError(f: () => unknown, message: RegExp): WattraceError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(WattraceError);
  const w = err as WattraceError;
  expect(w.code).toBe('E_FIELD');
  expect(w.message).toMatch(message);
  return w;
}

describe('readTraceDat on real trace-cmd recordings, against trace-cmd report', () => {
  const dat = (name: string) => path.join(DIR, `${name}.dat`);

  it.skipIf(!HAVE)('raw_trace.dat: every event, in order, as the report lists it; the switches field by field', () => {
    const { info, events } = read(dat('raw_trace'));
    expect(info).toMatchObject({ version: 6, littleEndian: true, longSize: 8, pageSize: 4096, cpus: 6, clock: 'local', ignoredOptions: [] });
    const r = report('raw_trace');
    // 760 lines: the `cpus=6` head, 755 sched_switch, 2 bprint that take two lines each (their
    // format string ends in "\n gid=%d"), so 757 events; the reader finds all of them.
    expect(r.lines).toBe(760);
    expect(r.events).toHaveLength(757);
    expect(info.events).toBe(757);
    expect(events.map((e) => `${e.cpu} ${roundUs(e.ts)} ${e.comm}-${e.pid} ${e.name}`)).toEqual(r.events.map((l) => `${l.cpu} ${l.us} ${l.comm}-${l.pid} ${l.name}`));
    const switches = events.filter((e) => e.name === 'sched_switch');
    const reportSwitches = r.events.filter((l) => l.name === 'sched_switch');
    expect(switches).toHaveLength(755);
    expect(switches.map(switchOf)).toEqual(reportSwitches.map(reportSwitchOf));
    // First and last switch, copied from raw_trace.report.txt.
    expect(switchOf(switches[0]!)).toBe('2 106439675591 trace-cmd/4734/120 ==> migration/2/18/0');
    expect(switches[0]!.comm).toBe('ls');
    expect(switchOf(switches.at(-1)!)).toBe('1 106439679364 trace-cmd/4729/120 ==> swapper/1/0/120');
    expect(events.filter((e) => e.name === 'bprint').map((e) => `${e.system} ${e.cpu} ${roundUs(e.ts)}`)).toEqual(['ftrace 2 106439675571', 'ftrace 2 106439675578']);
  });

  it.skipIf(!HAVE)('trace_idle.dat: switches, cpu_idle and sched_migrate_task as the report lists them', () => {
    const { info, events } = read(dat('trace_idle'));
    // No TRACECLOCK option in this file, so it names no clock.
    expect(info).toMatchObject({ version: 6, littleEndian: true, longSize: 8, pageSize: 4096, cpus: 6, clock: null });
    const r = report('trace_idle');
    expect(r.lines).toBe(44); // the `cpus=6` head and 43 events
    expect(info.events).toBe(43);
    expect(events.map((e) => `${e.cpu} ${roundUs(e.ts)} ${e.comm}-${e.pid} ${e.name}`)).toEqual(r.events.map((l) => `${l.cpu} ${l.us} ${l.comm}-${l.pid} ${l.name}`));
    const switches = events.filter((e) => e.name === 'sched_switch');
    expect(switches).toHaveLength(23);
    expect(switches.map(switchOf)).toEqual(r.events.filter((l) => l.name === 'sched_switch').map(reportSwitchOf));
    expect(switchOf(switches[0]!)).toBe('5 162534215742 trace-cmd/6244/120 ==> swapper/5/0/120');
    expect(switchOf(switches.at(-1)!)).toBe('0 162534219562 sshd/6036/120 ==> swapper/0/0/120');
    const idle = events.filter((e) => e.name === 'cpu_idle');
    expect(idle).toHaveLength(17);
    expect(idle.every((e) => e.system === 'power' && e.comm === '<idle>' && e.pid === 0)).toBe(true);
    expect(idle.map((e) => `${e.cpu} ${roundUs(e.ts)} state=${e.fields.state} cpu_id=${e.fields.cpu_id}`)).toEqual(
      r.events.filter((l) => l.name === 'cpu_idle').map((l) => `${l.cpu} ${l.us} ${l.rest}`),
    );
    const migrations = events.filter((e) => e.name === 'sched_migrate_task').map((e) => `comm=${e.fields.comm} pid=${e.fields.pid} prio=${e.fields.prio} orig_cpu=${e.fields.orig_cpu} dest_cpu=${e.fields.dest_cpu}`);
    expect(migrations).toEqual(r.events.filter((l) => l.name === 'sched_migrate_task').map((l) => l.rest));
    expect(migrations[1]).toBe('comm=rs:main Q:Reg pid=238 prio=120 orig_cpu=5 dest_cpu=3');
  });

  it.skipIf(!HAVE)('prev_state: each letter the report prints stands for one number in both files', () => {
    const byLetter = new Map<string, Set<string>>();
    for (const name of ['raw_trace', 'trace_idle']) {
      const switches = read(dat(name)).events.filter((e) => e.name === 'sched_switch');
      const letters = report(name).events.filter((l) => l.name === 'sched_switch').map((l) => SWITCH.exec(l.rest)![4]!);
      switches.forEach((e, i) => {
        const set = byLetter.get(letters[i]!) ?? new Set();
        set.add(String(e.fields.prev_state));
        byLetter.set(letters[i]!, set);
      });
    }
    expect(Object.fromEntries([...byLetter].map(([k, v]) => [k, [...v]]))).toEqual({ S: ['1'], R: ['0'], 'R+': ['1024'], x: ['64'], D: ['2'] });
  });

  it.skipIf(!HAVE)('import: CPUs the header counts that never switch are named in a note (they are not in the energy)', async () => {
    for (const name of ['raw_trace', 'trace_idle']) {
      // From the report: its `cpus=N` head line, and the CPUs of its sched_switch lines.
      const text = fs.readFileSync(path.join(DIR, `${name}.report.txt`), 'utf8');
      const cpus = Number(/^cpus=(\d+)/m.exec(text)![1]);
      const switched = new Set(report(name).events.filter((e) => e.name === 'sched_switch').map((e) => e.cpu));
      const silent = Array.from({ length: cpus }, (_, c) => c).filter((c) => !switched.has(c));
      expect(silent.length).toBeGreaterThan(0);
      const r = await cli(['import', 'ftrace', dat(name), '--out', path.join(tmpDir(), 'out')]);
      expect(r.code, r.err).toBe(0);
      const they = silent.length === 1 ? `cpu ${silent[0]} never switched, so it is` : `cpus ${silent.join(', ')} never switched, so they are`;
      expect(r.out).toContain(`note: the trace.dat header counts ${cpus} CPUs; ${they} not in the cswitch log and not in a replay's energy`);
    }
  });

  it.skipIf(!HAVE)('wanted: only the named events are decoded and delivered, all are counted', () => {
    const { info, events } = read(dat('trace_idle'), new Set(['cpu_idle', 'block_rq_issue']));
    expect(events).toHaveLength(17);
    expect(events.every((e) => e.name === 'cpu_idle')).toBe(true);
    expect(info.events).toBe(43);
  });

  it.skipIf(!HAVE)('a truncated copy, a wrong magic, version 7 and corrupted pages give one WattraceError', () => {
    const dir = tmpDir();
    const whole = fs.readFileSync(dat('raw_trace'));
    const write = (name: string, b: Buffer) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, b);
      return f;
    };
    const truncated = write('trace.dat', whole.subarray(0, 100_000));
    const e = expectWattraceError(() => readTraceDat(truncated, () => {}), /^truncated at byte 100000 in the kallsyms \(expected \d+ more bytes\)$/);
    expect(e.where.file).toBe(truncated);
    // Cut inside the CPU table and inside CPU 1's pages (it starts at 0x244000).
    expectWattraceError(() => readTraceDat(write('cut-table.dat', whole.subarray(0, 0x242ba0)), () => {}), /truncated at byte 2370464 in the flyrecord CPU table \(expected 5 more bytes\)/);
    expectWattraceError(() => readTraceDat(write('cut-data.dat', whole.subarray(0, 0x246000)), () => {}), /truncated at byte 2383872: CPU 1 data ends at byte 2428928 \(expected 45056 more bytes\)/);

    const magic = Buffer.from(whole.subarray(0, 4096));
    magic[1] = 0x09;
    expect(isTraceDat(magic)).toBe(false);
    expectWattraceError(() => readTraceDat(write('magic.dat', magic), () => {}), /bad magic at byte 0/);
    expectWattraceError(() => readTraceDat(write('empty.dat', Buffer.alloc(0)), () => {}), /bad magic/);
    const v7 = Buffer.from(whole.subarray(0, 4096));
    v7[10] = 0x37;
    expect(isTraceDat(v7)).toBe(true);
    expectWattraceError(() => readTraceDat(write('v7.dat', v7), () => {}), /version "7" is not supported \(this reader reads version 6 only/);

    // Random bytes in CPU 1's pages (0x244000, 13 nearly full pages) or in the header's sizes and
    // texts: events or a clean error, never a RangeError.
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let trial = 0; trial < 40; trial++) {
      const b = Buffer.from(whole);
      const [from, span] = trial % 2 === 0 ? [0x244000, 0xd000] : [10, 0x400];
      for (let k = 0; k < 1 + (trial % 8); k++) b[from + rand(span)] = rand(256);
      const f = write('corrupt.dat', b);
      try {
        readTraceDat(f, () => {});
      } catch (err) {
        expect(err, `trial ${trial}: ${String(err)}`).toBeInstanceOf(WattraceError);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-built files for the encodings the real files do not use.

/** A ring-buffer record; a data record's type_len (its length in words) is derived from `body`. */
interface Rec {
  type?: number;
  delta: number;
  body: Buffer;
}

function u(n: number | bigint, size: 2 | 4 | 8, le: boolean): Buffer {
  const b = Buffer.alloc(size);
  if (size === 2) le ? b.writeUInt16LE(Number(n)) : b.writeUInt16BE(Number(n));
  else if (size === 4) le ? b.writeUInt32LE(Number(n)) : b.writeUInt32BE(Number(n));
  else le ? b.writeBigUInt64LE(BigInt(n)) : b.writeBigUInt64BE(BigInt(n));
  return b;
}

const DEMO_FORMAT = [
  'name: demo',
  'ID: 300',
  'format:',
  '\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;',
  '\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;',
  '\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;',
  '\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;',
  '',
  '\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:1;',
  '\tfield:u64 big;\toffset:24;\tsize:8;\tsigned:0;',
  '\tfield:short s;\toffset:32;\tsize:2;\tsigned:1;',
  '\tfield:__data_loc char[] msg;\toffset:36;\tsize:4;\tsigned:1;',
  '',
  'print fmt: "%s"',
].join('\n');

/** A demo event: 40 fixed bytes, then msg (NUL-terminated, padded to 4). */
function demo(le: boolean, pid: number, comm: string, big: bigint, s: number, msg: string): Buffer {
  const text = Buffer.from(`${msg}\0`);
  const b = Buffer.alloc(40 + Math.ceil(text.length / 4) * 4);
  u(300, 2, le).copy(b, 0);
  u(pid, 4, le).copy(b, 4);
  b.write(comm, 8);
  u(big, 8, le).copy(b, 24);
  le ? b.writeInt16LE(s, 32) : b.writeInt16BE(s, 32);
  u((text.length << 16) | 40, 4, le).copy(b, 36);
  text.copy(b, 40);
  return b;
}

/** One ring-buffer page: timestamp, commit (of `commitSize` bytes), then the records. */
function page(le: boolean, commitSize: 4 | 8, ts: bigint, recs: Rec[], trailing = Buffer.alloc(0)): Buffer {
  const data = Buffer.concat(
    recs.map(({ body, delta, type = body.length / 4 }) => Buffer.concat([u(le ? ((delta << 5) | type) >>> 0 : ((type << 27) | delta) >>> 0, 4, le), body])),
  );
  const p = Buffer.alloc(4096);
  u(ts, 8, le).copy(p, 0);
  u(data.length, commitSize, le).copy(p, 8);
  data.copy(p, 8 + commitSize);
  trailing.copy(p, 8 + commitSize + data.length);
  return p;
}

function section(label: string, text: string, le: boolean): Buffer {
  return Buffer.concat([Buffer.from(`${label}\0`), u(Buffer.byteLength(text), 8, le), Buffer.from(text)]);
}

function handmade(le: boolean, commitSize: 4 | 8): Buffer {
  const c = commitSize;
  const headerPage = `\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:${c};\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:${8 + c};\tsize:${4088 - c};\tsigned:0;\n`;
  const headerEvent = '# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n';
  const clock = '[global] local counter\n';
  const head = Buffer.concat([
    Buffer.from([0x17, 0x08, 0x44]),
    Buffer.from('tracing6\0'),
    Buffer.from([le ? 0 : 1, c]),
    u(4096, 4, le),
    section('header_page', headerPage, le),
    section('header_event', headerEvent, le),
    u(0, 4, le), // no ftrace formats
    u(1, 4, le),
    Buffer.from('demo_sys\0'),
    u(1, 4, le),
    u(DEMO_FORMAT.length, 8, le),
    Buffer.from(DEMO_FORMAT),
    u(0, 4, le), // kallsyms
    u(0, 4, le), // printk formats
    u(13, 8, le),
    Buffer.from('42 demo-task\n'),
    u(2, 4, le), // CPUs
    Buffer.from('options  \0'),
    u(7, 2, le), // OFFSET: not applied, reported
    u(5, 4, le),
    Buffer.from('0x10\0'),
    u(4, 2, le), // TRACECLOCK: the clock follows the CPU table
    u(0, 4, le),
    u(0, 2, le),
    Buffer.from('flyrecord\0'),
  ]);
  const tableEnd = head.length + 32 + 8 + clock.length;
  const start = Math.ceil(tableEnd / 4096) * 4096;
  const msb = 1n << 60n; // kept through the absolute time stamp, whose 5 top bits are not stored
  const long = demo(le, 42, 'demo-task', 1n, 300, 'a longer message');
  const cpu0 = page(le, c, msb + 1000n, [
    { delta: 5, body: demo(le, 42, 'demo-task', (1n << 40n) + 3n, -7, 'hello') }, // 1005
    { type: 30, delta: 9, body: u(3, 4, le) }, // time extend: + 3 << 27 | 9
    { type: 29, delta: 2, body: Buffer.concat([u(8, 4, le), Buffer.alloc(4)]) }, // padding of 4 + 8 bytes, delta counted
    { type: 0, delta: 1, body: Buffer.concat([u(long.length + 4, 4, le), long]) }, // length word counts itself
    { type: 31, delta: 7, body: u(5, 4, le) }, // absolute: 5 << 27 | 7, top bits kept
    { delta: 0, body: demo(le, 7, 'x', 0n, 0, '') },
    { type: 29, delta: 0, body: Buffer.alloc(0) }, // null padding: the rest of the page is unused
  ]);
  const cpu1 = [
    page(le, c, msb + 1005n, [{ delta: 0, body: demo(le, 0, 'swapper/1', 0n, 0, '') }]),
    page(le, c, msb + 0n, []), // an empty page
    page(le, c, msb + 2000n, [{ delta: 0, body: demo(le, 7, 'other', 0n, 0, '') }]),
  ];
  const table = Buffer.concat([u(start, 8, le), u(4096, 8, le), u(start + 4096, 8, le), u(3 * 4096, 8, le)]);
  const mid = Buffer.concat([head, table, u(clock.length, 8, le), Buffer.from(clock)]);
  return Buffer.concat([mid, Buffer.alloc(start - mid.length), cpu0, ...cpu1]);
}

describe('readTraceDat on hand-built files (encodings the recordings lack)', () => {
  const dir = tmpDir();
  const cases = [
    { name: 'little-endian, 8-byte commit', le: true, c: 8 as const },
    { name: 'big-endian, 4-byte commit', le: false, c: 4 as const },
  ];
  for (const { name, le, c } of cases) {
    it(name, () => {
      const f = path.join(dir, `hand-${le ? 'le' : 'be'}.dat`);
      fs.writeFileSync(f, handmade(le, c));
      const { info, events } = read(f);
      expect(info).toEqual({ version: 6, littleEndian: le, longSize: c, pageSize: 4096, cpus: 2, clock: 'global', events: 5, ignoredOptions: ['OFFSET'], lost: new Map() });
      const msb = 1n << 60n;
      const extended = 1005n + (3n << 27n) + 9n;
      expect(events.map((e) => [e.cpu, e.ts - msb, e.pid, e.comm, e.system, e.name])).toEqual([
        [0, 1005n, 42, 'demo-task', 'demo_sys', 'demo'],
        [1, 1005n, 0, '<idle>', 'demo_sys', 'demo'], // equal timestamps: CPU 0 first
        [1, 2000n, 7, '<...>', 'demo_sys', 'demo'],
        [0, extended + 2n + 1n, 42, 'demo-task', 'demo_sys', 'demo'],
        [0, (5n << 27n) + 7n, 7, '<...>', 'demo_sys', 'demo'],
      ]);
      expect(events[0]!.fields).toEqual({ comm: 'demo-task', big: (1n << 40n) + 3n, s: -7, msg: 'hello' });
      expect(events[3]!.fields).toEqual({ comm: 'demo-task', big: 1n, s: 300, msg: 'a longer message' });
    });
  }

  it('a record running past its page and a page committing more than it holds are named', () => {
    const good = handmade(true, 8);
    const cpu0 = Number(good.readBigUInt64LE(good.indexOf('flyrecord\0') + 10)); // CPU 0's offset
    const overrun = Buffer.from(good);
    overrun.writeUInt32LE(5 << 5, cpu0 + 16); // first record: type_len 0, delta 5 ...
    overrun.writeUInt32LE(100_000, cpu0 + 20); // ... with a length beyond the page
    const f1 = path.join(dir, 'overrun.dat');
    fs.writeFileSync(f1, overrun);
    expectWattraceError(() => readTraceDat(f1, () => {}), /malformed CPU 0 data at byte \d+: a 99996-byte record runs past the page data's end/);
    const commit = Buffer.from(good);
    commit.writeUInt32LE(5000, cpu0 + 8);
    const f2 = path.join(dir, 'commit.dat');
    fs.writeFileSync(f2, commit);
    expectWattraceError(() => readTraceDat(f2, () => {}), new RegExp(`page at byte ${cpu0} commits 5000 bytes, more than its 4080 bytes of data`));
  });
});
