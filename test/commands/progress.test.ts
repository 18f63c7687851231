import { describe, expect, it } from 'vitest';
import { bufferIO } from '../../src/commands/io.js';
import { PROGRESS_AFTER_MS, progressBar } from '../../src/commands/progress.js';

describe('progress bar', () => {
  it('appears only on a terminal, and only once a replay has run for a second', () => {
    const io = bufferIO();
    expect(progressBar(io, 'x')).toBeNull();
    let now = 0;
    const writes: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stderr.write;
    try {
      const bar = progressBar({ ...io, errIsTTY: true }, 'x', () => now)!;
      bar.update(0.5);
      expect(writes.join('')).toBe('');
      now = PROGRESS_AFTER_MS + 1;
      bar.update(0.6);
      bar.stop();
      expect(writes.join('')).toMatch(/x \[.*\] 60%/);
    } finally {
      process.stderr.write = original;
    }
  });
});
