/** The accounted span of a run: from the earliest period start to the latest event (measured power samples aside). */
import type { EventSlice } from './events.js';

export interface RunSpan {
  readonly t0: number;
  readonly t1: number;
  /**
   * Every CPU the cswitch log names, when known (a replay of files): a CPU with a single row has
   * no period, but its time is the machine's all the same (cpu-split charges it as unlogged).
   */
  readonly cpus?: readonly number[];
}

export class Span implements RunSpan {
  t0 = Infinity;
  t1 = -Infinity;
  /** cswitch periods seen. */
  periods = 0;

  see(s: EventSlice): void {
    const b = s.batch;
    // Measured power only validates the accounting (docs/formats.md): it does not make the run longer.
    if (b.kind === 'measured') return;
    if (b.kind === 'switch') this.periods += s.to - s.from;
    const starts = b.kind === 'switch' || b.kind === 'container' ? b.t0 : b.t;
    let lo = this.t0;
    let hi = this.t1;
    for (let i = s.from; i < s.to; i++) {
      if (starts[i]! < lo) lo = starts[i]!;
      // Rows of different CPUs may interleave, so the last row is not always the latest.
      if (b.t[i]! > hi) hi = b.t[i]!;
    }
    this.t0 = lo;
    this.t1 = hi;
  }

  /** The span, or [0, 0] when nothing was seen. */
  get(): RunSpan {
    return this.t1 >= this.t0 ? { t0: this.t0, t1: this.t1 } : { t0: 0, t1: 0 };
  }
}
