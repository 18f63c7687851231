/** Text inputs of the importers, streamed a line at a time with its 1-based number. */
import fs from 'node:fs';
import readline from 'node:readline';

export async function* textLines(file: string): AsyncGenerator<{ line: number; raw: string }> {
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let line = 0;
  for await (const raw of rl) yield { line: ++line, raw };
}
