/** `wattrace replay <pipeline.json>`: run a pipeline, store the run, print the energy matrix. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { WattraceError } from '../core/errors.js';
import { parseLabels, type Labels } from '../core/labels.js';
import { loadPipeline, parseTraceArgs, type TraceKind } from '../core/pipeline.js';
import { loadProfile } from '../core/profile.js';
import { prepareReading, runPipeline, runPipelines, writerThreadPays } from '../replay/runner.js';
import { planStages } from '../replay/graph.js';
import { TOOL_VERSION } from '../core/version.js';
import { msToNs, nsToS } from '../core/units.js';
import type { MatrixUnit } from '../analysis/matrix.js';
import { fmt } from '../analysis/table.js';
import { openForReading, type RunHandle } from '../store/store.js';
import { beginRun } from '../store/threaded.js';
import { checkTraceFile } from '../traces/csv.js';
import { signalsTurn, undoOnInterrupt, type IO } from './io.js';
import { progressBar } from './progress.js';

export interface ReplayArgs {
  pipeline: string;
  db: string;
  variant?: string | undefined;
  trace?: readonly string[] | undefined;
  profile?: string | undefined;
  intervalMs?: number | undefined;
  quiet?: boolean | undefined;
  unit?: MatrixUnit | undefined;
  label?: readonly string[] | undefined;
}

export interface ReplayResult {
  runId: number;
}

/** The paper pipelines' fixtures are generated, not committed: say how to make them. */
function withFixtureHint<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const file = e instanceof WattraceError ? (e.where.file ?? '') : '';
    if (e instanceof WattraceError && /[\\/]fixtures[\\/]paper-fig\d/.test(file) && !fs.existsSync(file)) {
      throw new WattraceError(e.code, `${e.message} (the paper pipelines' fixtures are generated: run \`npm run fixtures\`)`, e.where);
    }
    throw e;
  }
}

export async function replay(args: ReplayArgs, io: IO): Promise<ReplayResult> {
  const labels = parseLabels(args.label ?? []);
  const p = loadPipeline(args.pipeline, {
    ...(args.variant !== undefined ? { variant: args.variant } : {}),
    ...(args.profile !== undefined ? { profile: args.profile } : {}),
    ...(args.intervalMs !== undefined ? { intervalMs: args.intervalMs } : {}),
    traces: parseTraceArgs(args.trace ?? []),
  });
  prepareReading(Object.values(p.traces));
  const machine = withFixtureHint(() => loadProfile(p.profilePath));
  const plan = planStages(p, machine);
  const { traces } = plan;
  // Every trace named must exist, read or not (a wrong path is a mistake worth stopping for).
  for (const [k, f] of Object.entries(p.traces)) withFixtureHint(() => checkTraceFile(f, k));
  for (const k of Object.keys(p.traces) as TraceKind[]) {
    if (!traces.includes(k)) io.err(`wattrace: note: no stage of pipeline '${p.name}' reads the ${k} trace; it is not used`);
  }
  // The matrix code (arquero: 0.1 s to load) loads while the traces are read, and only if printed.
  const matrix = args.quiet ? null : import('../analysis/matrix.js');
  matrix?.catch(() => undefined);

  const writer = beginRun(args.db, { pipeline: p.name, variant: p.variant, params: p.params, toolVersion: TOOL_VERSION, labels }, writerThreadPays(p, machine));
  let bar: ReturnType<typeof progressBar> = null;
  try {
    bar = progressBar(io, `replay ${p.name}`);
    const b = bar;
    // The commit is inside: a signal during it waits for it, and then says the run was stored.
    let stored = false;
    await undoOnInterrupt(
      io,
      () => (stored ? `run ${writer.runId} was stored in ${args.db} before it` : `the run was rolled back; ${args.db} is as it was`),
      () => {
        b?.stop();
        if (!stored) writer.abort();
      },
      async () => {
        const summary = await runPipeline(p, machine, plan, writer, b ? { onProgress: (f) => b.update(f) } : {});
        bar?.stop();
        for (const n of summary.notes) io.err(`wattrace: note: ${n}`);
        const profileText = fs.readFileSync(p.profilePath);
        const inputs = {
          profile: { path: p.profilePath, bytes: profileText.length, sha256: createHash('sha256').update(profileText).digest('hex') },
          ...summary.inputs,
        };
        await signalsTurn(); // a signal sent during the replay's last stretch rolls it back
        writer.commit({ inputs, baseTsNs: summary.baseTsNs, t0Ns: summary.t0, t1Ns: summary.t1, intervalNs: Math.round(msToNs(p.intervalMs)) });
        stored = true;
        await signalsTurn();
        const rows = Object.entries(summary.inputs)
          .map(([k, v]) => `${v!.rows.toLocaleString('en-US')} ${k} rows`)
          .join(', ');
        io.out(`run ${writer.runId}: pipeline '${p.name}' (variant '${p.variant}'), ${fmt(nsToS(summary.t1 - summary.t0), 3)} s of trace, ${rows} → ${args.db}`);
      },
    );
  } catch (e) {
    bar?.stop();
    writer.abort();
    throw e;
  }
  if (matrix !== null) {
    const { matrixCells, renderMatrix, resolveRun, validationOf } = await matrix;
    const db = openForReading(args.db);
    try {
      const info = resolveRun(db, writer.runId, args.db);
      io.out(renderMatrix(info, matrixCells(db, info.run_id), args.unit, validationOf(db, info.run_id)));
    } finally {
      db.close();
    }
  }
  return { runId: writer.runId };
}

