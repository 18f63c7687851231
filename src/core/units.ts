/**
 * Branded units where a mix-up is likely (ns vs ms vs s, J vs W). Hot loops work on plain
 * Float64Arrays; these brands guard the APIs between modules.
 */
declare const unit: unique symbol;
type Unit<U extends string> = number & { readonly [unit]: U };

/** Nanoseconds, relative to the run's base timestamp unless said otherwise. */
export type Ns = Unit<'ns'>;
export type Joules = Unit<'J'>;
export type Watts = Unit<'W'>;

export const ns = (v: number): Ns => v as Ns;
export const joules = (v: number): Joules => v as Joules;
export const watts = (v: number): Watts => v as Watts;

export const NS_PER_MS = 1e6;
export const NS_PER_S = 1e9;

export const msToNs = (ms: number): Ns => (ms * NS_PER_MS) as Ns;
export const nsToS = (t: Ns | number): number => t / NS_PER_S;
/** Mean power of `e` joules over `dt` nanoseconds (0 for an empty span). */
export const powerOf = (e: Joules | number, dt: Ns | number): Watts =>
  (dt > 0 ? (e * NS_PER_S) / dt : 0) as Watts;
