/**
 * The README's figures of Figures 7, 8 and 9, written from real runs: `npm run readme-figures`
 * generates the scenarios (seed 1) in a scratch folder, runs `wattrace compare` on the shipped
 * pipelines there, and rewrites the blocks between `<!-- figures:figN -->` and
 * `<!-- /figures:figN -->` in README.md. A test renders the blocks from its own runs and fails when
 * the README says otherwise.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export type FigureId = 'fig7' | 'fig8' | 'fig9';
export const README = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');

const r1 = (x: number) => x.toFixed(1);
const r2 = (x: number) => x.toFixed(2);

interface Run {
  metrics: Map<string, number>;
  /** Watts of the energy matrix by `consumer|via|device|kind` (via '-' for none). */
  cells: Map<string, number>;
}

/** Every run of a compare database, by variant. */
function runs(db: string): Map<string, Run> {
  const d = new Database(db, { readonly: true });
  try {
    const out = new Map<string, Run>();
    for (const { run_id, variant } of d.prepare('SELECT run_id, variant FROM runs ORDER BY run_id').all() as { run_id: number; variant: string }[]) {
      const metrics = new Map((d.prepare('SELECT name, value FROM metrics WHERE run_id = ?').all(run_id) as { name: string; value: number }[]).map((m) => [m.name, m.value]));
      const cells = new Map<string, number>();
      for (const c of d.prepare('SELECT consumer, via, device, kind, watts FROM energy_matrix WHERE run_id = ?').all(run_id) as { consumer: string; via: string | null; device: string; kind: string; watts: number }[]) {
        const k = `${c.consumer}|${c.via ?? '-'}|${c.device}|${c.kind}`;
        cells.set(k, (cells.get(k) ?? 0) + c.watts);
      }
      out.set(variant, { metrics, cells });
    }
    return out;
  } finally {
    d.close();
  }
}

const get = (m: Map<string, number>, k: string): number => {
  const v = m.get(k);
  if (v === undefined) throw new Error(`README figures: no ${k}`);
  return v;
};

function fig7(db: string): string {
  const rs = runs(db);
  const rows = [...rs].filter(([v]) => v.startsWith('bs-')).map(([v, r]) => {
    const cpu = [...r.cells].filter(([k]) => k.split('|')[2] === 'cpu').reduce((a, [, w]) => a + w, 0);
    const w = (k: string) => r.cells.get(k) ?? 0;
    const clientActive = w('vm1|-|cpu|active');
    const driverIdle = w('vm1|drv|cpu|idle');
    const driverActive = w('vm1|drv|cpu|active');
    return { bs: Number(v.slice(3)), base: cpu - clientActive - driverIdle - driverActive, clientActive, driverIdle, driverActive, diskIdle: w('vm1|drv|disk|idle'), diskActive: w('vm1|drv|disk|active'), m: r.metrics };
  });
  rows.sort((a, b) => a.bs - b.bs);
  const first = rows[0]!;
  const last = rows[rows.length - 1]!;
  const range = (xs: number[]) => `${r1(Math.min(...xs))}–${r1(Math.max(...xs))}`;
  return [
    `As in the paper: a base of ${r1(first.base)} W (hypervisor, VMM and the VMs' idle shares but the`,
    `driver's), and charged to the client for its disk test the driver's ${r1(first.driverIdle)} W CPU idle, the`,
    `disk's ${r1(first.diskIdle)} W idle and ${r1(first.diskActive)} W active (saturated), the driver's CPU active from`,
    `${r1(first.driverActive)} W at 0.5 KB down to ${r1(last.driverActive)} W at 32 KB, the client's own CPU active from`,
    `${r2(first.clientActive)} W to ${r2(last.clientActive)} W; validated against the simulated 1 kHz DAQ with a MAPE per 100 ms`,
    `interval of ${range(rows.map((r) => get(r.m, 'validation.cpu.mape')))} % for the CPU and ${range(rows.map((r) => get(r.m, 'validation.disk.mape')))} % for the disk.`,
  ].join('\n');
}

function fig8(db: string): string {
  const m = runs(db).get('base')!.metrics;
  const mbs = (k: string) => r2(get(m, k) / 1e6);
  return [
    `After settling (vm1 ${r1(get(m, 'disk.vm1.settle_s'))} s, vm2 ${r1(get(m, 'disk.vm2.settle_s'))} s after the limits switch on, seed 1)`,
    `vm1 averages ${r2(get(m, 'disk.vm1.settled_mean_watts'))} W and vm2 ${r2(get(m, 'disk.vm2.settled_mean_watts'))} W, ${r1(100 * get(m, 'disk.vm1.over_limit_frac'))} % and`,
    `${r1(100 * get(m, 'disk.vm2.over_limit_frac'))} % of their 200 ms periods are more than 20 % over, and vm2's throughput falls from`,
    `${mbs('disk.vm2.throughput_before_bps')} to ${mbs('disk.vm2.throughput_after_bps')} MB/s while vm1's goes from ${mbs('disk.vm1.throughput_before_bps')} to ${mbs('disk.vm1.throughput_after_bps')} MB/s. Each client`,
    `issues its ${get(m, 'disk.vm1.demand').toLocaleString('en-US')} recorded requests once (closed arrival): under the limits ${get(m, 'disk.vm1.backlog').toLocaleString('en-US')} of vm1's and`,
    `${get(m, 'disk.vm2.backlog').toLocaleString('en-US')} of vm2's are still waiting at the end.`,
  ].join('\n');
}

