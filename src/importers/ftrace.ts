/**
 * `wattrace import ftrace`: raw ftrace text (`/sys/kernel/tracing/trace`) or `trace-cmd report`
 * output to a context-switch log and a disk request log (docs/formats.md), streaming.
 *
 * - `sched_switch` (the `==>` layout and the older one without it): a row at each switch naming
 *   the VM of `prev_comm` (mapping regexes on command names; `swapper/N` and `<idle>` are `idle`;
 *   unmapped tasks go to the mapping's `default`, `host` without one). ftrace has no performance
 *   counters: the log has the TSC only (no event columns), so the starter profile splits idle
 *   energy by CPU time (`by-time`) — the only energy a VM's CPU time shows here.
 * - `block_rq_issue` / `block_rq_complete`: paired by device and sector; a completion becomes a
 *   disk request of the VM of the issuing task (`[comm]` of the issue line), with its bytes, its
 *   operation (R or W from rwbs) and the time between issue and completion as `latency_ns`.
 *   Completions without an issue in the trace are counted as skipped.
 * Timestamps: with `trace_clock=x86-tsc` they are TSC ticks (give `--tsc-hz`, or the starter
 * profile's default 1 GHz is used); otherwise seconds with a fraction (`local`, `global`,
 * `trace-cmd report`). The disk's numbers in the starter profile are placeholders.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { NS_PER_S_BIG } from '../core/units.js';
import { textLines } from './text.js';
import { STARTER_DISK, STARTER_IDLE_WATTS, starterServices, starterVms, taskMapper, writeProfile, type Mapping } from './mapping.js';

/** `comm-pid [cpu] [flags] ts: event: rest` (flags absent in some trace-cmd layouts). */
const LINE = /^\s*(.+)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(\d+)\]\s+(?:\S{4,5}\s+)?(\d+)(?:\.(\d+))?:\s+(\w+):\s*(.*)$/;
const BLOCK = /^(\d+),(\d+)\s+(\S+)\s+(?:(\d+)\s+)?\(\S*\)\s+(\d+)\s+\+\s+(\d+)/;

export interface FtraceSummary {
  format: string;
  switches: number;
  requests: number;
  skipped: Record<string, number>;
  byVm: Record<string, number>;
  out: string[];
  profile: string;
}

