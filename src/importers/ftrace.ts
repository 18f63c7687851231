/**
 * `wattrace import ftrace`: ftrace's text (every `trace-cmd report` layout, the tracefs `trace`
 * file, Android systrace: ftrace-text.ts) or a trace-cmd `trace.dat` read natively (tracedat.ts,
 * detected by its magic), to a context-switch log and a disk request log (docs/formats.md).
 *
 * - `sched_switch`: a row at each switch naming the VM of the task switched out (mapping regexes
 *   on command names or pids; `swapper/N` and `<idle>` are `idle`; unmapped tasks go to the
 *   mapping's `default`, `host` without one). ftrace has no performance counters: the log has the
 *   TSC only (no event columns), so the starter profile splits idle energy by CPU time (`by-time`).
 * - `block_rq_issue` / `block_rq_complete`: paired by device and sector; a completion becomes a
 *   disk request of the VM of the issuing task, with its bytes, its operation (R or W from rwbs)
 *   and the time between issue and completion as `latency_ns`.
 * Timestamps: with `trace_clock=x86-tsc` (text without decimals) they are TSC ticks (give
 * `--tsc-hz`, required: a guessed rate would make every time wrong); otherwise seconds with a fraction.
 * A trace.dat's timestamps are its ring buffer's, ns for the default `local` clock.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { readHead } from '../core/files.js';
import { NS_PER_S_BIG } from '../core/units.js';
import { textLines } from './text.js';
import { STARTER_DISK, STARTER_IDLE_WATTS, starterServices, starterVms, taskMapper, writeProfile, type Mapping } from './mapping.js';
import { blockFields, isFraming, switchedOut, tokenizeFtraceLine } from './ftrace-text.js';
import { isTraceDat, readTraceDat, type DatEvent } from './tracedat.js';
import { BlockTracker, CsvOut, Skips, SwitchTracker } from './trackers.js';
import type { Importer, ImportSummary } from './importer.js';

export const ftraceImporter: Importer = {
  format: 'ftrace',
  expects: 'sched_switch events as trace-cmd report (any layout) or /sys/kernel/tracing/trace print them, or a trace-cmd trace.dat',
  finds: 'sched_switch events',
  run: (inputs, outDir, o) => importFtrace(inputs, outDir, o.mapping, o.tscHz),
};

/** The range of TSC rates taken as plausible for `--tsc-hz` (outside it, a note). */
export const MIN_TSC_HZ = 4e8;
export const MAX_TSC_HZ = 1e10;

export async function importFtrace(inputs: readonly string[], outDir: string, mapping: Mapping, tscHz?: number): Promise<ImportSummary> {
  if (inputs.length !== 1) throw new WattraceError('E_USAGE', 'ftrace imports one trace at a time');
  const file = inputs[0]!;
  if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'ftrace input does not exist', { file });
  const hz = tscHz ?? 1e9;
  const hzBig = BigInt(Math.round(hz));
  const vmOf = taskMapper(mapping);
  const clientOf = taskMapper(mapping, false);
  fs.mkdirSync(outDir, { recursive: true });
  const cswitch = new CsvOut(path.join(outDir, 'cswitch.csv'), 'ts_ns,cpu,vm,tsc');
  const disk = new CsvOut(path.join(outDir, 'disk.csv'), 'ts_ns,vm,op,offset,bytes,latency_ns');
  const skips = new Skips();
  const switches = new SwitchTracker(cswitch, vmOf);
  const blocks = new BlockTracker(disk, skips);
  const binary = isTraceDat(readHead(file, 16));
  const notes: string[] = [];
  let clock: string;
  try {
    clock = binary ? importDat(file, switches, blocks, skips, clientOf, hzBig, notes) : await importText(file, switches, blocks, skips, clientOf, hz, hzBig, tscHz !== undefined, notes);
    // On a clock in seconds (or a trace.dat's ns) the TSC column is made from time at this rate:
    // the rate changes no result, and the user may believe it converted something.
    // A rate off by 1000 (MHz or kHz given as Hz) stretches every time without a check to catch it:
    // nothing in a text trace says how long it ran. TSCs tick at 0.4 to 10 GHz.
    if (tscHz !== undefined && clock.startsWith('TSC clock') && (tscHz < MIN_TSC_HZ || tscHz > MAX_TSC_HZ)) {
      const sp = switches.cpus.span();
      const secs = sp === null ? '' : ` (at ${(tscHz / 1e9).toPrecision(3)} GHz the trace spans ${(Number(sp.last - sp.first) / 1e9).toPrecision(4)} s)`;
      notes.push(`note: --tsc-hz ${tscHz} is outside the rates TSCs tick at (${MIN_TSC_HZ / 1e9} to ${MAX_TSC_HZ / 1e9} GHz): is it in Hz?${secs}`);
    }
    if (tscHz !== undefined && !clock.startsWith('TSC clock')) notes.push(`note: --tsc-hz ${tscHz} only sets the rate of the TSC column made from time (the trace's ${clock} is not in ticks); it changes no result`);
    blocks.finish();
    cswitch.close();
    disk.close();
  } catch (e) {
    cswitch.discard();
    disk.discard();
    throw e;
  }
  const s: ImportSummary = {
    format: binary ? 'ftrace (trace.dat)' : 'ftrace',
    outputs: [
      { file: cswitch.file, rows: switches.switches, what: 'switches' },
      { file: disk.file, rows: blocks.requests, what: 'disk requests' },
    ],
    // The cswitch log is what an ftrace import is for: without switches it found nothing.
    found: switches.switches,
    span: switches.cpus.span(),
    byVm: switches.byVm,
    skipped: skips.counts,
    coverage: switches.coverageLine(),
    profile: path.join(outDir, 'machine.json'),
    notes,
  };
  const vms = [...new Set(Object.keys(s.byVm).filter((v) => v !== 'idle'))].sort();
  writeProfile(s.profile!, {
    description: `Starter profile from wattrace import ftrace (${path.basename(file)}): ${clock}; no counters in ftrace, so idle energy is split by CPU time; the idle power (${STARTER_IDLE_WATTS} W per CPU) and the disk's figures are starter values to replace with measured ones.`,
    cpu: { tsc_hz: hz, idle_watts: STARTER_IDLE_WATTS, counter_bits: 64, idle_split: 'by-time', events: {} },
    disks: { disk: STARTER_DISK },
    vms: starterVms(vms, mapping),
    services: starterServices(vms, mapping, [{ id: 'vdisk', device: 'disk' }]),
  });
  return s;
}

