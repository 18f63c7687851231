/**
 * `npm run bench`: the replay's speed and memory against anchors measured in the same run, on the
 * same generated cswitch trace (traces.ts: 8 VMs incl. idle, 2 CPUs, 4 events), each in a fresh
 * process timed from start to exit:
 *   - the tight loop (tight-loop.ts): the anchor, a Node byte loop summing the same columns;
 *   - DuckDB (duckdb.ts): read_csv + the cpu-split in SQL, 2 threads, whose per-VM joules are
 *     checked against the replay's (an independent cross-check);
 *   - csv-parse alone, its fastest configuration (the reader before the byte-level one);
 *   - the replay with cpu-split, with the complete accounting (cpu-split, disk-energy,
 *     driver-charge, virtual-counters, over the cswitch trace and a disk log of the same span)
 *     and with cpu-split + host-strides (limits on two VMs);
 * then the peak RSS of the cpu-split and complete replays at several lengths, and the PlanetLab
 * day (import + replay at the README's settings, and at the data's own 5-minute resolution: time,
 * peak RSS, database size) when ../shared/data is there. Prints a table with ratios to the tight loop; writes it into the
 * README (between <!-- bench:begin --> and <!-- bench:end -->) and docs/bench.json.
 * Options: --rows N (default 4000000), --repeat K (3), --rss-rows a,b,c (1M,4M,16M),
 * --no-planetlab, --no-write (print only).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { PROJECT_ROOT } from '../core/json.js';
import { FULL_ACCOUNTING, writeBenchCswitch, writeBenchDisk, writeBenchPipeline } from './traces.js';
import { BENCH_JSON, renderBench, writeBenchReadme, type BenchResult, type PlanetlabReplay } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

interface Measure {
  rows: number;
  seconds: number;
  maxRssMB: number;
  result?: unknown;
}

function child(...args: string[]): Measure {
  const t0 = process.hrtime.bigint();
  const out = execFileSync(process.execPath, [path.join(here, 'child.js'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ...(JSON.parse(out.trim().split('\n').pop()!) as Omit<Measure, 'seconds'>), seconds };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const log = (s: string) => process.stderr.write(`${s}\n`);

/** The replay's per-VM cpu joules of its newest run: access per consumer, idle over the VMs. */
function replaySplit(db: string): { active: Record<string, number>; idle: number } {
  const d = new Database(db, { readonly: true });
  try {
    const run = (d.prepare('SELECT max(run_id) AS id FROM runs').get() as { id: number }).id;
    const rows = d.prepare("SELECT consumer, kind, sum(joules) AS j FROM energy WHERE run_id = ? AND device = 'cpu' AND container IS NULL GROUP BY consumer, kind").all(run) as { consumer: string; kind: string; j: number }[];
    const active: Record<string, number> = {};
    let idle = 0;
    for (const r of rows) {
      if (r.kind === 'active') active[r.consumer] = r.j;
      else if (r.consumer !== '(unattributed)') idle += r.j;
    }
    return { active, idle };
  } finally {
    d.close();
  }
}

/** Largest relative difference between DuckDB's split and the replay's. */
function crossCheck(duck: { active: Record<string, number>; idle: number }, ours: { active: Record<string, number>; idle: number }): number {
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-300);
  let worst = rel(duck.idle, ours.idle);
  const names = new Set([...Object.keys(duck.active), ...Object.keys(ours.active)]);
  for (const n of names) {
    const a = duck.active[n] ?? 0;
    const b = ours.active[n] ?? 0;
    worst = Math.max(worst, a === 0 && b === 0 ? 0 : rel(a, b));
  }
  return worst;
}

