/**
 * The fleet benchmark's figures (fleet-bench.ts) as README text, between <!-- fleet:begin --> and
 * <!-- fleet:end -->, kept in docs/bench-fleet.json so a test re-renders the block from it.
 */
import path from 'node:path';
import { PROJECT_ROOT } from '../core/json.js';
import { markedBlock, readmeMarkedBlock, writeMarkedBlock } from './report.js';

export const FLEET_JSON = path.join(PROJECT_ROOT, 'docs', 'bench-fleet.json');

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
  return markedBlock('fleet', renderFleetBench(r));
}

export function readmeFleetBlock(text?: string): string | null {
  return readmeMarkedBlock('fleet', text);
}

export function writeFleetReadme(r: FleetBench): void {
  writeMarkedBlock('fleet', renderFleetBench(r));
}
