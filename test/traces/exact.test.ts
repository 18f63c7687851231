import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EMPTY, FRACTIONAL, NEGATIVE, NOT_INTEGER, OK, PARSED, TOO_LARGE,
  counterAdvance, diffExact, exceedsBits, formatExact, parseUint, toBigInt,
} from '../../src/traces/exact.js';

describe('parseUint', () => {
  it('parses values above 2^53 exactly', () => {
    for (const s of ['9007199254740993', '1732400000000000001', '18446744073709551615', '0', '000123']) {
      expect(parseUint(s)).toBe(OK);
      expect(toBigInt(PARSED.hi, PARSED.lo)).toBe(BigInt(s));
      expect(formatExact(PARSED.hi, PARSED.lo)).toBe(BigInt(s).toString());
    }
  });

  it('round-trips any u64', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        expect(parseUint(v.toString())).toBe(OK);
        expect(toBigInt(PARSED.hi, PARSED.lo)).toBe(v);
      }),
    );
  });

  it('says what is wrong', () => {
    expect(parseUint('')).toBe(EMPTY);
    expect(parseUint('-5')).toBe(NEGATIVE);
    expect(parseUint('1.5')).toBe(FRACTIONAL);
    expect(parseUint('1e3')).toBe(FRACTIONAL);
    expect(parseUint('abc')).toBe(NOT_INTEGER);
    expect(parseUint(' 12')).toBe(NOT_INTEGER);
    expect(parseUint('18446744073709551616')).toBe(TOO_LARGE);
    expect(parseUint('123456789012345678901')).toBe(TOO_LARGE);
  });
});

describe('differences and counter advances', () => {
  const split = (v: bigint): [number, number] => [Number(v / 1000000000n), Number(v % 1000000000n)];

  it('subtracts 19-digit timestamps exactly', () => {
    const [ah, al] = split(1732400000000000007n);
    const [bh, bl] = split(1732399999999999999n);
    expect(diffExact(ah, al, bh, bl)).toBe(8);
  });

  it('wraps a 48-bit counter once, within half its range', () => {
    const [ph, pl] = split(2n ** 48n - 10n);
    const [ch, cl] = split(5n);
    expect(counterAdvance(ch, cl, ph, pl, 48)).toBe(15);
  });

  it('wraps a 64-bit counter (BigInt path)', () => {
    const [ph, pl] = split(2n ** 64n - 3n);
    const [ch, cl] = split(4n);
    expect(counterAdvance(ch, cl, ph, pl, 64)).toBe(7);
  });

  it('rejects a jump of half the range or more, forward or backwards', () => {
    expect(counterAdvance(...split(2n ** 48n - 10n), ...split(10n), 48)).toBe(-1);
    expect(counterAdvance(...split(2n ** 47n - 1n), 0, 0, 48)).toBe(2 ** 47 - 1);
    expect(counterAdvance(...split(2n ** 47n), 0, 0, 48)).toBe(-1);
  });

  it('rejects a backwards step that is no plausible wrap', () => {
    const [ph, pl] = split(1000n);
    const [ch, cl] = split(999n);
    expect(counterAdvance(ch, cl, ph, pl, 48)).toBe(-1);
    expect(counterAdvance(ch, cl, ph, pl, 64)).toBe(-1);
    // From 2^47 − 1 down to 0 would be a wrap of 2^47 + 1: over half the range, so not a wrap.
    expect(counterAdvance(0, 0, ...split(2n ** 47n - 1n), 48)).toBe(-1);
    // From 2^47 + 1 down to 0 is a wrap of 2^47 − 1: plausible.
    expect(counterAdvance(0, 0, ...split(2n ** 47n + 1n), 48)).toBe(2 ** 47 - 1);
  });

  it('agrees with BigInt arithmetic for any pair of counter readings', () => {
    fc.assert(
      fc.property(fc.integer({ min: 8, max: 64 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (bits, a, b) => {
        const range = 2n ** BigInt(bits);
        const prev = a % range;
        const cur = b % range;
        const adv = (((cur - prev) % range) + range) % range;
        const expected = adv < range / 2n ? Number(adv) : -1;
        expect(counterAdvance(...split(cur), ...split(prev), bits)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('knows the counter range', () => {
    expect(exceedsBits(...split(2n ** 48n - 1n), 48)).toBe(false);
    expect(exceedsBits(...split(2n ** 48n), 48)).toBe(true);
    expect(exceedsBits(...split(2n ** 60n), 56)).toBe(true);
    expect(exceedsBits(...split(2n ** 56n - 1n), 56)).toBe(false);
  });
});
