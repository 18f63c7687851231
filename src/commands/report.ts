/** `wattrace report --db FILE [--run N] --out DIR`: SVG charts and an offline HTML page. */
import fs from 'node:fs';
import path from 'node:path';
import { resolveRun } from '../analysis/matrix.js';
import { buildReport } from '../analysis/report.js';
import { WattraceError } from '../core/errors.js';
import { openForReading } from '../store/store.js';
import type { IO } from './io.js';

export interface ReportArgs {
  db: string;
  run?: number | undefined;
  out: string;
  /** Replace a folder that is not an earlier report of wattrace's. */
  force?: boolean | undefined;
}

/** The file that marks a folder as a report wattrace wrote (so it may be replaced). */
export const REPORT_MARK = '.wattrace-report';

export async function report(args: ReportArgs, io: IO): Promise<void> {
  if (args.run !== undefined && !(Number.isInteger(args.run) && args.run > 0)) {
    throw new WattraceError('E_USAGE', `--run must be a run id (a positive integer); got ${args.run}`);
  }
  if (args.out.trim() === '') throw new WattraceError('E_USAGE', '--out must name a folder');
  if (fs.existsSync(args.out) && !fs.statSync(args.out).isDirectory()) throw new WattraceError('E_USAGE', `--out ${args.out} exists and is not a folder`);
  refuseEnclosingFolder(args.out, args.db);
  // An earlier report of ours is replaced whole (no stale charts of other runs stay); anything
  // else that is not empty is refused unless --force says to replace it.
  if (fs.existsSync(args.out)) {
    const entries = fs.readdirSync(args.out);
    if (entries.length > 0 && !entries.includes(REPORT_MARK) && !args.force) {
      throw new WattraceError('E_USAGE', `--out ${args.out} is a folder with other files in it (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}), not an earlier report: choose another folder, or --force to replace it`);
    }
  }
  const db = openForReading(args.db);
  try {
    const info = resolveRun(db, args.run, args.db);
    const r = await buildReport(db, info);
    writeFolderAtomically(args.out, new Map([...r.files, [REPORT_MARK, `run ${info.run_id} of ${path.resolve(args.db)}\n`]]));
    io.out(`report of run ${info.run_id} (pipeline '${info.pipeline}'): ${[...r.files.keys()].join(', ')} → ${args.out}`);
  } finally {
    db.close();
  }
}

/**
 * The report replaces its folder whole (moved aside, then removed), so `--out` must not be the
 * current folder or one containing it (the move fails, or pulls the folder out from under the
 * shell), nor a folder containing the database being read (it would be deleted).
 */
function refuseEnclosingFolder(out: string, db: string): void {
  const real = (p: string) => {
    const abs = path.resolve(p);
    try {
      return fs.realpathSync(abs);
    } catch {
      return abs;
    }
  };
  const target = real(out);
  const inside = (p: string) => {
    const rel = path.relative(target, p);
    return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
  };
  const cwd = real(process.cwd());
  if (inside(cwd)) {
    throw new WattraceError('E_USAGE', `--out ${out} ${target === cwd ? 'is the current folder' : 'contains the current folder'}: a report replaces its folder whole; name a folder for the report, such as --out report`);
  }
  if (inside(real(db))) throw new WattraceError('E_USAGE', `--out ${out} contains the database ${db}: a report replaces its folder whole; name another folder`);
}

/**
 * Writes `files` as the folder `out`, replacing what was there, all or nothing: into a fresh
 * sibling folder first, then renamed into place (the old folder moved aside and removed).
 */
function writeFolderAtomically(out: string, files: ReadonlyMap<string, string>): void {
  const parent = path.dirname(path.resolve(out));
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.tmp-`));
  try {
    for (const [name, text] of files) fs.writeFileSync(path.join(tmp, name), text);
    if (fs.existsSync(out)) {
      const old = `${tmp}.old`;
      fs.renameSync(out, old);
      fs.renameSync(tmp, out);
      fs.rmSync(old, { recursive: true, force: true });
    } else fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
