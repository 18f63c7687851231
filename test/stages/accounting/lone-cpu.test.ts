/**
 * A CPU whose log is a single row (it switched once, or only its first row fell inside the
 * recording, as cpu 5 of trace_idle.dat) has no period, but the machine had it all along: its
 * whole span is unlogged idle time, charged to `(unattributed)` as for any CPU's unlogged time.
 * Before, it was left out, and one more row 1 µs later doubled the machine's energy.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../src/core/json.js';
import { cli, tmpDir } from '../../helpers.js';

const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');

const dir = tmpDir('wattrace-lone-cpu-');
fs.writeFileSync(path.join(dir, 'machine.json'), JSON.stringify({ cpu: { tsc_hz: 1e9, idle_watts: 10, counter_bits: 64, idle_split: 'by-time', events: {} }, disks: {}, vms: [{ id: 'a', role: 'client' }], services: [] }));
fs.writeFileSync(path.join(dir, 'p.json'), JSON.stringify({ name: 'lone', profile: 'machine.json', traces: { cswitch: 'cswitch.csv' }, stages: ['cpu-split'] }));

async function replay(csv: string, threads: '0' | '1'): Promise<{ byConsumer: Record<string, number>; cpus: number }> {
  fs.writeFileSync(path.join(dir, 'cswitch.csv'), csv);
  const db = path.join(dir, `x-${threads}-${Math.random()}.sqlite`);
  const args = ['replay', path.join(dir, 'p.json'), '--db', db, '--quiet'];
  // On a thread: the built CLI (the decoder thread runs compiled code only); in-thread: in-process.
  if (threads === '1') expect(spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, WATTRACE_THREADS: '1' } }).status).toBe(0);
  else expect((await cli(args)).code).toBe(0);
  const d = new Database(db, { readonly: true });
  try {
    const rows = d.prepare("SELECT consumer, sum(joules) AS j FROM energy WHERE container IS NULL GROUP BY consumer").all() as { consumer: string; j: number }[];
    const cpus = (d.prepare("SELECT value FROM metrics WHERE name = 'accounting.cpu.cpus'").get() as { value: number }).value;
    return { byConsumer: Object.fromEntries(rows.map((r) => [r.consumer, r.j])), cpus };
  } finally {
    d.close();
  }
}

describe('a CPU with a single row', () => {
  // cpu 0: a from 1 s to 2 s, idle (halting) from 2 s to 3 s; cpu 1: one row at 1.5 s.
  // The run spans 1 s to 3 s: 2 CPUs × 10 W × 2 s = 40 J. cpu 0's 20 J (TSC idle, no events)
  // goes to a (by-time: the halt energy follows a's CPU time, and a is the only VM); cpu 1's
  // 2 s are unlogged: 10 W × 2 s = 20 J to (unattributed).
  const lone = 'ts_ns,cpu,vm,tsc\n1000000000,0,a,1000000000\n1500000000,1,a,1500000000\n2000000000,0,idle,2000000000\n3000000000,0,a,3000000000\n';
  // The same with a second row on cpu 1 1 µs later: a 1 µs period of a, the rest unlogged.
  const two = 'ts_ns,cpu,vm,tsc\n1000000000,0,a,1000000000\n1500000000,1,a,1500000000\n1500001000,1,a,1500001000\n2000000000,0,idle,2000000000\n3000000000,0,a,3000000000\n';

  for (const threads of ['0', '1'] as const) {
    it(`is the machine's all the same: its span is unlogged idle (decoded ${threads === '1' ? 'on a thread' : 'in-thread'})`, async () => {
      const r = await replay(lone, threads);
      expect(r.byConsumer['a']).toBeCloseTo(20, 9);
      expect(r.byConsumer['(unattributed)']).toBeCloseTo(20, 9);
      expect(r.cpus).toBe(2);
      const t = await replay(two, threads);
      // One more row adds a 1 µs period (10 µJ to a), not a CPU's worth of energy.
      expect(t.byConsumer['a']! + t.byConsumer['(unattributed)']!).toBeCloseTo(40, 9);
      expect(t.byConsumer['a']).toBeCloseTo(20 + 1e-5, 9);
    });
  }
});
