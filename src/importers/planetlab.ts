/**
 * `wattrace import planetlab <dir or files...> --out DIR [--cpus M]`: PlanetLab VM CPU utilization
 * (one file per VM, one line per 5-minute step, CPU % of one CPU) to a context-switch log of N VMs
 * on M CPUs, streaming over the steps.
 *
 * VM i runs on CPU i mod M. In each step each CPU runs its VMs one after the other, each for its
 * utilization × 300 s (scaled down together when they want more than the step — the unmet
 * demand is counted), then the idle processor halts for the rest. The VMs are named `vm<i>` in
 * file-name order (the mapping can name them by regexes on file names); a `cycles` counter
 * advances with the TSC while a VM runs. The starter profile lists the VMs as clients.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { NS_PER_S_BIG } from '../core/units.js';
import { matcher, STARTER_IDLE_WATTS, starterVms, writeProfile, type Mapping } from './mapping.js';
import type { Importer, ImportSummary } from './importer.js';
import { CsvOut, RowTally } from './trackers.js';

const STEP_NS = 300_000_000_000n;
/** A CPU percentage as the traces write it: decimal digits, an optional fraction and exponent. */
const DECIMAL = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export const planetlabImporter: Importer = {
  format: 'planetlab',
  expects: 'PlanetLab CPU utilization files (one number per line)',
  finds: 'steps',
  run: async (inputs, outDir, o) => importPlanetlab(inputs, outDir, o.mapping, o.cpus ?? 16, o.tscHz),
};

export function importPlanetlab(inputs: readonly string[], outDir: string, mapping: Mapping, cpus: number, tscHz = 2.0e9): ImportSummary {
  const files = inputs.flatMap((p) => {
    if (!fs.existsSync(p)) throw new WattraceError('E_FILE', 'planetlab input does not exist', { file: p });
    // A folder's files, not its hidden ones (.DS_Store) or its subfolders.
    return fs.statSync(p).isDirectory() ? fs.readdirSync(p).sort().filter((f) => !f.startsWith('.') && fs.statSync(path.join(p, f)).isFile()).map((f) => path.join(p, f)) : [p];
  });
  if (files.length === 0) throw new WattraceError('E_EMPTY', 'no planetlab files');
  if (!Number.isInteger(cpus) || cpus < 1) throw new WattraceError('E_USAGE', `--cpus must be a positive integer; got ${cpus}`);
  const nameOf = matcher(mapping.vms);
  const names = files.map((f, i) => nameOf(path.basename(f)) ?? `vm${i}`);
  // The files are small (288 numbers each): read them all, check them, then write step by step.
  // One line per step: a blank line inside would shift every later step by 5 minutes, so only
  // blank lines at the end are passed over. Decimal numbers only (Number() would take 0x1F).
  const util = files.map((f) => {
    const lines = fs.readFileSync(f, 'utf8').split(/\r?\n/);
    let n = lines.length;
    while (n > 0 && lines[n - 1]!.trim() === '') n--;
    return lines.slice(0, n).map((l, j) => {
      const text = l.trim();
      if (text === '') throw new WattraceError('E_FIELD', 'a blank line among the steps (one line per 5-minute step: it would shift every later step)', { file: f, line: j + 1 });
      if (!DECIMAL.test(text)) throw new WattraceError('E_FIELD', `utilization is not a non-negative decimal number ('${text.slice(0, 60)}')`, { file: f, line: j + 1 });
      return Math.min(Number(text), 100);
    });
  });
  const steps = Math.max(...util.map((u) => u.length));
  const short = util.filter((u) => u.length < steps).length;
  fs.mkdirSync(outDir, { recursive: true });
  const out = new CsvOut(path.join(outDir, 'cswitch.csv'), 'ts_ns,cpu,vm,tsc,cycles');
  const tally = new RowTally();
  const hz = BigInt(Math.round(tscHz));
  const cycles = new Array<bigint>(cpus).fill(0n);
  let unmet = 0;
  const tscAt = (t: bigint) => (t * hz) / NS_PER_S_BIG;
  const row = (t: bigint, c: number, vm: string) => {
    out.row(`${t},${c},${vm},${tscAt(t)},${cycles[c]}`);
    tally.add(vm, t);
  };
  // Each VM's CPU, and each CPU's VMs, once (not per step).
  const onCpu = Array.from({ length: cpus }, (_, c) => util.map((_, i) => i).filter((i) => i % cpus === c));
  for (let c = 0; c < cpus; c++) row(0n, c, 'idle');
  for (let s = 0; s < steps; s++) {
    const t0 = BigInt(s) * STEP_NS;
    for (let c = 0; c < cpus; c++) {
      const mine = onCpu[c]!.map((i) => ({ i, pct: util[i]![s] ?? 0 })).filter((x) => x.pct > 0);
      const want = mine.reduce((a, x) => a + x.pct, 0);
      const scale = want > 100 ? 100 / want : 1;
      if (want > 100) unmet += ((want - 100) / 100) * 300;
      let t = t0;
      for (const x of mine) {
        const d = BigInt(Math.round((x.pct / 100) * scale * 300e9));
        if (d <= 0n) continue;
        t += d;
        cycles[c] = cycles[c]! + (d * hz) / NS_PER_S_BIG;
        row(t, c, names[x.i]!);
      }
      const end = t0 + STEP_NS;
      if (end > t) row(end, c, 'idle');
    }
  }
  out.close();
  const profile = path.join(outDir, 'machine.json');
  writeProfile(profile, {
    description: `Starter profile from wattrace import planetlab: ${files.length} VMs on ${cpus} CPUs; the idle power and the cycles weight are starter values to calibrate.`,
    cpu: { tsc_hz: tscHz, idle_watts: STARTER_IDLE_WATTS, counter_bits: 64, idle_split: 'equal', events: { cycles: 5e-9 } },
    disks: {},
    vms: starterVms([...new Set(names)], mapping),
    services: [],
  });
  return {
    format: 'planetlab',
    detail: `${files.length.toLocaleString('en-US')} VMs on ${cpus} CPUs, ${steps} steps of 5 min`,
    outputs: [{ file: out.file, rows: tally.rows, what: 'switches' }],
    found: steps > 0 ? tally.rows : 0,
    span: tally.span,
    byVm: {},
    skipped: {},
    coverage: null,
    profile,
    notes: [
      `unmet demand (CPUs overloaded): ${unmet.toFixed(0)} CPU-seconds`,
      `VMs by file, in input order (a folder's files by name): ${vmList(files, names)}`,
      ...(short > 0 ? [`note: ${short} file(s) have fewer than ${steps} steps: their VMs are idle (0 %) after their last line`] : []),
    ],
  };
}

/** `vm0 = a, vm1 = b, …, vm9 = j` (the first two and the last, when there are many). */
function vmList(files: readonly string[], names: readonly string[]): string {
  const pair = (i: number) => `${names[i]} = ${path.basename(files[i]!)}`;
  if (files.length <= 4) return files.map((_, i) => pair(i)).join(', ');
  return `${pair(0)}, ${pair(1)}, …, ${pair(files.length - 1)}`;
}
