/**
 * Progress on stderr for replays that take a while (cli-progress), shown only on a terminal and
 * only once a replay has run for PROGRESS_AFTER_MS: short ones finish without a flicker.
 * Progress is the fraction of the traces' time span the stages have reached (runner.ts), so a
 * replay bound by its simulation (the PlanetLab day: 14 MB of trace, seconds of host-strides)
 * shows it as well as one bound by reading.
 */
import cliProgress from 'cli-progress';
import type { IO } from './io.js';

export const PROGRESS_AFTER_MS = 1000;

export interface Progress {
  /** The fraction done, 0 to 1. */
  update(fraction: number): void;
  stop(): void;
}

export function progressBar(io: IO, label: string, now: () => number = Date.now): Progress | null {
  if (!io.errIsTTY) return null;
  const start = now();
  let bar: cliProgress.SingleBar | null = null;
  let stopped = false;
  return {
    update: (fraction) => {
      if (stopped) return;
      if (bar === null) {
        if (now() - start < PROGRESS_AFTER_MS) return;
        bar = new cliProgress.SingleBar(
          {
            format: `${label} [{bar}] {percentage}% | ETA {eta_formatted}`,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
            fps: 5,
            // Drawn whatever stderr claims: the caller has checked it is a terminal (and tests draw it).
            noTTYOutput: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(1000, 0);
      }
      bar.update(Math.round(Math.min(1, Math.max(0, fraction)) * 1000));
    },
    stop: () => {
      stopped = true;
      bar?.stop();
    },
  };
}