function fig9(db: string): string {
  const rs = runs(db);
  const base = rs.get('base')!.metrics;
  const free = rs.get('unlimited')!.metrics;
  const guest = rs.get('guest-level')!.metrics;
  const adaptive = rs.get('adaptive')!.metrics;
  const wa = get(base, 'container.guest.bzip2-a.work_s');
  const wb = get(base, 'container.guest.bzip2-b.work_s');
  const slowed = (100 * (wa + wb)) / (get(free, 'container.guest.bzip2-a.work_s') + get(free, 'container.guest.bzip2-b.work_s'));
  const ga = get(guest, 'container.guest.bzip2-a.work_s');
  const gb = get(guest, 'container.guest.bzip2-b.work_s');
  return [
    `From 5 s the host holds the guest at ${r1(get(base, 'cpu.guest.settled_mean_watts'))} W (the paper's controller; ${r1(get(adaptive, 'cpu.guest.settled_mean_watts'))} W with`,
    `\`adaptive\`), and both tasks are slowed alike: ${r2(wa)} s and ${r2(wb)} s of work in 30 s, together ${slowed.toFixed(0)} % of`,
    `what they do unlimited (variant \`unlimited\`, ${r1(get(free, 'cpu.guest.mean_watts'))} W). **Guest-level** (variant \`guest-level\`): the same`,
    `guest, energy-aware, enforces container limits of 10 W (bzip2-a) and 30 W (bzip2-b) within the host's`,
    `40 W itself, from the same 5 s: bzip2-a draws ${r1(get(guest, 'container.guest.bzip2-a.mean_watts'))} W and bzip2-b ${r1(get(guest, 'container.guest.bzip2-b.mean_watts'))} W from then on, the guest`,
    `${r1(get(guest, 'cpu.guest.mean_watts'))} W in all; their work over the 30 s is ${r2(ga)} s and ${r2(gb)} s (1:${(gb / ga).toFixed(1)}, 1:1 for the first 5 s): the`,
    `paper's "higher throughput" for the preferred task.`,
  ].join('\n');
}

/** The README blocks from compare databases of paper-fig7, paper-fig8 and paper-fig9. */
export function figureBlocks(dbs: Record<FigureId, string>): Record<FigureId, string> {
  return { fig7: fig7(dbs.fig7), fig8: fig8(dbs.fig8), fig9: fig9(dbs.fig9) };
}

const marker = (id: FigureId) => [`<!-- figures:${id} -->`, `<!-- /figures:${id} -->`] as const;

/** The text of the README's block `id` (without the markers), or null when it has none. */
export function readmeBlock(readme: string, id: FigureId): string | null {
  const [open, close] = marker(id);
  const a = readme.indexOf(open);
  const b = readme.indexOf(close);
  return a < 0 || b < a ? null : readme.slice(a + open.length, b).trim();
}

export function withBlocks(readme: string, blocks: Record<FigureId, string>): string {
  let out = readme;
  for (const id of Object.keys(blocks) as FigureId[]) {
    const [open, close] = marker(id);
    const a = out.indexOf(open);
    const b = out.indexOf(close);
    if (a < 0 || b < a) throw new Error(`README.md has no ${open} … ${close} block`);
    out = `${out.slice(0, a + open.length)}\n${blocks[id]}\n${out.slice(b)}`;
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { generate } = await import('../commands/generate.js');
  const { compare } = await import('../commands/compare.js');
  const { bufferIO } = await import('../commands/io.js');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wattrace-figures-'));
  const project = path.dirname(README);
  fs.mkdirSync(path.join(root, 'pipelines'));
  const dbs = {} as Record<FigureId, string>;
  for (const id of ['fig7', 'fig8', 'fig9'] as const) {
    const name = `paper-${id}`;
    fs.copyFileSync(path.join(project, 'pipelines', `${name}.json`), path.join(root, 'pipelines', `${name}.json`));
    generate({ scenario: name, out: path.join(root, 'fixtures', name), seed: 1 }, bufferIO());
    dbs[id] = path.join(root, `${name}.sqlite`);
    await compare({ pipeline: path.join(root, 'pipelines', `${name}.json`), db: dbs[id], format: 'json' }, bufferIO());
  }
  fs.writeFileSync(README, withBlocks(fs.readFileSync(README, 'utf8'), figureBlocks(dbs)));
  fs.rmSync(root, { recursive: true, force: true });
  console.log(`wrote the figures of ${README}`);
}
