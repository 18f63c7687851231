/** `wattrace import <format> <input...> --out DIR [--map MAPPING.json]`: other traces to the formats of docs/formats.md. */
import { WattraceError } from '../core/errors.js';
import { DISK_FORMATS, importDisk, type DiskFormat, type ImportSummary } from '../importers/disk.js';
import { loadMapping } from '../importers/mapping.js';
import { importPerfScript } from '../importers/perf-script.js';
import { importFtrace } from '../importers/ftrace.js';
import { importBlkparse } from '../importers/blkparse.js';
import { importPlanetlab } from '../importers/planetlab.js';
import type { IO } from './io.js';

export const IMPORT_FORMATS = [...DISK_FORMATS, 'blkparse', 'perf-script', 'ftrace', 'planetlab'] as const;

export interface ImportArgs {
  format: string;
  inputs: readonly string[];
  out: string;
  map?: string | undefined;
  tscHz?: number | undefined;
  cpus?: number | undefined;
}

export async function runImport(args: ImportArgs, io: IO): Promise<ImportSummary> {
  if (!(IMPORT_FORMATS as readonly string[]).includes(args.format)) {
    throw new WattraceError('E_USAGE', `unknown format '${args.format}'; this version imports ${IMPORT_FORMATS.join(', ')}`);
  }
  if (args.inputs.length === 0) throw new WattraceError('E_USAGE', 'name at least one input file');
  if (args.format === 'planetlab') {
    const p = importPlanetlab(args.inputs, args.out, loadMapping(args.map), args.cpus ?? 16, args.tscHz);
    io.out(`planetlab: ${p.vms.toLocaleString('en-US')} VMs on ${p.cpus} CPUs, ${p.steps} steps of 5 min → ${p.rows.toLocaleString('en-US')} switches in ${p.out}`);
    io.out(`  starter profile: ${p.profile}`);
    io.out(`  unmet demand (CPUs overloaded): ${p.unmetS.toFixed(0)} CPU-seconds`);
    return { format: 'planetlab', written: p.rows, skipped: {}, byVm: {}, first: null, last: null, out: p.out };
  }
  if (args.format === 'ftrace') {
    const f = await importFtrace(args.inputs, args.out, loadMapping(args.map), args.tscHz);
    io.out(`ftrace: ${f.switches.toLocaleString('en-US')} switches → ${f.out[0]}, ${f.requests.toLocaleString('en-US')} disk requests → ${f.out[1]}`);
    io.out(`  starter profile: ${f.profile}`);
    io.out(`  switches by VM: ${Object.entries(f.byVm).map(([v, n]) => `${v} ${n.toLocaleString('en-US')}`).join(', ')}`);
    const sk = Object.entries(f.skipped);
    io.out(sk.length ? `  skipped: ${sk.map(([r, n]) => `${n} × ${r}`).join(', ')}` : '  skipped: none');
    return { format: 'ftrace', written: f.switches + f.requests, skipped: f.skipped, byVm: f.byVm, first: null, last: null, out: f.out.join(', ') };
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
