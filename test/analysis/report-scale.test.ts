/**
 * `wattrace report` on a run of many consumers and rows (the PlanetLab day has 1,052 VMs and 5.6 M
 * rows): the charts are summed in SQL into a bounded number of series and points, and what they
 * draw still adds up to the run's energy and work.
 */
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIO } from '../../src/commands/io.js';
import { MAX_POINTS, MAX_SERIES, policySeries, powerOverTime } from '../../src/analysis/report.js';
import { migrate, openForReading } from '../../src/store/store.js';
import { tmpDir } from '../helpers.js';

const dir = tmpDir();
const file = path.join(dir, 'many.sqlite');

const S = 1e9;
/** Reporting intervals of 1 s; the run ends half-way through the 3,001st. */
const INTERVALS = 3001;
const T1 = (INTERVALS - 0.5) * S;
const VMS = Array.from({ length: 60 }, (_, i) => `vm${String(i).padStart(2, '0')}`);
/** Manager periods of 1 s, ending at 1 s, 2 s, …; vm00 has a row in each, so none is skipped. */
const PERIODS = 3000;
/** Small VMs with a limit from period 1,000 on: drawn by name although others use more. */
const LIMITED = ['vm57', 'vm58', 'vm59'];
const LIMIT = 2.5;

/** What the generator wrote, summed here as it wrote it (not read back). */
const joulesOf = new Map<string, number>();
const policyEnergyOf = new Map<string, number>();
const workOf = new Map<string, number>();
let hostJoules = 0;

/** A deterministic generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

beforeAll(() => {
  const db = new Database(file);
  migrate(db);
  const rand = rng(7);
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  db.transaction(() => {
    db.prepare(
      "INSERT INTO runs (run_id, pipeline, variant, params, inputs, started_at, finished_at, tool_version, base_ts_ns, t0_ns, t1_ns, duration_ns, interval_ns) VALUES (1, 'many', 'base', '{}', '{}', '2025-01-01T00:00:00Z', '2025-01-01T00:01:00Z', 'test', '0', 0, ?, ?, ?)",
    ).run(T1, T1, S);
    const energy = db.prepare('INSERT INTO energy (run_id, t0_ns, t1_ns, consumer, container, via, device, kind, joules) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (let k = 0; k < INTERVALS; k++) {
      const t0 = k * S;
      const t1 = Math.min((k + 1) * S, T1);
      VMS.forEach((vm, i) => {
        // Bigger VMs have the bigger numbers; each misses a tenth of the intervals (a zero there).
        if (rand() < 0.1) return;
        const scale = LIMITED.includes(vm) ? 0.01 : 1 + i / 10;
        for (const kind of ['idle', 'active'] as const) {
          const j = scale * rand() * ((t1 - t0) / S);
          energy.run(t0, t1, vm, null, null, 'cpu', kind, j);
          add(joulesOf, vm, j);
          hostJoules += j;
        }
        // A driver's charge is the client's energy too; container rows repeat their VM's (not summed).
        if (i % 7 === 0) {
          const j = rand();
          energy.run(t0, t1, vm, null, 'drv', 'disk', 'active', j);
          add(joulesOf, vm, j);
          hostJoules += j;
          energy.run(t0, t1, vm, 'task', null, 'cpu', 'active', 100);
        }
      });
    }
    const policy = db.prepare('INSERT INTO cpu_policy (run_id, t_ns, vm, share, limit_watts, watts, work_s, backlog_s) VALUES (1, ?, ?, 1, ?, ?, ?, 0)');
    for (let p = 1; p <= PERIODS; p++) {
      VMS.forEach((vm, i) => {
        const limited = LIMITED.includes(vm);
        // Without a limit or demand a VM has no row (a zero in the chart).
        if (vm !== 'vm00' && !(limited && p >= 1000) && rand() < 0.2) return;
        const watts = (limited ? 0.05 : 1 + i / 5) * rand();
        const work = watts / 10;
        policy.run(p * S, vm, limited && p >= 1000 ? LIMIT : null, watts, work);
        add(policyEnergyOf, vm, watts * 1); // periods of 1 s
        add(workOf, vm, work);
      });
    }
  })();
  db.close();
});

/** ∫ value dt of a step line: step-after (value from its time on) or step-before (up to its time). */
function integral(points: readonly { t: number; v: number }[], step: 'after' | 'before'): number {
  let s = 0;
  for (let i = 1; i < points.length; i++) s += (points[i]!.t - points[i - 1]!.t) * (step === 'after' ? points[i - 1]!.v : points[i]!.v);
  if (step === 'before' && points.length > 0) s += points[0]!.t * points[0]!.v; // the first period starts at 0
  return s;
}

