/** Small in-memory machines and replays for tests: the batch and streaming adapters over text. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { Batch, EventSlice } from '../src/core/events.js';
import { settingsFromSections, type ResolvedPipeline, type StageName, type TraceKind } from '../src/core/pipeline.js';
import { resolveProfile } from '../src/core/profile.js';
import type { Machine, Profile } from '../src/core/machine.js';
import { Span } from '../src/core/span.js';
import { buildGraph, planStages } from '../src/replay/graph.js';
import { pump, replayPasses, runSlices } from '../src/replay/runner.js';
import { stageDefinition, type AnyStageDefinition } from '../src/stages/registry.js';
import { makeDecoder } from '../src/traces/decoders.js';
import type { DriverSettings } from '../src/core/settings.js';
import { periodNs } from '../src/core/units.js';
import { MemorySink } from '../src/store/memory.js';
import { chunkStream, decodeText, firstTimestampOf, minBase } from '../src/traces/csv.js';
import { CswitchDecoder } from '../src/traces/cswitch.js';
import type { TimeBase } from '../src/traces/decoder.js';
import { main } from '../src/cli.js';
import { bufferIO } from '../src/commands/io.js';

export interface MiniProfile {
  tscHz?: number;
  idleWatts?: number;
  bits?: number;
  split?: 'equal' | 'by-time';
  events?: Record<string, number>;
  vms?: string[];
}

export function profileOf(o: MiniProfile = {}): Profile {
  return {
    cpu: {
      tsc_hz: o.tscHz ?? 1e9,
      idle_watts: o.idleWatts ?? 10,
      counter_bits: o.bits ?? 48,
      idle_split: o.split ?? 'equal',
      events: o.events ?? { uops: 1e-9 },
    },
    disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5e7, rate_window: 50, idle_period_ms: 50 } },
    vms: (o.vms ?? ['a', 'b']).map((id) => ({ id, role: 'client' as const })),
    services: [],
  };
}

export function machineOf(o: MiniProfile = {}): Machine {
  return resolveProfile(profileOf(o), 'test-machine.json');
}

export interface StubOptions {
  intervalMs?: number;
  stages?: StageName[];
  traces?: TraceKind[];
  /** `accounting` and `policy` sections as a pipeline file has them (defaults filled in). */
  accounting?: unknown;
  policy?: unknown;
}

export function pipelineStub(o: StubOptions = {}): ResolvedPipeline {
  return {
    file: 'test-pipeline.json',
    name: 'test',
    variant: 'base',
    profilePath: 'test-machine.json',
    traces: Object.fromEntries((o.traces ?? ['cswitch']).map((k) => [k, `${k}.csv`])),
    intervalMs: o.intervalMs ?? 100,
    stages: o.stages ?? ['cpu-split'],
    settings: settingsFromSections({ accounting: o.accounting, policy: o.policy }),
    expect: [],
    variantNames: [],
    params: {},
  };
}

export function baseOf(text: string): TimeBase {
  return firstTimestampOf(text) ?? { hi: 0, lo: 0 };
}

function cpuSplitGraph(machine: Machine, intervalMs: number, sink: MemorySink, span: Span) {
  return buildGraph([stageDefinition('cpu-split')], { machine, pipeline: pipelineStub({ intervalMs }), intervalNs: periodNs(intervalMs), span, sink });
}

/** The batch adapter: decode the whole text, then run cpu-split over the slices. */
export function cpuSplitBatch(machine: Machine, text: string, intervalMs = 100, file = 'cswitch.csv'): MemorySink {
  const sink = new MemorySink();
  const batches = decodeText(text, new CswitchDecoder(file, baseOf(text), machine));
  const slices: EventSlice[] = batches.map((b: Batch) => ({ batch: b, from: 0, to: b.length }));
  const span = new Span();
  runSlices(cpuSplitGraph(machine, intervalMs, sink, span), slices, span);
  return sink;
}

/** The streaming adapter: csv-parse over the given chunks, merged and pumped like a file. */
export async function cpuSplitStream(machine: Machine, chunks: readonly (string | Buffer)[], intervalMs = 100): Promise<MemorySink> {
  const sink = new MemorySink();
  const text = Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))).toString();
  const span = new Span();
  const graph = cpuSplitGraph(machine, intervalMs, sink, span);
  await pump([chunkStream(chunks, new CswitchDecoder('cswitch.csv', baseOf(text), machine))], [graph], span);
  graph.finish(span.get());
  return sink;
}

export function tmpDir(prefix = 'wattrace-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function sha256File(file: string): string | null {
  return fs.existsSync(file) ? createHash('sha256').update(fs.readFileSync(file)).digest('hex') : null;
}

/** Relative difference |a − b| / max(|a|, |b|, tiny). */
export function relDiff(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-300);
}

export const SHARED = path.resolve(__dirname, '..', '..', 'shared');

