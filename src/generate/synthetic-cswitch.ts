/**
 * A deterministic synthetic context-switch PMC log (docs/formats.md) for the demo fixture, the
 * benchmark and property tests. It models each VM's event rates per cycle on its own and knows
 * nothing of the accounting code. Rows come in global time order (the CPU whose clock is
 * furthest behind switches next); counters may start just below their wrap to exercise it.
 */
import { ticksIn } from '../core/units.js';

/** Mulberry32: a small seeded PRNG, so a seed always gives the same trace. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SyntheticVm {
  id: string;
  /** Relative chance of being switched in. */
  weight: number;
  /** Events per cycle while running, per event column ('idle' should have 0s). */
  rates: Record<string, number>;
}

export interface SyntheticCswitchOptions {
  rows: number;
  cpus: number;
  vms: readonly SyntheticVm[];
  events: readonly string[];
  seed: number;
  tscHz: number;
  counterBits: number;
  /** First timestamp (ns), any size. */
  startNs?: bigint;
  /** Mean period length in ns (periods are uniform in [0.2, 1.8] × mean). */
  meanPeriodNs?: number;
  /** Start the event counters this many events below their wrap. */
  startBelowWrap?: number;
  /**
   * Work on top of the rates: extra events for a period of `vm` ending at `to` (absolute ns),
   * e.g. a driver VM's work for the requests completed since it last ran.
   */
  work?: (vm: string, to: bigint) => Readonly<Record<string, number>> | null;
}

/** Yields the CSV text in chunks of about `chunkRows` rows, header first. */
export function* syntheticCswitch(o: SyntheticCswitchOptions, chunkRows = 8192): Generator<string> {
  const rand = prng(o.seed);
  const mean = o.meanPeriodNs ?? 2_000_000;
  const wrap = 2n ** BigInt(o.counterBits);
  const totalWeight = o.vms.reduce((a, v) => a + v.weight, 0);
  const now: bigint[] = [];
  const tsc: bigint[] = [];
  const ctr: bigint[][] = [];
  const start = o.startNs ?? 1_732_400_000_000_000_000n;
  for (let c = 0; c < o.cpus; c++) {
    now.push(start + BigInt(c * 1000));
    tsc.push(10_000_000_000_000n + BigInt(c) * 7_000_000_000n);
    ctr.push(o.events.map((_, e) => (o.startBelowWrap !== undefined ? wrap - BigInt(o.startBelowWrap) - BigInt(e * 977) : BigInt(e * 1_000_003))));
  }
  const pick = (): SyntheticVm => {
    let r = rand() * totalWeight;
    for (const v of o.vms) if ((r -= v.weight) < 0) return v;
    return o.vms[o.vms.length - 1]!;
  };
  // Each CPU's next switch is drawn ahead, so rows come out in global time order.
  const period = () => Math.round(mean * (0.2 + 1.6 * rand()));
  const next: bigint[] = now.map(() => 0n);
  let out = `ts_ns,cpu,vm,tsc,${o.events.join(',')}\n`;
  let n = 0;
  for (let i = 0; i < o.rows; i++) {
    let c = 0;
    const firstRound = i < o.cpus;
    if (firstRound) c = i;
    else for (let k = 1; k < o.cpus; k++) if (next[k]! < next[c]!) c = k;
    const vm = pick();
    const dt = firstRound ? 0 : Number(next[c]! - now[c]!);
    const cycles = Math.round(ticksIn(dt, o.tscHz));
    now[c] = now[c]! + BigInt(dt);
    next[c] = now[c]! + BigInt(period());
    tsc[c] = tsc[c]! + BigInt(cycles);
    const counters = ctr[c]!;
    let line = `${now[c]},${c},${vm.id},${tsc[c]}`;
    const extra = firstRound ? null : (o.work?.(vm.id, now[c]!) ?? null);
    for (let e = 0; e < o.events.length; e++) {
      const rate = vm.rates[o.events[e]!] ?? 0;
      const adv = BigInt(Math.round(cycles * rate * (0.9 + 0.2 * rand()) + (extra?.[o.events[e]!] ?? 0)));
      counters[e] = (counters[e]! + adv) % wrap;
      line += `,${counters[e]}`;
    }
    out += `${line}\n`;
    if (++n >= chunkRows) {
      yield out;
      out = '';
      n = 0;
    }
  }
  if (out !== '') yield out;
}

/** The bench's and demo's machine: VMs with distinct appetites, a driver, and the idle VM. */
export function standardVms(count: number, events: readonly string[]): SyntheticVm[] {
  const vms: SyntheticVm[] = [];
  const r = prng(7);
  const roles = ['core', 'drv'];
  for (let i = 0; i < count - 1; i++) {
    const id = roles[i] ?? `vm${i - 1}`;
    vms.push({ id, weight: 1 + r() * 3, rates: Object.fromEntries(events.map((e, k) => [e, (k === 0 ? 2 : 0.01 / (k + 1)) * (0.3 + r())])) });
  }
  vms.push({ id: 'idle', weight: 2, rates: {} });
  return vms;
}
