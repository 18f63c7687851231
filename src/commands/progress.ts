/** A progress bar on stderr for long replays (cli-progress), shown only on a terminal. */
import cliProgress from 'cli-progress';
import type { IO } from './io.js';

/** Traces smaller than this finish before a bar is worth drawing. */
export const PROGRESS_MIN_BYTES = 32 * 1024 * 1024;

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

export function progressBar(io: IO, totalBytes: number, label: string): Progress | null {
  if (!io.errIsTTY || totalBytes < PROGRESS_MIN_BYTES) return null;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {mb}/{totalMb} MB | ETA {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const mb = (b: number) => (b / 1048576).toFixed(0);
  bar.start(totalBytes, 0, { mb: '0', totalMb: mb(totalBytes) });
  return {
    update: (done, total) => {
      // A replay that reads its traces twice (a first pass) reports twice the bytes.
      if (total !== bar.getTotal()) bar.setTotal(total);
      bar.update(done, { mb: mb(done), totalMb: mb(total) });
    },
    stop: () => bar.stop(),
  };
}
