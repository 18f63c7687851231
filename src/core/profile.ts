/** The machine profile (DESIGN §1): loading, validation, and the resolved form stages use. */
import { WattraceError } from './errors.js';
import { readJsonFile, validateAgainst } from './json.js';
import { servicesFor } from './services.js';

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
    events: Record<string, number>;
  };
  disks: Record<string, DiskSpec>;
  vms: VmSpec[];
  services: ServiceSpec[];
}

/** Reserved consumer ids: the idle virtual processor and energy nobody can be charged with. */
export const IDLE_VM = 'idle';
export const UNATTRIBUTED = '(unattributed)';

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

export function loadProfile(file: string): Machine {
  const raw = readJsonFile(file, 'machine profile');
  const p = validateAgainst<Profile>(raw, 'profile.schema.json', file, 'machine profile');
  p.disks ??= {};
  p.services ??= [];
  return resolveProfile(p, file);
}

/** Checks what a schema cannot (unique ids, references, an acyclic service graph) and indexes. */
export function resolveProfile(p: Profile, file: string): Machine {
  p.disks ??= {};
  p.services ??= [];
  const err = (path: string, msg: string): never => {
    throw new WattraceError('E_PROFILE', `machine profile: ${msg}`, { file, path });
  };
  const vmIds = new Map<string, VmSpec>();
  p.vms.forEach((vm, i) => {
    if (vmIds.has(vm.id)) err(`/vms/${i}/id`, `VM id '${vm.id}' appears twice`);
    vmIds.set(vm.id, vm);
  });
  if ('cpu' in p.disks) err('/disks/cpu', "'cpu' is the CPU's device name in the energy table; name the disk otherwise");
  const serviceIds = new Set<string>();
  p.services.forEach((s, i) => {
    if (serviceIds.has(s.id)) err(`/services/${i}/id`, `service id '${s.id}' appears twice`);
    if (s.id in p.disks) err(`/services/${i}/id`, `service id '${s.id}' is also a disk id`);
    serviceIds.add(s.id);
  });
  p.services.forEach((s, i) => {
    const drv = vmIds.get(s.driver);
    if (!drv) err(`/services/${i}/driver`, `service '${s.id}' names driver '${s.driver}', which is not among the VMs`);
    else if (drv.role !== 'driver') err(`/services/${i}/driver`, `service '${s.id}': VM '${s.driver}' has role '${drv.role}', expected 'driver'`);
    if (!(s.device in p.disks) && !serviceIds.has(s.device)) {
      err(`/services/${i}/device`, `service '${s.id}' uses device '${s.device}', which is neither a disk nor a service`);
    }
    s.clients.forEach((c, j) => {
      if (!vmIds.has(c)) err(`/services/${i}/clients/${j}`, `service '${s.id}' names client '${c}', which is not among the VMs`);
      if (c === s.driver) err(`/services/${i}/clients/${j}`, `service '${s.id}': driver '${c}' cannot be a client of its own service`);
    });
  });
  const cycle = findServiceCycle(p.services);
  if (cycle) err('/services', `services form a cycle: ${cycle.join(' → ')}`);
  // A disk request names its client and its disk; the service it went through must follow.
  for (const vm of p.vms) {
    for (const disk of Object.keys(p.disks)) {
      const via = servicesFor(p.services, vm.id, disk);
      if (via.length > 1) {
        err('/services', `VM '${vm.id}' reaches disk '${disk}' through ${via.length} services (${via.map((i) => p.services[i]!.id).join(', ')}), so its requests cannot be told apart`);
      }
    }
  }

  const eventNames = Object.keys(p.cpu.events);
  const eventWeights = Float64Array.from(eventNames.map((e) => p.cpu.events[e] ?? 0));
  const consumers = [...p.vms.map((v) => v.id), IDLE_VM];
  return {
    profile: p,
    file,
    eventNames,
    eventWeights,
    tscWeight: p.cpu.idle_watts / p.cpu.tsc_hz,
    consumers,
    consumerIndex: new Map(consumers.map((c, i) => [c, i])),
    vmCount: p.vms.length,
    idleIndex: p.vms.length,
  };
}

/**
 * A service uses another when its `device` is that service, or when its driver is a client of
 * that service (the driver forwards requests through it, §2.3: disk → network storage → NIC).
 * Returns one cycle as a list of service ids, or null.
 */
export function findServiceCycle(services: readonly ServiceSpec[]): string[] | null {
  const uses = new Map<string, string[]>();
  for (const s of services) {
    const next = services.filter((t) => t.id === s.device || (t.id !== s.id && t.clients.includes(s.driver))).map((t) => t.id);
    uses.set(s.id, next);
  }
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (id: string): string[] | null => {
    if (state.get(id) === 2) return null;
    if (state.get(id) === 1) return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 1);
    stack.push(id);
    for (const n of uses.get(id) ?? []) {
      const c = visit(n);
      if (c) return c;
    }
    stack.pop();
    state.set(id, 2);
    return null;
  };
  for (const s of services) {
    const c = visit(s.id);
    if (c) return c;
  }
  return null;
}