/** ftrace text, a line at a time. Returns the clock, for the profile's description. */
async function importText(file: string, switches: SwitchTracker, blocks: BlockTracker, skips: Skips, clientOf: (comm: string, pid?: string) => string, hz: number, hzBig: bigint, hzGiven: boolean, notes: string[]): Promise<string> {
  let tscClock: boolean | null = null;
  const lost = new Map<number, number>();
  let lastTimeOfDay: number | null = null;
  let days = 0;
  for await (const { line, raw } of textLines(file)) {
    if (isFraming(raw)) continue;
    const e = tokenizeFtraceLine(raw);
    if (!e) {
      const dropped = /^\s*CPU:?\s*(\d+) \[(?:\d+ )?EVENTS DROPPED\]/.exec(raw);
      if (dropped) {
        lost.set(Number(dropped[1]), (lost.get(Number(dropped[1])) ?? 0) + 1);
        continue;
      }
      skips.add('a line that is not a trace event');
      continue;
    }
    if (tscClock === null) {
      tscClock = e.frac === undefined;
      // Ticks without a rate would be read at a guessed one: every time and span wrong.
      if (tscClock && !hzGiven) {
        throw new WattraceError('E_USAGE', `the timestamps are clock ticks, not seconds (trace_clock x86-tsc or counter: no decimal point in '${e.sec}'); give the clock's rate with --tsc-hz (e.g. from /proc/cpuinfo or dmesg 'tsc: Refined TSC clocksource calibration')`, { file, line });
      }
    }
    // babeltrace2's [hh:mm:ss] wraps at midnight (its events are in time order across CPUs): a
    // time of day more than 12 hours before the last one is the next day.
    if (e.timeOfDay) {
      const tod = Number(e.sec);
      if (lastTimeOfDay !== null && tod < lastTimeOfDay - 43_200) days++;
      lastTimeOfDay = tod;
      if (days > 0) e.sec = String(tod + days * 86_400);
    }
    const ns = e.frac === undefined ? (BigInt(e.sec) * NS_PER_S_BIG) / hzBig : BigInt(e.sec) * NS_PER_S_BIG + BigInt(e.frac.padEnd(9, '0').slice(0, 9));
    const tsc = e.frac === undefined ? BigInt(e.sec) : (ns * hzBig) / NS_PER_S_BIG;
    const where = { file, line };
    // `trace-cmd report -i a.dat -i b.dat` (or a report of buffer instances) prefixes each line
    // with its source: several machines' CPUs in one stream, which one log cannot tell apart.
    const source = /^(\S+):\s{2,}\S/.exec(e.comm);
    if (source) {
      throw new WattraceError('E_FIELD', `the line is prefixed with its source '${source[1]}:': the report merges several trace files or buffer instances, whose CPUs one log cannot tell apart; import each on its own (trace-cmd report -i FILE, or the instance's own report)`, where);
    }
    if (e.event === 'sched_switch') {
      const prev = switchedOut(e.rest);
      if (!prev) throw new WattraceError('E_FIELD', `a sched_switch without the task switched out (prev_comm=… prev_pid=…, or comm:pid [prio] state ==> …): '${e.rest}'`, where);
      switches.switchOut(e.cpu, ns, tsc, prev.comm, prev.pid, where);
    } else if ((e.event === 'block_rq_issue' || e.event === 'block_rq_complete') && e.ctf) {
      // LTTng's block events print rwbs as a bit mask and dev as one number: no sample to test a reading against.
      skips.add(`a ${e.event} in babeltrace text (not read: its rwbs is a bit mask)`);
    } else if (e.event === 'block_rq_issue' || e.event === 'block_rq_complete') {
      const b = blockFields(e.rest);
      if (!b) throw new WattraceError('E_FIELD', `a ${e.event} that does not read 'major,minor rwbs [bytes] () sector + nr_sectors': '${e.rest}'`, where);
      if (e.event === 'block_rq_issue') blocks.issue(b.dev, b.sector, ns, clientOf(b.comm ?? '', String(e.pid)), BigInt(b.bytes ?? '0'));
      else blocks.complete(b.dev, b.sector, ns, b.rwbs, where, b.error);
    } else skips.add(`event ${e.event}`);
  }
  if (lost.size > 0) notes.push(lostNote(lost));
  return tscClock ? `TSC clock at ${hz} Hz` : 'seconds clock';
}

