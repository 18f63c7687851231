/**
 * `npm run bench:fleet`: the export's size and time, Parquet against SQLite bytes, for
 *   - the generated 20-host fleet of fleet.ts (each host a 6 s paper-fig8 machine, base + tight),
 *     replayed two hosts at a time, then exported in one `wattrace export`;
 *   - the PlanetLab day (when ../shared/data is there), replayed as in `npm run bench`, exported.
 * Each export runs in its own process (bench/child.js cli) for its time and peak RSS. Writes
 * docs/bench-fleet.json and the README block between <!-- fleet:begin --> and <!-- fleet:end -->
 * (test/readme.test.ts re-renders it from the JSON). `--no-write` prints only.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { PROJECT_ROOT } from '../core/json.js';
import { bytesOf, makeFleet, wattrace } from './fleet.js';
import { FLEET_JSON, renderFleetBench, writeFleetReadme, type FleetBench } from './fleet-report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const log = (s: string) => process.stderr.write(`${s}\n`);

function measured(...args: string[]): { seconds: number; maxRssMB: number; out: string } {
  const t0 = process.hrtime.bigint();
  const out = execFileSync(process.execPath, [path.join(here, 'child.js'), 'cli', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const r = JSON.parse(out.trim().split('\n').pop()!) as { maxRssMB: number; result: string };
  return { seconds, maxRssMB: r.maxRssMB, out: r.result };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wattrace-bench-fleet-'));
  try {
    const t0 = process.hrtime.bigint();
    const fleet = await makeFleet(path.join(dir, 'hosts'), 20, 6, 2);
    const replaySeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const sqlite = fleet.reduce((a, h) => a + bytesOf(h.db), 0);
    const e = measured('export', '--db', ...fleet.map((h) => h.db), '--out', path.join(dir, 'fleet'));
    log(`fleet: replays ${replaySeconds.toFixed(1)} s, export ${e.seconds.toFixed(1)} s; ${e.out.split('\n')[0]}`);
    const result: FleetBench = {
      machine: `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}`,
      date: new Date().toISOString().slice(0, 10),
      fleet: { hosts: fleet.length, replaySeconds, sqliteMB: sqlite / 1e6, exportSeconds: e.seconds, exportRssMB: e.maxRssMB, parquetMB: bytesOf(path.join(dir, 'fleet')) / 1e6 },
      planetlab: null,
    };
    const data = path.join(PROJECT_ROOT, '..', 'shared', 'data', 'vm-cpu', 'planetlab_20110303');
    if (fs.existsSync(data)) {
      const out = path.join(dir, 'pl');
      await wattrace(['import', 'planetlab', data, '--out', out, '--cpus', '64']);
      fs.writeFileSync(
        path.join(out, 'pipeline.json'),
        JSON.stringify({ name: 'planetlab-day', profile: 'machine.json', traces: { cswitch: 'cswitch.csv' }, stages: ['cpu-split', 'host-strides'], interval_ms: 60000, policy: { cpu: { period_ms: 10000 } } }),
      );
      const db = path.join(dir, 'pl.sqlite');
      await wattrace(['replay', path.join(out, 'pipeline.json'), '--db', db, '--quiet', '--label', 'host=planetlab']);
      const p = measured('export', '--db', db, '--out', path.join(dir, 'pl-dataset'));
      log(`PlanetLab day: export ${p.seconds.toFixed(1)} s; ${p.out.split('\n')[0]}`);
      const d = new Database(db, { readonly: true });
      const count = (t: string) => (d.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
      const rows = { energy: count('energy'), cpu_policy: count('cpu_policy') };
      d.close();
      result.planetlab = { sqliteMB: bytesOf(db) / 1e6, exportSeconds: p.seconds, exportRssMB: p.maxRssMB, parquetMB: bytesOf(path.join(dir, 'pl-dataset')) / 1e6, rows };
    } else log(`no ${data}: the PlanetLab day is not measured`);
    console.log(renderFleetBench(result));
    if (!process.argv.includes('--no-write')) {
      fs.writeFileSync(FLEET_JSON, `${JSON.stringify(result, null, 2)}\n`);
      writeFleetReadme(result);
      log(`wrote ${path.relative(PROJECT_ROOT, FLEET_JSON)} and the README's fleet block`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
