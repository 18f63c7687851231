/**
 * One measurement of the benchmark, in its own process so peak RSS belongs to it alone:
 *   node dist/bench/child.js csv-parse FILE      csv-parse alone, its fastest configuration
 *   node dist/bench/child.js replay PIPELINE DB  the whole replay (read, decode, stages, SQLite)
 * Prints one JSON line: { rows, seconds, maxRssMB }.
 */
import fs from 'node:fs';
import { parse } from 'csv-parse';
import { bufferIO } from '../commands/io.js';
import { replay } from '../commands/replay.js';
import { nsToS } from '../core/units.js';

async function csvParseAlone(file: string): Promise<number> {
  let rows = 0;
  await new Promise<void>((resolve, reject) => {
    const p = parse({ cast: false, quote: false, relax_column_count: true });
    p.on('data', () => void rows++);
    p.on('end', resolve);
    p.on('error', reject);
    fs.createReadStream(file, { highWaterMark: 1 << 20 }).pipe(p);
  });
  return rows - 1; // the header
}

async function main(): Promise<void> {
  const [mode, a, b] = process.argv.slice(2);
  const t0 = process.hrtime.bigint();
  let rows: number;
  if (mode === 'csv-parse') rows = await csvParseAlone(a!);
  else if (mode === 'replay') {
    const io = bufferIO();
    await replay({ pipeline: a!, db: b!, quiet: true }, io);
    // "…, 5,000 cswitch rows, 531 disk rows → …": all records read.
    rows = [...io.stdout.join('').matchAll(/([\d,]+) (?:cswitch|disk|guest|measured) rows/g)].reduce((a, m) => a + Number(m[1]!.replace(/,/g, '')), 0);
  } else throw new Error(`unknown mode ${mode}`);
  const seconds = nsToS(Number(process.hrtime.bigint() - t0));
  console.log(JSON.stringify({ rows, seconds, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
}

void main();
