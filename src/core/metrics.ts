/**
 * The metrics catalogue: every name a run can write to the `metrics` table, with its unit, the
 * span it covers or averages over, and its meaning. Stages write metrics only through a
 * MetricWriter and an entry of METRICS, so a name outside the catalogue cannot be written;
 * docs/metrics.md is generated from this list (`npm run docs`), and a test keeps it current.
 *
 * Names are the same at every level and in every variant of a pipeline, so `compare` can set a
 * host-level run beside a guest-level one: `cpu.<vm>.*` for every VM host-strides simulates and
 * every energy-aware guest guest-containers accounts, `container.<vm>.<container>.*` for every
 * container of a guest log either stage reads. A figure that
 * cannot be computed (nothing to average; a limit that never settled) is absent, never a
 * sentinel value.
 */

export type MetricUnit = 'J' | 'W' | 's' | 'bytes' | 'B/s' | 'J/byte' | 'fraction' | 'percent' | 'count' | 'events';

/** The parameters of a pattern: `cpu.<vm>.work_s` → { vm: string }. */
export type MetricParams<P extends string> = P extends `${string}<${infer K}>${infer Rest}` ? { [k in K]: string } & MetricParams<Rest> : unknown;

export interface MetricDef<P extends string = string> {
  /** The name, with `<parameter>` parts. */
  readonly pattern: P;
  readonly unit: MetricUnit;
  /** What the value covers: the span summed or averaged over. */
  readonly window: string;
  readonly meaning: string;
  /** Who writes it: a stage, or `replay` for the run-wide figures. */
  readonly by: string;
}

function def<P extends string>(by: string, pattern: P, unit: MetricUnit, window: string, meaning: string): MetricDef<P> {
  return { pattern, unit, window, meaning, by };
}

const RUN = 'the run';
const SETTLED = 'the manager periods after settling (the last quarter of the periods after start_s if it never settled)';
/** The one window of every `mean_watts`: the limits' start to the end of the run. */
const AFTER_START = "from the policy's start_s (its first manager period from then) to the end of the run — the window of every mean_watts";

