/**
 * The typed settings of the stages: the pipeline's `accounting` and `policy` sections, parsed once.
 * Defaults live in schemas/pipeline.schema.json (Ajv fills them in as it validates a pipeline);
 * `settingsOf` copies every field into these types, so a field the schema does not default is a
 * compile error here rather than an `undefined` in a stage, and derives the few settings that
 * default to another section's. Each stage receives only its own part (see its StageDefinition).
 */

/** driver-charge (§3.3.3): how a driver VM's CPU energy is charged back to its clients. */
export interface DriverSettings {
  readonly model: 'constant' | 'per-byte';
  /** Requests between two re-estimates of the predicted cost. */
  readonly window: number;
  readonly baseline_window_ms: number;
  /** Baseline CPU power per driver VM, measured beforehand (instead of estimated from the trace). */
  readonly baseline_watts: Readonly<Record<string, number>>;
  /** per-byte: weight of older windows in the fit. */
  readonly forget: number;
}

/** host-strides (§3.3.4, §3.3.6). */
export interface CpuPolicySettings {
  readonly period_ms: number;
  readonly start_s: number;
  /** paper: the stride moves by `offset` (§3.3.6); adaptive: by a factor following the error. */
  readonly controller: 'paper' | 'adaptive';
  /** paper controller: stride change per manager period. */
  readonly offset: number;
  readonly limits_watts: Readonly<Record<string, number>>;
  /** VMs that would use all the CPU they get (once seen in the trace): always runnable. */
  readonly cpu_bound: readonly string[];
}

/** disk-budgets (§3.3.5, §3.3.6). */
export interface DiskPolicySettings {
  readonly period_ms: number;
  readonly refresh_ms: number;
  readonly t_max: number;
  readonly start_s: number;
  readonly arrival: 'closed' | 'trace';
  readonly queue_depth: number;
  readonly limits_watts: Readonly<Record<string, number>>;
  /** The throttle formula's coefficients: ¼ when reversing, 4/3 when continuing (the paper's). */
  readonly backoff: number;
  readonly boost: number;
}

/** guest-containers (§3.4.3). */
export interface GuestPolicySettings {
  readonly period_ms: number;
  readonly policy: 'static' | 'shares';
  /** Per energy-aware VM, each container's power limit. */
  readonly limits_watts: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly cpu_bound: boolean;
  /** When the container limits switch on (default: `policy.cpu.start_s`). */
  readonly start_s: number;
  /** The VM-wide budget each guest gets from the host: `policy.cpu.limits_watts`. */
  readonly host_limits_watts: Readonly<Record<string, number>>;
  /** When the host's limits switch on: `policy.cpu.start_s`. */
  readonly host_start_s: number;
}

export interface Settings {
  readonly accounting: { readonly driver: DriverSettings };
  readonly policy: { readonly cpu: CpuPolicySettings; readonly disk: DiskPolicySettings; readonly guest: GuestPolicySettings };
}

/** The sections as the schema leaves them: every default filled in. */
export interface SettingsSections {
  accounting: { driver: DriverSettings };
  policy: { cpu: CpuPolicySettings; disk: DiskPolicySettings; guest: Omit<GuestPolicySettings, 'host_limits_watts' | 'host_start_s' | 'start_s'> & { start_s?: number } };
}

/** The typed settings of a pipeline whose sections the schema has validated and defaulted. */
export function settingsOf(p: SettingsSections): Settings {
  const d = p.accounting.driver;
  const cpu = p.policy.cpu;
  const disk = p.policy.disk;
  const guest = p.policy.guest;
  return {
    accounting: {
      driver: { model: d.model, window: d.window, baseline_window_ms: d.baseline_window_ms, baseline_watts: { ...d.baseline_watts }, forget: d.forget },
    },
    policy: {
      cpu: { period_ms: cpu.period_ms, start_s: cpu.start_s, controller: cpu.controller, offset: cpu.offset, limits_watts: { ...cpu.limits_watts }, cpu_bound: [...cpu.cpu_bound] },
      disk: {
        period_ms: disk.period_ms,
        refresh_ms: disk.refresh_ms,
        t_max: disk.t_max,
        start_s: disk.start_s,
        arrival: disk.arrival,
        queue_depth: disk.queue_depth,
        limits_watts: { ...disk.limits_watts },
        backoff: disk.backoff,
        boost: disk.boost,
      },
      guest: {
        period_ms: guest.period_ms,
        policy: guest.policy,
        limits_watts: structuredClone(guest.limits_watts),
        cpu_bound: guest.cpu_bound,
        // Derived default: the containers' limits switch on with the host's.
        start_s: guest.start_s ?? cpu.start_s,
        host_limits_watts: { ...cpu.limits_watts },
        host_start_s: cpu.start_s,
      },
    },
  };
}
