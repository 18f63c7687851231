/** Pipeline files (docs/formats.md): loading, `extends`, variants and command-line overrides. */
import path from 'node:path';
import { WattraceError } from './errors.js';
import { SCHEMA_DIR, readJsonFile, validateAgainst } from './json.js';
import { catalogueEntriesFor } from './metrics.js';
import { settingsOf, type Settings, type SettingsSections } from './settings.js';

export const STAGE_ORDER = [
  'cpu-split',
  'disk-energy',
  'driver-charge',
  'virtual-counters',
  'host-strides',
  'disk-budgets',
  'guest-containers',
] as const;
export type StageName = (typeof STAGE_ORDER)[number];

/** The longest reporting interval (a day), as the pipeline schema bounds `interval_ms`. */
export const MAX_INTERVAL_MS = 86_400_000;

export const TRACE_KINDS = ['cswitch', 'disk', 'guest', 'measured'] as const;
export type TraceKind = (typeof TRACE_KINDS)[number];

export interface Expectation {
  metric: string;
  variant?: string;
  min?: number;
  max?: number;
  max_delta?: number;
}

/** The pipeline file as written (after schema defaults). */
export interface PipelineFile extends SettingsSections {
  name: string;
  description?: string;
  extends?: string;
  profile: string;
  traces: Partial<Record<TraceKind, string>>;
  interval_ms: number;
  stages: StageName[];
  variants?: Record<string, Record<string, unknown>>;
  expect?: Expectation[];
}

/** A pipeline ready to run: absolute paths, stages in canonical order, a variant applied. */
export interface ResolvedPipeline {
  readonly file: string;
  readonly name: string;
  readonly variant: string;
  readonly profilePath: string;
  readonly traces: Partial<Record<TraceKind, string>>;
  readonly intervalMs: number;
  readonly stages: readonly StageName[];
  /** The stages' settings, typed, defaults applied. */
  readonly settings: Settings;
  readonly expect: readonly Expectation[];
  /** The names of the pipeline's variants (besides `base`). */
  readonly variantNames: readonly string[];
  /** The settings as resolved, stored in `runs.params`. */
  readonly params: Record<string, unknown>;
}

export interface PipelineOverrides {
  variant?: string;
  profile?: string;
  traces?: Partial<Record<TraceKind, string>>;
  intervalMs?: number;
}

const PATH_KEYS = new Set(['profile', 'extends']);

/** Reads a pipeline file, following `extends`, with paths made absolute against each file. */
function readPipelineFile(file: string, seen: string[] = []): PipelineFile {
  const abs = path.resolve(file);
  if (seen.includes(abs)) {
    throw new WattraceError('E_PIPELINE', `pipeline 'extends' forms a cycle: ${[...seen, abs].join(' → ')}`, { file, path: '/extends' });
  }
  const raw = readJsonFile(abs, 'pipeline') as Record<string, unknown>;
  const dir = path.dirname(abs);
  let merged: Record<string, unknown> = raw;
  if (typeof raw === 'object' && raw !== null && typeof raw['extends'] === 'string') {
    const parent = readPipelineFile(path.resolve(dir, raw['extends']), [...seen, abs]) as unknown as Record<string, unknown>;
    merged = deepMerge(parent, absolutize(raw, dir));
    delete merged['extends'];
    return validateAgainst<PipelineFile>(merged, 'pipeline.schema.json', file, 'pipeline');
  }
  const p = validateAgainst<PipelineFile>(raw, 'pipeline.schema.json', file, 'pipeline');
  return absolutize(p as unknown as Record<string, unknown>, dir) as unknown as PipelineFile;
}

function absolutize(p: Record<string, unknown>, dir: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...p };
  for (const k of PATH_KEYS) if (typeof out[k] === 'string' && k !== 'extends') out[k] = path.resolve(dir, out[k] as string);
  if (typeof out['traces'] === 'object' && out['traces'] !== null) {
    out['traces'] = Object.fromEntries(
      Object.entries(out['traces'] as Record<string, string>).map(([k, v]) => [k, path.resolve(dir, v)]),
    );
  }
  // A variant's paths are relative to the file that holds the variant, also when another file
  // extends it (and a whole `traces` object in a variant is resolved as well).
  if (typeof out['variants'] === 'object' && out['variants'] !== null) {
    out['variants'] = Object.fromEntries(
      Object.entries(out['variants'] as Record<string, Record<string, unknown>>).map(([name, o]) => [
        name,
        typeof o !== 'object' || o === null
          ? o
          : Object.fromEntries(
              Object.entries(o).map(([k, v]) => {
                if (typeof v === 'string' && (k === 'profile' || /^traces\.[a-z]+$/.test(k))) return [k, path.resolve(dir, v)];
                if (k === 'traces' && typeof v === 'object' && v !== null) return [k, Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([t, f]) => [t, typeof f === 'string' ? path.resolve(dir, f) : f]))];
                return [k, v];
              }),
            ),
      ]),
    );
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

type SchemaNode = { properties?: Record<string, SchemaNode>; $ref?: string };
let pipelineSchema: SchemaNode | null = null;

/** True when the pipeline schema declares the setting at `parts` (it may have no default). */
function schemaDeclares(parts: readonly string[]): boolean {
  const root = (pipelineSchema ??= readJsonFile(path.join(SCHEMA_DIR, 'pipeline.schema.json'), 'pipeline schema') as SchemaNode);
  const deref = (n: SchemaNode): SchemaNode => {
    let at = n;
    while (at.$ref?.startsWith('#/')) at = at.$ref.slice(2).split('/').reduce<SchemaNode>((o, k) => (o as Record<string, SchemaNode>)[k]!, root);
    return at;
  };
  let node: SchemaNode | undefined = root;
  for (const key of parts) {
    node = node === undefined ? undefined : deref(node).properties?.[key];
    if (node === undefined) return false;
  }
  return true;
}