export interface ReplayTextOptions {
  intervalMs?: number;
  driver?: Partial<DriverSettings>;
  /** The `policy` section as a pipeline file has it. */
  policy?: unknown;
  /** Cut every trace into chunks of this many bytes (default: whole). */
  chunkBytes?: number;
}

/**
 * Runs `stageNames` over in-memory traces through the streaming path (csv-parse, merge, pump), the
 * way `replay` runs files, into a MemorySink.
 */
export async function replayTexts(
  machine: Machine,
  texts: Partial<Record<TraceKind, string>>,
  stageNames: readonly StageName[],
  o: ReplayTextOptions = {},
): Promise<MemorySink> {
  // The same checks as a pipeline file gets: every stage's traces and inputs are there.
  const kinds = (Object.keys(texts) as TraceKind[]).filter((k) => texts[k] !== undefined);
  const plan = planStages(pipelineStub({ stages: [...stageNames], traces: kinds, accounting: { driver: o.driver ?? {} }, policy: o.policy ?? {} }), machine);
  return replayDefs(machine, texts, plan.defs, { ...o, stages: [...stageNames], prepass: plan.prepass });
}

/** replayTexts over stage definitions (a test's probe stages among them). */
export async function replayDefs(
  machine: Machine,
  texts: Partial<Record<TraceKind, string>>,
  defs: readonly AnyStageDefinition[],
  o: ReplayTextOptions & { stages?: StageName[]; prepass?: readonly AnyStageDefinition[] | null } = {},
): Promise<MemorySink> {
  const sink = new MemorySink();
  const intervalMs = o.intervalMs ?? 100;
  const kinds = (['cswitch', 'disk', 'guest', 'measured'] as const).filter((k) => texts[k] !== undefined);
  let base: TimeBase | null = null;
  for (const k of kinds) base = minBase(base, firstTimestampOf(texts[k]!));
  base ??= { hi: 0, lo: 0 };
  const pipeline = pipelineStub({ intervalMs, traces: [...kinds], accounting: { driver: o.driver ?? {} }, policy: o.policy ?? {}, ...(o.stages ? { stages: o.stages } : {}) });
  const cut = (text: string): Buffer[] => {
    const buf = Buffer.from(text);
    const n = o.chunkBytes ?? buf.length;
    const out: Buffer[] = [];
    for (let i = 0; i < buf.length; i += n) out.push(buf.subarray(i, i + n));
    return out;
  };
  const open = () => kinds.map((k) => chunkStream(cut(texts[k]!), makeDecoder(k, `${k}.csv`, base!, machine)) as AsyncIterableIterator<Batch>);
  const { span, graphs } = await replayPasses([{ p: pipeline, defs, prepass: o.prepass ?? null, sink }], machine, open);
  graphs[0]!.finish(span.get());
  return sink;
}

/** Joules per (consumer, via, device, kind) over host-level rows, key `consumer|via|device|kind`. */
export function cells(sink: MemorySink): Map<string, number> {
  return sink.sumBy((r) => `${r.consumer}|${r.via ?? '-'}|${r.device}|${r.kind}`);
}

/**
 * One CPU at 24 W idle shared equally by 3 VMs (each VM's idle share is 8 W: Figure 5's driver),
 * a driver `drv` serving the disk to `vm1` and `vm2`.
 */
export function driverProfile(): Profile {
  return {
    cpu: { tsc_hz: 1e9, idle_watts: 24, counter_bits: 48, idle_split: 'equal', events: { uops: 1e-9 } },
    disks: { disk: { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5e7, rate_window: 50, idle_period_ms: 50 } },
    vms: [
      { id: 'drv', role: 'driver' },
      { id: 'vm1', role: 'client' },
      { id: 'vm2', role: 'client' },
    ],
    services: [{ id: 'vdisk', driver: 'drv', device: 'disk', clients: ['vm1', 'vm2'] }],
  };
}

/**
 * 30 one-second intervals (timestamps jitter around 1 s) of a 2-CPU machine whose package draws
 * 16 W + 2e-9 J per cycle + 1e-9 J per instruction + 5e-8 J per cache miss; `perf stat -A`
 * prints the energy for the socket's first CPU only; `branch-misses` is not supported.
 */
