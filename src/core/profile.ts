/** Loading and checking a machine profile (docs/formats.md): what its JSON Schema cannot check, then the resolved Machine. */
import { WattraceError } from './errors.js';
import { readJsonFile, validateAgainst } from './json.js';
import { servicesFor } from './services.js';
import { CPU_DEVICE, IDLE_VM, type Machine, type Profile, type ServiceSpec, type VmSpec } from './machine.js';

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
  for (const [id, d] of Object.entries(p.disks)) {
    if (d.active_watts < d.idle_watts) err(`/disks/${id}/active_watts`, `disk '${id}': active_watts ${d.active_watts} is below idle_watts ${d.idle_watts} (a disk draws at least its idle power while active)`);
  }
  if (CPU_DEVICE in p.disks) err('/disks/cpu', "'cpu' is the CPU's device name in the energy table; name the disk otherwise");
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
