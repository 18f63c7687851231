/** Limits whose start_s is at or after the end of the run never switch on: the replay says so. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../../../src/commands/generate.js';
import { bufferIO } from '../../../src/commands/io.js';
import { startAfterRunNote } from '../../../src/stages/policy/start.js';
import { cli, tmpDir } from '../../helpers.js';

describe('start_s at or after the end of the run', () => {
  it('by hand: 45 s against runs of 20 s and 45 s is a note, against 45.001 s or without limits none', () => {
    const run = (s: number) => ({ t0: 0, t1: s * 1e9 });
    expect(startAfterRunNote('policy.disk.start_s', 45, 2, run(20))).toBe('policy.disk.start_s is 45 s, at or after the end of the run (20.000 s): its 2 limits never switch on, so no figure under a limit is written');
    expect(startAfterRunNote('policy.cpu.start_s', 45, 1, run(45))).toBe('policy.cpu.start_s is 45 s, at or after the end of the run (45.000 s): its 1 limit never switches on, so no figure under a limit is written');
    expect(startAfterRunNote('policy.cpu.start_s', 45, 1, run(45.001))).toBeNull();
    expect(startAfterRunNote('policy.cpu.start_s', 45, 0, run(20))).toBeNull();
  });

  it('generate paper-fig8 --seconds 20 keeps start_s 45: the replay notes it (before: no disk.*.mean_watts and no word why)', async () => {
    const dir = tmpDir();
    generate({ scenario: 'paper-fig8', out: dir, seed: 1, seconds: 20 }, bufferIO());
    const r = await cli(['replay', path.join(dir, 'pipeline.json'), '--db', path.join(dir, 'x.sqlite'), '--quiet']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('wattrace: note: policy.disk.start_s is 45 s, at or after the end of the run (20.000 s): its 2 limits never switch on');
  }, 60_000);
});
