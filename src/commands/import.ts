/** `wattrace import <format> <input...> --out DIR [--map MAPPING.json]`: other traces to the formats of docs/formats.md. */
import fs from 'node:fs';
import { WattraceError } from '../core/errors.js';
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
  const importer = IMPORTERS.get(args.format);
  if (!importer) throw new WattraceError('E_USAGE', `unknown format '${args.format}'; this version imports ${IMPORT_FORMATS.join(', ')}`);
  if (args.inputs.length === 0) throw new WattraceError('E_USAGE', 'name at least one input file');
  const before = fs.existsSync(args.out) ? new Set(fs.readdirSync(args.out)) : null;
  const s = await importer.run(args.inputs, args.out, { mapping: loadMapping(args.map), tscHz: args.tscHz, cpus: args.cpus });
  if (s.found === 0) {
    // Nothing found: not an empty trace and a starter profile, but an error, and no output left.
    if (before === null) fs.rmSync(args.out, { recursive: true, force: true });
    else for (const f of fs.readdirSync(args.out)) if (!before.has(f)) fs.rmSync(`${args.out}/${f}`, { recursive: true, force: true });
    throw new WattraceError('E_EMPTY', `found no ${importer.finds} to import; expected ${importer.expects}; the first line reads ${firstLine(args.inputs[0]!)}`, { file: args.inputs[0]! });
  }
  // The summary is printed once the import is known to have found something.
  for (const l of summaryLines(s)) io.out(l);
  for (const f of args.inputs) {
    if (isBinaryInput(f)) continue;
    const note = missingNewlineNote(f);
    if (note) io.err(`wattrace: note: ${note}`);
  }
  return s;
}
