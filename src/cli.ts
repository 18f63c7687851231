#!/usr/bin/env node
/**
 * wattrace command line (README.md, Commands). Every command is declared here; handlers are
 * imported lazily. Errors a user can fix print one line naming file, line and column, and exit 2
 * (bad input) or 1 (a broken expectation); anything else is a bug: exit 70.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { EXIT_BAD_INPUT, EXIT_INTERNAL, WattraceError, isWattraceError, quoteValue } from './core/errors.js';
import { handleOutputErrors, processIO, type IO } from './commands/io.js';

const DEFAULT_DB = 'wattrace.sqlite';

/** `--run`: a positive integer, said so when it is not (yargs would make 'abc' NaN). */
function runId(v: unknown): number {
  const s = String(v);
  if (!/^[1-9][0-9]{0,15}$/.test(s)) throw new WattraceError('E_USAGE', `--run must be a run id (a positive integer); got '${quoteValue(s)}'`);
  return Number(s);
}

/** Options that may be given more than once; any other given twice is a usage error. */
const REPEATABLE = new Set(['trace', 'inputs', 'label', '_', '$0']);

/** The text given for option `--name` in `argv` (as `--name text` or `--name=text`). */
function givenText(argv: readonly string[], name: string): string {
  for (let i = 0; i < argv.length; i++) {
    const t = argv[i]!;
    if (t === `--${name}`) return argv[i + 1] ?? '';
    if (t.startsWith(`--${name}=`)) return t.slice(name.length + 3);
  }
  return 'NaN';
}