function planetlabDay(dir: string, repeat: number): BenchResult['planetlab'] {
  const data = path.join(PROJECT_ROOT, '..', 'shared', 'data', 'vm-cpu', 'planetlab_20110303');
  if (!fs.existsSync(data)) {
    log(`no ${data}: the PlanetLab day is not measured`);
    return null;
  }
  const out = path.join(dir, 'pl');
  const imp = child('cli', 'import', 'planetlab', data, '--out', out, '--cpus', '64');
  /** The day replayed `repeat` times at one setting. */
  const replayAt = (name: string, intervalMs: number, periodMs: number): { replay: PlanetlabReplay; switches: number } => {
    const pipeline = path.join(out, `${name}.json`);
    fs.writeFileSync(
      pipeline,
      JSON.stringify({ name: 'planetlab-day', profile: 'machine.json', traces: { cswitch: 'cswitch.csv' }, stages: ['cpu-split', 'host-strides'], interval_ms: intervalMs, policy: { cpu: { period_ms: periodMs } } }),
    );
    const runs: Measure[] = [];
    let db = '';
    for (let r = 0; r < repeat; r++) {
      db = path.join(dir, `${name}-${r}.sqlite`);
      runs.push(child('replay', pipeline, db));
      log(`PlanetLab day (interval_ms ${intervalMs}, period_ms ${periodMs}): replay ${runs[r]!.seconds.toFixed(1)} s, peak RSS ${runs[r]!.maxRssMB.toFixed(0)} MB`);
    }
    const d = new Database(db, { readonly: true });
    const count = (t: string) => (d.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    const rows = { energy: count('energy'), cpu_policy: count('cpu_policy') };
    d.close();
    return { replay: { seconds: median(runs.map((r) => r.seconds)), rssMB: median(runs.map((r) => r.maxRssMB)), dbMB: fs.statSync(db).size / 1e6, rows }, switches: runs[0]!.rows };
  };
  const readme = replayAt('pl', 60000, 10000);
  const coarse = replayAt('pl-coarse', 300000, 60000);
  return { importSeconds: imp.seconds, importRssMB: imp.maxRssMB, switches: readme.switches, ...readme.replay, atDataResolution: coarse.replay };
}

function main(): void {
  const rows = Number(arg('rows', '4000000'));
  const repeat = Number(arg('repeat', '3'));
  const rssRows = arg('rss-rows', '1000000,4000000,16000000').split(',').map(Number);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wattrace-bench-'));
  try {
    const files = new Map<number, { cswitch: string; disk: string }>();
    for (const n of new Set([rows, ...rssRows])) {
      const f = { cswitch: path.join(dir, `cswitch-${n}.csv`), disk: path.join(dir, `disk-${n}.csv`) };
      process.stderr.write(`generating ${n.toLocaleString('en-US')} rows… `);
      writeBenchCswitch(f.cswitch, n);
      writeBenchDisk(f.disk, n);
      log(`${(fs.statSync(f.cswitch).size / 1e6).toFixed(0)} MB + ${(fs.statSync(f.disk).size / 1e6).toFixed(0)} MB of disk log`);
      files.set(n, f);
    }
    const main = files.get(rows)!;
    const profile = path.join(dir, 'machine.json');
    const cpuOnly = writeBenchPipeline(dir, 'bench', { cswitch: main.cswitch, stages: ['cpu-split'] });
    const full = writeBenchPipeline(dir, 'bench-full', { cswitch: main.cswitch, disk: main.disk, stages: FULL_ACCOUNTING });
    const strides = writeBenchPipeline(dir, 'bench-strides', { cswitch: main.cswitch, stages: ['cpu-split', 'host-strides'], policy: { cpu: { period_ms: 100, start_s: 10, limits_watts: { vm1: 10, vm2: 5 } } } });
    const times: Record<string, number[]> = { tight: [], duckdb: [], csvParse: [], cpuSplit: [], full: [], strides: [] };
    let diskRows = 0;
    let worst = 0;
    for (let r = 0; r < repeat; r++) {
      const t = child('tight-loop', main.cswitch);
      const k = child('duckdb', main.cswitch, profile);
      const c = child('csv-parse', main.cswitch);
      const p = child('replay', cpuOnly, path.join(dir, `bench-${r}.sqlite`));
      const q = child('replay', full, path.join(dir, `bench-full-${r}.sqlite`));
      const s = child('replay', strides, path.join(dir, `bench-strides-${r}.sqlite`));
      diskRows = q.rows - rows;
      // Rows read: the tight loop and DuckDB count periods (rows − CPUs), the others rows.
      if (c.rows !== rows || p.rows !== rows || s.rows !== rows || Math.abs(t.rows - rows) > 64 || Math.abs(k.rows - rows) > 64) {
        throw new Error(`row counts differ: tight loop ${t.rows}, DuckDB ${k.rows}, csv-parse ${c.rows}, replays ${p.rows}, ${q.rows}, ${s.rows}`);
      }
      worst = Math.max(worst, crossCheck(k.result as { active: Record<string, number>; idle: number }, replaySplit(path.join(dir, `bench-${r}.sqlite`))));
      times['tight']!.push(t.seconds);
      times['duckdb']!.push(k.seconds);
      times['csvParse']!.push(c.seconds);
      times['cpuSplit']!.push(p.seconds);
      times['full']!.push(q.seconds);
      times['strides']!.push(s.seconds);
      log(
        `round ${r + 1}: tight loop ${t.seconds.toFixed(2)} s, DuckDB ${k.seconds.toFixed(2)} s, csv-parse ${c.seconds.toFixed(2)} s, ` +
          `cpu-split ${p.seconds.toFixed(2)} s, complete ${q.seconds.toFixed(2)} s, host-strides ${s.seconds.toFixed(2)} s`,
      );
    }
    if (worst > 1e-9) throw new Error(`DuckDB's cpu-split and the replay's differ by ${worst.toExponential(2)} relative (more than 1e-9)`);
    // Peak RSS is noisy (GC and malloc timing): each size is measured `repeat` times, interleaved.
    const kinds = [
      { name: 'cpu-split', pipeline: (n: number) => writeBenchPipeline(dir, `rss-${n}`, { cswitch: files.get(n)!.cswitch, stages: ['cpu-split'] }) },
      { name: 'complete accounting', pipeline: (n: number) => writeBenchPipeline(dir, `rss-full-${n}`, { cswitch: files.get(n)!.cswitch, disk: files.get(n)!.disk, stages: FULL_ACCOUNTING }) },
    ];
    const rss: BenchResult['rss'] = [];
    for (const k of kinds) for (const n of rssRows) rss.push({ kind: k.name, rows: n, runs: [], seconds: [] });
    for (let r = 0; r < repeat; r++) {
      for (const k of kinds) {
        for (const n of rssRows) {
          const db = path.join(dir, `rss-${k.name.length}-${n}-${r}.sqlite`);
          const m = child('replay', k.pipeline(n), db);
          fs.rmSync(db, { force: true });
          const e = rss.find((x) => x.kind === k.name && x.rows === n)!;
          e.runs.push(m.maxRssMB);
          e.seconds.push(m.seconds);
          log(`peak RSS of ${k.name} at ${n.toLocaleString('en-US')} rows: ${m.maxRssMB.toFixed(0)} MB (${m.seconds.toFixed(1)} s)`);
        }
      }
    }
    const planetlab = flag('no-planetlab') ? null : planetlabDay(dir, repeat);
    const result: BenchResult = {
      machine: `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}`,
      date: new Date().toISOString().slice(0, 10),
      rows,
      diskRows,
      mb: fs.statSync(main.cswitch).size / 1e6,
      repeat,
      seconds: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as BenchResult['seconds'],
      crossCheck: worst,
      rss,
      planetlab,
    };
    console.log(renderBench(result));
    if (!flag('no-write')) {
      fs.writeFileSync(BENCH_JSON, `${JSON.stringify(result, null, 2)}\n`);
      writeBenchReadme(result);
      log(`wrote ${path.relative(PROJECT_ROOT, BENCH_JSON)} and the README's benchmark table`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