function topBy(m: Map<string, number>, n: number): string[] {
  return [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k]) => k).sort();
}

describe('report of a run with many consumers', () => {
  it('draws power over time as the top consumers and one sum of the others, in bounded points, adding up to the run', () => {
    const db = openForReading(file);
    const sqlTotal = (db.prepare('SELECT sum(joules) AS j FROM energy WHERE run_id = 1 AND container IS NULL').get() as { j: number }).j;
    const p = powerOverTime(db, 1);
    db.close();
    expect(sqlTotal / hostJoules).toBeCloseTo(1, 9);
    expect(p.shown).toEqual(topBy(joulesOf, MAX_SERIES));
    expect(p.othersCount).toBe(VMS.length - MAX_SERIES);
    expect(p.others).toBe('others (51 consumers)');
    // 3,001 intervals, at most 1,500 points: 3 s per point.
    expect(p.intervalsPerPoint).toBe(3);
    expect(p.note.join(' ')).toMatch(/The 9 consumers with the most energy; the other 51 are summed as "others \(51 consumers\)".*mean over 3 reporting intervals/);
    const series = new Map<string, { t: number; v: number }[]>();
    for (const q of p.points) series.set(q.consumer, [...(series.get(q.consumer) ?? []), { t: q.t, v: q.watts }]);
    expect([...series.keys()].sort()).toEqual([...p.shown, p.others].sort());
    for (const pts of series.values()) expect(pts.length).toBeLessThanOrEqual(MAX_POINTS + 2);
    expect(p.points.length).toBeLessThanOrEqual((MAX_SERIES + 1) * (MAX_POINTS + 2));
    let drawn = 0;
    for (const [name, pts] of series) {
      const j = integral(pts, 'after');
      drawn += j;
      const expected = name === p.others ? [...joulesOf].filter(([vm]) => !p.shown.includes(vm)).reduce((a, [, v]) => a + v, 0) : joulesOf.get(name)!;
      expect(j / expected).toBeCloseTo(1, 9);
    }
    expect(drawn / sqlTotal).toBeCloseTo(1, 9);
  });

  it('draws the policy as the VMs with a limit and the top others by name, one sum of the rest, in bounded points', () => {
    const db = openForReading(file);
    const sqlWork = (db.prepare('SELECT sum(work_s) AS w FROM cpu_policy WHERE run_id = 1').get() as { w: number }).w;
    const s = policySeries(db, 1, 'cpu')!;
    expect(policySeries(db, 1, 'disk')).toBeNull();
    db.close();
    const unlimited = new Map([...policyEnergyOf].filter(([vm]) => !LIMITED.includes(vm)));
    expect(s.shown).toEqual([...LIMITED, ...topBy(unlimited, MAX_SERIES - LIMITED.length)].sort());
    expect(s.others).toBe('others (51 VMs)');
    expect(s.periodsPerPoint).toBe(2);
    const series = new Map<string, { t: number; w: number; work: number; limit: number | null }[]>();
    for (const q of s.points) series.set(q.vm, [...(series.get(q.vm) ?? []), { t: q.t, w: q.watts, work: q.throughput, limit: q.limit }]);
    expect([...series.keys()].sort()).toEqual([...s.shown, s.others].sort());
    let work = 0;
    for (const [name, pts] of series) {
      expect(pts.length).toBe(PERIODS / 2);
      const rest = (m: Map<string, number>) => [...m].filter(([vm]) => !s.shown.includes(vm)).reduce((a, [, v]) => a + v, 0);
      const energy = integral(pts.map((q) => ({ t: q.t, v: q.w })), 'before');
      expect(energy / (name === s.others ? rest(policyEnergyOf) : policyEnergyOf.get(name)!)).toBeCloseTo(1, 9);
      const w = integral(pts.map((q) => ({ t: q.t, v: q.work })), 'before');
      expect(w / (name === s.others ? rest(workOf) : workOf.get(name)!)).toBeCloseTo(1, 9);
      work += w;
      // A limit is the limit where there was one (a bin straddling its start: the mean of the
      // periods that had one); the sum of the others has none.
      const limits = new Set(pts.map((q) => q.limit));
      if (LIMITED.includes(name)) expect(limits).toEqual(new Set([null, LIMIT]));
      else expect(limits).toEqual(new Set([null]));
    }
    expect(work / sqlWork).toBeCloseTo(1, 9);
  });

  it('the report says in its charts and page what it summed', async () => {
    const io = bufferIO();
    const out = path.join(dir, 'report');
    expect(await main(['report', '--db', file, '--out', out], io), io.stderr.join('\n')).toBe(0);
    const power = fs.readFileSync(path.join(out, 'power-run-1.svg'), 'utf8');
    expect(power).toContain('others (51 consumers)');
    expect(power).toContain('others, summed (W)');
    // Ten series: nine named and the others (the legend has one entry each).
    for (const vm of topBy(joulesOf, MAX_SERIES)) expect(power).toContain(`>${vm}<`);
    expect(VMS.filter((vm) => power.includes(`>${vm}<`)).length).toBe(MAX_SERIES);
    const cpu = fs.readFileSync(path.join(out, 'cpu-policy-run-1.svg'), 'utf8');
    expect(cpu).toContain('others (51 VMs)');
    const html = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html).toContain('<p class="note">The 9 consumers with the most energy; the other 51 are summed as &quot;others (51 consumers)&quot; (lower panels). Each point is the mean over 3 reporting intervals.</p>');
    expect(html).toContain('<p class="note">The 9 VMs with a limit, then with the most energy; the other 51 are summed as &quot;others (51 VMs)&quot; (lower panels). Each point is the mean over 2 manager periods.</p>');
  });
});