export async function importFtrace(inputs: readonly string[], outDir: string, mapping: Mapping, tscHz?: number): Promise<FtraceSummary> {
  if (inputs.length !== 1) throw new WattraceError('E_USAGE', 'ftrace imports one trace at a time');
  const file = inputs[0]!;
  if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'ftrace input does not exist', { file });
  const hz = tscHz ?? 1e9;
  const vmOf = taskMapper(mapping);
  const clientOf = taskMapper(mapping, false);
  fs.mkdirSync(outDir, { recursive: true });
  const cswitch = path.join(outDir, 'cswitch.csv');
  const disk = path.join(outDir, 'disk.csv');
  const cfd = fs.openSync(cswitch, 'w');
  const dfd = fs.openSync(disk, 'w');
  let cbuf = ['ts_ns,cpu,vm,tsc'];
  let dbuf = ['ts_ns,vm,op,offset,bytes,latency_ns'];
  const s: FtraceSummary = { format: 'ftrace', switches: 0, requests: 0, skipped: {}, byVm: {}, out: [cswitch, disk], profile: path.join(outDir, 'machine.json') };
  const skip = (why: string) => (s.skipped[why] = (s.skipped[why] ?? 0) + 1);
  const flush = () => {
    if (cbuf.length) fs.writeSync(cfd, cbuf.join('\n') + '\n');
    if (dbuf.length) fs.writeSync(dfd, dbuf.join('\n') + '\n');
    cbuf = [];
    dbuf = [];
  };
  const issued = new Map<string, { t: bigint; vm: string; bytes: bigint }>();
  let tscClock: boolean | null = null;
  const lastT = new Map<number, bigint>();
  let lastDisk = -1n;
  try {
    for await (const { line, raw } of textLines(file)) {
      if (raw.startsWith('#') || raw.trim() === '' || /^\s*(cpus=|CPU \d+ is empty)/.test(raw)) continue;
      const m = LINE.exec(raw);
      if (!m) {
        skip('a line that is not a trace event');
        continue;
      }
      const [, , , cpuS, secOrTicks, frac, event, rest] = m as unknown as [string, string, string, string, string, string | undefined, string, string];
      tscClock ??= frac === undefined;
      const ns = frac === undefined ? (BigInt(secOrTicks) * NS_PER_S_BIG) / BigInt(Math.round(hz)) : BigInt(secOrTicks) * NS_PER_S_BIG + BigInt(frac.padEnd(9, '0').slice(0, 9));
      const tsc = frac === undefined ? BigInt(secOrTicks) : (ns * BigInt(Math.round(hz))) / NS_PER_S_BIG;
      const where = { file, line };
      if (event === 'sched_switch') {
        const prev = /prev_comm=(.+?) prev_pid=(\d+)/.exec(rest);
        if (!prev) throw new WattraceError('E_FIELD', `a sched_switch without prev_comm: '${rest}'`, where);
        const cpu = Number(cpuS);
        const last = lastT.get(cpu);
        if (last !== undefined && ns < last) throw new WattraceError('E_ORDER', `time goes backwards on cpu ${cpu}`, where);
        lastT.set(cpu, ns);
        const vm = vmOf(prev[1]!, prev[2]!);
        cbuf.push(`${ns},${cpu},${vm},${tsc}`);
        s.switches++;
        s.byVm[vm] = (s.byVm[vm] ?? 0) + 1;
      } else if (event === 'block_rq_issue' || event === 'block_rq_complete') {
        const b = BLOCK.exec(rest);
        if (!b) throw new WattraceError('E_FIELD', `a ${event} that does not read 'major,minor rwbs [bytes] () sector + nr_sectors': '${rest}'`, where);
        const [, maj, min, rwbs, bytes, sector] = b as unknown as [string, string, string, string, string | undefined, string];
        const key = `${maj},${min}:${sector}`;
        if (event === 'block_rq_issue') {
          const comm = /\[(.+?)\]\s*$/.exec(rest)?.[1] ?? '';
          issued.set(key, { t: ns, vm: clientOf(comm, m[2]!), bytes: BigInt(bytes ?? '0') });
          continue;
        }
        const iss = issued.get(key);
        if (!iss) {
          skip('a completion whose issue is not in the trace');
          continue;
        }
        issued.delete(key);
        if (!/[RW]/.test(rwbs)) {
          skip(`a request of rwbs ${rwbs} (no data transfer)`);
          continue;
        }
        if (ns < lastDisk) throw new WattraceError('E_ORDER', 'a completion earlier than the previous one', where);
        lastDisk = ns;
        dbuf.push(`${ns},${iss.vm},${rwbs.includes('W') ? 'W' : 'R'},${BigInt(sector) * 512n},${iss.bytes},${ns - iss.t}`);
        s.requests++;
      } else skip(`event ${event}`);
      if (cbuf.length + dbuf.length >= 8192) flush();
    }
    flush();
  } catch (e) {
    fs.closeSync(cfd);
    fs.closeSync(dfd);
    fs.rmSync(cswitch, { force: true });
    fs.rmSync(disk, { force: true });
    throw e;
  }
  fs.closeSync(cfd);
  fs.closeSync(dfd);
  if (issued.size > 0) s.skipped['an issue whose completion is not in the trace'] = issued.size;
  const vms = [...new Set(Object.keys(s.byVm).filter((v) => v !== 'idle'))].sort();
  writeProfile(s.profile, {
    description: `Starter profile from wattrace import ftrace (${path.basename(file)}): ${tscClock ? `TSC clock at ${hz} Hz` : 'seconds clock'}; no counters in ftrace, so idle energy is split by CPU time; the idle power (${STARTER_IDLE_WATTS} W per CPU) and the disk's figures are placeholders to measure.`,
    cpu: { tsc_hz: hz, idle_watts: STARTER_IDLE_WATTS, counter_bits: 64, idle_split: 'by-time', events: {} },
    disks: { disk: STARTER_DISK },
    vms: starterVms(vms, mapping),
    services: starterServices(vms, mapping, [{ id: 'vdisk', device: 'disk' }]),
  });
  return s;
}
