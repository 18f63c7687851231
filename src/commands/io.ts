import fs from 'node:fs';
/** Where a command writes: the process in the CLI, buffers in tests. */
export interface IO {
  out(text: string): void;
  err(text: string): void;
  /** True when stderr is a terminal (progress bars only then). */
  readonly errIsTTY: boolean;
}

/** Streams of the process whose reader has gone (a closed pipe): written to no more. */
const gone = new Set<NodeJS.WriteStream>();

/**
 * Standard output and error as the CLI handles their failures: a reader that stops reading
 * (`wattrace matrix … | head -2`: EPIPE) ends that output quietly and the command goes on to its
 * own exit status (compare's 1 for a broken expectation stays 1); any other write error (a full
 * disk) ends that output too, and the command still finishes (its roll-back and clean-up
 * included), then exits 2 with one line, never a stack trace.
 */
export function handleOutputErrors(): void {
  let failed: string | null = null;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      gone.add(stream);
      if (e.code !== 'EPIPE') failed ??= `wattrace: cannot write to standard ${stream === process.stdout ? 'output' : 'error'}: ${e.message}\n`;
    });
  }
  process.on('exit', () => {
    if (failed === null) return;
    if (!gone.has(process.stderr)) {
      try {
        fs.writeSync(2, failed);
      } catch {
        // stderr is gone too: the exit status says it.
      }
    }
    // An interrupt's 130 stands; anything else becomes 2.
    if (process.exitCode !== 130) process.exitCode = 2;
  });
}

const write = (stream: NodeJS.WriteStream, t: string): void => {
  if (!gone.has(stream)) stream.write(t.endsWith('\n') ? t : `${t}\n`);
};

export const processIO: IO = {
  out: (t) => write(process.stdout, t),
  err: (t) => write(process.stderr, t),
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
 * remove what it created) and end the process with 130 and one line (`what`, asked at the signal:
 * a run committed by then says so), instead of dying with a transaction half written. Outside
 * `work` the signals behave as usual, so `work` should include the commit: a signal during a
 * synchronous commit then waits for it and is acted on at the next turn of the event loop, which
 * `work` gives it by ending with `signalsTurn()`.
 */
export async function undoOnInterrupt<T>(io: IO, what: string | (() => string), undo: () => void, work: () => Promise<T>, stop?: () => void): Promise<T> {
  let running: Promise<T> | null = null;
  let stopping = false;
  const finish = (signal: NodeJS.Signals) => {
    try {
      undo();
    } finally {
      io.err(`wattrace: interrupted (${signal}): ${typeof what === 'string' ? what : what()}`);
      process.exit(130);
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    // A second signal while waiting for the work to stop: undo now.
    if (stopping || !stop || !running) return finish(signal);
    // Work that writes on threads of its own (DuckDB) is told to stop first, and undone once it
    // has (at most STOP_WAIT_MS later): undone while it still ran, it wrote files after the undo.
    stopping = true;
    try {
      stop();
    } catch {
      // Stopped already.
    }
    const waited = new Promise<void>((r) => setTimeout(r, STOP_WAIT_MS));
    void Promise.race([running.then(noop, noop), waited]).then(() => finish(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    running = work();
    const r = await running;
    if (stopping) await NEVER;
    return r;
  } catch (e) {
    // The work failed because it was told to stop: the signal's handler ends the process.
    if (stopping) await NEVER;
    throw e;
  } finally {
    if (!stopping) {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
  }
}

/** Longest wait for interrupted work to stop before it is undone. */
const STOP_WAIT_MS = 10_000;
const noop = (): void => {};
/** A promise that never settles (the process ends first). */
const NEVER = new Promise<never>(() => {});

/**
 * Turns of the event loop enough for a signal that arrived during synchronous work (a commit) to
 * reach its handler before the handler is removed. libuv reads pending signals in its poll phase;
 * `setImmediate` runs in the check phase after it. Called from a callback of the poll phase itself
 * (a child's exit), the first check phase can come before a poll that reads the signal, so two.
 */
export async function signalsTurn(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
}
