/**
 * `npm run bench`: replay throughput over a generated cswitch trace (8 VMs incl. idle, 2 CPUs,
 * 4 events) and a disk request log over the same span (400 requests/s through the driver VM),
 * as records/s and as a ratio to csv-parse alone reading the same files in the same run:
 *   - cpu-split over the cswitch trace;
 *   - the complete accounting (cpu-split, disk-energy, driver-charge, virtual-counters) over both;
 * and peak RSS of both replays at 1M and 4M cswitch rows (it must not grow with length).
 * Options: --rows N (default 2000000), --repeat K (default 3), --rss-rows a,b (default 1M,4M).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FULL_ACCOUNTING, writeBenchCswitch as writeTrace, writeBenchDisk as writeDisk, writeBenchPipeline } from './traces.js';

const here = path.dirname(fileURLToPath(import.meta.url));
function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

function writePipeline(dir: string, name: string, trace: string, disk?: string): string {
  return writeBenchPipeline(dir, name, { cswitch: trace, ...(disk ? { disk, stages: FULL_ACCOUNTING } : { stages: ['cpu-split'] }) });
}

interface Measure {
  rows: number;
  seconds: number;
  maxRssMB: number;
}

function child(...args: string[]): Measure {
  const out = execFileSync(process.execPath, [path.join(here, 'child.js'), ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as Measure;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function main(): void {
  const rows = Number(arg('rows', '2000000'));
  const repeat = Number(arg('repeat', '3'));
  const rssRows = arg('rss-rows', '1000000,4000000').split(',').map(Number);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wattrace-bench-'));
  try {
    const files = new Map<number, { cswitch: string; disk: string }>();
    for (const n of new Set([rows, ...rssRows])) {
      const f = { cswitch: path.join(dir, `cswitch-${n}.csv`), disk: path.join(dir, `disk-${n}.csv`) };
      process.stderr.write(`generating ${n.toLocaleString('en-US')} rows… `);
      writeTrace(f.cswitch, n);
      writeDisk(f.disk, n);
      process.stderr.write(`${(fs.statSync(f.cswitch).size / 1e6).toFixed(0)} MB + ${(fs.statSync(f.disk).size / 1e6).toFixed(0)} MB of disk log\n`);
      files.set(n, f);
    }
    const main = files.get(rows)!;
    const cpuOnly = writePipeline(dir, 'bench', main.cswitch);
    const full = writePipeline(dir, 'bench-full', main.cswitch, main.disk);
    const csv: number[] = [];
    const csvBoth: number[] = [];
    const rep: number[] = [];
    const repFull: number[] = [];
    let diskRows = 0;
    for (let r = 0; r < repeat; r++) {
      const c = child('csv-parse', main.cswitch);
      const d = child('csv-parse', main.disk);
      const p = child('replay', cpuOnly, path.join(dir, `bench-${r}.sqlite`));
      const q = child('replay', full, path.join(dir, `bench-full-${r}.sqlite`));
      diskRows = d.rows;
      if (c.rows !== rows || p.rows !== rows || q.rows !== rows + d.rows) throw new Error(`row counts differ: csv-parse ${c.rows} + ${d.rows}, replay ${p.rows} and ${q.rows}`);
      csv.push(rows / c.seconds);
      csvBoth.push((rows + d.rows) / (c.seconds + d.seconds));
      rep.push(rows / p.seconds);
      repFull.push(q.rows / q.seconds);
      process.stderr.write(
        `round ${r + 1}: csv-parse ${(rows / c.seconds / 1e3).toFixed(0)} k/s, cpu-split ${(rows / p.seconds / 1e3).toFixed(0)} k/s, full ${(q.rows / q.seconds / 1e3).toFixed(0)} k/s\n`,
      );
    }
    // Peak RSS is noisy (GC and malloc timing): each size is measured `repeat` times, interleaved.
    const kinds = [
      { name: 'cpu-split', pipeline: (n: number) => writePipeline(dir, `rss-${n}`, files.get(n)!.cswitch) },
      { name: 'complete accounting', pipeline: (n: number) => writePipeline(dir, `rss-full-${n}`, files.get(n)!.cswitch, files.get(n)!.disk) },
    ];
    const rssRuns = new Map<string, number[]>();
    for (let r = 0; r < repeat; r++) {
      for (const k of kinds) {
        for (const n of rssRows) {
          const m = child('replay', k.pipeline(n), path.join(dir, `rss-${k.name.length}-${n}-${r}.sqlite`));
          const key = `${k.name}|${n}`;
          rssRuns.set(key, [...(rssRuns.get(key) ?? []), m.maxRssMB]);
          process.stderr.write(`peak RSS of ${k.name} at ${n.toLocaleString('en-US')} rows: ${m.maxRssMB.toFixed(0)} MB\n`);
        }
      }
    }
    const mb = fs.statSync(main.cswitch).size / 1e6;
    console.log(`\nwattrace bench — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}`);
    console.log(
      `traces: ${rows.toLocaleString('en-US')} cswitch rows (${mb.toFixed(0)} MB), 2 CPUs, 8 VMs incl. idle, 4 events; ${diskRows.toLocaleString('en-US')} disk requests over the same span; median of ${repeat}\n`,
    );
    console.log('| measure | value |');
    console.log('| --- | --- |');
    console.log(`| csv-parse alone over the cswitch trace (arrays, cast:false, quote:false) | ${(median(csv) / 1e3).toFixed(0)} k records/s |`);
    console.log(`| replay with cpu-split (read + decode + split + SQLite) | ${(median(rep) / 1e3).toFixed(0)} k records/s |`);
    console.log(`| ratio cpu-split replay / csv-parse | ${(median(rep) / median(csv)).toFixed(2)} |`);
    console.log(`| csv-parse alone over cswitch + disk | ${(median(csvBoth) / 1e3).toFixed(0)} k records/s |`);
    console.log(`| replay with the complete accounting over cswitch + disk | ${(median(repFull) / 1e3).toFixed(0)} k records/s |`);
    console.log(`| ratio complete replay / csv-parse | ${(median(repFull) / median(csvBoth)).toFixed(2)} |`);
    for (const k of kinds) {
      const rss = rssRows.map((n) => ({ n, runs: rssRuns.get(`${k.name}|${n}`)! }));
      for (const { n, runs } of rss) console.log(`| peak RSS of ${k.name} at ${n.toLocaleString('en-US')} rows (median / max of ${repeat}) | ${median(runs).toFixed(0)} / ${Math.max(...runs).toFixed(0)} MB |`);
      if (rss.length >= 2) {
        const [a, b] = [rss[0]!, rss[rss.length - 1]!];
        console.log(`| peak RSS ratio of ${k.name}, ${b.n.toLocaleString('en-US')} / ${a.n.toLocaleString('en-US')} rows (medians) | ${(median(b.runs) / median(a.runs)).toFixed(2)} |`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
