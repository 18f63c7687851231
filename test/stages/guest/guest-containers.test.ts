/** guest-containers: container accounting inside energy-aware guests, and their budgets (Figure 9). */
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli.js';
import { bufferIO } from '../../../src/commands/io.js';
import { generate } from '../../../src/commands/generate.js';
import { PROJECT_ROOT } from '../../../src/core/json.js';
import { loadProfile, resolveProfile } from '../../../src/core/profile.js';
import { demoCswitchText, demoDiskText } from '../../../src/generate/demo-fixture.js';
import { profileOf, relDiff, replayTexts, tmpDir } from '../../helpers.js';
import type { MemorySink } from '../../../src/store/memory.js';

const fig9 = path.join(PROJECT_ROOT, 'pipelines', 'paper-fig9.json');

describe('Figure 9 (pipelines/paper-fig9.json): host-level against guest-level', () => {
  const dir = tmpDir();
  const metrics = new Map<string, Map<string, number>>();
  let db = '';
  beforeAll(async () => {
    generate({ scenario: 'paper-fig9', out: path.join(PROJECT_ROOT, 'fixtures', 'paper-fig9'), seed: 1 }, bufferIO());
    db = path.join(dir, 'fig9.sqlite');
    for (const variant of ['base', 'guest-level']) {
      const io = bufferIO();
      expect(await main(['replay', fig9, '--variant', variant, '--db', db, '--quiet'], io), io.stderr.join('')).toBe(0);
    }
    const d = new Database(db, { readonly: true });
    for (const [run, v] of [[1, 'base'], [2, 'guest-level']] as const) {
      metrics.set(v, new Map((d.prepare('SELECT name, value FROM metrics WHERE run_id = ?').all(run) as { name: string; value: number }[]).map((m) => [m.name, m.value])));
    }
    d.close();
  });

  it('guest-level: containers at 10 W and 30 W (10 %), work 1:3 (15 %), the VM at 40 W (5 %)', () => {
    const g = metrics.get('guest-level')!;
    expect(Math.abs(g.get('container.guest.bzip2-a.mean_watts')! / 10 - 1)).toBeLessThan(0.1);
    expect(Math.abs(g.get('container.guest.bzip2-b.mean_watts')! / 30 - 1)).toBeLessThan(0.1);
    // The container limits act from start_s (5 s), as the host's does: before, the two tasks share
    // the CPU alike (2.5 s each); for the 25 s after, at ~50 W while running, 10 W and 30 W of
    // budget let a run 1/5 and b 3/5 of the time: work (2.5 + 5) : (2.5 + 15) = 0.43.
    const ratio = g.get('container.guest.bzip2-a.work_s')! / g.get('container.guest.bzip2-b.work_s')!;
    expect(Math.abs(ratio / (7.5 / 17.5) - 1)).toBeLessThan(0.1);
    expect(Math.abs(g.get('cpu.guest.mean_watts')! / 40 - 1)).toBeLessThan(0.05);
    // bzip2-a spends its budget early in each period and waits for the next.
    expect(g.get('container.guest.bzip2-a.preempted_s')!).toBeGreaterThan(1);
  });

  it('host-level, by contrast, slows both tasks alike (1:1)', () => {
    const h = metrics.get('base')!;
    const ratio = h.get('container.guest.bzip2-a.work_s')! / h.get('container.guest.bzip2-b.work_s')!;
    expect(Math.abs(ratio - 1)).toBeLessThan(0.1);
  });

  it('report draws Figure 9: host-level and guest-level side by side', async () => {
    const out = path.join(dir, 'report');
    const io = bufferIO();
    expect(await main(['report', '--db', db, '--run', '2', '--out', out], io), io.stderr.join('')).toBe(0);
    const fs = await import('node:fs');
    const svg = fs.readFileSync(path.join(out, 'containers-by-variant.svg'), 'utf8');
    for (const s of ['guest/bzip2-a', 'guest/bzip2-b', '>base<', '>guest-level<']) expect(svg).toContain(s);
    expect(fs.existsSync(path.join(out, 'container-policy-run-2.svg'))).toBe(true);
  });

  it("the containers' rows add up to the guest's own rows", () => {
    const d = new Database(db, { readonly: true });
    const sums = d
      .prepare("SELECT device, kind, sum(CASE WHEN container IS NULL THEN joules ELSE 0 END) AS vm, sum(CASE WHEN container IS NOT NULL THEN joules ELSE 0 END) AS c FROM energy WHERE run_id = 2 AND consumer = 'guest' GROUP BY device, kind")
      .all() as { device: string; kind: string; vm: number; c: number }[];
    d.close();
    expect(sums.length).toBe(2);
    for (const s of sums) expect(relDiff(s.c, s.vm), `${s.device} ${s.kind}`).toBeLessThan(1e-9);
  });
});

