/**
 * Exact parsing of unsigned decimal integers up to 2^64 − 1 without BigInt on the hot path.
 *
 * A value is split into two exact doubles, `hi · 1e9 + lo` with `lo < 1e9`; a 20-digit value
 * has hi < 1.9e10, far below 2^53. Differences of nearby values (timestamps on one trace,
 * successive counter readings) are exact in doubles; anything else falls back to BigInt.
 */

/** Status codes of `parseUint`; `PARSED` is the scratch output of the last successful parse. */
export const OK = 0;
export const EMPTY = 1;
export const NOT_INTEGER = 2;
export const NEGATIVE = 3;
export const FRACTIONAL = 4;
export const TOO_LARGE = 5;

export const PARSED = { hi: 0, lo: 0 };

const LO_DIGITS = 9;
const LO_SCALE = 1e9;
/** |Δhi| below this keeps Δhi · 1e9 + Δlo under 2^53. */
const FAST_HI_SPAN = 9e6;
const U64_MAX_HI = 18446744073;
/** POW2[b] = 2^b, exact in doubles. */
const POW2 = Float64Array.from({ length: 65 }, (_, b) => 2 ** b);
const U64_MAX_LO = 709551615;

/** Parses `s` into PARSED.{hi,lo}; returns OK or a status saying what is wrong. */
export function parseUint(s: string): number {
  const n = s.length;
  if (n === 0) return EMPTY;
  if (n > 20) return classifyBad(s, n);
  const split = n > LO_DIGITS ? n - LO_DIGITS : 0;
  let hi = 0;
  let lo = 0;
  let i = 0;
  for (; i < split; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return classifyBad(s, n);
    hi = hi * 10 + d;
  }
  for (; i < n; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return classifyBad(s, n);
    lo = lo * 10 + d;
  }
  if (n === 20 && (hi > U64_MAX_HI || (hi === U64_MAX_HI && lo > U64_MAX_LO))) return TOO_LARGE;
  PARSED.hi = hi;
  PARSED.lo = lo;
  return OK;
}

function classifyBad(s: string, n: number): number {
  const t = s.trim();
  if (/^\d+$/.test(t)) return t.length === n ? TOO_LARGE : NOT_INTEGER;
  if (/^-\d+(\.\d*)?$/.test(t)) return NEGATIVE;
  if (/^\+?\d*\.\d+$|^\+?\d+\.\d*$|^\+?\d+(\.\d*)?[eE][+-]?\d+$/.test(t)) return FRACTIONAL;
  return NOT_INTEGER;
}

/** What a status means, for error messages. */
export function describeStatus(status: number, s: string): string {
  switch (status) {
    case EMPTY:
      return 'is empty; expected a non-negative integer';
    case NEGATIVE:
      return `is negative ('${s}'); expected a non-negative integer`;
    case FRACTIONAL:
      return `is not a whole number ('${s}'); expected a non-negative integer`;
    case TOO_LARGE:
      return `is too large ('${s}'); expected an integer below 2^64`;
    default:
      return `is not a number ('${s.length > 40 ? `${s.slice(0, 40)}…` : s}'); expected a non-negative integer`;
  }
}

export function toBigInt(hi: number, lo: number): bigint {
  return BigInt(hi) * 1000000000n + BigInt(lo);
}

/** Decimal text of hi · 1e9 + lo, exact. */
export function formatExact(hi: number, lo: number): string {
  return hi === 0 ? String(lo) : `${hi}${String(lo).padStart(LO_DIGITS, '0')}`;
}

/** Exactly (a − b) as a double when representable, via BigInt otherwise. */
export function diffExact(ahi: number, alo: number, bhi: number, blo: number): number {
  const dh = ahi - bhi;
  if (dh > -FAST_HI_SPAN && dh < FAST_HI_SPAN) return dh * LO_SCALE + (alo - blo);
  return Number(toBigInt(ahi, alo) - toBigInt(bhi, blo));
}

/** The largest value of a `bits`-bit counter as [hi, lo], for an inline range check. */
export function maxOfBits(bits: number): [number, number] {
  const max = (1n << BigInt(bits)) - 1n;
  return [Number(max / 1000000000n), Number(max % 1000000000n)];
}

/** True when hi · 1e9 + lo ≥ 2^bits. */
export function exceedsBits(hi: number, lo: number, bits: number): boolean {
  const [maxHi, maxLo] = maxOfBits(bits);
  return hi > maxHi || (hi === maxHi && lo > maxLo);
}

/**
 * Advance of a counter of `bits` bits from (phi, plo) to (hi, lo), modulo 2^bits (§3.2.1: the
 * hardware counters wrap). Two readings tell the advance unambiguously only if it is under half
 * the counter's range: a reading below the previous one is a wrap when the wrapped advance is
 * under 2^(bits−1), and any advance of 2^(bits−1) or more (forward, or backwards beyond a
 * plausible wrap) is refused with −1.
 */
export function counterAdvance(hi: number, lo: number, phi: number, plo: number, bits: number): number {
  const dh = hi - phi;
  if (bits <= 52 && dh > -FAST_HI_SPAN && dh < FAST_HI_SPAN) {
    let d = dh * LO_SCALE + (lo - plo);
    if (d < 0) d += POW2[bits]!;
    return d < POW2[bits - 1]! ? d : -1;
  }
  if (dh >= 0 && dh < FAST_HI_SPAN) {
    const d = dh * LO_SCALE + (lo - plo);
    if (d >= 0) return d < POW2[bits - 1]! ? d : -1;
  }
  const range = 1n << BigInt(bits);
  let d = toBigInt(hi, lo) - toBigInt(phi, plo);
  if (d < 0n) d += range;
  return d < range >> 1n ? Number(d) : -1;
}
