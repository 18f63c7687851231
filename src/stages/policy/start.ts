/**
 * The policies' `start_s`, in seconds from the run's start: limits switch on there. One at or after
 * the end of the run (a pipeline written for a longer trace, or `generate --seconds` shorter than
 * the scenario's start) never switches them on, and every "under the limit" metric is then absent:
 * the user hears why instead of missing figures.
 */
import type { RunSpan } from '../../core/span.js';
import { nsToS, sToNs } from '../../core/units.js';

/** A note when limits are set but `setting` (= `startS`) is at or after the run's end, else null. */
export function startAfterRunNote(setting: string, startS: number, limits: number, run: RunSpan): string | null {
  if (limits === 0 || !(run.t1 > run.t0) || sToNs(startS) < run.t1 - run.t0) return null;
  return `${setting} is ${startS} s, at or after the end of the run (${nsToS(run.t1 - run.t0).toFixed(3)} s): its ${limits} limit${limits > 1 ? 's' : ''} never switch${limits > 1 ? '' : 'es'} on, so no figure under a limit is written`;
}
