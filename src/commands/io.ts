/** Where a command writes: the process in the CLI, buffers in tests. */
export interface IO {
  out(text: string): void;
  err(text: string): void;
  /** True when stderr is a terminal (progress bars only then). */
  readonly errIsTTY: boolean;
}

export const processIO: IO = {
  out: (t) => void process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => void process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  errIsTTY: process.stderr.isTTY === true,
};

/** An IO that records what was written. */
export function bufferIO(): IO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t), errIsTTY: false };
}

/**
 * While `work` runs, Ctrl-C (SIGINT) or SIGTERM undo what it started (`undo`: roll the run back,
 * remove what it created) and end the process with 130 and one line, instead of dying with a
 * transaction half written. Outside `work` the signals behave as usual.
 */
export async function undoOnInterrupt<T>(io: IO, what: string, undo: () => void, work: () => Promise<T>): Promise<T> {
  const onSignal = (signal: NodeJS.Signals) => {
    try {
      undo();
    } finally {
      io.err(`wattrace: interrupted (${signal}): ${what}`);
      process.exit(130);
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await work();
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
