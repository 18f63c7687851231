/**
 * Merges several traces into one time-ordered stream of event slices. Each source must be in
 * time order itself (a merge cannot reorder what it has not seen without unbounded buffering);
 * equal timestamps keep the order of the sources as given (cswitch, disk, guest, measured).
 */
import { WattraceError } from '../core/errors.js';
import type { Batch, EventSlice } from '../core/events.js';

interface Head {
  readonly index: number;
  readonly iter: AsyncIterator<Batch>;
  batch: Batch | null;
  pos: number;
  /** Last timestamp emitted from this source, to check its own order. */
  last: number;
  lastLine: number;
}

async function advance(h: Head): Promise<void> {
  while (h.batch === null || h.pos >= h.batch.length) {
    const r = await h.iter.next();
    if (r.done) {
      h.batch = null;
      return;
    }
    h.batch = r.value;
    h.pos = 0;
  }
}

/** Yields slices of the given sources in timestamp order; one source passes straight through. */
export async function* mergeSources(sources: readonly AsyncIterable<Batch>[]): AsyncGenerator<EventSlice> {
  for await (const run of mergeRuns(sources)) yield* run;
}

/**
 * `mergeSources` in runs: the slices up to the end of a batch of one source come as one array, so
 * the consumer pays one asynchronous step per batch rather than per slice (a disk log interleaved
 * with a cswitch log cuts its batches into slices of some twenty rows). A run ends before a batch
 * is replaced: a stream may reuse a batch once it is asked for the next, so a run's slices must be
 * consumed before the next run is asked for.
 */
export async function* mergeRuns(sources: readonly AsyncIterable<Batch>[]): AsyncGenerator<readonly EventSlice[]> {
  if (sources.length === 1) {
    for await (const b of sources[0]!) if (b.length > 0) yield [{ batch: b, from: 0, to: b.length }];
    return;
  }
  const heads: Head[] = sources.map((s, index) => ({ index, iter: s[Symbol.asyncIterator](), batch: null, pos: 0, last: -Infinity, lastLine: 0 }));
  await Promise.all(heads.map(advance));
  let run: EventSlice[] = [];
  for (;;) {
    let best: Head | null = null;
    let second = Infinity;
    let secondIndex = Infinity;
    for (const h of heads) {
      if (h.batch === null) continue;
      const t = h.batch.t[h.pos]!;
      if (best === null || t < best.batch!.t[best.pos]! || (t === best.batch!.t[best.pos]! && h.index < best.index)) {
        if (best !== null) {
          second = best.batch!.t[best.pos]!;
          secondIndex = best.index;
        }
        best = h;
      } else if (t < second || (t === second && h.index < secondIndex)) {
        second = t;
        secondIndex = h.index;
      }
    }
    if (best === null) {
      if (run.length > 0) yield run;
      return;
    }
    const b = best.batch!;
    const from = best.pos;
    let to = from;
    // Take every record that still precedes the other sources' heads (ties by source order).
    while (to < b.length) {
      const t = b.t[to]!;
      if (t > second || (t === second && best.index > secondIndex)) break;
      if (t < best.last) {
        throw new WattraceError(
          'E_ORDER',
          `rows are not in time order (this row is earlier than line ${best.lastLine}); when several traces are merged each must be sorted by ts_ns`,
          { file: b.file, line: b.line[to]! },
        );
      }
      best.last = t;
      best.lastLine = b.line[to]!;
      to++;
    }
    best.pos = to;
    run.push({ batch: b, from, to });
    if (to >= b.length) {
      // The batch is used up: its source's next one may replace it, so the run goes first.
      yield run;
      run = [];
      await advance(best);
    }
  }
}