/**
 * Sets `value` at a dotted path. Every segment but the last must exist; the last must exist too
 * (or be a setting the schema declares without a default), except inside `limits_watts` and
 * `baseline_watts` maps, which name VMs and containers freely.
 */
export function applyOverride(target: Record<string, unknown>, dotted: string, value: unknown, file: string, where: string): void {
  const parts = dotted.split('.');
  let node: unknown = target;
  for (let i = 0; i < parts.length - 1; i++) {
    const key = parts[i]!;
    if (!isPlainObject(node) || !(key in node)) {
      throw new WattraceError('E_PIPELINE', `override '${dotted}': '${parts.slice(0, i + 1).join('.')}' does not exist in the pipeline`, { file, path: where });
    }
    node = node[key];
  }
  const last = parts[parts.length - 1]!;
  const parentIsMap = parts.includes('limits_watts') || parts.includes('baseline_watts');
  // A setting whose default is derived (policy.guest.start_s) has no value until it is given.
  if (!isPlainObject(node) || (!(last in node) && !parentIsMap && !schemaDeclares(parts))) {
    throw new WattraceError('E_PIPELINE', `override '${dotted}' names a setting that does not exist in the pipeline`, { file, path: where });
  }
  node[last] = value;
}

export function loadPipeline(file: string, over: PipelineOverrides = {}): ResolvedPipeline {
  const abs = path.resolve(file);
  const p = structuredClone(readPipelineFile(abs));
  const variant = over.variant ?? 'base';
  if (over.variant !== undefined && over.variant !== 'base') {
    const overrides = p.variants?.[over.variant];
    if (!overrides) {
      const known = Object.keys(p.variants ?? {});
      throw new WattraceError(
        'E_PIPELINE',
        `no variant '${over.variant}' in the pipeline (${known.length ? `known: ${known.join(', ')}` : 'it has no variants'})`,
        { file, path: '/variants' },
      );
    }
    for (const [k, v] of Object.entries(overrides)) {
      // Paths in a variant are relative to the pipeline file, like the others.
      const isPath = typeof v === 'string' && (k === 'profile' || /^traces\.[a-z]+$/.test(k));
      applyOverride(p as unknown as Record<string, unknown>, k, isPath ? path.resolve(path.dirname(abs), v) : v, file, `/variants/${over.variant}/${k}`);
    }
    validateAgainst(p, 'pipeline.schema.json', file, `pipeline with variant '${over.variant}'`);
  }
  if (over.intervalMs !== undefined && !(Number.isFinite(over.intervalMs) && over.intervalMs > 0 && over.intervalMs <= MAX_INTERVAL_MS)) {
    throw new WattraceError('E_USAGE', `--interval-ms must be a number of milliseconds above 0 and at most ${MAX_INTERVAL_MS} (a day); got ${over.intervalMs}`);
  }
  // An expectation can only bound a metric that exists (docs/metrics.md).
  (p.expect ?? []).forEach((e, i) => {
    if (catalogueEntriesFor(e.metric).length === 0) {
      throw new WattraceError('E_PIPELINE', `expectation ${i + 1} names metric '${e.metric}', which no stage writes (the metrics are listed in docs/metrics.md)`, {
        file,
        path: `/expect/${i}/metric`,
      });
    }
  });
  const traces = { ...p.traces };
  for (const [k, v] of Object.entries(over.traces ?? {})) traces[k as TraceKind] = path.resolve(v);
  const profilePath = over.profile !== undefined ? path.resolve(over.profile) : p.profile;
  const intervalMs = over.intervalMs ?? p.interval_ms;
  const stages = STAGE_ORDER.filter((s) => p.stages.includes(s));
  const params: Record<string, unknown> = {
    name: p.name,
    variant,
    profile: profilePath,
    traces,
    interval_ms: intervalMs,
    stages,
    accounting: p.accounting,
    policy: p.policy,
  };
  return {
    file: abs,
    name: p.name,
    variant,
    profilePath,
    traces,
    intervalMs,
    stages,
    settings: settingsOf(p),
    expect: p.expect ?? [],
    variantNames: Object.keys(p.variants ?? {}),
    params,
  };
}

/** Parses `--trace KIND=PATH` arguments. */
export function parseTraceArgs(args: readonly string[]): Partial<Record<TraceKind, string>> {
  const out: Partial<Record<TraceKind, string>> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    const kind = a.slice(0, eq) as TraceKind;
    if (eq <= 0 || !TRACE_KINDS.includes(kind)) {
      throw new WattraceError('E_USAGE', `--trace expects KIND=PATH with KIND one of ${TRACE_KINDS.join(', ')}; got '${a}'`);
    }
    if (out[kind] !== undefined) throw new WattraceError('E_USAGE', `--trace ${kind}= is given twice ('${out[kind]}' and '${a.slice(eq + 1)}'); give each kind once`);
    out[kind] = a.slice(eq + 1);
  }
  return out;
}

/**
 * The settings given `accounting` and `policy` sections as a pipeline file would have them (the
 * schema checks them and fills in every default): for tests and tools that run stages directly.
 */
export function settingsFromSections(sections: { accounting?: unknown; policy?: unknown } = {}): Settings {
  const raw = { name: 'settings', profile: 'machine.json', traces: {}, stages: ['cpu-split'], ...structuredClone(sections) };
  return settingsOf(validateAgainst<PipelineFile>(raw, 'pipeline.schema.json', '(settings)', 'pipeline'));
}
