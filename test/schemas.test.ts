/** The JSON Schemas themselves, and the shipped files that must satisfy them. */
import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/core/json.js';
import { loadPipeline } from '../src/core/pipeline.js';
import { loadProfile } from '../src/core/profile.js';
import { generate } from '../src/commands/generate.js';
import { bufferIO } from '../src/commands/io.js';
import { tmpDir } from './helpers.js';

const SCENARIOS = ['paper-fig7', 'paper-fig8', 'paper-fig9', 'mixed-load'];

const schemas = ['profile.schema.json', 'pipeline.schema.json'];

describe('schemas', () => {
  it('are valid JSON Schema 2020-12 (checked here, not on every start)', () => {
    const ajv = new Ajv2020({ strict: true, validateSchema: true });
    for (const s of schemas) {
      const schema = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'schemas', s), 'utf8')) as object;
      expect(() => ajv.compile(schema), s).not.toThrow();
    }
  });

  it('accept every shipped pipeline and its profile', () => {
    // The scenario fixtures are generated (npm run fixtures), so a fresh clone has only demo's:
    // the pipelines are read from a scratch tree laid out like the repository, with each
    // generated scenario made there first.
    const dir = path.join(PROJECT_ROOT, 'pipelines');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    const root = tmpDir('wattrace-schemas-');
    fs.mkdirSync(path.join(root, 'pipelines'));
    for (const f of files) fs.copyFileSync(path.join(dir, f), path.join(root, 'pipelines', f));
    fs.cpSync(path.join(PROJECT_ROOT, 'fixtures', 'demo'), path.join(root, 'fixtures', 'demo'), { recursive: true });
    for (const s of SCENARIOS) generate({ scenario: s, out: path.join(root, 'fixtures', s), seed: 1 }, bufferIO());
    for (const f of files) {
      const p = loadPipeline(path.join(root, 'pipelines', f));
      expect(() => loadProfile(p.profilePath), f).not.toThrow();
    }
  });

  it('accept the example profile of docs/formats.md', () => {
    const example = {
      cpu: { tsc_hz: 3.0e9, idle_watts: 42, counter_bits: 48, idle_split: 'equal', events: { uops: 1.5e-9, l2_miss: 2.0e-8 } },
      disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5.0e7, rate_window: 50, idle_period_ms: 50 } },
      vms: [ { id: 'core', role: 'core' }, { id: 'drv', role: 'driver' }, { id: 'vm1', role: 'client' }, { id: 'vm2', role: 'client', energy_aware: true } ],
      services: [ { id: 'vdisk', driver: 'drv', device: 'disk', clients: ['vm1', 'vm2'] } ],
    };
    const f = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'wt-')), 'machine.json');
    fs.writeFileSync(f, JSON.stringify(example));
    const m = loadProfile(f);
    expect(m.consumers).toEqual(['core', 'drv', 'vm1', 'vm2', 'idle']);
    expect(m.tscWeight).toBeCloseTo(42 / 3e9, 20);
  });
});

describe('variants', () => {
  it('override existing settings by dotted path and refuse unknown paths', () => {
    const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');
    expect(loadPipeline(demo, { variant: 'coarse' }).intervalMs).toBe(1000);
    const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'wt-'));
    const f = path.join(dir, 'p.json');
    fs.writeFileSync(f, JSON.stringify({ name: 'x', profile: demo, traces: {}, stages: ['cpu-split'], variants: { typo: { interval_msec: 5 } } }));
    expect(() => loadPipeline(f, { variant: 'typo' })).toThrow(/override 'interval_msec' names a setting that does not exist/);
  });

  it('override a setting whose default is derived (policy.guest.start_s), which the base does not give', () => {
    const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');
    const f = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'wt-')), 'p.json');
    const variants = { later: { 'policy.guest.start_s': 2.5 }, typo: { 'policy.guest.start_sec': 2.5 } };
    fs.writeFileSync(f, JSON.stringify({ name: 'x', profile: demo, traces: {}, stages: ['cpu-split'], policy: { cpu: { start_s: 1 } }, variants }));
    // Without the variant, the containers' limits switch on with the host's (1 s); with it, at 2.5 s.
    expect(loadPipeline(f).settings.policy.guest.start_s).toBe(1);
    expect(loadPipeline(f, { variant: 'later' }).settings.policy.guest.start_s).toBe(2.5);
    expect(() => loadPipeline(f, { variant: 'typo' })).toThrow(/override 'policy\.guest\.start_sec' names a setting that does not exist/);
  });
});
