/**
 * The service graph of a profile (§2.3, §3.3.3): virtual devices provided by driver VMs, possibly
 * on top of other services (client → storage driver VM → network driver VM → NIC).
 *
 * A disk log row names the VM that issued the request and the physical disk it ended on. The
 * service it went through is the one that has that VM among its clients and reaches that disk
 * (directly, or through the services below it); the profile check makes that service unique.
 * When the service's device is the disk itself, the row is a physical request of its driver: the
 * disk energy it causes is consumed by that driver on the client's behalf (`via` = driver). When
 * the service's device is another service, the row only tells the upper driver which client it
 * worked for; the physical request is the lower driver's row, naming the upper driver as client.
 */
import type { Machine, ServiceSpec } from './machine.js';

export interface ServiceRoute {
  /** Index into profile.services. */
  readonly service: number;
  /** Consumer index of the service's driver VM. */
  readonly driver: number;
  /** The service's device is the disk itself. */
  readonly physical: boolean;
}

/** Does service `s` lead to disk `disk` (directly or through the services it uses)? */
function reaches(services: readonly ServiceSpec[], s: ServiceSpec, disk: string, depth = 0): boolean {
  if (s.device === disk) return true;
  if (depth > services.length) return false;
  const next = services.find((t) => t.id === s.device);
  return next ? reaches(services, next, disk, depth + 1) : false;
}

/** The services a request of `vm` on `disk` can have gone through (the profile keeps this ≤ 1). */
export function servicesFor(services: readonly ServiceSpec[], vm: string, disk: string): number[] {
  const out: number[] = [];
  services.forEach((s, i) => {
    if (s.clients.includes(vm) && reaches(services, s, disk)) out.push(i);
  });
  return out;
}

export class ServiceGraph {
  /** Consumer indices of the VMs that drive a service with clients, in consumer order. */
  readonly drivers: readonly number[];
  private readonly clients = new Map<number, number[]>();
  /** Routes by disk index (profile order) × consumer, filled on first use. */
  private readonly routes: (ServiceRoute | null | undefined)[];
  /** relays() by disk index × consumer, filled on first use. */
  private readonly relaying: (boolean | undefined)[] = [];
  private readonly diskIds: string[];
  /** Disk index of each name of the disk log's name table (−1: not a disk). */
  private readonly nameDisk: number[] = [];

  constructor(private readonly machine: Machine) {
    const { services } = machine.profile;
    const idx = (id: string) => machine.consumerIndex.get(id)!;
    for (const s of services) {
      if (s.clients.length === 0) continue;
      const d = idx(s.driver);
      const set = new Set(this.clients.get(d) ?? []);
      for (const c of s.clients) set.add(idx(c));
      this.clients.set(d, [...set].sort((a, b) => a - b));
    }
    this.drivers = [...this.clients.keys()].sort((a, b) => a - b);
    this.diskIds = Object.keys(machine.profile.disks);
    this.routes = new Array(this.diskIds.length * machine.consumers.length);
  }

  /** The disk index (profile order) of `names[i]`, the disk log's interned disk names. */
  diskIndex(names: readonly string[], i: number): number {
    let d = this.nameDisk[i];
    if (d === undefined) this.nameDisk[i] = d = this.diskIds.indexOf(names[i]!);
    return d;
  }

  /** The clients of all services `driver` provides (consumer indices, ascending). */
  clientsOf(driver: number): readonly number[] {
    return this.clients.get(driver) ?? [];
  }

  /** The service a request of consumer `vm` on disk number `d` went through, or null for none. */
  route(vm: number, d: number): ServiceRoute | null {
    const key = d * this.machine.consumers.length + vm;
    let r = this.routes[key];
    if (r === undefined) {
      const { services } = this.machine.profile;
      const disk = this.diskIds[d]!;
      const i = servicesFor(services, this.machine.consumers[vm]!, disk)[0];
      r = i === undefined ? null : { service: i, driver: this.machine.consumerIndex.get(services[i]!.driver)!, physical: services[i]!.device === disk };
      this.routes[key] = r;
    }
    return r;
  }

  /**
   * True when `vm` drives a service that reaches disk number `d` through another service: its
   * rows on that disk are the lower legs of its clients' requests (the clients' own rows, the
   * upper requests, are the demand).
   */
  relays(vm: number, d: number): boolean {
    const key = d * this.machine.consumers.length + vm;
    let r = this.relaying[key];
    if (r === undefined) {
      const { services } = this.machine.profile;
      const disk = this.diskIds[d]!;
      const name = this.machine.consumers[vm]!;
      this.relaying[key] = r = services.some((s) => s.driver === name && s.device !== disk && s.clients.length > 0 && reaches(services, s, disk));
    }
    return r;
  }

  /**
   * Who shares a disk's idle energy when nobody used it (§3.3.2): the clients of the services
   * whose device is the disk, each with that service's driver as `via`; without such services,
   * the profile's client VMs, directly.
   */
  diskSharers(disk: string): { vm: number; via: number | null }[] {
    const { services, vms } = this.machine.profile;
    const idx = (id: string) => this.machine.consumerIndex.get(id)!;
    const out: { vm: number; via: number | null }[] = [];
    const seen = new Set<number>();
    for (const s of services) {
      if (s.device !== disk) continue;
      for (const c of s.clients) {
        if (seen.has(idx(c))) continue;
        seen.add(idx(c));
        out.push({ vm: idx(c), via: idx(s.driver) });
      }
    }
    if (out.length > 0) return out.sort((a, b) => a.vm - b.vm);
    const clients = vms.filter((v) => v.role === 'client');
    return (clients.length > 0 ? clients : vms).map((v) => ({ vm: idx(v.id), via: null }));
  }
}