/** The summary's warning for events lost per CPU (the ring buffer overran). */
function lostNote(lost: ReadonlyMap<number, number>): string {
  const gaps = [...lost].sort((a, b) => a[0] - b[0]).map(([cpu, n]) => `cpu ${cpu} ${n}×`).join(', ');
  return `warning: events were lost where the ring buffer overran (${gaps}): the switch after each gap is charged the whole gap; record with a larger buffer (trace-cmd record -b)`;
}

const WANTED = new Set(['sched_switch', 'block_rq_issue', 'block_rq_complete']);

/** A trace.dat, natively: events merged across CPUs by time. Returns the clock. */
function importDat(file: string, switches: SwitchTracker, blocks: BlockTracker, skips: Skips, clientOf: (comm: string, pid?: string) => string, hzBig: bigint, notes: string[]): string {
  let n = 0;
  const str = (e: DatEvent, k: string) => String(e.fields[k] ?? '');
  const info = readTraceDat(
    file,
    (e) => {
      n++;
      // Where an error points: the event's number in time order (a binary file has no lines).
      const where = { file, line: n };
      const tsc = (e.ts * hzBig) / NS_PER_S_BIG;
      if (e.name === 'sched_switch') {
        switches.switchOut(e.cpu, e.ts, tsc, str(e, 'prev_comm'), str(e, 'prev_pid'), where);
      } else if (e.name === 'block_rq_issue' || e.name === 'block_rq_complete') {
        const dev = Number(e.fields['dev'] ?? 0);
        const d = `${dev >>> 20},${dev & 0xfffff}`;
        const sector = String(e.fields['sector'] ?? '0');
        if (e.name === 'block_rq_issue') blocks.issue(d, sector, e.ts, clientOf(str(e, 'comm'), String(e.pid)), BigInt(e.fields['bytes'] ?? 0));
        else blocks.complete(d, sector, e.ts, str(e, 'rwbs'), where);
      }
    },
    WANTED,
  );
  const others = info.events - n;
  if (others > 0) skips.add('an event other than sched_switch and block_rq_issue/complete', others);
  if (info.clock !== null && /^uptime$/.test(info.clock)) {
    throw new WattraceError('E_FIELD', 'trace.dat recorded with trace_clock uptime counts jiffies, not ns: record with the default local clock (or mono, boot, global)', { file });
  }
  if (info.clock !== null && /tsc|counter/.test(info.clock)) {
    throw new WattraceError('E_FIELD', `trace.dat recorded with trace_clock ${info.clock} (ticks, not ns) is not read natively; import its text instead: trace-cmd report -t ${path.basename(file)} > trace.txt, then wattrace import ftrace trace.txt --tsc-hz HZ`, { file });
  }
  if (info.lost.size > 0) notes.push(lostNote(info.lost));
  // CPUs the recording had but that never switched are not in the log, so not in a replay's
  // energy (which covers every CPU with a row): say which, since the header knows them.
  const switched = new Set(switches.cpus.coverage().map((c) => c.cpu));
  const silent = Array.from({ length: info.cpus }, (_, c) => c).filter((c) => !switched.has(c));
  if (switched.size > 0 && silent.length > 0) {
    notes.push(`note: the trace.dat header counts ${info.cpus} CPUs; ${silent.length === 1 ? 'cpu' : 'cpus'} ${silent.join(', ')} never switched, so ${silent.length === 1 ? 'it is' : 'they are'} not in the cswitch log and not in a replay's energy`);
  }
  for (const o of info.ignoredOptions) notes.push(`note: the trace.dat option ${o} is not applied (timestamps are the ring buffer's own; trace-cmd report would apply it)`);
  return `trace.dat v${info.version}, ${info.clock ?? 'local'} clock (ns)`;
}
