/**
 * One measurement of the benchmark, in its own process so that its time (measured by the parent,
 * process start to exit) and its peak RSS belong to it alone:
 *   node dist/bench/child.js tight-loop FILE        the anchor: a tight byte loop (tight-loop.ts)
 *   node dist/bench/child.js duckdb FILE PROFILE    DuckDB read_csv + cpu-split in SQL (duckdb.ts)
 *   node dist/bench/child.js csv-parse FILE         csv-parse alone, its fastest configuration
 *   node dist/bench/child.js replay PIPELINE DB     the whole replay (read, decode, stages, SQLite)
 *   node dist/bench/child.js cli ARGS...            any wattrace command (the PlanetLab day)
 * Prints one JSON line: { rows, maxRssMB, result? }.
 */
import fs from 'node:fs';

// Each mode loads only what it uses, so no path pays for another's modules at start-up.

async function csvParseAlone(file: string): Promise<number> {
  const { parse } = await import('csv-parse');
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

async function run(mode: string, args: string[]): Promise<{ rows: number; result?: unknown }> {
  switch (mode) {
    case 'tight-loop': {
      const { tightLoop } = await import('./tight-loop.js');
      const r = tightLoop(args[0]!);
      return { rows: r.rows };
    }
    case 'duckdb': {
      const { duckdbCpuSplit } = await import('./duckdb.js');
      const { loadProfile } = await import('../core/profile.js');
      const r = await duckdbCpuSplit(args[0]!, loadProfile(args[1]!));
      return { rows: r.rows, result: r };
    }
    case 'csv-parse':
      return { rows: await csvParseAlone(args[0]!) };
    case 'replay': {
      const { bufferIO } = await import('../commands/io.js');
      const { replay } = await import('../commands/replay.js');
      const io = bufferIO();
      await replay({ pipeline: args[0]!, db: args[1]!, quiet: true }, io);
      // "…, 5,000 cswitch rows, 531 disk rows → …": all records read.
      const rows = [...io.stdout.join('').matchAll(/([\d,]+) (?:cswitch|disk|guest|measured) rows/g)].reduce((a, m) => a + Number(m[1]!.replace(/,/g, '')), 0);
      return { rows };
    }
    case 'cli': {
      const { bufferIO } = await import('../commands/io.js');
      const { main: cliMain } = await import('../cli.js');
      const io = bufferIO();
      const code = await cliMain(args, io);
      if (code !== 0) throw new Error(`wattrace ${args.join(' ')}: exit ${code}: ${io.stderr.join('\n')}`);
      return { rows: 0, result: io.stdout.join('\n') };
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2);
  const r = await run(mode!, args);
  console.log(JSON.stringify({ ...r, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
}

void main();
