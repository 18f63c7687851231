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
}

export async function report(args: ReportArgs, io: IO): Promise<void> {
  if (args.run !== undefined && !(Number.isInteger(args.run) && args.run > 0)) {
    throw new WattraceError('E_USAGE', `--run must be a run id (a positive integer); got ${args.run}`);
  }
  if (args.out.trim() === '') throw new WattraceError('E_USAGE', '--out must name a folder');
  if (fs.existsSync(args.out) && !fs.statSync(args.out).isDirectory()) throw new WattraceError('E_USAGE', `--out ${args.out} exists and is not a folder`);
  const db = openForReading(args.db);
  try {
    const info = resolveRun(db, args.run, args.db);
    const r = await buildReport(db, info);
    fs.mkdirSync(args.out, { recursive: true });
    for (const [name, text] of r.files) fs.writeFileSync(path.join(args.out, name), text);
    io.out(`report of run ${info.run_id} (pipeline '${info.pipeline}'): ${[...r.files.keys()].join(', ')} → ${args.out}`);
  } finally {
    db.close();
  }
}