/** Runs the CLI on `argv` (without `node wattrace`); resolves to the exit status. */
export async function main(argv: readonly string[], io: IO = processIO): Promise<number> {
  const argv0 = argv;
  const cli = yargs([...argv])
    .scriptName('wattrace')
    .usage('$0 <command> [options]\n\nReplay hypervisor traces offline: who spent the energy, on which device, directly or through a driver VM.')
    .command(
      'replay <pipeline>',
      'Run a pipeline over its traces, store the run in SQLite and print the energy matrix',
      (y) =>
        y
          .positional('pipeline', { type: 'string', demandOption: true, describe: 'Pipeline file (pipelines/*.json); its paths are relative to it' })
          .option('db', { type: 'string', default: DEFAULT_DB, describe: 'SQLite database to add the run to (created if missing)' })
          .option('variant', { type: 'string', describe: "Apply one of the pipeline's named variants" })
          .option('trace', { type: 'string', array: true, describe: 'Use another trace: KIND=PATH, KIND one of cswitch, disk, guest, measured (repeatable)' })
          .option('profile', { type: 'string', describe: 'Use another machine profile' })
          .option('interval-ms', { type: 'number', describe: "Reporting interval of the energy table (overrides the pipeline's interval_ms)" })
          .option('label', { type: 'string', array: true, describe: 'Tag the run: KEY=VALUE, e.g. host=node17 (repeatable; stored in runs.labels, columns in export)' })
          .option('quiet', { type: 'boolean', default: false, describe: 'Print only the run summary, not the matrix' })
          .option('unit', { choices: ['W', 'J'] as const, default: 'W' as const, describe: 'Matrix cells in watts (mean over the run) or joules' })
          .example('$0 replay pipelines/demo.json --db out.sqlite', 'replay the demo pipeline into out.sqlite')
          .example('$0 replay pipelines/demo.json --trace cswitch=my.csv', "the demo's settings over another trace"),
      async (a) => {
        const { replay } = await import('./commands/replay.js');
        await replay(
          { pipeline: a.pipeline, db: a.db, variant: a.variant, trace: a.trace, profile: a.profile, intervalMs: a['interval-ms'], quiet: a.quiet, unit: a.unit, label: a.label },
          io,
        );
      },
    )
    .command(
      'generate <scenario>',
      'Write a built-in scenario: profile, traces, measured power (a 1 kHz DAQ) and a pipeline',
      (y) =>
        y
          .positional('scenario', { type: 'string', demandOption: true, describe: 'paper-fig7, paper-fig8, paper-fig9 or mixed-load' })
          .option('out', { type: 'string', demandOption: true, describe: 'Folder to write into (created if missing)' })
          .option('seed', { type: 'number', default: 1, describe: 'Seed: the same seed gives the same files' })
          .option('seconds', { type: 'number', describe: 'Length of the traces (paper-fig7: per block size; defaults 3, 120, 30)' })
          .option('idle-watts', { type: 'number', describe: "The CPU's idle power (default 42)" })
          .option('disk-active-watts', { type: 'number', describe: 'Disk power when active (default 5.6)' })
          .option('disk-idle-watts', { type: 'number', describe: 'Disk power when idle (default 3.6)' })
          .option('disk-rate-mbps', { type: 'number', describe: "The disk's transfer rate in MB/s (default 50)" })
          .example('$0 generate paper-fig7 --out fig7', 'the disk stress test of Figure 7, one variant per block size')
          .example('$0 generate paper-fig8 --out fig8 --seed 7', 'another seed'),
      async (a) => {
        const { generate } = await import('./commands/generate.js');
        generate(
          {
            scenario: a.scenario,
            out: a.out,
            seed: a.seed,
            seconds: a.seconds,
            idleWatts: a['idle-watts'],
            diskActiveWatts: a['disk-active-watts'],
            diskIdleWatts: a['disk-idle-watts'],
            diskRateMBps: a['disk-rate-mbps'],
          },
          io,
        );
      },
    )
    .command(
      'matrix',
      'Print the energy matrix of a stored run (rows: consumers and the driver they went through; columns: device × idle/active)',
      (y) =>
        y
          .option('db', { type: 'string', default: DEFAULT_DB, describe: 'SQLite database written by replay' })
          .option('run', { type: 'string', describe: 'Run id (default: the newest run)', coerce: runId })
          .option('format', { choices: ['table', 'json', 'csv'] as const, default: 'table' as const, describe: 'Output format' })
          .option('unit', { choices: ['W', 'J'] as const, default: 'W' as const, describe: 'Table cells in watts (mean over the run) or joules' })
          .example('$0 matrix --db out.sqlite', 'the newest run')
          .example('$0 matrix --db out.sqlite --unit J', 'the newest run, cells in joules')
          .example('$0 matrix --db out.sqlite --run 2 --format csv', 'run 2 as CSV'),
      async (a) => {
        const { matrix } = await import('./commands/matrix.js');
        matrix({ db: a.db, run: a.run, format: a.format, unit: a.unit }, io);
      },
    )
    .command(
      'compare <pipeline>',
      "Replay a pipeline's base and variants over the same traces, print their metrics side by side, and check its expectations (exit 1 when one breaks)",
      (y) =>
        y
          .positional('pipeline', { type: 'string', demandOption: true, describe: 'Pipeline file with variants and expect' })
          .option('db', { type: 'string', default: DEFAULT_DB, describe: 'SQLite database to add the runs to (created if missing)' })
          .option('variants', { type: 'string', describe: 'Comma-separated variants to run (default: base and all variants)' })
          .option('baseline', { type: 'string', describe: 'Variant the deltas and max_delta are against (default: base)' })
          .option('format', { choices: ['table', 'md', 'json'] as const, default: 'table' as const, describe: 'table, md (for a CI summary or a pull-request comment) or json' })
          .option('metrics', { type: 'string', describe: 'Comma-separated prefixes of the metrics to print (default: all)' })
          .option('all', { type: 'boolean', default: false, describe: 'table and md: print every metric, not only those that differ between variants or carry an expectation' })
          .option('jobs', { type: 'number', describe: 'Replays to run at once (default: the number of cores)' })
          .option('trace', { type: 'string', array: true, describe: 'Use another trace: KIND=PATH (repeatable)' })
          .option('label', { type: 'string', array: true, describe: "Tag every variant's run: KEY=VALUE (repeatable)" })
          .option('profile', { type: 'string', describe: 'Use another machine profile' })
          .option('interval-ms', { type: 'number', describe: 'Reporting interval of the energy table' })
          .example('$0 compare pipelines/disk-controller.json --format md', 'the paper controller against a gentler and a more aggressive one')
          .example('$0 compare pipelines/demo.json --metrics energy.,accounting.driver', 'only some metrics'),
      async (a) => {
        const { compare } = await import('./commands/compare.js');
        const list = (s: string | undefined) => (s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter((x) => x !== ''));
        await compare(
          {
            pipeline: a.pipeline,
            db: a.db,
            variants: list(a.variants),
            baseline: a.baseline,
            format: a.format,
            jobs: a.jobs,
            trace: a.trace,
            profile: a.profile,
            intervalMs: a['interval-ms'],
            metrics: list(a.metrics),
            all: a.all,
            label: a.label,
          },
          io,
        );
      },
    )
    .command(
      'import <format> <inputs..>',
      'Turn other trace formats into wattrace traces (perf-script, ftrace, planetlab; block traces: blkparse, disksim, vscsi-csv, vscsi, msr)',
      (y) =>
        y
          .positional('format', { type: 'string', demandOption: true, describe: 'perf-script, ftrace, planetlab, blkparse, disksim, vscsi-csv, vscsi or msr' })
          .positional('inputs', { type: 'string', array: true, demandOption: true, describe: 'Input files, read in order' })
          .option('out', { type: 'string', demandOption: true, describe: 'Folder to write the traces into' })
          .option('map', { type: 'string', describe: 'Mapping JSON: { "vms": { "vm1": ["^0$", "^1$"] }, "default": "vm0" } (regexes on commands, devices or file names; "pids" on pids; also "drivers", "core", and for blkparse "disks")' })
          .option('tsc-hz', { type: 'number', describe: 'ftrace with trace_clock=x86-tsc: the TSC rate (planetlab: the simulated one)' })
          .option('cpus', { type: 'number', describe: 'planetlab: CPUs of the machine the VMs share (default 16)' })
          .example('$0 import disksim trace.txt --out imported --map map.json', 'a DiskSim/MQSim trace, devices mapped to VMs')
          .example('$0 import perf-script perf.txt --out host --map map.json', 'a perf script of sched_switch with group counters')
          .example('$0 import blkparse vda.txt --out blk --map map.json', 'blkparse default output, requests charged to the submitting tasks\' VMs'),
      async (a) => {
        const { runImport } = await import('./commands/import.js');
        await runImport({ format: a.format, inputs: (a.inputs ?? []) as string[], out: a.out, map: a.map, tscHz: a['tsc-hz'], cpus: a.cpus }, io);
      },
    )
    .command(
      'calibrate',
      'Fit non-negative per-event energy weights and an idle term from counter rates and measured power, cross-validated (§3.2.1)',
      (y) =>
        y
          .option('samples', { type: 'string', demandOption: true, describe: 'CSV of samples: counter rates (events/s) and a measured power column' })
          .option('target', { type: 'string', demandOption: true, describe: 'The measured power column (W)' })
          .option('features', { type: 'string', describe: 'Comma-separated counter columns, at most 10 (default: every numeric, varying column but times and powers)' })
          .option('folds', { type: 'number', default: 5, describe: 'Cross-validation folds' })
          .option('folds-by', { choices: ['interleaved', 'blocks'] as const, default: 'interleaved' as const, describe: 'Folds of every k-th sample, or contiguous blocks (unseen workloads)' })
          .option('tsc-hz', { type: 'number', describe: 'TSC rate for the starter profile (default 3e9)' })
          .option('out', { type: 'string', describe: 'Write a starter machine profile with the fitted weights' })
          .option('into', { type: 'string', describe: 'Write the weights and idle power into an existing profile (its cpu.events must have the fitted events)' })
          .option('cpus', { type: 'number', describe: 'CPUs the samples cover: --into sets idle_watts = idle term / cpus (perf stat -A output counts them)' })
          .example('$0 calibrate --samples rapl.csv --target package_power --out machine.json', 'weights for cache_miss, cpu_cycles, cpu_instructions')
          .example('$0 calibrate --samples stat.csv --target power/energy-pkg/ --into host/machine.json', 'perf stat -I -x, output, into an imported profile'),
      async (a) => {
        const { runCalibrate } = await import('./commands/calibrate.js');
        runCalibrate(
          { samples: a.samples, target: a.target, out: a.out, folds: a.folds, foldsBy: a['folds-by'], tscHz: a['tsc-hz'], into: a.into, cpus: a.cpus, features: a.features?.split(',').map((x) => x.trim()).filter((x) => x !== '') },
          io,
        );
      },
    )
    .command(
      'report',
      'Charts of a stored run as SVG, and an HTML page that works offline (Figure 7-style bars across the variants of its pipeline, power over time)',
      (y) =>
        y
          .option('db', { type: 'string', default: DEFAULT_DB, describe: 'SQLite database written by replay' })
          .option('run', { type: 'string', describe: 'Run id (default: the newest run)', coerce: runId })
          .option('out', { type: 'string', demandOption: true, describe: 'Folder to write index.html and the SVGs into (an earlier report there is replaced; another non-empty folder is refused)' })
          .option('force', { type: 'boolean', default: false, describe: 'Replace --out even if it is not an earlier report' })
          .example('$0 report --db fig7.sqlite --out report', 'bars of every variant of the newest run’s pipeline'),
      async (a) => {
        const { report } = await import('./commands/report.js');
        await report({ db: a.db, run: a.run, out: a.out, force: a.force }, io);
      },
    )
    .command(
      'export',
      "Runs of one or more stores as a Hive-partitioned Parquet dataset (a folder per table, partitioned by pipeline and variant, labels as columns) for DuckDB, Spark or Trino; appends to an earlier export",
      (y) =>
        y
          .option('db', { type: 'string', array: true, demandOption: true, describe: 'SQLite databases written by replay or compare (a fleet: one per host)' })
          .option('out', { type: 'string', demandOption: true, describe: 'Dataset folder (created if missing; an earlier export there is appended to; a folder holding anything else is refused)' })
          .example('$0 export --db hosts/*.sqlite --out fleet', "a fleet's per-host stores as one dataset")
          .example("duckdb -c \"SELECT host, consumer, sum(joules) FROM read_parquet('fleet/energy/**/*.parquet', hive_partitioning=true) GROUP BY ALL\"", 'energy per VM per host'),
      async (a) => {
        const { runExport } = await import('./commands/export.js');
        await runExport({ dbs: a.db, out: a.out }, io);
      },
    )
    .middleware((argv) => {
      for (const [k, v] of Object.entries(argv)) {
        if (k === 'db' && argv._[0] === 'export') continue; // export reads several stores
        // yargs makes a number option's text that is no number NaN: said with the text given.
        if (typeof v === 'number' && Number.isNaN(v) && !/[A-Z]/.test(k)) throw new WattraceError('E_USAGE', `--${k} must be a number; got '${quoteValue(givenText(argv0, k))}'`);
        if (Array.isArray(v) && !REPEATABLE.has(k) && !k.includes('-') && k.length > 1) throw new WattraceError('E_USAGE', `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is given ${v.length} times; give it once`);
      }
    }, true)
    .demandCommand(1, 'Name a command: replay, compare, generate, matrix, report, import, calibrate or export (see --help).')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      // A coerce function's error comes wrapped by yargs: it is still a usage error.
      if (err && !isWattraceError(err) && err.name === 'YError') throw new WattraceError('E_USAGE', err.message);
      if (err) throw err;
      throw new WattraceError('E_USAGE', `${msg}\nRun 'wattrace --help' for usage.`);
    });
  try {
    await cli.parseAsync();
    return 0;
  } catch (e) {
    if (isWattraceError(e)) {
      io.err(`wattrace: ${e.format()}`);
      return e.exitCode;
    }
    io.err(`wattrace: internal error: ${(e as Error)?.message ?? String(e)}`);
    if (process.env['WATTRACE_DEBUG']) io.err(String((e as Error)?.stack));
    else io.err('(this is a bug in wattrace; run with WATTRACE_DEBUG=1 for the stack trace and report it)');
    return EXIT_INTERNAL;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return fs.realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // A reader that stops reading (`wattrace matrix … | head -2`) ends the output, as Unix tools do.
  handleOutputErrors();
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    () => (process.exitCode = EXIT_BAD_INPUT),
  );
}
