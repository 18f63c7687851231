/**
 * The metrics catalogue (src/core/metrics.ts) against what runs really store: every metric the
 * shipped pipelines write, in every variant, is a catalogue entry; docs/metrics.md is current;
 * the same idea has the same name at host and guest level.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/commands/generate.js';
import { bufferIO } from '../../src/commands/io.js';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { METRICS, catalogueEntriesFor, metricName } from '../../src/core/metrics.js';
import { loadPipeline } from '../../src/core/pipeline.js';
import { METRICS_DOC, metricsMarkdown } from '../../src/docs/metrics.js';
import { README, figureBlocks, readmeBlock } from '../../src/docs/figures.js';
import { cli, tmpDir } from '../helpers.js';

const PIPELINES = ['demo', 'paper-fig7', 'paper-fig8', 'paper-fig9', 'disk-controller', 'mixed-load'];

describe('metrics catalogue', () => {
  // The shipped pipelines over their fixtures, in a scratch tree laid out like the repository
  // (pipelines/ beside fixtures/), so their relative paths and variants work unchanged.
  const root = tmpDir('wattrace-metrics-');
  const stored = new Map<string, Map<string, Set<string>>>();

  beforeAll(async () => {
    fs.mkdirSync(path.join(root, 'pipelines'));
    for (const p of PIPELINES) fs.copyFileSync(path.join(PROJECT_ROOT, 'pipelines', `${p}.json`), path.join(root, 'pipelines', `${p}.json`));
    fs.cpSync(path.join(PROJECT_ROOT, 'fixtures', 'demo'), path.join(root, 'fixtures', 'demo'), { recursive: true });
    for (const s of ['paper-fig7', 'paper-fig8', 'paper-fig9', 'mixed-load']) generate({ scenario: s, out: path.join(root, 'fixtures', s), seed: 1 }, bufferIO());
    for (const p of PIPELINES) {
      const db = path.join(root, `${p}.sqlite`);
      const r = await cli(['compare', path.join(root, 'pipelines', `${p}.json`), '--db', db, '--format', 'json']);
      // Every shipped pipeline's expectations hold (test/commands/mutations.test.ts breaks them).
      expect(r.code, `${p}: ${r.out}\n${r.err}`).toBe(0);
      const d = new Database(db, { readonly: true });
      const byVariant = new Map<string, Set<string>>();
      for (const row of d.prepare('SELECT r.variant AS variant, m.name AS name FROM metrics m JOIN runs r USING (run_id)').all() as { variant: string; name: string }[]) {
        if (!byVariant.has(row.variant)) byVariant.set(row.variant, new Set());
        byVariant.get(row.variant)!.add(row.name);
      }
      d.close();
      stored.set(p, byVariant);
    }
  }, 120_000);

  it('every metric of every shipped pipeline, in every variant, is a catalogue entry', () => {
    for (const p of PIPELINES) {
      const variants = ['base', ...loadPipeline(path.join(root, 'pipelines', `${p}.json`)).variantNames];
      expect([...stored.get(p)!.keys()].sort(), p).toEqual(variants.sort());
      for (const [variant, names] of stored.get(p)!) {
        expect(names.size, `${p}/${variant}`).toBeGreaterThan(5);
        const unknown = [...names].filter((n) => catalogueEntriesFor(n).length === 0);
        expect(unknown, `${p}/${variant}`).toEqual([]);
      }
    }
  });

  it('names are the same at host and guest level: paper-fig9 reports the guest VM and its containers in every variant', () => {
    const fig9 = stored.get('paper-fig9')!;
    for (const [variant, names] of fig9) {
      expect(names.has('cpu.guest.mean_watts'), variant).toBe(true);
      expect(names.has('cpu.guest.work_s'), variant).toBe(true);
      for (const c of ['bzip2-a', 'bzip2-b']) {
        expect(names.has(`container.guest.${c}.mean_watts`), `${variant} ${c}`).toBe(true);
        expect(names.has(`container.guest.${c}.work_s`), `${variant} ${c}`).toBe(true);
      }
      // The old guest-level-only name is gone.
      expect([...names].some((n) => n.startsWith('guest.')), variant).toBe(false);
    }
  });

  it("the README's disk-controller figures are the compare's", () => {
    const d = new Database(path.join(root, 'disk-controller.sqlite'), { readonly: true });
    const m = (variant: string, name: string) =>
      (d.prepare('SELECT m.value AS v FROM metrics m JOIN runs r USING (run_id) WHERE r.variant = ? AND m.name = ?').get(variant, name) as { v: number }).v;
    const sentence =
      `The paper's step settles vm2 in ${m('base', 'disk.vm2.settle_s').toFixed(1)} s, the gentle one in ${m('gentle', 'disk.vm2.settle_s').toFixed(1)} s, ` +
      `the aggressive one only after ${m('aggressive', 'disk.vm2.settle_s').toFixed(1)} s, with ${(100 * m('aggressive', 'disk.vm2.over_limit_frac')).toFixed(1)} % of its periods more than 20 % over the limit`;
    d.close();
    expect(fs.readFileSync(README, 'utf8').replace(/\s+/g, ' ')).toContain(sentence);
  });

  it('writes no sentinel: a figure that cannot be computed is absent', () => {
    for (const [p, byVariant] of stored) {
      const d = new Database(path.join(root, `${p}.sqlite`), { readonly: true });
      const bad = d.prepare('SELECT name, value FROM metrics WHERE value IS NULL OR value != value OR abs(value) > 1e300').all();
      d.close();
      expect(bad, p).toEqual([]);
      expect(byVariant.size).toBeGreaterThan(0);
    }
  });

  it('fills in a pattern, and refuses a missing placeholder', () => {
    expect(metricName(METRICS.containerMean, { vm: 'g', container: 'a.b' })).toBe('container.g.a.b.mean_watts');
    expect(() => metricName(METRICS.cpuMean, {} as { vm: string })).toThrow(/no value for <vm>/);
    expect(catalogueEntriesFor('cpu.vm1.mean_watts').map((m) => m.pattern)).toEqual(['cpu.<vm>.mean_watts']);
    expect(catalogueEntriesFor('guest.vm1.mean_watts')).toEqual([]);
    expect(catalogueEntriesFor('energy.total_joules').map((m) => m.pattern)).toEqual(['energy.total_joules']);
  });

  it('every entry says its unit, window and meaning, and no two share a pattern', () => {
    const all = Object.values(METRICS);
    expect(new Set(all.map((m) => m.pattern)).size).toBe(all.length);
    for (const m of all) {
      expect(m.window.length, m.pattern).toBeGreaterThan(3);
      expect(m.meaning.length, m.pattern).toBeGreaterThan(10);
    }
  });

  it("the README's figures of Figures 7, 8 and 9 are what these runs give (npm run readme-figures)", () => {
    const readme = fs.readFileSync(README, 'utf8');
    const blocks = figureBlocks({ fig7: path.join(root, 'paper-fig7.sqlite'), fig8: path.join(root, 'paper-fig8.sqlite'), fig9: path.join(root, 'paper-fig9.sqlite') });
    for (const id of ['fig7', 'fig8', 'fig9'] as const) expect(readmeBlock(readme, id), id).toBe(blocks[id]);
  });

  it('docs/metrics.md is generated from the catalogue and current (npm run docs)', () => {
    expect(fs.readFileSync(METRICS_DOC, 'utf8')).toBe(metricsMarkdown());
  });

  it("a pipeline's expectation naming a metric no stage writes is refused", async () => {
    const dir = tmpDir();
    const p = path.join(dir, 'p.json');
    fs.writeFileSync(p, JSON.stringify({ name: 'x', profile: 'm.json', traces: { cswitch: 'c.csv' }, stages: ['cpu-split'], expect: [{ metric: 'guest.g.mean_watts', max: 1 }] }));
    expect(() => loadPipeline(p)).toThrow(/expectation 1 names metric 'guest.g.mean_watts', which no stage writes/);
  });
});

describe('unwritableBy: whether a run can write a metric an expectation names', () => {
  it('names with dots are matched against the known names, not split at dots', async () => {
    const { unwritableBy } = await import('../../src/core/metrics.js');
    const stages = new Set(['cpu-split', 'guest-containers']);
    // container.<vm>.<container>.mean_watts: vm 'guest', container 'bzip2.a' (container names are free).
    expect(unwritableBy('container.guest.bzip2.a.mean_watts', stages, { vm: new Set(['guest', 'drv']) })).toBeNull();
    // A VM id with a dot, too.
    expect(unwritableBy('cpu.web.eu.mean_watts', stages, { vm: new Set(['web.eu']) })).toBeNull();
    expect(unwritableBy('cpu.web.us.mean_watts', stages, { vm: new Set(['web.eu']) })).toMatch(/no VM that makes the name \(its VMs: web\.eu\)/);
    expect(unwritableBy('disk.guest.mean_watts', stages, { vm: new Set(['guest']) })).toMatch(/written by 'disk-budgets'/);
    expect(unwritableBy('energy.total_joules', new Set(), {})).toBeNull();
  });
});
