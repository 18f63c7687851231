/**
 * A synthetic disk-driver scenario (§3.3.3, §4.1): clients issue disk requests through a driver
 * VM, which spends a known CPU cost on each completion. One physical CPU; the idle processor halts
 * between the driver's work. Because the ground truth (the driver's cost per request) is known,
 * tests and the benchmark can check what driver-charge attributes to whom.
 *
 * Timeline: each completion at t is followed by the driver running [t, t + workNs] with
 * cost(bytes) / uopJoules uops; with `baselineWatts`, the driver's kernel also runs 100 µs every
 * 10 ms (from 5 ms on), whatever the requests, spending baselineWatts × 10 ms (its baseline, §3.3.3); the idle
 * VM runs (halts) the rest of the time. Requests of all
 * clients are merged in time; a completion that would fall into the driver's work is moved just
 * behind it. Counters start at 0; the TSC ticks once per ns (tsc_hz = 1e9).
 */
import { nsToS, sToNs } from '../core/units.js';
import { prng } from './synthetic-cswitch.js';

export interface ScenarioClient {
  vm: string;
  /** Requests per second (arrivals are uniform random, so windows mix the clients). */
  perSecond: number;
  bytes: number;
  op?: 'R' | 'W';
  /** Another disk than the profile's only one. */
  disk?: string;
  container?: string;
}

export interface DriverScenarioOptions {
  seconds: number;
  driver: string;
  clients: readonly ScenarioClient[];
  /** The driver's CPU energy per request, J. */
  cost: (bytes: number) => number;
  /** Joules per uop (the profile's weight of the `uops` event). */
  uopJoules: number;
  /** No requests before this time (s): the driver's quiet start. */
  quietS?: number;
  /** No requests after this time (s): a quiet end. */
  requestsUntilS?: number;
  /** Device service time of a request, ns (written as latency_ns). */
  latencyNs?: (bytes: number) => number;
  workNs?: number;
  seed?: number;
  /** Leave out the latency column. */
  noLatency?: boolean;
  /** The driver's baseline access power (W): kernel work every 10 ms, requests or not. */
  baselineWatts?: number;
}

export interface DriverScenario {
  cswitch: string;
  disk: string;
  /** Ground truth: the driver's CPU energy spent per client (J) and requests per client. */
  costBy: Map<string, number>;
  /** The driver's baseline work in all (J). */
  baselineJ: number;
  requestsBy: Map<string, number>;
  durationNs: number;
}

export function driverScenario(o: DriverScenarioOptions): DriverScenario {
  const rand = prng(o.seed ?? 7);
  const T = Math.round(sToNs(o.seconds));
  const quiet = Math.round(sToNs(o.quietS ?? 0));
  const work = o.workNs ?? 50_000;
  const lat = o.latencyNs ?? ((b: number) => 2_000_000 + b * 20);
  const reqs: { t: number; c: ScenarioClient }[] = [];
  const until = o.requestsUntilS !== undefined ? Math.round(sToNs(o.requestsUntilS)) : T - 10 * work;
  for (const c of o.clients) {
    const n = Math.round(c.perSecond * nsToS((o.requestsUntilS !== undefined ? until : T) - quiet));
    for (let i = 0; i < n; i++) reqs.push({ t: quiet + Math.floor(rand() * (until - quiet)), c });
  }
  reqs.sort((a, b) => a.t - b.t);
  // The driver's kernel work, every 10 ms (merged with the requests' work in time order).
  const TICK = 10_000_000;
  const TICK_WORK = 100_000;
  const tickUops = Math.round(((o.baselineWatts ?? 0) * nsToS(TICK)) / o.uopJoules);
  const ticks = tickUops > 0 ? Array.from({ length: Math.floor((T - TICK / 2 - TICK_WORK) / TICK) + 1 }, (_, k) => k * TICK + TICK / 2) : [];
  let baselineJ = 0;
  const cs: string[] = ['ts_ns,cpu,vm,tsc,uops', '0,0,idle,0,0'];
  const disk: string[] = [`ts_ns,vm,op,offset,bytes${o.noLatency ? '' : ',latency_ns'},container,disk`];
  const costBy = new Map<string, number>();
  const requestsBy = new Map<string, number>();
  let busyUntil = 0;
  let uops = 0;
  let offset = 0;
  let nextTick = 0;
  const tick = (upTo: number) => {
    while (nextTick < ticks.length && ticks[nextTick]! <= upTo) {
      const t = Math.max(ticks[nextTick++]!, busyUntil + 1000);
      if (t + TICK_WORK >= T) return;
      cs.push(`${t},0,idle,${t},${uops}`);
      uops += tickUops;
      cs.push(`${t + TICK_WORK},0,${o.driver},${t + TICK_WORK},${uops}`);
      busyUntil = t + TICK_WORK;
      baselineJ += tickUops * o.uopJoules;
    }
  };
  for (const r of reqs) {
    tick(Math.max(r.t, busyUntil + 1000));
    const t = Math.max(r.t, busyUntil + 1000);
    if (t + work >= T) break;
    const cost = o.cost(r.c.bytes);
    const n = Math.round(cost / o.uopJoules);
    cs.push(`${t},0,idle,${t},${uops}`);
    uops += n;
    cs.push(`${t + work},0,${o.driver},${t + work},${uops}`);
    busyUntil = t + work;
    disk.push(`${t},${r.c.vm},${r.c.op ?? 'R'},${offset},${r.c.bytes}${o.noLatency ? '' : `,${Math.round(lat(r.c.bytes))}`},${r.c.container ?? ''},${r.c.disk ?? ''}`);
    offset += r.c.bytes;
    costBy.set(r.c.vm, (costBy.get(r.c.vm) ?? 0) + n * o.uopJoules);
    requestsBy.set(r.c.vm, (requestsBy.get(r.c.vm) ?? 0) + 1);
  }
  tick(T);
  cs.push(`${T},0,idle,${T},${uops}`);
  return { cswitch: cs.join('\n') + '\n', disk: disk.join('\n') + '\n', costBy, requestsBy, durationNs: T, baselineJ };
}