export function perfStat(): string {
  const out = ['# started on Wed Nov 25 02:30:00 2026', ''];
  let t = 0;
  for (let i = 0; i < 30; i++) {
    const dt = 1 + (i % 3) * 0.001;
    t += dt;
    const ts = t.toFixed(9).padStart(15);
    let j = 16 * dt;
    for (const cpu of [0, 1]) {
      const cyc = Math.round(1e9 * dt * (1 + ((i + cpu) % 5)));
      const ins = Math.round(5e8 * dt * (1 + ((i * 3 + cpu) % 7)));
      const mis = Math.round(1e6 * dt * (1 + ((i * 7 + cpu) % 4)));
      j += 2e-9 * cyc + 1e-9 * ins + 5e-8 * mis;
      out.push(`${ts},CPU${cpu},${cyc},,cycles,${Math.round(dt * 1e9)},100.00,,`);
      out.push(`${ts},CPU${cpu},${ins},,instructions,${Math.round(dt * 1e9)},100.00,,`);
      out.push(`${ts},CPU${cpu},${mis},,cache-misses,${Math.round(dt * 1e9)},100.00,,`);
      out.push(`${ts},CPU${cpu},<not supported>,,branch-misses,0,100.00,,`);
    }
    out.push(`${ts},CPU0,${j.toFixed(6)},Joules,power/energy-pkg/,${Math.round(dt * 1e9)},100.00,,`);
  }
  return out.join('\n') + '\n';
}


/** Runs the CLI in-process: exit code, stdout and stderr. */
export async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = bufferIO();
  const code = await main(args, io);
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

/** A text file's lines (without the last newline). */
export const lines = (f: string): string[] => fs.readFileSync(f, 'utf8').trimEnd().split('\n');

/** Every file under a folder with its bytes, and its folders (to check a folder is as it was). */
export function folderSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
    const p = path.join(dir, f);
    out[f] = fs.statSync(p).isDirectory() ? '<dir>' : fs.readFileSync(p).toString('base64');
  }
  return out;
}

/**
 * A chain of services (§3.3.3): vm1 and vm2 use `vblock`, which `stor` provides on top of `vnic`,
 * which `net` provides on the NIC (3 W active, 1 W idle, 125 MB/s).
 */
export function chainProfile(): Profile {
  return {
    cpu: { tsc_hz: 1e9, idle_watts: 20, counter_bits: 48, idle_split: 'equal', events: { uops: 1e-9 } },
    disks: { nic: { active_watts: 3, idle_watts: 1, nominal_rate_bps: 1.25e8, rate_window: 50, idle_period_ms: 50 } },
    vms: [
      { id: 'net', role: 'driver' },
      { id: 'stor', role: 'driver' },
      { id: 'vm1', role: 'client' },
      { id: 'vm2', role: 'client' },
    ],
    services: [
      { id: 'vblock', driver: 'stor', device: 'vnic', clients: ['vm1', 'vm2'] },
      { id: 'vnic', driver: 'net', device: 'nic', clients: ['stor'] },
    ],
  };
}

/** Each client request: stor works 50 µs, then net works 50 µs and sends one packet for stor. */
export function chainTraces(seconds: number, rates: Record<string, number>) {
  const cs = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0'];
  const disk = ['ts_ns,vm,op,offset,bytes,latency_ns'];
  const T = seconds * 1e9;
  const reqs: { t: number; vm: string }[] = [];
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (const [vm, r] of Object.entries(rates)) for (let i = 0; i < r * seconds; i++) reqs.push({ t: 1e8 + Math.floor(rand() * (T - 2e8)), vm });
  reqs.sort((a, b) => a.t - b.t);
  let uops = 0;
  let busy = 0;
  for (const r of reqs) {
    const t = Math.max(r.t, busy + 1000);
    cs.push(`${t},0,idle,${t},${uops}`);
    cs.push(`${t + 50_000},0,stor,${t + 50_000},${(uops += 100_000)}`);
    cs.push(`${t + 100_000},0,net,${t + 100_000},${(uops += 40_000)}`);
    busy = t + 100_000;
    disk.push(`${t},${r.vm},R,0,4096,1000000`);
    disk.push(`${t},stor,W,0,4096,100000`);
  }
  cs.push(`${T},0,idle,${T},${uops}`);
  return { cswitch: cs.join('\n') + '\n', disk: disk.join('\n') + '\n', T };
}

/** A chain three drivers deep: vm1 and vm2 → A → B → C → the disk (5 W active, 2 W idle, 100 MB/s). */
export function deepChainProfile(): Profile {
  return {
    cpu: { tsc_hz: 1e9, idle_watts: 30, counter_bits: 48, idle_split: 'equal', events: { uops: 1e-9 } },
    disks: { disk: { active_watts: 5, idle_watts: 2, nominal_rate_bps: 1e8, rate_window: 50, idle_period_ms: 50 } },
    vms: [
      { id: 'A', role: 'driver' },
      { id: 'B', role: 'driver' },
      { id: 'C', role: 'driver' },
      { id: 'vm1', role: 'client' },
      { id: 'vm2', role: 'client' },
    ],
    services: [
      { id: 'sa', driver: 'A', device: 'sb', clients: ['vm1', 'vm2'] },
      { id: 'sb', driver: 'B', device: 'sc', clients: ['A'] },
      { id: 'sc', driver: 'C', device: 'disk', clients: ['B'] },
    ],
  };
}
