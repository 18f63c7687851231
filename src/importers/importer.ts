/**
 * One shape for every importer: `wattrace import <format>` looks the format up in IMPORTERS
 * (src/importers/index.ts) and runs it; each returns the same ImportSummary, printed one way.
 * Inside, an importer is a tokenizer of its format (a line or record → a typed event) feeding the
 * trackers of trackers.ts, which write through the one writer (CsvOut).
 */
import type { Mapping } from './mapping.js';

export interface ImportOptions {
  mapping: Mapping;
  /** The TSC rate of a trace whose clock counts ticks (ftrace with trace_clock=x86-tsc), Hz. */
  tscHz?: number | undefined;
  /** The CPUs a utilization trace is laid out on (planetlab). */
  cpus?: number | undefined;
}

/** A file an import wrote, with its rows and what they are (`switches`, `requests`, `disk requests`). */
export interface ImportOutput {
  file: string;
  rows: number;
  what: string;
}

export interface ImportSummary {
  /** The format as read (`ftrace (trace.dat)`, `perf sched timehist`, …). */
  format: string;
  /** A note before the outputs (planetlab: how many VMs, CPUs and steps). */
  detail?: string;
  outputs: ImportOutput[];
  /** The rows the import is for; 0 means it found nothing, which is an error (import.ts). */
  found: number;
  /** The first and last time written, ns. */
  span: { first: bigint; last: bigint } | null;
  byVm: Record<string, number>;
  /** Requests by disk, where a disk log has a disk column. */
  byDisk?: Record<string, number>;
  skipped: Record<string, number>;
  /** How much of each CPU's time the switches cover (SwitchTracker.coverageLine). */
  coverage: string | null;
  /** The starter profile written beside the logs. */
  profile: string | null;
  /** Further lines for the user (planetlab's unmet demand). */
  notes: string[];
}

export interface Importer {
  readonly format: string;
  /** What its input must hold, for the error when it holds none of it. */
  readonly expects: string;
  /** What it counts as found (`sched_switch events`, `requests`), for that error. */
  readonly finds: string;
  run(inputs: readonly string[], outDir: string, options: ImportOptions): Promise<ImportSummary>;
}

const n = (x: number) => x.toLocaleString('en-US');

/** The summary as `wattrace import` prints it. */
export function summaryLines(s: ImportSummary): string[] {
  const outs = s.outputs.map((o) => `${n(o.rows)} ${o.what} → ${o.file}`).join(', ');
  const span = s.span ? ` (first ${s.span.first}, last ${s.span.last} ns)` : '';
  const lines = [`${s.format}: ${s.detail ? `${s.detail} → ` : ''}${outs}${span}`];
  if (s.profile) lines.push(`  starter profile: ${s.profile}`);
  const byVm = Object.entries(s.byVm).map(([v, c]) => `${v} ${n(c)}`).join(', ');
  const byDisk = s.byDisk ? `; by disk: ${Object.entries(s.byDisk).map(([d, c]) => `${d} ${n(c)}`).join(', ')}` : '';
  if (byVm || byDisk) lines.push(`  by VM: ${byVm}${byDisk}`);
  const sk = Object.entries(s.skipped);
  lines.push(sk.length ? `  skipped: ${sk.map(([r, c]) => `${c} × ${r}`).join(', ')}` : '  skipped: none');
  if (s.coverage) lines.push(`  coverage: ${s.coverage}`);
  for (const note of s.notes) lines.push(`  ${note}`);
  return lines;
}
