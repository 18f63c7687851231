/**
 * The streaming adapter leaves the event loop a turn while the stages work: batches that are
 * always ready (read ahead, or waiting from the decoder thread) resolve as microtasks only, and
 * a signal handler (Ctrl-C's roll-back) runs in a turn of the event loop — without one it waited
 * for the end of the run, which then committed.
 */
import { describe, expect, it } from 'vitest';
import type { Batch } from '../../src/core/events.js';
import type { Span } from '../../src/core/span.js';
import type { StageGraph } from '../../src/replay/graph.js';
import { pump } from '../../src/replay/runner.js';

describe('pump', () => {
  it('gives the event loop a turn at least every ~50 ms of stage work', async () => {
    async function* ready(): AsyncGenerator<Batch> {
      for (let i = 0; i < 40; i++) yield { length: 1 } as Batch;
    }
    let turns = 0;
    let dispatched = 0;
    const busy: Pick<StageGraph, 'dispatch'> = {
      dispatch: () => {
        // 10 ms of stage work per slice, 400 ms in all.
        const until = performance.now() + 10;
        while (performance.now() < until);
        dispatched++;
      },
    };
    const seen: number[] = [];
    const tick = () => setImmediate(() => seen.push(dispatched));
    const t = setInterval(() => turns++, 0);
    try {
      await pump([ready()], [busy as StageGraph], { see: () => undefined } as unknown as Span, tick);
    } finally {
      clearInterval(t);
    }
    expect(dispatched).toBe(40);
    // A timer ran during the 400 ms, more than a few times: the loop was not starved.
    expect(turns).toBeGreaterThanOrEqual(4);
    // Callbacks queued behind the work ran while slices were still coming, not only at the end.
    expect(seen.filter((d) => d < 40).length).toBeGreaterThan(0);
  });
});
