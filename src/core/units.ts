/**
 * Units. Times inside wattrace are nanoseconds (relative to the run's base timestamp unless said
 * otherwise), energy joules, power watts. The brands guard the interfaces between modules — the
 * rows stages write and the context they get — where ns vs s or J vs W are easy to mix up; hot
 * loops work on plain Float64Arrays. Every conversion between ns, ms and s is one of the functions
 * below, so no other module writes 1e9 as a unit factor (the exact decimal readers split numbers
 * at 10^9 for another reason: hi·10^9 + lo).
 */
declare const unit: unique symbol;
type Unit<U extends string> = number & { readonly [unit]: U };

/** Nanoseconds, relative to the run's base timestamp unless said otherwise. */
export type Ns = Unit<'ns'>;
export type Seconds = Unit<'s'>;
export type Joules = Unit<'J'>;
export type Watts = Unit<'W'>;

export const ns = (v: number): Ns => v as Ns;
export const joules = (v: number): Joules => v as Joules;
export const watts = (v: number): Watts => v as Watts;
export const seconds = (v: number): Seconds => v as Seconds;

export const NS_PER_MS = 1e6;
export const NS_PER_S = 1e9;

export const msToNs = (ms: number): Ns => (ms * NS_PER_MS) as Ns;
export const sToNs = (s: number): Ns => (s * NS_PER_S) as Ns;
export const nsToS = (t: number): Seconds => (t / NS_PER_S) as Seconds;
export const nsToMs = (t: number): number => t / NS_PER_MS;
/** A period in ms as whole ns, at least 1 (the length of a reporting interval or manager period). */
export const periodNs = (ms: number): Ns => Math.max(1, Math.round(ms * NS_PER_MS)) as Ns;
/** The rate per second of `amount` over `dt` nanoseconds (bytes/s, say). */
export const perSecond = (amount: number, dt: number): number => (amount * NS_PER_S) / dt;
/** What a rate per second adds up to over `dt` nanoseconds (bytes granted at so many bytes/s). */
export const amountOver = (perS: number, dt: number): number => (perS * dt) / NS_PER_S;
/** Mean power of `e` joules over `dt` nanoseconds (0 for an empty span). */
export const powerOf = (e: number, dt: number): Watts => (dt > 0 ? perSecond(e, dt) : 0) as Watts;
/** Energy of `w` watts drawn for `dt` nanoseconds. */
export const energyOf = (w: number, dt: number): Joules => amountOver(w, dt) as Joules;
/** Time in ns to move `bytes` at `bps` bytes per second. */
export const transferNs = (bytes: number, bps: number): Ns => ((bytes / bps) * NS_PER_S) as Ns;
/** Ticks of a clock at `hz` in `dt` ns, and back. */
export const ticksIn = (dt: number, hz: number): number => (dt * hz) / NS_PER_S;
export const ticksToNs = (ticks: number, hz: number): Ns => ((ticks / hz) * NS_PER_S) as Ns;
/** NS_PER_S as a bigint, for exact absolute timestamps (ns since an epoch exceed 2^53). */
export const NS_PER_S_BIG = 1_000_000_000n;
