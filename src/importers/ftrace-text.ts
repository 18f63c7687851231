/**
 * The tokenizer of ftrace's text layouts: a line to an event (task, pid, CPU, timestamp, event name
 * and its printed fields), or null for a line that is no event. Detected per line, never chosen by
 * a flag, so a file may mix them:
 *   trace-cmd report                 `comm-pid [cpu] sec.usec: event: fields`
 *   trace-cmd report -t              the same with nanoseconds (`sec.nsec`)
 *   trace-cmd report --ts-diff       `sec.usec: (+delta) event:` (blank for the first)
 *   trace-cmd report -l              latency layout: `comm-pid  2d..3. sec.usec: event:` (the CPU is
 *                                    the first digits of the flags; comm cut to 8 characters)
 *   trace-cmd report -R, -q          raw fields / no warnings: the same line shapes
 *   /sys/kernel/tracing/trace        `comm-pid [cpu] flags sec.usec: event:` (irq-info flags, or none),
 *                                    with a TGID column `(  1234)` or `(-------)` when options/record-tgid
 *   Android systrace                 the same lines inside the HTML (the HTML lines are no events)
 *   babeltrace2 text                 `[hh:mm:ss.nsec] (+delta) [host] [subsys:]event: { f = v, … }[, { … }]`
 *                                    (perf data converted to CTF, or LTTng): the CPU from `perf_cpu`
 *                                    or `cpu_id`; a sched_switch's fields rewritten to the kernel's
 *                                    `prev_comm=… prev_pid=…`; `ctf` set, as its block events differ
 * Timestamps are seconds with 6 or 9 decimals, or whole ticks (`trace_clock=x86-tsc`, `counter`).
 */

export interface FtraceEvent {
  comm: string;
  pid: number;
  cpu: number;
  /** Whole seconds, or ticks when `frac` is undefined. */
  sec: string;
  /** Decimals of the second as printed (6: µs, 9: ns), or undefined for a tick clock. */
  frac: string | undefined;
  event: string;
  rest: string;
  /** Set for babeltrace2's text of a CTF trace. */
  ctf?: true;
  /** Set when `sec` is a time of day (babeltrace2's `[hh:mm:ss.nsec]`): it wraps at midnight. */
  timeOfDay?: true;
}

/** `comm-pid [(tgid)] [cpu] [flags] ts: [(+delta)] event: rest` — every layout but -l. */
const BRACKET = /^\s*(.+)-(\d+)\s+(?:\(\s*(?:[-\d]+)\)\s+)?\[(\d+)\]\s+(?:[\w.]{4,6}\s+)?(\d+)(?:\.(\d+))?:\s+(?:\(\+\d+\)\s+)?(\w+):\s*(.*)$/;
/** `comm-pid  <cpu><flags> ts: [(+delta)] event: rest` — trace-cmd report -l. */
const LATENCY = /^\s*(.+)-(\d+)\s+(\d+)[a-zA-Z.][\w.]{2,5}\s+(\d+)(?:\.(\d+))?:\s+(?:\(\+\d+\)\s+)?(\w+):\s*(.*)$/;

/** `[hh:mm:ss.nsec] (+delta) [host] [subsys:]event: { … }` or `[sec.nsec] …` — babeltrace2's text. */
const CTF = /^\[(?:(\d+):(\d\d):(\d\d)|(\d+))\.(\d+)\]\s+\(\+[^)]*\)\s+(?:\S+\s+)?(?:\w+:)?(\w+):\s*(\{.*)$/;
/** `name = value` in a CTF event's braces (a string value quoted, with escapes). */
const CTF_FIELD = /(\w+) = ("(?:[^"\\]|\\.)*"|[^,}]+)/g;

