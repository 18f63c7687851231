/**
 * `wattrace import perf-script`: `perf script -F comm,pid,tid,cpu,time,event,period,trace` output of
 * `'{sched:sched_switch,<counters>...}:S'` to the context-switch log of docs/formats.md, streaming
 * (two passes: the first finds the counters and CPUs, the second writes).
 *
 * Each `sched:sched_switch` line is followed by one line per group member with the counter's
 * *advance since the previous switch on that CPU* — the consumption of `prev` (a missing member
 * line means 0, as perf omits zero counts). The row written at the switch names the VM of
 * `prev_comm` (the one that ran in the period ending there) and the cumulative counters; `msr/tsc/`
 * is the TSC, the other members become event columns (`cpu-clock` → `cpu_clock`). The first switch
 * of each CPU only opens its first period (its advance covers time before the recording).
 * `swapper/N` is the idle processor; other tasks are VMs by the mapping (`pids`: regexes on the
 * whole pid, first; `vms`: regexes on the command name), and what no rule maps goes to the
 * mapping's `default` (`host` without one) — counted,
 * never dropped. A starter profile is written too: the VMs, the TSC rate estimated from the
 * recording, every event with weight 0 (calibrate them: `wattrace calibrate`), an assumed 10 W
 * idle power per CPU to replace with a measured one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { NS_PER_S_BIG } from '../core/units.js';
import { textLines } from './text.js';
import type { Importer, ImportSummary } from './importer.js';
import { STARTER_IDLE_WATTS, starterVms, taskMapper, writeProfile, type Mapping } from './mapping.js';
import { switchedOut } from './ftrace-text.js';
import { CpuCoverage, CsvOut, RowTally, Skips, SwitchTracker } from './trackers.js';

/** `comm pid[/tid] [cpu] sec.frac: [period] event: rest` (`-F …,period,…` or perf's default fields). */
const LINE = /^\s*(.+?)\s+(-?\d+)(?:\/(-?\d+))?\s+\[(\d+)\]\s+(\d+)\.(\d+):\s+(?:(\d+)\s+)?(\S+):(?:\s(.*))?$/;
/** `perf sched timehist`: `time [cpu] comm[tid(/pid)] wait sch-delay run …`, the task switched out at `time`. */
const TIMEHIST = /^\s*(\d+)\.(\d+)\s+\[(\d+)\]\s+(.+?)(?:\[(\d+)(?:\/(\d+))?\])?\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)(?:\s.*)?$/;
const SWITCH = 'sched:sched_switch';
const TSC = 'msr/tsc/';

/** A perf event's name as a trace column (`cpu-clock` → `cpu_clock`, `msr/tsc/` → `msr_tsc`). */
export const columnOf = (event: string) => event.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');

function nsOf(sec: string, frac: string): bigint {
  return BigInt(sec) * NS_PER_S_BIG + BigInt(frac.padEnd(9, '0').slice(0, 9));
}


export const perfScriptImporter: Importer = {
  format: 'perf-script',
  expects: 'perf script output of sched:sched_switch (with the msr/tsc/ group for counters), or perf sched timehist output',
  finds: 'switches',
  run: (inputs, outDir, o) => importPerfScript(inputs, outDir, o.mapping),
};

