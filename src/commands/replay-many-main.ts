/**
 * The worker process of `compare`: `node dist/commands/replay-many-main.js '<ReplayManyArgs JSON>'`
 * replays one group of variants (sharing their traces) into scratch databases. Errors are printed
 * like the CLI's, with its exit statuses.
 */
import { isWattraceError } from '../core/errors.js';
import { replayMany, type ReplayManyArgs } from './replay.js';

const args = JSON.parse(process.argv[2] ?? '{}') as ReplayManyArgs;
// Stopped by compare (interrupted): its scratch databases are removed by compare; end quietly.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
replayMany(args).then(
  () => process.exit(0),
  (e: unknown) => {
    if (isWattraceError(e)) {
      process.stderr.write(`wattrace: ${e.format()}\n`);
      process.exit(e.exitCode);
    }
    process.stderr.write(`wattrace: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    process.exit(70);
  },
);