export interface ReplayManyArgs {
  pipeline: string;
  variants: readonly string[];
  /** One database per variant. */
  dbs: readonly string[];
  trace?: readonly string[] | undefined;
  profile?: string | undefined;
  intervalMs?: number | undefined;
  labels?: Labels | undefined;
}

/**
 * Replays several variants of one pipeline that share their traces and machine profile over one
 * reading of the traces (compare's "read once"), each into its own database. All or nothing: a bad
 * input aborts every run.
 */
export async function replayMany(args: ReplayManyArgs): Promise<number[]> {
  const ps = args.variants.map((v) =>
    loadPipeline(args.pipeline, {
      variant: v,
      ...(args.profile !== undefined ? { profile: args.profile } : {}),
      ...(args.intervalMs !== undefined ? { intervalMs: args.intervalMs } : {}),
      traces: parseTraceArgs(args.trace ?? []),
    }),
  );
  const p0 = ps[0]!;
  for (const p of ps) {
    if (p.profilePath !== p0.profilePath || JSON.stringify(p.traces) !== JSON.stringify(p0.traces)) {
      throw new Error(`variants '${p0.variant}' and '${p.variant}' do not share their traces and profile`);
    }
  }
  const machine = withFixtureHint(() => loadProfile(p0.profilePath));
  const plans = ps.map((p) => planStages(p, machine));
  const wanted = new Set(plans.flatMap((pl) => pl.traces));
  const kinds = (['cswitch', 'disk', 'guest', 'measured'] as const).filter((k) => wanted.has(k));
  for (const [k, f] of Object.entries(p0.traces)) withFixtureHint(() => checkTraceFile(f, k));
  const writers: RunHandle[] = [];
  try {
    ps.forEach((p, i) => writers.push(beginRun(args.dbs[i]!, { pipeline: p.name, variant: p.variant, params: p.params, toolVersion: TOOL_VERSION, labels: args.labels ?? {} }, writerThreadPays(p, machine))));
    const summaries = await runPipelines(
      ps.map((p, i) => ({ p, plan: plans[i]!, sink: writers[i]! })),
      machine,
      kinds,
    );
    const profileText = fs.readFileSync(p0.profilePath);
    const profile = { path: p0.profilePath, bytes: profileText.length, sha256: createHash('sha256').update(profileText).digest('hex') };
    for (const n of new Set(summaries.flatMap((s) => s.notes))) process.stderr.write(`wattrace: note: ${n}\n`);
    summaries.forEach((s, i) => {
      writers[i]!.commit({ inputs: { profile, ...s.inputs }, baseTsNs: s.baseTsNs, t0Ns: s.t0, t1Ns: s.t1, intervalNs: Math.round(msToNs(ps[i]!.intervalMs)) });
    });
    return writers.map((w) => w.runId);
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
}
