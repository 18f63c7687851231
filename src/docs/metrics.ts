/**
 * docs/metrics.md, generated from the metrics catalogue (src/core/metrics.ts): `npm run docs`
 * writes it, and a test fails when the file differs from what this prints.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { METRICS, type MetricDef } from '../core/metrics.js';

const cell = (s: string) => s.replace(/\|/g, '\\|');

/** The Markdown of docs/metrics.md. */
export function metricsMarkdown(): string {
  const byWriter = new Map<string, MetricDef[]>();
  for (const m of Object.values(METRICS) as MetricDef[]) byWriter.set(m.by, [...(byWriter.get(m.by) ?? []), m]);
  const out = [
    '# Metrics',
    '',
    '<!-- Generated from src/core/metrics.ts by `npm run docs`; a test keeps this file current. Edit the catalogue, not this file. -->',
    '',
    'Every run writes summary figures to the `metrics` table (`run_id, name, value`), which `wattrace compare` sets side by side',
    "and a pipeline's `expect` entries bound. This is the complete list: a stage can write no other name. `<vm>`, `<container>`,",
    '`<disk>`, `<device>`, `<event>`, `<consumer>` and `<kind>` stand for the ids of the profile and traces.',
    '',
    '- Names are the same at every level and in every variant of a pipeline: a host-level run (host-strides) and a guest-level',
    '  run (guest-containers, for an energy-aware guest) both report the guest VM as `cpu.<vm>.*` and its containers as',
    '  `container.<vm>.<container>.*`, over the same windows (see each entry): every `mean_watts` from the policy\'s `start_s` to',
    '  the end of the run, the `settled_*` figures over the periods after settling.',
    '- A figure that cannot be computed is absent, never a sentinel: `settle_s` of a limit that never settled, a mean over',
    '  no periods, a validation without overlapping samples.',
    '- Values are plain numbers in the unit given: J, W, s, bytes, B/s, fractions 0–1, percent for `mape`.',
    '- "Window" says what span a value sums or averages over.',
    '',
  ];
  for (const [by, ms] of byWriter) {
    out.push(`## ${by}`, '', '| metric | unit | window | meaning |', '| --- | --- | --- | --- |');
    for (const m of ms) out.push(`| \`${m.pattern}\` | ${m.unit} | ${cell(m.window)} | ${cell(m.meaning)} |`);
    out.push('');
  }
  return out.join('\n');
}

export const METRICS_DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'metrics.md');

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  fs.writeFileSync(METRICS_DOC, metricsMarkdown());
  console.log(`wrote ${METRICS_DOC}`);
}
