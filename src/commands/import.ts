/** `wattrace import <format> <input...> --out DIR [--map MAPPING.json]`: other traces to DESIGN §1's. */
import { WattraceError } from '../core/errors.js';
import { DISK_FORMATS, importDisk, loadMapping, type DiskFormat, type ImportSummary } from '../importers/disk.js';
import type { IO } from './io.js';

export const IMPORT_FORMATS = [...DISK_FORMATS] as const;

export interface ImportArgs {
  format: string;
  inputs: readonly string[];
  out: string;
  map?: string | undefined;
}

export async function runImport(args: ImportArgs, io: IO): Promise<ImportSummary> {
  if (!(DISK_FORMATS as readonly string[]).includes(args.format)) {
    throw new WattraceError('E_USAGE', `unknown format '${args.format}'; this version imports ${IMPORT_FORMATS.join(', ')} (perf-script, ftrace, blkparse, msr and planetlab are not yet supported)`);
  }
  if (args.inputs.length === 0) throw new WattraceError('E_USAGE', 'name at least one input file');
  const s = await importDisk(args.format as DiskFormat, args.inputs, args.out, loadMapping(args.map));
  io.out(`${s.format}: ${s.written.toLocaleString('en-US')} requests → ${s.out} (first ${s.first}, last ${s.last} ns)`);
  io.out(`  by VM: ${Object.entries(s.byVm).map(([v, n]) => `${v} ${n.toLocaleString('en-US')}`).join(', ')}`);
  const skipped = Object.entries(s.skipped);
  io.out(skipped.length ? `  skipped: ${skipped.map(([r, n]) => `${n} × ${r}`).join(', ')}` : '  skipped: none');
  return s;
}