export async function importPerfScript(inputs: readonly string[], outDir: string, mapping: Mapping): Promise<ImportSummary> {
  if (inputs.length !== 1) throw new WattraceError('E_USAGE', 'perf-script imports one recording at a time');
  const file = inputs[0]!;
  if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'perf-script input does not exist', { file });
  const vmOf = taskMapper(mapping);

  // Pass 1: the layout, the counters (group members) and the CPUs.
  const events = new Set<string>();
  let sawTsc = false;
  let tscWithoutPeriod: number | null = null;
  let switches = 0;
  let timehist = 0;
  let firstOther: { line: number; raw: string } | null = null;
  for await (const { line, raw: text } of textLines(file)) {
    const m = LINE.exec(text);
    if (m && m[8] === SWITCH) switches++;
    else if (m && m[8] === TSC) {
      sawTsc = true;
      if (m[7] === undefined) tscWithoutPeriod ??= line;
    }
    else if (m && m[7] !== undefined) events.add(m[8]!);
    else if (TIMEHIST.exec(text)) timehist++;
    else if (firstOther === null && text.trim() !== '' && !/^[\s-]*$|^\s*(time\s+cpu|\[tid\/pid\])/.test(text)) firstOther = { line, raw: text };
  }
  if (switches === 0 && timehist === 0) {
    const shown = firstOther ? `; line ${firstOther.line} reads '${firstOther.raw.length > 120 ? `${firstOther.raw.slice(0, 120)}…` : firstOther.raw}'` : '';
    throw new WattraceError(
      'E_EMPTY',
      `found no sched:sched_switch samples and no perf sched timehist rows; expected \`perf script\` output of sched:sched_switch (with a '{sched:sched_switch,msr/tsc/,…}:S' group for counters) or \`perf sched timehist\` output${shown}`,
      { file },
    );
  }
  if (tscWithoutPeriod !== null) {
    throw new WattraceError('E_FIELD', "the msr/tsc/ lines carry no counter value: perf script printed them without the period field; run perf script -F comm,pid,tid,cpu,time,event,period,trace", { file, line: tscWithoutPeriod });
  }
  // Without the TSC in the group (perf's default output, or timehist): switches with time only.
  if (!sawTsc || switches === 0) return importTimeOnly(file, outDir, mapping, switches > 0 ? 'perf-script' : 'perf sched timehist');
  const evNames = [...events];
  const cols = evNames.map(columnOf);

  fs.mkdirSync(outDir, { recursive: true });
  const out = new CsvOut(path.join(outDir, 'cswitch.csv'), ['ts_ns', 'cpu', 'vm', 'tsc', ...cols].join(','));
  const tally = new RowTally();
  const skips = new Skips();
  const cpus = new CpuCoverage();
  // Per CPU: cumulative tsc and events, time of its last switch.
  const state = new Map<number, { tsc: bigint; ev: bigint[]; t: bigint; opened: boolean }>();
  // `got`: the group's members seen so far.
  let pending: { cpu: number; t: bigint; vm: string; tsc: bigint; ev: bigint[]; line: number; got: Set<string> } | null = null;
  const notes: string[] = [];
  /** The first switch (not the last) whose group lost its msr/tsc/ line: an error once the TSC's own check has run. */
  let incomplete: { line: number; lacks: string } | null = null;
  let tscTicks = 0n;
  let tscNs = 0n;
  const emit = (atEnd = false) => {
    if (!pending) return;
    const p = pending;
    pending = null;
    // perf script leaves out a group member whose count did not change, so a missing event line
    // is an advance of 0; but the TSC always advances while time does: a switch later than its
    // CPU's last without an msr/tsc/ line lost it (a file cut short, at its end).
    const before = state.get(p.cpu);
    if (!p.got.has(TSC) && before !== undefined && p.t > before.t) {
      if (atEnd) {
        notes.push(`note: the last sched_switch (line ${p.line}) has no msr/tsc/ line in its group (the file was cut?): that switch is left out`);
        return;
      }
      incomplete ??= { line: p.line, lacks: TSC };
      return;
    }
    let st = state.get(p.cpu);
    if (!st) {
      // The first switch of a CPU opens its first period.
      st = { tsc: 0n, ev: evNames.map(() => 0n), t: p.t, opened: true };
      state.set(p.cpu, st);
      out.row([p.t, p.cpu, p.vm, 0, ...st.ev].join(','));
    } else {
      if (p.t < st.t) throw new WattraceError('E_ORDER', `time goes backwards on cpu ${p.cpu}`, { file, line: p.line });
      st.tsc += p.tsc;
      tscTicks += p.tsc;
      tscNs += p.t - st.t;
      st.ev = st.ev.map((v, i) => v + p.ev[i]!);
      st.t = p.t;
      out.row([p.t, p.cpu, p.vm, st.tsc, ...st.ev].join(','));
    }
    tally.add(p.vm, p.t);
    cpus.see(p.cpu, p.t);
  };
  try {
    for await (const { line: n, raw: text } of textLines(file)) {
      if (text.trim() === '') continue;
      const m = LINE.exec(text);
      if (!m) {
        skips.add('a line that is not a perf script sample');
        continue;
      }
      const cpu = Number(m[4]);
      const t = nsOf(m[5]!, m[6]!);
      const event = m[8]!;
      if (event === SWITCH) {
        emit();
        const prev = switchedOut(m[9] ?? '');
        if (!prev) throw new WattraceError('E_FIELD', `a sched_switch without the task switched out: '${m[9] ?? ''}'`, { file, line: n });
        pending = { cpu, t, vm: vmOf(prev.comm, prev.pid), tsc: 0n, ev: evNames.map(() => 0n), line: n, got: new Set() };
        continue;
      }
      if (!pending || pending.cpu !== cpu || pending.t !== t) {
        skips.add('a counter line outside a switch group');
        continue;
      }
      const value = BigInt(m[7] ?? '0');
      if (event === TSC) pending.tsc = value;
      else pending.ev[evNames.indexOf(event)] = value;
      pending.got.add(event);
    }
    emit(true);
    // The TSC never advanced inside a switch's group: it was recorded beside the group, not in it.
    if ((tscNs > 0n || incomplete !== null) && tscTicks === 0n) {
      throw new WattraceError('E_FIELD', "msr/tsc/ never advanced within a sched_switch group (its lines do not share the switch's CPU and time): record it in the group, '{sched:sched_switch,msr/tsc/,…}:S'", { file });
    }
    if (incomplete !== null) {
      const { line, lacks } = incomplete;
      throw new WattraceError('E_FIELD', `the sched_switch has no ${lacks} line in its group, though time advanced since its CPU's last switch (the TSC always does): a line is missing`, { file, line });
    }
    out.close();
  } catch (e) {
    out.discard();
    throw e;
  }
  const summary: ImportSummary = {
    format: 'perf-script',
    outputs: [{ file: out.file, rows: tally.rows, what: 'switches' }],
    found: tally.rows,
    span: tally.span,
    byVm: tally.byVm,
    skipped: skips.counts,
    coverage: cpus.line(),
    profile: path.join(outDir, 'machine.json'),
    notes,
  };
  const vms = [...new Set(Object.keys(summary.byVm).filter((v) => v !== 'idle'))].sort();
  const profile = {
    description: `Starter profile from wattrace import perf-script (${path.basename(file)}): tsc_hz estimated from the recording; event weights 0 and idle_watts 10 W per CPU are starter values — calibrate (wattrace calibrate) and measure.`,
    cpu: {
      tsc_hz: tscNs > 0n ? Number((tscTicks * NS_PER_S_BIG) / tscNs) : 1e9,
      idle_watts: STARTER_IDLE_WATTS,
      counter_bits: 64,
      idle_split: 'equal',
      events: Object.fromEntries(cols.map((c) => [c, 0])),
    },
    disks: {},
    vms: starterVms(vms, mapping),
    services: [],
  };
  writeProfile(summary.profile!, profile);
  return summary;
}

