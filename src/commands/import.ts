/** `wattrace import <format> <input...> --out DIR [--map MAPPING.json]`: other traces to DESIGN §1's. */
import { WattraceError } from '../core/errors.js';
import { DISK_FORMATS, importDisk, loadMapping, type DiskFormat, type ImportSummary } from '../importers/disk.js';
import { importPerfScript } from '../importers/perf-script.js';
import type { IO } from './io.js';

export const IMPORT_FORMATS = [...DISK_FORMATS, 'perf-script'] as const;

export interface ImportArgs {
  format: string;
  inputs: readonly string[];
  out: string;
  map?: string | undefined;
}

export async function runImport(args: ImportArgs, io: IO): Promise<ImportSummary> {
  if (!(IMPORT_FORMATS as readonly string[]).includes(args.format)) {
    throw new WattraceError('E_USAGE', `unknown format '${args.format}'; this version imports ${IMPORT_FORMATS.join(', ')} (ftrace, blkparse and planetlab are not yet supported)`);
  }
  if (args.inputs.length === 0) throw new WattraceError('E_USAGE', 'name at least one input file');
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