/** Every metric of wattrace, grouped by the stage that writes it. */
export const METRICS = {
  // replay: run-wide figures
  energyTotal: def('replay', 'energy.total_joules', 'J', RUN, 'all host-level energy in the `energy` table'),
  energyOf: def('replay', 'energy.<consumer>.joules', 'J', RUN, "a consumer's host-level energy, all devices, direct and via drivers"),
  unattributed: def('replay', 'accounting.unattributed_joules', 'J', RUN, 'energy kept as consumer `(unattributed)`: consumed, but by nobody the traces name'),
  runDuration: def('replay', 'run.duration_s', 's', RUN, 'length of the accounted span (earliest period start to latest event)'),
  traceRows: def('replay', 'trace.<kind>.rows', 'count', RUN, 'data rows read from the trace of that kind'),

  // cpu-split
  cpuIdle: def('cpu-split', 'accounting.cpu.idle_joules', 'J', RUN, 'CPU idle energy (TSC-weighted), including unlogged idle time'),
  cpuActive: def('cpu-split', 'accounting.cpu.active_joules', 'J', RUN, 'CPU access energy Σ w_e·Δe over all periods'),
  cpuUnlogged: def('cpu-split', 'accounting.cpu.unlogged_idle_joules', 'J', RUN, 'idle power of CPUs outside their logged periods, kept as `(unattributed)`'),
  cpuPeriods: def('cpu-split', 'accounting.cpu.periods', 'count', RUN, 'periods between context switches accounted'),
  cpuCount: def('cpu-split', 'accounting.cpu.cpus', 'count', RUN, 'physical CPUs seen in the cswitch log'),

  // disk-energy
  diskIdle: def('disk-energy', 'accounting.disk.<disk>.idle_joules', 'J', RUN, "the disk's idle energy, idle_watts × duration"),
  diskActive: def('disk-energy', 'accounting.disk.<disk>.active_joules', 'J', RUN, '(active_watts − idle_watts) × active time of every request'),
  diskActiveS: def('disk-energy', 'accounting.disk.<disk>.active_s', 's', RUN, 'time the model keeps the disk active, Σ bytes / rate'),
  diskRequests: def('disk-energy', 'accounting.disk.<disk>.requests', 'count', RUN, 'requests that reached the disk'),
  diskBytes: def('disk-energy', 'accounting.disk.<disk>.bytes', 'bytes', RUN, 'bytes of those requests'),
  diskRate: def('disk-energy', 'accounting.disk.<disk>.rate_bps', 'B/s', 'the last rate window', 'transfer rate in effect at the end of the run'),
  diskRateKept: def('disk-energy', 'accounting.disk.<disk>.rate_windows_kept', 'count', RUN, 'rate windows that told too little and kept the previous rate'),
  diskActiveFrac: def('disk-energy', 'accounting.disk.<disk>.active_frac', 'fraction', RUN, 'active time over run time (above 1: the model keeps the disk busier than the run is long)'),
  diskUpper: def('disk-energy', 'accounting.disk.upper_requests', 'count', RUN, "rows that only record an upper service's request (no disk energy of their own)"),

  // driver-charge
  driverBaseline: def('driver-charge', 'accounting.driver.<vm>.baseline_watts', 'W', RUN, "the driver's baseline CPU access power, estimated over the whole trace (or given), charged as CPU idle in equal parts over the whole run"),
  driverBaselineSource: def('driver-charge', 'accounting.driver.<vm>.baseline_source', 'count', RUN, 'where the baseline comes from: 1 given (baseline_watts), 2 quiet windows, 3 intercept of the energy-on-requests fit, 0 none (0 W)'),
  driverQuiet: def('driver-charge', 'accounting.driver.<vm>.quiet_s', 's', RUN, 'time with no request of its services in flight, where the CPU log covers it'),
  driverIdleShare: def('driver-charge', 'accounting.driver.<vm>.idle_share_joules', 'J', RUN, "the driver's share of CPU idle energy, charged as CPU idle in equal parts to all its clients"),
  driverRequests: def('driver-charge', 'accounting.driver.<vm>.requests', 'count', RUN, 'requests of its services charged a cost'),
  driverCpu: def('driver-charge', 'accounting.driver.<vm>.cpu_joules', 'J', RUN, "the driver's own CPU energy (idle share + access) taken over"),
  driverBaselineJ: def('driver-charge', 'accounting.driver.<vm>.baseline_joules', 'J', RUN, 'baseline × time charged to its clients as CPU idle: baseline_watts × the span of the CPU log, less what a note says stayed with the per-request charges, never more than the access energy of the driver'),
  driverRequestJ: def('driver-charge', 'accounting.driver.<vm>.request_joules', 'J', RUN, 'predicted per-request costs charged as CPU active'),
  driverResidual: def('driver-charge', 'accounting.driver.<vm>.residual_joules', 'J', RUN, 'settled at the end so charges equal consumption (negative: taken back)'),
  driverPassed: def('driver-charge', 'accounting.driver.<vm>.passed_joules', 'J', RUN, 'other energy charged to the driver (its disk requests, lower drivers) passed on'),
  driverFitA: def('driver-charge', 'accounting.driver.<vm>.fit_request_joules', 'J', 'the last cost window', '`per-byte` model only: the fitted cost per request, a'),
  driverFitB: def('driver-charge', 'accounting.driver.<vm>.fit_byte_joules', 'J/byte', 'the last cost window', '`per-byte` model only: the fitted cost per byte, b'),

  // virtual-counters
  hardwareAdvance: def('virtual-counters', 'accounting.counters.<event>.hardware_advance', 'events', RUN, 'hardware advance of the counter (`tsc` or an event) over all periods; Σ of the VMs\' virtual advances'),
  guestTranslated: def('virtual-counters', 'accounting.counters.guest_periods_translated', 'count', RUN, 'guest container periods translated into virtual counters'),

  // host-strides, and guest-containers for a guest VM it controls (guest-level runs)
  cpuWork: def('host-strides, guest-containers', 'cpu.<vm>.work_s', 's', RUN, 'CPU time the VM was served (guest-containers: its containers were served)'),
  cpuDemand: def('host-strides', 'cpu.<vm>.demand_s', 's', RUN, 'CPU time the trace shows the VM running: its demand'),
  cpuBacklog: def('host-strides', 'cpu.<vm>.backlog_s', 's', 'the end of the run', 'demand not yet served; work − extra + backlog = demand'),
  cpuExtra: def('host-strides', 'cpu.<vm>.extra_s', 's', RUN, '`cpu_bound` VMs only: time served beyond the recorded demand'),
  cpuJoules: def('host-strides', 'cpu.<vm>.joules', 'J', RUN, 'active CPU energy of the work served'),
  cpuMean: def('host-strides, guest-containers', 'cpu.<vm>.mean_watts', 'W', AFTER_START, 'mean active CPU power of the work served under the policy'),
  cpuSettledMean: def('host-strides', 'cpu.<vm>.settled_mean_watts', 'W', SETTLED, 'limited VMs: mean of the manager periods\' power once settled, to compare with the limit'),
  cpuMax: def('host-strides', 'cpu.<vm>.max_period_watts', 'W', SETTLED, 'limited VMs: the highest power of one manager period'),
  cpuOver: def('host-strides', 'cpu.<vm>.over_limit_frac', 'fraction', SETTLED, 'limited VMs: share of manager periods more than 20 % over the limit'),
  cpuSettle: def('host-strides', 'cpu.<vm>.settle_s', 's', 'from start_s', 'limited VMs: time until the 5 s mean stays within ±10 % of the limit; absent if it never did'),

  // guest containers (host-strides credits work and energy to them too)
  containerMean: def('host-strides, guest-containers', 'container.<vm>.<container>.mean_watts', 'W', AFTER_START, "mean active CPU power of the container's work served (guest-containers without container limits: as the log shows it)"),
  containerWork: def('host-strides, guest-containers', 'container.<vm>.<container>.work_s', 's', RUN, 'CPU time served to the container'),
  containerDemand: def('host-strides, guest-containers', 'container.<vm>.<container>.demand_s', 's', RUN, "the container's recorded CPU time (its virtual TSC): its demand"),
  containerBacklog: def('host-strides, guest-containers', 'container.<vm>.<container>.backlog_s', 's', 'the end of the run', 'demand not yet served; work + backlog = demand (not for cpu_bound containers, whose demand is unbounded)'),
  containerPreempted: def('guest-containers', 'container.<vm>.<container>.preempted_s', 's', RUN, 'guests with container limits: time the container wanted to run but had spent its budget'),

  // disk-budgets
  diskPolBytes: def('disk-budgets', 'disk.<vm>.bytes', 'bytes', RUN, "bytes of the client's requests served"),
  diskPolRequests: def('disk-budgets', 'disk.<vm>.requests', 'count', RUN, "the client's requests served"),
  diskPolBacklog: def('disk-budgets', 'disk.<vm>.backlog', 'count', 'the end of the run', 'requests not served: waiting, or in service; requests + backlog = demand'),
  diskPolDemand: def('disk-budgets', 'disk.<vm>.demand', 'count', RUN, "the client's recorded requests (each is issued once)"),
  diskPolBefore: def('disk-budgets', 'disk.<vm>.throughput_before_bps', 'B/s', 'the periods before start_s', 'throughput before the limits switch on'),
  diskPolAfter: def('disk-budgets', 'disk.<vm>.throughput_after_bps', 'B/s', SETTLED, 'limited clients: throughput under the limit'),
  diskPolMean: def('disk-budgets', 'disk.<vm>.mean_watts', 'W', AFTER_START, "mean driver-side active power of the client's requests served (disk, plus the driver's CPU with driver-charge)"),
  diskPolSettledMean: def('disk-budgets', 'disk.<vm>.settled_mean_watts', 'W', SETTLED, "limited clients: mean of the periods' power once settled, to compare with the limit"),
  diskPolMax: def('disk-budgets', 'disk.<vm>.max_period_watts', 'W', SETTLED, 'limited clients: the highest power of one manager period'),
  diskPolOver: def('disk-budgets', 'disk.<vm>.over_limit_frac', 'fraction', SETTLED, 'limited clients: share of periods more than 20 % over the limit'),
  diskPolSettle: def('disk-budgets', 'disk.<vm>.settle_s', 's', 'from start_s', 'limited clients: time until the 5 s mean stays within ±10 % of the limit; absent if it never did'),

  // validation against measured power
  valMape: def('validation', 'validation.<device>.mape', 'percent', 'each reporting interval the run covers for at least half its length', 'mean absolute percentage error of accounted against measured power'),
  valIntervals: def('validation', 'validation.<device>.intervals', 'count', RUN, 'reporting intervals compared'),
  valMeasured: def('validation', 'validation.<device>.measured_watts', 'W', 'the compared intervals', 'mean measured power'),
  valAccounted: def('validation', 'validation.<device>.accounted_watts', 'W', RUN, 'mean accounted power of the device'),
} as const;

