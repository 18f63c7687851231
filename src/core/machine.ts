/**
 * The machine profile's types (docs/formats.md, "Machine profile") and the resolved form the
 * stages use. Loading and checking a profile is core/profile.ts; the service graph, core/services.ts.
 */
export type IdleSplit = 'equal' | 'by-time';
export type VmRole = 'core' | 'driver' | 'client';

export interface DiskSpec {
  active_watts: number;
  idle_watts: number;
  nominal_rate_bps: number;
  rate_window: number;
  idle_period_ms: number;
}

export interface VmSpec {
  id: string;
  role: VmRole;
  energy_aware?: boolean;
}

export interface ServiceSpec {
  id: string;
  driver: string;
  device: string;
  clients: string[];
}

export interface Profile {
  cpu: {
    tsc_hz: number;
    idle_watts: number;
    counter_bits: number;
    idle_split: IdleSplit;
    /** The clock of idle energy: the TSC (default), or the timestamps where the TSC stops in deep idle. */
    idle_clock?: 'tsc' | 'time';
    /** A period of 1 ms or more whose TSC advance is off Δt × tsc_hz by more than this fraction is an error. */
    tsc_tolerance?: number;
    /** An event counter advancing more than this per TSC tick of a period's length is an error. */
    max_events_per_tick?: number;
    events: Record<string, number>;
  };
  disks: Record<string, DiskSpec>;
  vms: VmSpec[];
  services: ServiceSpec[];
}

/** Reserved consumer ids: the idle virtual processor and energy nobody can be charged with. */
export const IDLE_VM = 'idle';
export const UNATTRIBUTED = '(unattributed)';
/** The CPU's device name in the energy table (a disk may not be named so). */
export const CPU_DEVICE = 'cpu';

/** The profile resolved into the dense indices the hot paths use. */
export interface Machine {
  readonly profile: Profile;
  readonly file: string;
  /** Event column names, in profile order; weights[i] is joules per event of eventNames[i]. */
  readonly eventNames: readonly string[];
  readonly eventWeights: Float64Array;
  /** Joules per TSC tick: idle_watts / tsc_hz (§3.2.1: the TSC estimates idle consumption). */
  readonly tscWeight: number;
  /** Consumers that the CPU log can name: the profile's VMs in order, then `idle`. */
  readonly consumers: readonly string[];
  readonly consumerIndex: ReadonlyMap<string, number>;
  /** Number of profile VMs (consumers[0..vmCount) ); consumers[vmCount] is `idle`. */
  readonly vmCount: number;
  readonly idleIndex: number;
}