describe('container limits on a guest that is not energy-aware', () => {
  it('are refused naming the VM and the setting (before, the run did nothing with them, exit 0, no containers rows)', async () => {
    generate({ scenario: 'paper-fig9', out: path.join(PROJECT_ROOT, 'fixtures', 'paper-fig9'), seed: 1 }, bufferIO());
    const io = bufferIO();
    const profile = path.join(PROJECT_ROOT, 'fixtures', 'paper-fig9', 'machine.json'); // its guest is not energy_aware
    const code = await main(['replay', fig9, '--variant', 'guest-level', '--profile', profile, '--db', path.join(tmpDir(), 'x.sqlite'), '--quiet'], io);
    expect(code).toBe(2);
    expect(io.stderr.join('')).toContain(`at /policy/guest/limits_watts/guest: names VM 'guest', which the machine profile (${profile}) does not mark energy_aware`);
  });
});

describe('guest-containers accounting with disk requests', () => {
  it('splits CPU, driver and disk energy among containers, summing to the VM per device (demo, vm2)', async () => {
    const m = loadProfile(path.join(PROJECT_ROOT, 'fixtures', 'demo', 'machine.json'));
    // A guest log for vm2: at the end of each of its periods, its OS switches container, reading
    // the same counters the hypervisor logged there.
    const cs = demoCswitchText().split('\n');
    const header = cs[0]!.split(',');
    const guest = [`ts_ns,vm,cpu,container,tsc,${header.slice(4).join(',')}`];
    let n = 0;
    for (const line of cs.slice(1)) {
      const f = line.split(',');
      if (f[2] !== 'vm2') continue;
      guest.push([f[0], 'vm2', f[1], n++ % 3 === 0 ? 'bzip2-a' : 'web', ...f.slice(3)].join(','));
    }
    const sink = await replayTexts(m, { cswitch: demoCswitchText(), disk: demoDiskText(), guest: guest.join('\n') + '\n' }, ['cpu-split', 'disk-energy', 'driver-charge', 'virtual-counters', 'guest-containers']);
    const vm = sink.sumBy((r) => (r.consumer === 'vm2' ? `${r.via}|${r.device}|${r.kind}` : ''));
    const byC = new Map<string, number>();
    for (const r of sink.rows) if (r.consumer === 'vm2' && r.container !== null) byC.set(`${r.via}|${r.device}|${r.kind}`, (byC.get(`${r.via}|${r.device}|${r.kind}`) ?? 0) + r.joules);
    const keys = [...vm.keys()].filter((k) => k !== '');
    expect(keys.some((k) => k.includes('disk'))).toBe(true);
    for (const k of keys) expect(relDiff(byC.get(k)!, vm.get(k)!), k).toBeLessThan(1e-9);
    // The disk's active energy goes to the container that named its requests (the demo's
    // bzip2-a); idle energy of intervals without requests is split by CPU time.
    const disk = sink.rows.filter((r) => r.consumer === 'vm2' && r.device === 'disk' && r.kind === 'active' && r.container !== null);
    expect(new Set(disk.map((r) => r.container))).toEqual(new Set(['bzip2-a']));
  });
});

describe('guest budgets: an idle container', () => {
  // One CPU, the energy-aware VM g running all the time at 50 W of active power; in its guest only
  // container a ever runs (b, limited to 30 W, idles); the host gives g 40 W.
  const rows = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0'];
  const guest = ['ts_ns,vm,cpu,container,tsc,uops', '0,g,0,a,0,0'];
  let uops = 0;
  for (let i = 1; i <= 10_000; i++) {
    uops += 50_000_000;
    rows.push(`${i * 1e6},0,g,${i * 1e6},${uops}`);
    guest.push(`${i * 1e6},g,0,a,${i * 1e6},${uops}`);
  }
  const p = profileOf({ vms: ['g'], events: { uops: 1e-9 } });
  p.vms[0]!.energy_aware = true;
  const m = resolveProfile(p, 'g.json');
  const run = (policy: 'static' | 'shares') =>
    replayTexts(m, { cswitch: rows.join('\n') + '\n', guest: guest.join('\n') + '\n' }, ['cpu-split', 'virtual-counters', 'guest-containers'], {
      policy: { cpu: { limits_watts: { g: 40 } }, guest: { policy, limits_watts: { g: { a: 10, b: 30 } } } },
    });

  it("the host's limit caps the guest: a container allowed 50 W gets the VM's 20 W", async () => {
    const r = await replayTexts(m, { cswitch: rows.join('\n') + '\n', guest: guest.join('\n') + '\n' }, ['cpu-split', 'virtual-counters', 'guest-containers'], {
      policy: { cpu: { limits_watts: { g: 20 } }, guest: { limits_watts: { g: { a: 50, b: 30 } } } },
    });
    expect(Math.abs(r.metrics.get('cpu.g.mean_watts')! / 20 - 1)).toBeLessThan(0.05);
    // b never ran, yet it reports (0 W, no work); the last, partial period is written too.
    expect(r.metrics.get('container.g.b.work_s')).toBe(0);
    const aRows = r.containerRows.filter((x) => x.container === 'a');
    expect(aRows.reduce((acc, x) => acc + x.workS, 0)).toBeCloseTo(r.metrics.get('container.g.a.work_s')!, 9);
  });

  it('static: its budget is lost (a stays at 10 W); shares: a borrows it, up to the VM budget', async () => {
    const st = await run('static');
    const sh = await run('shares');
    expect(Math.abs(st.metrics.get('container.g.a.mean_watts')! / 10 - 1)).toBeLessThan(0.05);
    expect(Math.abs(sh.metrics.get('container.g.a.mean_watts')! / 40 - 1)).toBeLessThan(0.05);
    expect(sh.containerRows.filter((r) => r.container === 'a').length).toBeGreaterThan(150);
  });
});

