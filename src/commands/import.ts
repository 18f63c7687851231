/** `wattrace import <format> <input...> --out DIR [--map MAPPING.json]`: other traces to the formats of docs/formats.md. */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { checkNotCompressed, readHead } from '../core/files.js';
import { IMPORTERS } from '../importers/index.js';
import { summaryLines, type ImportSummary } from '../importers/importer.js';
import { loadMapping } from '../importers/mapping.js';
import type { IO } from './io.js';
import { missingNewlineNote } from '../traces/csv.js';
import { isTraceDat } from '../importers/tracedat.js';

export const IMPORT_FORMATS = [...IMPORTERS.keys()];

export interface ImportArgs {
  format: string;
  inputs: readonly string[];
  out: string;
  map?: string | undefined;
  tscHz?: number | undefined;
  cpus?: number | undefined;
}

/** A binary input (a trace.dat, a vscsi trace): no lines, so no note about its last one. */
function isBinaryInput(file: string): boolean {
  try {
    const b = readHead(file, 512);
    return isTraceDat(b) || b.includes(0);
  } catch {
    return false;
  }
}

/** The first non-empty line of a file, escaped and cut for an error message. */
function firstLine(file: string): string {
  try {
    const line = readHead(file, 4096).toString('utf8').split('\n').find((l) => l.trim() !== '');
    // Quoted as it is: the error escapes and cuts it.
    return line === undefined ? '(the file is empty)' : `'${line.replace(/\r$/, '').replace(/'/g, '’')}'`;
  } catch {
    return '(unreadable)';
  }
}

/** Checks `--tsc-hz` and `--cpus` before anything is read. */
function checkOptions(args: ImportArgs): void {
  if (args.tscHz !== undefined && !(Number.isFinite(args.tscHz) && args.tscHz >= 1000)) {
    throw new WattraceError('E_USAGE', `--tsc-hz must be the TSC's rate in Hz (1000 or more, e.g. 2599998000); got ${args.tscHz}`);
  }
  if (args.cpus !== undefined && !(Number.isInteger(args.cpus) && args.cpus >= 1)) throw new WattraceError('E_USAGE', `--cpus must be a positive integer; got ${args.cpus}`);
}

/** An input that cannot be read as it is: a folder (planetlab takes one), compressed. */
function checkInput(format: string, file: string): void {
  if (!fs.existsSync(file)) return; // the importer names it
  if (fs.statSync(file).isDirectory()) {
    if (format === 'planetlab') return;
    throw new WattraceError('E_FILE', `is a folder; ${format} imports a file`, { file });
  }
  checkNotCompressed(file);
}

export async function runImport(args: ImportArgs, io: IO): Promise<ImportSummary> {
  const importer = IMPORTERS.get(args.format);
  if (!importer) throw new WattraceError('E_USAGE', `unknown format '${args.format}'; this version imports ${IMPORT_FORMATS.join(', ')}`);
  if (args.inputs.length === 0) throw new WattraceError('E_USAGE', 'name at least one input file');
  if (args.out.trim() === '') throw new WattraceError('E_USAGE', '--out needs a folder');
  checkOptions(args);
  for (const f of args.inputs) checkInput(args.format, f);
  const mapping = loadMapping(args.map);
  // The import writes into a staging folder beside --out; only a complete import replaces the
  // files of the same names there (an import that fails or finds nothing leaves --out as it was).
  const out = path.resolve(args.out);
  const parent = path.dirname(out);
  if (!fs.existsSync(parent)) throw new WattraceError('E_FILE', `cannot create the output folder: ${parent} does not exist`, { file: args.out });
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new WattraceError('E_FILE', 'is a file, not a folder for the imported traces', { file: args.out });
  const stage = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.importing-`));
  const cleanup = () => fs.rmSync(stage, { recursive: true, force: true });
  process.once('exit', cleanup);
  try {
    const s = await importer.run(args.inputs, stage, { mapping, tscHz: args.tscHz, cpus: args.cpus });
    if (s.found === 0) {
      // What it passed over says why, when it passed over anything (every SCSI command without data, say).
      const skipped = Object.entries(s.skipped).map(([why, n]) => `${n.toLocaleString('en-US')} × ${why}`);
      const why = skipped.length > 0 ? `; it skipped ${skipped.slice(0, 3).join(', ')}${skipped.length > 3 ? ` and ${skipped.length - 3} more kinds` : ''}` : '';
      throw new WattraceError('E_EMPTY', `found no ${importer.finds} to import; expected ${importer.expects}${why}; the first line reads ${firstLine(args.inputs[0]!)}`, { file: args.inputs[0]! });
    }
    fs.mkdirSync(out, { recursive: true });
    const moved = (f: string) => path.join(args.out, path.relative(stage, f));
    for (const f of fs.readdirSync(stage)) fs.renameSync(path.join(stage, f), path.join(out, f));
    const done: ImportSummary = { ...s, outputs: s.outputs.map((o) => ({ ...o, file: moved(o.file) })), profile: s.profile === null ? null : moved(s.profile) };
    // The summary is printed once the import is known to have found something.
    for (const l of summaryLines(done)) io.out(l);
    for (const f of args.inputs) {
      if (isBinaryInput(f)) continue;
      const note = missingNewlineNote(f);
      if (note) io.err(`wattrace: note: ${note}`);
    }
    return done;
  } finally {
    process.removeListener('exit', cleanup);
    cleanup();
  }
}
