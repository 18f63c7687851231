import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEMO_CSWITCH, DEMO_DISK, demoCswitchText, demoDiskText } from '../../src/generate/demo-fixture.js';

describe('demo fixture', () => {
  it('is exactly what the generator writes (npm run fixtures)', () => {
    expect(fs.readFileSync(DEMO_CSWITCH, 'utf8')).toBe(demoCswitchText());
    expect(fs.readFileSync(DEMO_DISK, 'utf8')).toBe(demoDiskText());
  });

  it('wraps its 48-bit counters early on, as the generator intends', () => {
    const rows = fs.readFileSync(DEMO_CSWITCH, 'utf8').split('\n').slice(1, 200).map((l) => l.split(','));
    const uops = rows.filter((r) => r[1] === '0').map((r) => BigInt(r[4]!));
    expect(uops.some((v, i) => i > 0 && v < uops[i - 1]!)).toBe(true);
  });
});