export type MetricKey = keyof typeof METRICS;

/** The name of metric `m` with its parameters filled in. */
export function metricName<P extends string>(m: MetricDef<P>, params: MetricParams<P>): string {
  return m.pattern.replace(/<([a-z]+)>/g, (_, k: string) => {
    const v = (params as Record<string, string | undefined>)[k];
    if (v === undefined) throw new Error(`metric ${m.pattern}: no value for <${k}>`);
    return v;
  });
}

const matchers = Object.values(METRICS).map((m) => ({
  m: m as MetricDef,
  re: new RegExp(`^${m.pattern.replace(/[.]/g, '\\.').replace(/<[a-z]+>/g, '.+')}$`),
}));

const escaped = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Why a run with these stages and VMs can never write metric `name` (a catalogue name), or null
 * when it can: every catalogue entry it matches is written by a stage the run lacks, or names in
 * its `<vm>` or `<consumer>` one the profile lacks (`known`). Names may hold dots, so a name is
 * matched against the known ones themselves, not split at dots.
 */
export function unwritableBy(name: string, stages: ReadonlySet<string>, known: Readonly<Partial<Record<'vm' | 'consumer', ReadonlySet<string>>>>): string | null {
  const why: string[] = [];
  for (const { m, re } of matchers) {
    if (!re.test(name)) continue;
    const by = m.by.split(', ');
    if (!by.some((s) => s === 'replay' || stages.has(s))) {
      why.push(`it is written by ${by.map((s) => `'${s}'`).join(' or ')}, which ${by.length > 1 ? 'are' : 'is'} not among the stages`);
      continue;
    }
    // The pattern with each <vm> and <consumer> one of the known names.
    const exact = new RegExp(
      `^${m.pattern
        .split(/(<[a-z]+>)/)
        .map((part) => {
          const k = /^<([a-z]+)>$/.exec(part)?.[1];
          if (k === undefined) return escaped(part);
          const names = known[k as 'vm' | 'consumer'];
          return names === undefined ? '.+' : `(?:${[...names].map(escaped).join('|') || '(?!)'})`;
        })
        .join('')}$`,
    );
    if (exact.test(name)) return null;
    const what = m.pattern.includes('<vm>') ? 'VM' : 'consumer';
    why.push(`the machine profile has no ${what} that makes the name (its ${what}s: ${[...(known[what === 'VM' ? 'vm' : 'consumer'] ?? [])].join(', ')})`);
  }
  return why.length > 0 ? why[0]! : null;
}

/** The catalogue entries a stored name matches (empty: a name no entry allows). */
export function catalogueEntriesFor(name: string): MetricDef[] {
  return matchers.filter((x) => x.re.test(name)).map((x) => x.m);
}

/** Where metrics go: the run's sink. */
export interface MetricSink {
  metric(name: string, value: number): void;
}

/**
 * Writes metrics by catalogue entry. A value that is not a finite number (nothing to average) is
 * left out, so an absent metric means "no figure", never NaN or a sentinel.
 */
export class MetricWriter {
  constructor(private readonly sink: MetricSink) {}

  write<P extends string>(m: MetricDef<P>, params: MetricParams<P>, value: number): void {
    if (Number.isFinite(value)) this.sink.metric(metricName(m, params), value);
  }
}
