/** `wattrace compare`: variants side by side, expectations for CI, golden md and json output. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { checkExpectations, formatMetric, renderComparison, shownMetrics } from '../../src/commands/compare.js';
import { cli, tmpDir } from '../helpers.js';

const dir = tmpDir();
const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');
const GOLDEN = path.join(PROJECT_ROOT, 'test', 'golden');


/** A pipeline extending the demo with the given expectations and variants. */
function pipelineWith(name: string, extra: Record<string, unknown>): string {
  const f = path.join(dir, `${name}.json`);
  fs.writeFileSync(f, JSON.stringify({ extends: demo, ...extra }));
  return f;
}

/** Numbers rounded to 9 significant digits, so golden files do not hang on the last bit. */
function rounded(v: unknown): unknown {
  if (typeof v === 'number') return Number(v.toPrecision(9));
  if (Array.isArray(v)) return v.map(rounded);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rounded(x)]));
  return v;
}

describe('compare', () => {
  it('prints md and json as in the golden files (demo: base, coarse, per-byte)', async () => {
    const md = await cli(['compare', demo, '--db', path.join(dir, 'md.sqlite'), '--format', 'md', '--metrics', 'energy.,accounting.driver.drv.request']);
    expect(md.code, md.err).toBe(0);
    const json = await cli(['compare', demo, '--db', path.join(dir, 'json.sqlite'), '--format', 'json', '--metrics', 'energy.,accounting.driver.drv.request']);
    expect(json.code, json.err).toBe(0);
    if (process.env['WATTRACE_UPDATE_GOLDEN']) {
      fs.writeFileSync(path.join(GOLDEN, 'compare-demo.md'), md.out + '\n');
      fs.writeFileSync(path.join(GOLDEN, 'compare-demo.json'), JSON.stringify(rounded(JSON.parse(json.out)), null, 2) + '\n');
    }
    expect(md.out + '\n').toBe(fs.readFileSync(path.join(GOLDEN, 'compare-demo.md'), 'utf8'));
    expect(rounded(JSON.parse(json.out))).toEqual(JSON.parse(fs.readFileSync(path.join(GOLDEN, 'compare-demo.json'), 'utf8')));
  });

  it('all expectations met: exit 0; runs in parallel give what a serial run gives', async () => {
    // A variant on a copy of the trace is a second group (other traces), replayed in parallel.
    const copy = path.join(dir, 'cswitch-copy.csv');
    fs.copyFileSync(path.join(PROJECT_ROOT, 'fixtures', 'demo', 'cswitch.csv'), copy);
    const p = pipelineWith('good', {
      variants: { copy: { 'traces.cswitch': copy } },
      expect: [{ metric: 'energy.total_joules', min: 1000, max: 1400 }, { metric: 'accounting.unattributed_joules', max_delta: 1e-9 }],
    });
    const a = await cli(['compare', p, '--db', path.join(dir, 'good-1.sqlite'), '--format', 'json', '--jobs', '1']);
    const b = await cli(['compare', p, '--db', path.join(dir, 'good-3.sqlite'), '--format', 'json', '--jobs', '3']);
    expect(a.code, a.err).toBe(0);
    expect(b.code, b.err).toBe(0);
    const ja = JSON.parse(a.out) as { metrics: unknown; expectations: { ok: boolean }[] };
    const jb = JSON.parse(b.out) as { metrics: unknown };
    expect(jb.metrics).toEqual(ja.metrics);
    expect(ja.expectations).toHaveLength(8);
    expect(ja.expectations.every((e) => e.ok)).toBe(true);
    // The same trace read apart or together with other variants gives the same figures.
    const m = ja.metrics as Record<string, Record<string, number>>;
    for (const name of Object.keys(m)) expect(m[name]!['copy'], name).toBe(m[name]!['base']);
  });

  it('a variant that breaks an expectation: exit 1, naming it and its value', async () => {
    const p = pipelineWith('bad', { expect: [{ metric: 'accounting.driver.drv.request_joules', variant: 'per-byte', max: 1 }, { metric: 'energy.total_joules', max: 1e6 }] });
    const r = await cli(['compare', p, '--db', path.join(dir, 'bad.sqlite')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/BROKEN {2}accounting\.driver\.drv\.request_joules \(per-byte\) ≤ 1\.000 J: \d+\.\d+ J > max 1\.000 J/);
    expect(r.out).toMatch(/Expectations: 3 of 4 met/);
    expect(r.err).toMatch(/1 expectation broken: accounting\.driver\.drv\.request_joules \(per-byte\)/);
  });

  it('an override of a setting that does not exist: exit 2, nothing stored', async () => {
    const p = pipelineWith('typo', { variants: { typo: { 'policy.disk.limits_wats.vm1': 1 } } });
    const db = path.join(dir, 'typo.sqlite');
    const r = await cli(['compare', p, '--db', db]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/override 'policy\.disk\.limits_wats\.vm1'/);
    expect(fs.existsSync(db)).toBe(false);
    expect((await cli(['compare', demo, '--db', db, '--variants', 'nope'])).err).toMatch(/no variant 'nope'/);
  });

  it('an expectation on a metric the pipeline cannot write (its stage is not run, its VM not in the profile): exit 2 before any run', async () => {
    // The demo runs cpu-split, disk-energy, driver-charge and virtual-counters; disk.<vm>.* means
    // are disk-budgets' (docs/metrics.md), and the demo profile has vm1, vm2 and drv, no vm9.
    const cases: [string, string][] = [
      ['disk.vm1.mean_watts', "expectation 1 names metric 'disk.vm1.mean_watts', which variant 'base' cannot write: it is written by 'disk-budgets', which is not among the stages"],
      ['energy.vm9.joules', "expectation 1 names metric 'energy.vm9.joules', which variant 'base' cannot write: the machine profile has no consumer that makes the name (its consumers: core, drv, vm1, vm2, idle, (unattributed))"],
      ['cpu.vm9.mean_watts', "expectation 1 names metric 'cpu.vm9.mean_watts', which variant 'base' cannot write: it is written by 'host-strides' or 'guest-containers', which are not among the stages"],
    ];
    for (const [i, [metric, says]] of cases.entries()) {
      const db = path.join(dir, `unwritable-${i}.sqlite`);
      const r = await cli(['compare', pipelineWith(`unwritable-${i}`, { expect: [{ metric, min: 0 }] }), '--db', db]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toContain(says);
      expect(r.err).toContain('at /expect/0/metric');
      expect(fs.existsSync(db)).toBe(false);
    }
    // One the pipeline writes is run and checked as before.
    const ok = await cli(['compare', pipelineWith('writable', { expect: [{ metric: 'energy.vm1.joules', min: 0 }] }), '--db', path.join(dir, 'writable.sqlite'), '--variants', 'base']);
    expect(ok.code, ok.err).toBe(0);
  }, 60_000);

  it('--metrics matching nothing, one variant alone, and a baseline other than base say so', async () => {
    const db = path.join(dir, 'messages.sqlite');
    // Before: "No metric differs between the variants." although they differ; none matched.
    const none = await cli(['compare', demo, '--db', db, '--metrics', 'nosuch.']);
    expect(none.code, none.err).toBe(0);
    expect(none.out).toContain('No metric to show.');
    expect(none.err).toContain("wattrace: note: no metric starts with --metrics nosuch. (the runs' metrics start with accounting., energy., run., trace.)");
    // Before: one variant showed no metric at all (nothing differs from nothing).
    const one = await cli(['compare', demo, '--db', db, '--variants', 'coarse', '--metrics', 'energy.']);
    expect(one.out).toMatch(/energy\.vm1\.joules\s+531\.0 J/);
    // Before: coarse became the baseline without a word (the header said so, not why).
    const two = await cli(['compare', demo, '--db', db, '--variants', 'coarse,per-byte']);
    expect(two.err).toContain("wattrace: note: 'base' is not compared: deltas (and max_delta expectations) are against 'coarse', the first variant given (--baseline chooses)");
    const chosen = await cli(['compare', demo, '--db', db, '--variants', 'coarse,per-byte', '--baseline', 'per-byte']);
    expect(chosen.err).not.toContain('is not compared');
  }, 60_000);

  it("a child pipeline in another folder uses its parent's variants with the parent's relative paths", async () => {
    // paper-fig9's guest-level variant names `profile: ../fixtures/paper-fig9/machine-aware.json`,
    // relative to pipelines/. Before, it was read against the child's folder: "does not exist".
    const sub = path.join(dir, 'elsewhere', 'deeper');
    fs.mkdirSync(sub, { recursive: true });
    const child = path.join(sub, 'child.json');
    fs.writeFileSync(child, JSON.stringify({ name: 'child', extends: path.relative(sub, path.join(PROJECT_ROOT, 'pipelines', 'paper-fig9.json')) }));
    const { generate } = await import('../../src/commands/generate.js');
    const { bufferIO } = await import('../../src/commands/io.js');
    generate({ scenario: 'paper-fig9', out: path.join(PROJECT_ROOT, 'fixtures', 'paper-fig9'), seed: 1 }, bufferIO());
    const r = await cli(['replay', child, '--variant', 'guest-level', '--db', path.join(dir, 'child.sqlite'), '--quiet']);
    expect(r.code, r.err).toBe(0);
    // A variant's whole traces object is resolved against its file too.
    const own = path.join(sub, 'own.json');
    fs.writeFileSync(own, JSON.stringify({ extends: path.relative(sub, demo), name: 'own', variants: { moved: { traces: { cswitch: path.relative(sub, path.join(PROJECT_ROOT, 'fixtures', 'demo', 'cswitch.csv')), disk: path.relative(sub, path.join(PROJECT_ROOT, 'fixtures', 'demo', 'disk.csv')) } } } }));
    const o = await cli(['replay', own, '--variant', 'moved', '--db', path.join(dir, 'own.sqlite'), '--quiet']);
    expect(o.code, o.err).toBe(0);
  }, 60_000);

  it('many variants (more than SQLite attaches), one named like a column, an unknown expectation variant', async () => {
    const variants = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`v${i}`, { interval_ms: 100 + i }]));
    const p = pipelineWith('many', { variants: { ...variants, metric: { interval_ms: 250 } } });
    const db = path.join(dir, 'many.sqlite');
    const r = await cli(['compare', p, '--db', db, '--metrics', 'energy.total', '--format', 'json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { runs: { variant: string; run_id: number }[] };
    expect(j.runs).toHaveLength(3 + 11 + 1);
    expect(j.runs.map((x) => x.run_id)).toEqual(j.runs.map((_, i) => i + 1));
    expect((await cli(['compare', p, '--db', path.join(dir, 'many2.sqlite'), '--variants', 'base,metric'])).code).toBe(0);
    const q = pipelineWith('unknown-exp', { expect: [{ metric: 'energy.total_joules', variant: 'nope', max: 1 }] });
    const u = await cli(['compare', q, '--db', path.join(dir, 'u.sqlite')]);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/names variant 'nope', which the pipeline does not have/);
    // A store of a newer schema is refused before anything runs.
    const newer = path.join(dir, 'newer.sqlite');
    const { default: Database } = await import('better-sqlite3');
    const d = new Database(newer);
    d.pragma('user_version = 99');
    d.exec('CREATE TABLE x (a)');
    d.close();
    const n = await cli(['compare', demo, '--db', newer, '--variants', 'base']);
    expect(n.code).toBe(2);
    expect(n.err).toMatch(/newer wattrace/);
  });

  it('a variant with other stages gets what it gets replayed alone', async () => {
    const p = pipelineWith('stages', { variants: { cpuonly: { stages: ['cpu-split'] } } });
    const r = await cli(['compare', p, '--db', path.join(dir, 'stages.sqlite'), '--format', 'json', '--metrics', 'energy.,run.']);
    expect(r.code, r.err).toBe(0);
    const m = (JSON.parse(r.out) as { metrics: Record<string, Record<string, number>> }).metrics;
    const alone = path.join(dir, 'alone.sqlite');
    expect((await cli(['replay', p, '--variant', 'cpuonly', '--db', alone, '--quiet'])).code).toBe(0);
    const { default: Database } = await import('better-sqlite3');
    const d = new Database(alone, { readonly: true });
    const own = new Map((d.prepare("SELECT name, value FROM metrics WHERE name LIKE 'energy.%' OR name LIKE 'run.%'").all() as { name: string; value: number }[]).map((x) => [x.name, x.value]));
    d.close();
    for (const [name, v] of own) expect(m[name]!['cpuonly'], name).toBe(v);
  });

  it('checks min, max and max_delta against the baseline, per variant or for all', () => {
    const m = { a: { base: 1, v: 1.5 }, b: { base: 2 } };
    const r = checkExpectations(
      [
        { metric: 'a', max: 1.2 },
        { metric: 'a', variant: 'v', max_delta: 0.4 },
        { metric: 'b', min: 1 },
      ],
      ['base', 'v'],
      'base',
      m,
    );
    expect(r.map((e) => [e.metric, e.variant, e.ok])).toEqual([
      ['a', 'base', true],
      ['a', 'v', false],
      ['a', 'v', false],
      ['b', 'base', true],
      ['b', 'v', false],
    ]);
    expect(r[2]!.why).toBe('|1.500 − 1| > max_delta 0.400');
    expect(r[4]!.why).toBe('the run has no such metric');
  });
  it('shows by default only what differs or is expected, in units at a sensible precision; --all shows all', () => {
    expect(formatMetric('cpu.a.mean_watts', 10.24593)).toBe('10.246 W');
    expect(formatMetric('cpu.a.over_limit_frac', 0.175)).toBe('17.5 %');
    expect(formatMetric('disk.vm1.bytes', 307429376)).toBe('307.43 MB');
    expect(formatMetric('energy.total_joules', 1207.78)).toBe('1,207.8 J');
    expect(formatMetric('validation.cpu.mape', 2.4738)).toBe('2.47 %');
    expect(formatMetric('cpu.a.joules', -1.05, true)).toBe('−1.050 J');
    const c = {
      pipeline: 'p',
      baseline: 'base',
      runs: [{ variant: 'base', run_id: 1 }, { variant: 'v', run_id: 2 }],
      metrics: { 'energy.total_joules': { base: 5, v: 5 }, 'energy.a.joules': { base: 1, v: 2 }, 'cpu.a.work_s': { base: 3, v: 3 }, 'cpu.a.settle_s': { v: 1 } },
      expectations: [{ metric: 'cpu.a.work_s', variant: 'v', value: 3, baselineValue: 3, ok: true, why: '', min: 1 }],
    };
    expect([...shownMetrics(c, false)].sort()).toEqual(['cpu.a.settle_s', 'cpu.a.work_s', 'energy.a.joules']);
    expect(shownMetrics(c, true).size).toBe(4);
    const table = renderComparison(c, 'table');
    expect(table.indexOf('Expectations')).toBeLessThan(table.indexOf('metric '));
    expect(table).toMatch(/1 metric equal in every variant not shown \(--all shows them\)/);
  });
});
