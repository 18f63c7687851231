/**
 * The benchmark's figures as a table: printed by `npm run bench`, written into the README between
 * <!-- bench:begin --> and <!-- bench:end --> and kept in docs/bench.json, from which a test
 * re-renders the README's block (test/readme.test.ts), so the README shows what a run measured.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../core/json.js';

export const BENCH_JSON = path.join(PROJECT_ROOT, 'docs', 'bench.json');
const README = path.join(PROJECT_ROOT, 'README.md');

/** One replay setting of the PlanetLab day: medians of the runs, and the last run's store. */
export interface PlanetlabReplay {
  seconds: number;
  rssMB: number;
  dbMB: number;
  rows: { energy: number; cpu_policy: number };
}

export interface BenchResult {
  machine: string;
  date: string;
  rows: number;
  diskRows: number;
  /** Size of the cswitch trace, MB. */
  mb: number;
  repeat: number;
  /** Median wall seconds per path, process start to exit. */
  seconds: { tight: number; duckdb: number; csvParse: number; cpuSplit: number; full: number; strides: number };
  /** Largest relative difference of DuckDB's per-VM cpu joules from the replay's. */
  crossCheck: number;
  rss: { kind: string; rows: number; runs: number[]; seconds: number[] }[];
  planetlab: ({ importSeconds: number; importRssMB: number; switches: number } & PlanetlabReplay & { atDataResolution?: PlanetlabReplay }) | null;
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const n = (x: number) => x.toLocaleString('en-US');
const rate = (rows: number, s: number) => `${(rows / s / 1e6).toFixed(2)} M`;

export function renderBench(r: BenchResult): string {
  const s = r.seconds;
  const total = r.rows + r.diskRows;
  const line = (what: string, rows: number, sec: number, anchor: number) => `| ${what} | ${sec.toFixed(2)} s | ${rate(rows, sec)} | ${(anchor / sec).toFixed(2)} |`;
  const out = [
    `${n(r.rows)} cswitch rows (${r.mb.toFixed(0)} MB; 2 CPUs, 8 VMs incl. idle, 4 events) and ${n(r.diskRows)} disk requests over the same span; ` +
      `${r.machine}; ${r.date}; medians of ${r.repeat}, each path a fresh process timed from start to exit.`,
    '',
    '| path | time | rows/s | vs tight loop |',
    '| --- | --- | --- | --- |',
    line('tight loop (anchor): 4 MiB chunks, bytes scanned into numbers, per-VM sums', r.rows, s.tight, s.tight),
    line('DuckDB `read_csv` + cpu-split in SQL (`lag()` per CPU, modulo 2^48; 2 threads)', r.rows, s.duckdb, s.tight),
    line('csv-parse alone (`cast: false`, `quote: false`)', r.rows, s.csvParse, s.tight),
    line('**replay, cpu-split** (read, decode, split, SQLite written)', r.rows, s.cpuSplit, s.tight),
    line('replay, complete accounting (cswitch + disk, two passes)', total, s.full, s.tight * (total / r.rows)),
    line('replay, cpu-split + host-strides (limits on two VMs)', r.rows, s.strides, s.tight),
    '',
    `DuckDB's per-VM joules equal the replay's to ${r.crossCheck.toExponential(1)} relative (checked in every round). ` +
      `The cpu-split replay runs at ${(s.duckdb / s.cpuSplit).toFixed(2)}× DuckDB's speed.`,
    '',
    '| peak RSS (median / max) | ' + [...new Set(r.rss.map((x) => x.rows))].map((x) => `${n(x)} rows`).join(' | ') + ' |',
    '| --- | ' + [...new Set(r.rss.map((x) => x.rows))].map(() => '---').join(' | ') + ' |',
    ...[...new Set(r.rss.map((x) => x.kind))].map(
      (k) =>
        `| ${k} | ` +
        r.rss
          .filter((x) => x.kind === k)
          .map((x) => `${median(x.runs).toFixed(0)} / ${Math.max(...x.runs).toFixed(0)} MB (${median(x.seconds).toFixed(1)} s)`)
          .join(' | ') +
        ' |',
    ),
  ];
  if (r.planetlab) {
    const p = r.planetlab;
    out.push(
      '',
      `PlanetLab day (1,052 VMs on 64 CPUs; \`import planetlab\` ${p.importSeconds.toFixed(1)} s, ${p.importRssMB.toFixed(0)} MB peak RSS, ${n(p.switches)} switches), ` +
        `replayed through cpu-split and host-strides at \`interval_ms\` 60000 and \`period_ms\` 10000: ${p.seconds.toFixed(1)} s, ` +
        `${p.rssMB.toFixed(0)} MB peak RSS, a ${p.dbMB.toFixed(0)} MB database (${n(p.rows.energy)} \`energy\` and ${n(p.rows.cpu_policy)} \`cpu_policy\` rows).`,
    );
    const c = p.atDataResolution;
    if (c) {
      out.push(
        '',
        `The same day at the data's own resolution (\`interval_ms\` 300000, the traces' 5-minute step, and \`period_ms\` 60000): ` +
          `${c.seconds.toFixed(1)} s, ${c.rssMB.toFixed(0)} MB peak RSS, a ${c.dbMB.toFixed(0)} MB database (${n(c.rows.energy)} \`energy\` and ${n(c.rows.cpu_policy)} \`cpu_policy\` rows).`,
      );
    }
  }
  return out.join('\n');
}

/** A README block between `<!-- NAME:begin -->` and `<!-- NAME:end -->`, holding `body`. */
export function markedBlock(name: string, body: string): string {
  return `<!-- ${name}:begin -->\n${body}\n<!-- ${name}:end -->`;
}

/** The README's current block NAME, or null. */
export function readmeMarkedBlock(name: string, text = fs.readFileSync(README, 'utf8')): string | null {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  return a >= 0 && b > a ? text.slice(a, b + end.length) : null;
}

/** Replaces the README's block NAME with `body`. */
export function writeMarkedBlock(name: string, body: string): void {
  const text = fs.readFileSync(README, 'utf8');
  const old = readmeMarkedBlock(name, text);
  if (old === null) throw new Error(`README.md has no <!-- ${name}:begin --> … <!-- ${name}:end --> block`);
  fs.writeFileSync(README, text.replace(old, markedBlock(name, body)));
}

/** The README's benchmark block as `r` renders it. */
export function benchBlock(r: BenchResult): string {
  return markedBlock('bench', renderBench(r));
}

/** The README's current benchmark block, or null. */
export function readmeBenchBlock(text = fs.readFileSync(README, 'utf8')): string | null {
  return readmeMarkedBlock('bench', text);
}

export function writeBenchReadme(r: BenchResult): void {
  writeMarkedBlock('bench', renderBench(r));
}