function ctfEvent(m: RegExpExecArray): FtraceEvent | null {
  const f = new Map<string, string>();
  for (const x of m[7]!.matchAll(CTF_FIELD)) {
    const v = x[2]!.trim();
    if (!f.has(x[1]!)) f.set(x[1]!, v.startsWith('"') ? (JSON.parse(v) as string) : v);
  }
  const cpu = f.get('perf_cpu') ?? f.get('cpu_id');
  if (cpu === undefined || !/^\d+$/.test(cpu)) return null;
  const sec = m[4] ?? String(Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]));
  const pid = Number(f.get('perf_tid') ?? f.get('tid') ?? f.get('common_pid') ?? -1);
  const event = m[6]!;
  const prevPid = f.get('prev_pid') ?? f.get('prev_tid');
  const rest = event === 'sched_switch' && f.has('prev_comm') && prevPid !== undefined ? `prev_comm=${f.get('prev_comm')} prev_pid=${prevPid}` : m[7]!;
  return { comm: f.get('comm') ?? '', pid, cpu: Number(cpu), sec, frac: m[5], event, rest, ctf: true, ...(m[4] === undefined ? { timeOfDay: true as const } : {}) };
}

export function tokenizeFtraceLine(raw: string): FtraceEvent | null {
  if (raw.startsWith('[')) {
    const c = CTF.exec(raw);
    return c ? ctfEvent(c) : null;
  }
  let m = BRACKET.exec(raw);
  if (m) return { comm: m[1]!.trim(), pid: Number(m[2]), cpu: Number(m[3]), sec: m[4]!, frac: m[5], event: m[6]!, rest: m[7]! };
  m = LATENCY.exec(raw);
  if (m) return { comm: m[1]!.trim(), pid: Number(m[2]), cpu: Number(m[3]), sec: m[4]!, frac: m[5], event: m[6]!, rest: m[7]! };
  return null;
}

/** Lines that belong to a trace's header or framing: skipped without being counted. */
export function isFraming(raw: string): boolean {
  return raw.startsWith('#') || raw.trim() === '' || /^\s*(cpus=\d+|CPU:?\d+ is empty|version = \d+)/i.test(raw);
}

/**
 * The task switched out by a `sched_switch`, in every way it is printed:
 *   `prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=b …` (the kernel's format)
 *   `prev_comm=a prev_pid=1 prev_prio=120 prev_state=1 next_comm=b …`     (report -R: raw, no ==>)
 *   `a:1 [120] S ==> b:2 [120]`                                           (libtraceevent's plugin,
 *                                                                          Debian's trace-cmd report)
 * A comm may hold spaces and colons (`rs:main Q:Reg`): the pid is the last `:digits` before ` [`.
 */
export function switchedOut(rest: string): { comm: string; pid: string } | null {
  const kernel = /prev_comm=(.+?) prev_pid=(-?\d+)/.exec(rest);
  if (kernel) return { comm: kernel[1]!, pid: kernel[2]! };
  const plugin = /^(.+?):(-?\d+) \[-?\d+\] \S+ ==> /.exec(rest);
  if (plugin) return { comm: plugin[1]!, pid: plugin[2]! };
  return null;
}

/**
 * `block_rq_issue` / `block_rq_complete` fields: `maj,min rwbs [bytes] (cmd) sector + nr [comm]`
 * (a completion ends in `[error]`), or raw (`trace-cmd report -R`): `dev=N sector=S nr_sector=N
 * [bytes=B] [error=E] … rwbs=W comm=C`, the device number split as the kernel's (major << 20 | minor).
 */
export function blockFields(rest: string): { dev: string; rwbs: string; bytes: string | undefined; sector: string; comm: string | undefined; error: string } | null {
  const b = /^(\d+),(\d+)\s+(\S+)\s+(?:(\d+)\s+)?\(\S*\)\s+(\d+)\s+\+\s+(\d+)/.exec(rest);
  if (b) {
    const tail = /\[(.+?)\]\s*$/.exec(rest)?.[1];
    return { dev: `${b[1]},${b[2]}`, rwbs: b[3]!, bytes: b[4], sector: b[5]!, comm: tail, error: tail !== undefined && /^-?\d+$/.test(tail) ? tail : '0' };
  }
  const field = (k: string) => new RegExp(`(?:^|\\s)${k}=(\\S*)`).exec(rest)?.[1];
  const dev = field('dev');
  const sector = field('sector');
  const rwbs = field('rwbs');
  if (dev === undefined || sector === undefined || rwbs === undefined || !/^\d+$/.test(dev) || !/^\d+$/.test(sector)) return null;
  const d = Number(dev);
  return { dev: `${Math.floor(d / 2 ** 20)},${d % 2 ** 20}`, rwbs, bytes: field('bytes'), sector, comm: field('comm'), error: field('error') ?? '0' };
}