describe('policy charts over periods in which no VM had a row', () => {
  it('draw 0 there, period by period and in bins: what they draw adds up to the work and energy of the rows', () => {
    // Periods of 1 s; vmA has a row in periods 1–3 and 7–10, vmB in 2 and 9; in periods 4–6 no VM
    // had a limit or demand, so none has a row. By hand: vmA's energy Σ watts × 1 s = 1+2+3+7+8+9+10
    // = 40 J, vmB's 5 + 6 = 11 J. Before, each line carried period 7's value back over 4–6
    // (vmA: 40 + 3·7 = 61 J drawn).
    const f = path.join(dir, 'gaps.sqlite');
    const db = new Database(f);
    migrate(db);
    db.prepare(
      "INSERT INTO runs (run_id, pipeline, variant, params, inputs, started_at, finished_at, tool_version, base_ts_ns, t0_ns, t1_ns, duration_ns, interval_ns) VALUES (1, 'gaps', 'base', '{}', '{}', '2025-01-01T00:00:00Z', '2025-01-01T00:01:00Z', 'test', '0', 0, ?, ?, ?)",
    ).run(10 * S, 10 * S, S);
    const ins = db.prepare('INSERT INTO cpu_policy (run_id, t_ns, vm, share, limit_watts, watts, work_s, backlog_s) VALUES (1, ?, ?, 1, NULL, ?, ?, 0)');
    for (const p of [1, 2, 3, 7, 8, 9, 10]) ins.run(p * S, 'vmA', p, p / 10);
    ins.run(2 * S, 'vmB', 5, 0.5);
    ins.run(9 * S, 'vmB', 6, 0.6);
    db.close();
    const r = openForReading(f);
    const expected = new Map([
      ['vmA', { j: 40, work: 4 }],
      ['vmB', { j: 11, work: 1.1 }],
    ]);
    for (const maxPoints of [MAX_POINTS, 3]) {
      const s = policySeries(r, 1, 'cpu', maxPoints)!;
      expect(s.periodsPerPoint).toBe(maxPoints === 3 ? 3 : 1);
      for (const [vm, e] of expected) {
        const pts = s.points.filter((q) => q.vm === vm);
        expect(integral(pts.map((q) => ({ t: q.t, v: q.watts })), 'before'), `${vm}, ${maxPoints} points`).toBeCloseTo(e.j, 12);
        expect(integral(pts.map((q) => ({ t: q.t, v: q.throughput })), 'before'), `${vm}, ${maxPoints} points`).toBeCloseTo(e.work, 12);
      }
      // Period by period, the lines are at 0 from 3 s to 6 s.
      if (maxPoints === MAX_POINTS) expect(s.points.filter((q) => q.vm === 'vmA' && q.t === 6).map((q) => q.watts)).toEqual([0]);
    }
    r.close();
  });
});
