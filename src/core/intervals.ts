/**
 * Per-reporting-interval accumulators. Interval k covers [k·I, (k+1)·I) ns of the run's time.
 * A quantity spread over [t0, t1) is split among the intervals it overlaps in proportion to time,
 * so totals never depend on the interval length.
 */

/** Calls `add(k, fraction)` for every interval that [t0, t1) overlaps; the fractions sum to 1. */
export function spread(t0: number, t1: number, intervalNs: number, add: (k: number, fraction: number) => void): void {
  const k0 = Math.floor(t0 / intervalNs);
  if (t1 <= t0) {
    add(k0, 1);
    return;
  }
  const k1 = Math.max(k0, Math.ceil(t1 / intervalNs) - 1);
  if (k0 === k1) {
    add(k0, 1);
    return;
  }
  const len = t1 - t0;
  for (let k = k0; k <= k1; k++) {
    const a = Math.max(t0, k * intervalNs);
    const b = Math.min(t1, (k + 1) * intervalNs);
    if (b > a) add(k, (b - a) / len);
  }
}

/**
 * Open intervals, each a Float64Array of `width` slots. Intervals are flushed in ascending order
 * once the caller's watermark has passed them. Should more than `maxOpen` stay open (one CPU of
 * the log went silent), the oldest are flushed early; a late contribution to a flushed interval
 * opens it again and is flushed as a further row for the same interval, so sums are unchanged.
 */
export class IntervalAccumulator {
  private readonly open = new Map<number, Float64Array>();
  private lastK = Number.NaN;
  private lastSlots: Float64Array | null = null;
  /** No open interval has a smaller index (a lower bound). */
  private lowK = Infinity;

  constructor(
    readonly intervalNs: number,
    readonly width: number,
    private readonly onFlush: (k: number, slots: Float64Array) => void,
    private readonly maxOpen = 4096,
  ) {}

  slots(k: number): Float64Array {
    if (k === this.lastK) return this.lastSlots!;
    let s = this.open.get(k);
    if (s === undefined) {
      // Make room first, so the interval being opened cannot be the one flushed.
      if (this.open.size >= this.maxOpen) this.flushOldest(this.maxOpen >> 1);
      s = new Float64Array(this.width);
      this.open.set(k, s);
      if (k < this.lowK) this.lowK = k;
    }
    this.lastK = k;
    this.lastSlots = s;
    return s;
  }

  /** Visits the open intervals (to adjust what they hold before it is written). */
  forEachOpen(visit: (k: number, slots: Float64Array) => void): void {
    for (const [k, s] of this.open) visit(k, s);
  }

  /** Flushes every interval that ends at or before `t`. */
  flushBefore(t: number): void {
    const limit = Math.floor(t / this.intervalNs);
    if (limit <= this.lowK) return;
    const ks: number[] = [];
    for (const k of this.open.keys()) if (k < limit) ks.push(k);
    this.flushKeys(ks);
  }

  flushAll(): void {
    this.flushKeys([...this.open.keys()]);
  }

  private flushOldest(n: number): void {
    this.flushKeys([...this.open.keys()].sort((a, b) => a - b).slice(0, n));
  }

  private flushKeys(ks: number[]): void {
    if (ks.length === 0) return;
    ks.sort((a, b) => a - b);
    for (const k of ks) {
      const s = this.open.get(k)!;
      this.open.delete(k);
      this.onFlush(k, s);
    }
    this.lastK = Number.NaN;
    this.lastSlots = null;
    this.lowK = Infinity;
    for (const k of this.open.keys()) if (k < this.lowK) this.lowK = k;
  }
}