/**
 * Switches with time only, as ftrace gives them: `perf script` without counter members, or
 * `perf sched timehist` (a row per task switched out). The TSC column is the time in ns (the
 * starter profile's tsc_hz 1e9) and the starter profile splits idle energy by CPU time.
 */
async function importTimeOnly(file: string, outDir: string, mapping: Mapping, layout: 'perf-script' | 'perf sched timehist'): Promise<ImportSummary> {
  const vmOf = taskMapper(mapping);
  fs.mkdirSync(outDir, { recursive: true });
  const out = new CsvOut(path.join(outDir, 'cswitch.csv'), 'ts_ns,cpu,vm,tsc');
  const skips = new Skips();
  const switches = new SwitchTracker(out, vmOf);
  let first: bigint | null = null;
  let last: bigint | null = null;
  try {
    for await (const { line, raw } of textLines(file)) {
      if (raw.trim() === '') continue;
      const where = { file, line };
      if (layout === 'perf-script') {
        const m = LINE.exec(raw);
        if (!m) {
          skips.add('a line that is not a perf script sample');
          continue;
        }
        if (m[8] !== SWITCH) {
          skips.add(`event ${m[8]}`);
          continue;
        }
        const prev = switchedOut(m[9] ?? '');
        if (!prev) throw new WattraceError('E_FIELD', `a sched_switch without the task switched out: '${m[9] ?? ''}'`, where);
        const t = nsOf(m[5]!, m[6]!);
        switches.switchOut(Number(m[4]), t, t, prev.comm, prev.pid, where);
        first ??= t;
        last = t;
      } else {
        const m = TIMEHIST.exec(raw);
        if (!m) {
          if (!/^[\s-]*$|^\s*(time\s+cpu|\[tid\/pid\])/.test(raw)) skips.add('a line that is not a timehist row');
          continue;
        }
        const t = nsOf(m[1]!, m[2]!);
        const comm = m[4]!.trim();
        switches.switchOut(Number(m[3]), t, t, comm, m[5] ?? (comm === '<idle>' ? '0' : ''), where);
        first ??= t;
        last = t;
      }
    }
    out.close();
  } catch (e) {
    out.discard();
    throw e;
  }
  const summary: ImportSummary = {
    format: layout,
    outputs: [{ file: out.file, rows: switches.switches, what: 'switches' }],
    found: switches.switches,
    span: first !== null && last !== null ? { first, last } : null,
    byVm: switches.byVm,
    skipped: skips.counts,
    coverage: switches.coverageLine(),
    profile: path.join(outDir, 'machine.json'),
    notes: [],
  };
  const vms = [...new Set(Object.keys(summary.byVm).filter((v) => v !== 'idle'))].sort();
  writeProfile(summary.profile!, {
    description: `Starter profile from wattrace import perf-script (${path.basename(file)}, ${layout}, no counters): time only, so idle energy is split by CPU time; idle_watts ${STARTER_IDLE_WATTS} W per CPU is a starter value to replace with a measured one.`,
    cpu: { tsc_hz: 1e9, idle_watts: STARTER_IDLE_WATTS, counter_bits: 64, idle_split: 'by-time', events: {} },
    disks: {},
    vms: starterVms(vms, mapping),
    services: [],
  });
  return summary;
}
