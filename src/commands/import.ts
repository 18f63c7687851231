/** `wattrace import <format> <input...> --out DIR [--map MAPPING.json]`: other traces to the formats of docs/formats.md. */
import fs from 'node:fs';
import { WattraceError } from '../core/errors.js';
import { DISK_FORMATS, importDisk, type DiskFormat, type ImportSummary } from '../importers/disk.js';
import { loadMapping } from '../importers/mapping.js';
import { importPerfScript } from '../importers/perf-script.js';
import { importFtrace } from '../importers/ftrace.js';
import { importBlkparse } from '../importers/blkparse.js';
import { importPlanetlab } from '../importers/planetlab.js';
import type { IO } from './io.js';
import { missingNewlineNote } from '../traces/csv.js';
import { isTraceDat } from '../importers/tracedat.js';

export const IMPORT_FORMATS = [...DISK_FORMATS, 'blkparse', 'perf-script', 'ftrace', 'planetlab'] as const;

export interface ImportArgs {
  format: string;
  inputs: readonly string[];
  out: string;
  map?: string | undefined;
  tscHz?: number | undefined;
  cpus?: number | undefined;
}

/** What each format's input must hold, for the error when it holds none of it. */
const EXPECTED: Record<string, string> = {
  blkparse: "blkparse's default output (lines 'maj,min cpu seq sec.nsec pid action rwbs …' with Q/D/C events)",
  ftrace: "sched_switch events as trace-cmd report (any layout) or /sys/kernel/tracing/trace print them, or a trace-cmd trace.dat",
  'perf-script': 'perf script output of sched:sched_switch with the msr/tsc/ group',
  planetlab: 'PlanetLab CPU utilization files (one number per line)',
  disksim: 'DiskSim ASCII requests (arrival_ns device lba_sectors size_sectors type)',
  vscsi: 'CloudPhysics vscsi binary records',
  'vscsi-csv': 'CloudPhysics vscsi CSV (version,time,op,size,lbn)',
  msr: 'MSR Cambridge CSV (Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime)',
};

/** A binary input (a trace.dat, a vscsi trace): no lines, so no note about its last one. */
function isBinaryInput(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(512);
    const n = fs.readSync(fd, b, 0, b.length, 0);
    fs.closeSync(fd);
    return isTraceDat(b.subarray(0, n)) || b.subarray(0, n).includes(0);
  } catch {
    return false;
  }
}

/** The first non-empty line of a file, escaped and cut for an error message. */
function firstLine(file: string): string {
  try {
    const buf = Buffer.alloc(4096);
    const fd = fs.openSync(file, 'r');
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    fs.closeSync(fd);
    const line = buf.subarray(0, n).toString('utf8').split('\n').find((l) => l.trim() !== '');
    // Quoted as it is: the error escapes and cuts it.
    return line === undefined ? '(the file is empty)' : `'${line.replace(/\r$/, '').replace(/'/g, '’')}'`;
  } catch {
    return '(unreadable)';
  }
}

export async function runImport(args: ImportArgs, io: IO): Promise<ImportSummary> {
  const before = fs.existsSync(args.out) ? new Set(fs.readdirSync(args.out)) : null;
  // The summary is printed once the import is known to have found something.
  const lines: string[] = [];
  const s = await importAny(args, { ...io, out: (t) => void lines.push(t) });
  if (s.written === 0) {
    // Nothing found: not an empty trace and a starter profile, but an error, and no output left.
    if (before === null) fs.rmSync(args.out, { recursive: true, force: true });
    else for (const f of fs.readdirSync(args.out)) if (!before.has(f)) fs.rmSync(`${args.out}/${f}`, { recursive: true, force: true });
    throw new WattraceError('E_EMPTY', `found no ${args.format === 'ftrace' ? 'sched_switch events' : 'events'} to import; expected ${EXPECTED[args.format] ?? args.format}; the first line reads ${firstLine(args.inputs[0]!)}`, { file: args.inputs[0]! });
  }
  for (const l of lines) io.out(l);
  for (const f of args.inputs) {
    if (isBinaryInput(f)) continue;
    const note = missingNewlineNote(f);
    if (note) io.err(`wattrace: note: ${note}`);
  }
  return s;
}

