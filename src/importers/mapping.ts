/**
 * The `--map` file of `wattrace import`, shared by every importer: which devices, files, hosts,
 * tasks or pids form which VM (regexes), which VMs are drivers or the core, and the starter
 * profile's VM list and services that follow from it.
 *
 * `{ "vms": { "vm1": ["^qemu-vm1"] }, "pids": { "vm2": ["4242"] }, "default": "core",
 *    "drivers": ["drv"], "core": ["core"], "disks": { "disk": ["^254,0$"] } }`
 */
import fs from 'node:fs';
import { WattraceError } from '../core/errors.js';

export interface Mapping {
  /** VMs by regexes on the importer's key: device, file name, `host:disk` or command name. */
  vms?: Record<string, string[]>;
  /** What no rule maps. */
  default?: string;
  /** VMs that are disk or network drivers (role driver in the starter profile). */
  drivers?: string[];
  /** VMs that are the hypervisor / host core (role core). */
  core?: string[];
  /** Tasks by their pid (thread id), regexes on the whole number: QEMU's vCPU threads share one name. */
  pids?: Record<string, string[]>;
  /** blkparse: disk ids by regexes on the device's `maj,min`. */
  disks?: Record<string, string[]>;
}

export function loadMapping(file: string | undefined): Mapping {
  if (file === undefined) return {};
  if (!fs.existsSync(file)) throw new WattraceError('E_FILE', 'mapping file does not exist', { file });
  let m: unknown;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
  } catch (e) {
    throw new WattraceError('E_JSON', `mapping is not valid JSON: ${(e as Error).message}`, { file });
  }
  checkMapping(m, file);
  return m;
}

/** The mapping's shape, each regex compiled once here so that a bad one is named with its place. */
function checkMapping(m: unknown, file: string): asserts m is Mapping {
  const fail = (at: string, what: string): never => {
    throw new WattraceError('E_SCHEMA', what, { file, path: at });
  };
  if (typeof m !== 'object' || m === null || Array.isArray(m)) fail('', 'a mapping is an object: { "vms": { "vm1": ["regex", …] }, "default": "vm0", … }');
  const o = m as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['vms', 'pids', 'disks', 'drivers', 'core', 'default'].includes(k)) fail(`/${k}`, `unknown key '${k}' (a mapping has vms, pids, disks, drivers, core, default)`);
  for (const k of ['vms', 'pids', 'disks']) {
    const rules = o[k];
    if (rules === undefined) continue;
    if (typeof rules !== 'object' || rules === null || Array.isArray(rules)) fail(`/${k}`, `${k} is an object of ids to lists of regexes`);
    for (const [id, res] of Object.entries(rules as Record<string, unknown>)) {
      if (!Array.isArray(res)) fail(`/${k}/${id}`, `a list of regexes, e.g. ["^qemu"]`);
      (res as unknown[]).forEach((r, i) => {
        if (typeof r !== 'string') fail(`/${k}/${id}/${i}`, 'a regex is a string');
        try {
          new RegExp(r as string);
        } catch (e) {
          fail(`/${k}/${id}/${i}`, `not a regex: ${(e as Error).message}`);
        }
      });
    }
  }
  for (const k of ['drivers', 'core']) {
    const v = o[k];
    if (v !== undefined && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) fail(`/${k}`, `${k} is a list of VM ids`);
  }
  if (o['default'] !== undefined && typeof o['default'] !== 'string') fail('/default', 'default is a VM id');
}

/** The id of the first rule whose regex matches `key` (`whole`: the regex must match all of it). */
export function matcher(rules: Record<string, string[]> | undefined, whole = false): (key: string) => string | undefined {
  const compiled = Object.entries(rules ?? {}).flatMap(([id, res]) => res.map((r) => ({ id, re: new RegExp(whole ? `^(?:${r})$` : r) })));
  return (key) => compiled.find((r) => r.re.test(key))?.id;
}

/** The VM of a key by the `vms` rules, else `default`, else `fallback(key)`; cached per key. */
export function mapper(m: Mapping, fallback: (key: string) => string): (key: string) => string {
  const match = matcher(m.vms);
  const cache = new Map<string, string>();
  return (key) => {
    let v = cache.get(key);
    if (v === undefined) cache.set(key, (v = match(key) ?? m.default ?? fallback(key)));
    return v;
  };
}

/**
 * The VM of a task: the idle task is `idle`; then the `pids` rules (on the whole pid: "23" is pid
 * 23, not 1234), then the `vms` rules (on the command name), then `default` (`host` without one).
 * For disk requests (`idleTask` false) the idle task is like any other: a request issued in its
 * context (a softirq) is not the idle processor's.
 */
export function taskMapper(mapping: Mapping, idleTask = true): (comm: string, pid?: string) => string {
  const byPid = matcher(mapping.pids, true);
  const byComm = matcher(mapping.vms);
  const fallback = mapping.default ?? 'host';
  const cache = new Map<string, string>();
  return (comm, pid) => {
    const key = `${pid ?? ''}/${comm}`;
    let v = cache.get(key);
    if (v === undefined) {
      v = idleTask && /^(swapper(\/\d+)?|<idle>)$/.test(comm) ? 'idle' : ((pid !== undefined ? byPid(pid) : undefined) ?? byComm(comm) ?? fallback);
      cache.set(key, v);
    }
    return v;
  };
}

/** The starter profile's `vms`: roles from the mapping's `drivers` and `core` lists. */
export function starterVms(ids: readonly string[], mapping: Mapping): { id: string; role: 'driver' | 'core' | 'client' }[] {
  const drivers = mapping.drivers ?? [];
  const core = mapping.core ?? [];
  return ids.map((id) => ({ id, role: drivers.includes(id) ? 'driver' : core.includes(id) ? 'core' : 'client' }));
}

/** The starter profile's `services`: each disk served by the mapping's first driver to every client VM. */
export function starterServices(vms: readonly string[], mapping: Mapping, disks: readonly { id: string; device: string }[]): { id: string; driver: string; device: string; clients: string[] }[] {
  const driver = mapping.drivers?.[0];
  const clients = starterVms(vms, mapping)
    .filter((v) => v.role === 'client')
    .map((v) => v.id);
  return driver !== undefined && clients.length > 0 ? disks.map((d) => ({ id: d.id, driver, device: d.device, clients })) : [];
}

/**
 * Starter values of the profiles importers write, to be replaced by measured figures (the README
 * says so, and so does each starter profile's description): the disk of the paper's §4 (5.6 W active, 3.6 W idle),
 * and 10 W of idle power per CPU.
 */
export const STARTER_DISK = { active_watts: 5.6, idle_watts: 3.6, nominal_rate_bps: 5e7, rate_window: 50, idle_period_ms: 50 } as const;
export const STARTER_IDLE_WATTS = 10;

export function writeProfile(file: string, profile: object): void {
  fs.writeFileSync(file, JSON.stringify(profile, null, 2) + '\n');
}
