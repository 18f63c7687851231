/**
 * The fleet benchmark's figures (fleet-bench.ts) as README text, between <!-- fleet:begin --> and
 * <!-- fleet:end -->, kept in docs/bench-fleet.json so a test re-renders the block from it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../core/json.js';

export const FLEET_JSON = path.join(PROJECT_ROOT, 'docs', 'bench-fleet.json');
const README = path.join(PROJECT_ROOT, 'README.md');
const BEGIN = '<!-- fleet:begin -->';
const END = '<!-- fleet:end -->';

export interface FleetBench {
  machine: string;
  date: string;
  fleet: { hosts: number; replaySeconds: number; sqliteMB: number; exportSeconds: number; exportRssMB: number; parquetMB: number };
  planetlab: { sqliteMB: number; exportSeconds: number; exportRssMB: number; parquetMB: number; rows: { energy: number; cpu_policy: number } } | null;
}

export function renderFleetBench(r: FleetBench): string {
  const f = r.fleet;
  const row = (what: string, sqlite: number, parquet: number, s: number, rss: number) =>
    `| ${what} | ${sqlite.toFixed(1)} MB | ${parquet.toFixed(1)} MB | ${(sqlite / parquet).toFixed(1)}× | ${s.toFixed(1)} s | ${rss.toFixed(0)} MB |`;
  const out = [
    `${r.machine}; ${r.date}; \`npm run bench:fleet\`. Each export is one \`wattrace export\` process, timed from start to exit (DuckDB's start included).`,
    '',
    '| export of | SQLite | Parquet (snappy) | smaller by | time | peak RSS |',
    '| --- | --- | --- | --- | --- | --- |',
    row(`the ${f.hosts}-host fleet (${f.hosts} stores, base + tight each; replayed in ${f.replaySeconds.toFixed(1)} s, two hosts at a time)`, f.sqliteMB, f.parquetMB, f.exportSeconds, f.exportRssMB),
  ];
  if (r.planetlab) {
    const p = r.planetlab;
    out.push(row(`the PlanetLab day (one store: ${p.rows.energy.toLocaleString('en-US')} \`energy\`, ${p.rows.cpu_policy.toLocaleString('en-US')} \`cpu_policy\` rows)`, p.sqliteMB, p.parquetMB, p.exportSeconds, p.exportRssMB));
  }
  return out.join('\n');
}

export function fleetBlock(r: FleetBench): string {
  return `${BEGIN}\n${renderFleetBench(r)}\n${END}`;
}

export function readmeFleetBlock(text = fs.readFileSync(README, 'utf8')): string | null {
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  return a >= 0 && b > a ? text.slice(a, b + END.length) : null;
}

export function writeFleetReadme(r: FleetBench): void {
  const text = fs.readFileSync(README, 'utf8');
  const old = readmeFleetBlock(text);
  if (old === null) throw new Error(`README.md has no ${BEGIN} … ${END} block`);
  fs.writeFileSync(README, text.replace(old, fleetBlock(r)));
}