describe('guest budgets: served work costs what that work drew in the log', () => {
  // One CPU, 200 ms, the energy-aware VM g running all the time (hypervisor rows every 10 ms). In
  // its guest, 5 ms chunks alternate: a at 20 W, b at 40 W, a at 80 W, b at 40 W, … (by uops at
  // 1 nJ each). Per 50 ms budget period a runs 20, 80, 20, 80, 20 W chunks (1.1 J: 22 W) then
  // 80, 20, 80, 20, 80 (1.4 J: 28 W); b 5 × 0.2 J (20 W). Before, served work was priced at a's
  // running mean power (20.4, 24.24, 24.30, 24.67 W; mean 23.4 W, 6 % low), and a chunk became
  // demand only after the VM's period that held it was simulated (b: 16 W in the first period,
  // its last chunk never served).
  const cs = ['ts_ns,cpu,vm,tsc,uops', '0,0,g,0,0'];
  const guest = ['ts_ns,vm,cpu,container,tsc,uops', '0,g,0,a,0,0'];
  let uops = 0;
  for (let i = 1; i <= 40; i++) {
    const t = i * 5_000_000;
    const [c, watts] = i % 2 === 1 ? ['a', i % 4 === 1 ? 20 : 80] : ['b', 40];
    uops += watts * 5e6;
    guest.push(`${t},g,0,${c},${t},${uops}`);
    if (i % 2 === 0) cs.push(`${t},0,g,${t},${uops}`);
  }
  const p = profileOf({ vms: ['g'], events: { uops: 1e-9 } });
  p.vms[0]!.energy_aware = true;
  const m = resolveProfile(p, 'g.json');
  const run = (limits: Record<string, number>) =>
    replayTexts(m, { cswitch: cs.join('\n') + '\n', guest: guest.join('\n') + '\n' }, ['cpu-split', 'virtual-counters', 'guest-containers'], {
      policy: { guest: { period_ms: 50, limits_watts: { g: limits } } },
    });
  const watts = (r: MemorySink, c: string) => r.containerRows.filter((x) => x.container === c).map((x) => x.watts);

  it('limits that never bind: every period as logged, every chunk served', async () => {
    const r = await run({ a: 1000, b: 1000 });
    watts(r, 'a').forEach((w, i) => expect(w, `a, period ${i}`).toBeCloseTo([22, 28, 22, 28][i]!, 9));
    watts(r, 'b').forEach((w, i) => expect(w, `b, period ${i}`).toBeCloseTo(20, 9));
    expect(r.metrics.get('container.g.a.mean_watts')).toBeCloseTo(25, 9);
    for (const c of ['a', 'b']) {
      expect(r.metrics.get(`container.g.${c}.backlog_s`), c).toBe(0);
      expect(r.metrics.get(`container.g.${c}.work_s`), c).toBeCloseTo(0.1, 12);
    }
  });

  it('a binding limit buys the logged chunks in order: 10 W × 50 ms = 0.5 J is 5 ms at 20 W and 5 ms at 80 W', async () => {
    const r = await run({ a: 10, b: 1000 });
    const first = r.containerRows.find((x) => x.container === 'a')!;
    expect(first.workS).toBeCloseTo(0.01, 8);
    expect(first.watts).toBeCloseTo(10, 6);
    // Delayed, never dropped: what a did + what waits = what it logged.
    expect(r.metrics.get('container.g.a.work_s')! + r.metrics.get('container.g.a.backlog_s')!).toBeCloseTo(0.1, 9);
  });
});
