/**
 * A generated fleet, as a platform team would run one: N hosts, each the paper-fig8 machine (two
 * clients of a disk through a driver VM; CPU and disk) with its own seed, each replayed by its own
 * `wattrace compare` process (base and a variant `tight` with halved disk limits), labelled
 * `host=hNN`, into its own store; then `wattrace export` of all stores into one Parquet dataset.
 * Used by the fleet test (test/fleet/fleet.test.ts) and by `npm run bench:fleet`, which also
 * exports the PlanetLab day, and writes the sizes and times into the README (fleet block) and
 * docs/bench-fleet.json (a test re-renders the block from it).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../core/json.js';

const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');

/** Runs the built CLI; resolves with its output, rejects with its stderr on a non-zero exit. */
export function wattrace(args: readonly string[]): Promise<{ out: string; err: string; seconds: number }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 1 << 28, env: { ...process.env, WATTRACE_THREADS: '0' } }, (e, out, err) => {
      if (e) reject(new Error(`wattrace ${args.join(' ')}: ${err || e.message}`));
      else resolve({ out, err, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
  });
}

/** Runs `work` over `items`, `jobs` at a time. */
export async function pool<T, R>(items: readonly T[], jobs: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i]!);
      }
    }),
  );
  return out;
}

export interface FleetHost {
  host: string;
  dir: string;
  db: string;
  /** `compare --format json` of the host: metric → variant → value. */
  metrics: Record<string, Record<string, number>>;
}

/**
 * Generates and replays a fleet of `hosts` hosts under `root` (`root/hNN/…`), `jobs` hosts at a
 * time, each `seconds` long.
 */
export async function makeFleet(root: string, hosts: number, seconds = 6, jobs = os.availableParallelism?.() ?? 2): Promise<FleetHost[]> {
  const names = Array.from({ length: hosts }, (_, i) => `h${String(i + 1).padStart(2, '0')}`);
  return pool(names, jobs, async (host) => {
    const dir = path.join(root, host);
    const seed = Number(host.slice(1));
    await wattrace(['generate', 'paper-fig8', '--out', dir, '--seed', String(seed), '--seconds', String(seconds)]);
    const generated = JSON.parse(fs.readFileSync(path.join(dir, 'pipeline.json'), 'utf8')) as { policy: { disk: Record<string, unknown> } };
    // The policy from 1 s (the generated one starts at 45 s); a variant with half the limits.
    const limits = generated.policy.disk['limits_watts'] as Record<string, number>;
    const pipeline = {
      ...generated,
      name: 'fleet-disk',
      policy: { ...generated.policy, disk: { ...generated.policy.disk, start_s: 1 } },
      variants: { tight: { 'policy.disk.limits_watts': Object.fromEntries(Object.entries(limits).map(([vm, w]) => [vm, w / 2])) } },
    };
    fs.writeFileSync(path.join(dir, 'fleet.json'), JSON.stringify(pipeline, null, 2));
    const db = path.join(dir, `${host}.sqlite`);
    const r = await wattrace(['compare', path.join(dir, 'fleet.json'), '--db', db, '--label', `host=${host}`, '--jobs', '1', '--format', 'json']);
    const metrics = (JSON.parse(r.out) as { metrics: FleetHost['metrics'] }).metrics;
    return { host, dir, db, metrics };
  });
}

/** Bytes of a file or of every file under a folder. */
export function bytesOf(p: string): number {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.size;
  return (fs.readdirSync(p, { recursive: true }) as string[]).reduce((a, f) => {
    const s = fs.statSync(path.join(p, f));
    return a + (s.isFile() ? s.size : 0);
  }, 0);
}
