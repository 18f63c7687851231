import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { IntervalAccumulator, spread } from '../../src/core/intervals.js';

describe('spread', () => {
  it('splits in proportion to time, fractions summing to 1', () => {
    const parts: [number, number][] = [];
    spread(50, 350, 100, (k, f) => parts.push([k, f]));
    expect(parts).toEqual([[0, 50 / 300], [1, 100 / 300], [2, 100 / 300], [3, 50 / 300]]);
    fc.assert(
      fc.property(fc.integer({ min: -1e6, max: 1e6 }), fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 5e4 }), (a, len, I) => {
        let sum = 0;
        spread(a, a + len, I, (_, f) => (sum += f));
        expect(Math.abs(sum - 1)).toBeLessThan(1e-9);
      }),
    );
  });
});

describe('IntervalAccumulator', () => {
  it('never loses a contribution when it must flush early', () => {
    // More intervals open than allowed: one stays open at the start while later ones pile up.
    const flushed = new Map<number, number>();
    const acc = new IntervalAccumulator(1, 1, (k, s) => flushed.set(k, (flushed.get(k) ?? 0) + s[0]!), 8);
    let added = 0;
    const add = (k: number, v: number) => {
      const s = acc.slots(k);
      s[0] = s[0]! + v;
      added += v;
    };
    add(0, 1);
    for (let k = 1; k <= 100; k++) add(k, 10);
    add(0, 1000); // a late contribution to the oldest interval, after it was flushed early
    add(-5, 7); // and one older than everything
    acc.flushAll();
    const total = [...flushed.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(added);
    expect(flushed.get(0)).toBe(1001);
    expect(flushed.get(-5)).toBe(7);
  });

  it('flushes intervals in ascending order once the watermark passes them', () => {
    const order: number[] = [];
    const acc = new IntervalAccumulator(10, 1, (k) => order.push(k));
    for (const k of [3, 1, 2, 5]) acc.slots(k);
    acc.flushBefore(30);
    expect(order).toEqual([1, 2]);
    acc.flushAll();
    expect(order).toEqual([1, 2, 3, 5]);
  });
});
