/**
 * `npm run bench`: replay throughput with cpu-split over a generated cswitch trace (8 VMs incl.
 * idle, 2 CPUs, 4 events), as records/s and as a ratio to csv-parse alone reading the same file
 * in the same run; and peak RSS of the replay at 1M and 4M rows (it must not grow with length).
 * Options: --rows N (default 2000000), --repeat K (default 3), --rss-rows a,b (default 1M,4M).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { standardVms, syntheticCswitch } from '../generate/synthetic-cswitch.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const EVENTS = ['uops', 'l2_miss', 'branch_miss', 'fp_ops'];

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

function writeTrace(file: string, rows: number): void {
  const fd = fs.openSync(file, 'w');
  for (const chunk of syntheticCswitch({ rows, cpus: 2, vms: standardVms(8, EVENTS), events: EVENTS, seed: 42, tscHz: 3e9, counterBits: 48, meanPeriodNs: 500_000 }, 65536)) {
    fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
}

function writePipeline(dir: string, name: string, trace: string): string {
  const profile = path.join(dir, 'machine.json');
  fs.writeFileSync(
    profile,
    JSON.stringify({
      cpu: { tsc_hz: 3e9, idle_watts: 42, counter_bits: 48, idle_split: 'equal', events: { uops: 4e-9, l2_miss: 2e-7, branch_miss: 5e-8, fp_ops: 6e-9 } },
      vms: standardVms(8, EVENTS).filter((v) => v.id !== 'idle').map((v) => ({ id: v.id, role: v.id === 'core' ? 'core' : v.id === 'drv' ? 'driver' : 'client' })),
    }),
  );
  const p = path.join(dir, `${name}.pipeline.json`);
  fs.writeFileSync(p, JSON.stringify({ name, profile, traces: { cswitch: trace }, interval_ms: 100, stages: ['cpu-split'] }));
  return p;
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
    const files = new Map<number, string>();
    for (const n of new Set([rows, ...rssRows])) {
      const f = path.join(dir, `cswitch-${n}.csv`);
      process.stderr.write(`generating ${n.toLocaleString('en-US')} rows… `);
      writeTrace(f, n);
      process.stderr.write(`${(fs.statSync(f).size / 1e6).toFixed(0)} MB\n`);
      files.set(n, f);
    }
    const main = files.get(rows)!;
    const pipeline = writePipeline(dir, 'bench', main);
    const csv: number[] = [];
    const rep: number[] = [];
    for (let r = 0; r < repeat; r++) {
      const c = child('csv-parse', main);
      const p = child('replay', pipeline, path.join(dir, `bench-${r}.sqlite`));
      if (c.rows !== rows || p.rows !== rows) throw new Error(`row counts differ: csv-parse ${c.rows}, replay ${p.rows}, expected ${rows}`);
      csv.push(rows / c.seconds);
      rep.push(rows / p.seconds);
      process.stderr.write(`round ${r + 1}: csv-parse ${(rows / c.seconds / 1e3).toFixed(0)} k/s, replay ${(rows / p.seconds / 1e3).toFixed(0)} k/s\n`);
    }
    // Peak RSS is noisy (GC and malloc timing): each size is measured `repeat` times, interleaved.
    const rssRuns = new Map<number, number[]>(rssRows.map((n) => [n, []]));
    for (let r = 0; r < repeat; r++) {
      for (const n of rssRows) {
        const m = child('replay', writePipeline(dir, `rss-${n}`, files.get(n)!), path.join(dir, `rss-${n}-${r}.sqlite`));
        rssRuns.get(n)!.push(m.maxRssMB);
        process.stderr.write(`peak RSS at ${n.toLocaleString('en-US')} rows: ${m.maxRssMB.toFixed(0)} MB\n`);
      }
    }
    const rss = rssRows.map((n) => ({ n, median: median(rssRuns.get(n)!), max: Math.max(...rssRuns.get(n)!) }));
    const mb = fs.statSync(main).size / 1e6;
    console.log(`\nwattrace bench — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}`);
    console.log(`trace: ${rows.toLocaleString('en-US')} cswitch rows (${mb.toFixed(0)} MB), 2 CPUs, 8 VMs incl. idle, 4 events; median of ${repeat}\n`);
    console.log('| measure | value |');
    console.log('| --- | --- |');
    console.log(`| csv-parse alone (arrays, cast:false, quote:false) | ${(median(csv) / 1e3).toFixed(0)} k records/s |`);
    console.log(`| replay with cpu-split (read + decode + split + SQLite) | ${(median(rep) / 1e3).toFixed(0)} k records/s |`);
    console.log(`| ratio replay / csv-parse | ${(median(rep) / median(csv)).toFixed(2)} |`);
    for (const { n, median: med, max } of rss) console.log(`| peak RSS of replay at ${(n / 1e6).toFixed(0)}M rows (median / max of ${repeat}) | ${med.toFixed(0)} / ${max.toFixed(0)} MB |`);
    if (rss.length >= 2) {
      const [a, b] = [rss[0]!, rss[rss.length - 1]!];
      console.log(`| peak RSS ratio ${(b.n / 1e6).toFixed(0)}M / ${(a.n / 1e6).toFixed(0)}M (medians) | ${(b.median / a.median).toFixed(2)} |`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