async function importAny(args: ImportArgs, io: IO): Promise<ImportSummary> {
  if (!(IMPORT_FORMATS as readonly string[]).includes(args.format)) {
    throw new WattraceError('E_USAGE', `unknown format '${args.format}'; this version imports ${IMPORT_FORMATS.join(', ')}`);
  }
  if (args.inputs.length === 0) throw new WattraceError('E_USAGE', 'name at least one input file');
  if (args.format === 'planetlab') {
    const p = importPlanetlab(args.inputs, args.out, loadMapping(args.map), args.cpus ?? 16, args.tscHz);
    io.out(`planetlab: ${p.vms.toLocaleString('en-US')} VMs on ${p.cpus} CPUs, ${p.steps} steps of 5 min → ${p.rows.toLocaleString('en-US')} switches in ${p.out}`);
    io.out(`  starter profile: ${p.profile}`);
    io.out(`  unmet demand (CPUs overloaded): ${p.unmetS.toFixed(0)} CPU-seconds`);
    return { format: 'planetlab', written: p.steps > 0 ? p.rows : 0, skipped: {}, byVm: {}, first: null, last: null, out: p.out };
  }
  if (args.format === 'ftrace') {
    const f = await importFtrace(args.inputs, args.out, loadMapping(args.map), args.tscHz);
    io.out(`${f.format}: ${f.switches.toLocaleString('en-US')} switches → ${f.out[0]}, ${f.requests.toLocaleString('en-US')} disk requests → ${f.out[1]}`);
    io.out(`  starter profile: ${f.profile}`);
    io.out(`  switches by VM: ${Object.entries(f.byVm).map(([v, n]) => `${v} ${n.toLocaleString('en-US')}`).join(', ')}`);
    const sk = Object.entries(f.skipped);
    io.out(sk.length ? `  skipped: ${sk.map(([r, n]) => `${n} × ${r}`).join(', ')}` : '  skipped: none');
    if (f.coverage) io.out(`  coverage: ${f.coverage}`);
    // The cswitch log is what an ftrace import is for: without switches it found nothing.
    return { format: 'ftrace', written: f.switches > 0 ? f.switches + f.requests : 0, skipped: f.skipped, byVm: f.byVm, first: null, last: null, out: f.out.join(', ') };
  }
  if (args.format === 'blkparse') {
    const b = await importBlkparse(args.inputs, args.out, loadMapping(args.map));
    io.out(`blkparse: ${b.written.toLocaleString('en-US')} requests → ${b.out} (first ${b.first}, last ${b.last} ns)`);
    io.out(`  starter profile: ${b.profile}`);
    io.out(`  by VM: ${Object.entries(b.byVm).map(([v, n]) => `${v} ${n.toLocaleString('en-US')}`).join(', ')}; by disk: ${Object.entries(b.byDisk).map(([d, n]) => `${d} ${n.toLocaleString('en-US')}`).join(', ')}`);
    const sk = Object.entries(b.skipped);
    io.out(sk.length ? `  skipped: ${sk.map(([r, n]) => `${n} × ${r}`).join(', ')}` : '  skipped: none');
    return b;
  }
  const s =
    args.format === 'perf-script'
      ? await importPerfScript(args.inputs, args.out, loadMapping(args.map))
      : await importDisk(args.format as DiskFormat, args.inputs, args.out, loadMapping(args.map));
  const what = args.format === 'perf-script' ? 'switches' : 'requests';
  io.out(`${s.format}: ${s.written.toLocaleString('en-US')} ${what} → ${s.out} (first ${s.first}, last ${s.last} ns)`);
  if ('profile' in s) io.out(`  starter profile: ${(s as { profile: string }).profile}`);
  io.out(`  by VM: ${Object.entries(s.byVm).map(([v, n]) => `${v} ${n.toLocaleString('en-US')}`).join(', ')}`);
  const skipped = Object.entries(s.skipped);
  io.out(skipped.length ? `  skipped: ${skipped.map(([r, n]) => `${n} × ${r}`).join(', ')}` : '  skipped: none');
  return s;
}
