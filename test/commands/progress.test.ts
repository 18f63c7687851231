import { describe, expect, it } from 'vitest';
import { bufferIO } from '../../src/commands/io.js';
import { PROGRESS_MIN_BYTES, progressBar } from '../../src/commands/progress.js';

describe('progress bar', () => {
  it('appears only on a terminal and for large traces', () => {
    const io = bufferIO();
    expect(progressBar(io, PROGRESS_MIN_BYTES * 4, 'x')).toBeNull();
    expect(progressBar({ ...io, errIsTTY: true }, 1000, 'x')).toBeNull();
    const bar = progressBar({ ...io, errIsTTY: true }, PROGRESS_MIN_BYTES * 4, 'x');
    expect(bar).not.toBeNull();
    bar!.update(PROGRESS_MIN_BYTES, PROGRESS_MIN_BYTES * 4);
    bar!.stop();
  });
});
