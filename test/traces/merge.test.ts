import { describe, expect, it } from 'vitest';
import type { Batch, EventSlice } from '../../src/core/events.js';
import { decodeText } from '../../src/traces/csv.js';
import { CswitchDecoder } from '../../src/traces/cswitch.js';
import { DiskDecoder } from '../../src/traces/disk.js';
import { mergeRuns, mergeSources } from '../../src/traces/merge.js';
import { machineOf } from '../helpers.js';

const base = { hi: 0, lo: 0 };
const m = machineOf();

async function* from(batches: Batch[]): AsyncGenerator<Batch> {
  for (const b of batches) yield b;
}

async function collect(it: AsyncGenerator<EventSlice>): Promise<{ kind: string; t: number; line: number }[]> {
  const out: { kind: string; t: number; line: number }[] = [];
  for await (const s of it) for (let i = s.from; i < s.to; i++) out.push({ kind: s.batch.kind, t: s.batch.t[i]!, line: s.batch.line[i]! });
  return out;
}

const cswitch = ['ts_ns,cpu,vm,tsc,uops', '0,0,a,0,0', '10,0,a,10,1', '20,0,b,20,2', '30,0,a,30,3', ''].join('\n');
const disk = ['ts_ns,vm,op,offset,bytes', '5,a,R,0,4096', '20,b,W,4096,512', '25,a,R,8192,4096', ''].join('\n');

describe('mergeSources', () => {
  it('interleaves traces by timestamp; equal timestamps keep source order', async () => {
    const c = decodeText(cswitch, new CswitchDecoder('c.csv', base, m));
    const d = decodeText(disk, new DiskDecoder('d.csv', base, m));
    const events = await collect(mergeSources([from(c), from(d)]));
    expect(events.map((e) => `${e.kind}@${e.t}`)).toEqual(['disk@5', 'switch@10', 'switch@20', 'disk@20', 'disk@25', 'switch@30']);
  });

  it('merges many small batches into the same order', async () => {
    const big = ['ts_ns,cpu,vm,tsc,uops', ...Array.from({ length: 10000 }, (_, i) => `${i * 10},0,a,${i * 10},${i}`), ''].join('\n');
    const dsk = ['ts_ns,vm,op,offset,bytes', ...Array.from({ length: 5000 }, (_, i) => `${i * 20 + 5},a,R,0,512`), ''].join('\n');
    const events = await collect(
      mergeSources([from(decodeText(big, new CswitchDecoder('c.csv', base, m))), from(decodeText(dsk, new DiskDecoder('d.csv', base, m)))]),
    );
    expect(events.length).toBe(9999 + 5000);
    for (let i = 1; i < events.length; i++) expect(events[i]!.t).toBeGreaterThanOrEqual(events[i - 1]!.t);
  });

  it('refuses a source that is not in time order, naming its file and line', async () => {
    const twoCpus = ['ts_ns,cpu,vm,tsc,uops', '0,0,a,0,0', '0,1,a,0,0', '50,0,a,50,1', '40,1,a,40,1', ''].join('\n');
    const c = decodeText(twoCpus, new CswitchDecoder('c.csv', base, m));
    const d = decodeText(disk, new DiskDecoder('d.csv', base, m));
    await expect(collect(mergeSources([from(c), from(d)]))).rejects.toThrow(/not in time order/);
    await expect(collect(mergeSources([from(c), from(d)]))).rejects.toMatchObject({ where: { file: 'c.csv', line: 5 } });
  });

  it('passes a single source straight through, even out of order across CPUs', async () => {
    const twoCpus = ['ts_ns,cpu,vm,tsc,uops', '0,0,a,0,0', '0,1,a,0,0', '50,0,a,50,1', '40,1,a,40,1', ''].join('\n');
    const events = await collect(mergeSources([from(decodeText(twoCpus, new CswitchDecoder('c.csv', base, m)))]));
    expect(events.map((e) => e.t)).toEqual([50, 40]);
  });

  it('in runs: the same slices; a source that reuses its batch object for the next is safe, as the streams do', async () => {
    // Each source hands out ONE batch object, refilled in place on every next() (recycleOnNext):
    // a run consumed after its source moved on would read the next batch's rows.
    async function* reusing(batches: Batch[]): AsyncGenerator<Batch> {
      const shared = { ...batches[0]!, t: new Float64Array(64), line: new Float64Array(64) } as unknown as Batch;
      for (const b of batches) {
        (shared as { length: number }).length = b.length;
        shared.t.set(b.t.subarray(0, b.length));
        (shared.line as Float64Array).set(b.line.subarray(0, b.length));
        yield shared;
      }
    }
    const small = (all: readonly Batch[], per: number): Batch[] => {
      const out: Batch[] = [];
      for (const b of all) for (let i = 0; i < b.length; i += per) out.push({ ...b, t: b.t.slice(i, i + per), line: b.line.slice(i, i + per), length: Math.min(per, b.length - i) } as Batch);
      return out;
    };
    const big = ['ts_ns,cpu,vm,tsc,uops', ...Array.from({ length: 500 }, (_, i) => `${i * 10},0,a,${i * 10},${i}`), ''].join('\n');
    const dsk = ['ts_ns,vm,op,offset,bytes', ...Array.from({ length: 300 }, (_, i) => `${i * 17 + 5},a,R,0,512`), ''].join('\n');
    const sources = () => [small(decodeText(big, new CswitchDecoder('c.csv', base, m)), 7), small(decodeText(dsk, new DiskDecoder('d.csv', base, m)), 5)];
    // Expected without the merge: every row of both sources, stably sorted by time (ties: the
    // cswitch source first, as given).
    const expected = sources()
      .flatMap((bs) => bs.flatMap((b) => Array.from({ length: b.length }, (_, i) => ({ kind: b.kind, t: b.t[i]!, line: b.line[i]! }))))
      .sort((a, b) => a.t - b.t || (a.kind === b.kind ? 0 : a.kind === 'switch' ? -1 : 1));
    const got: { kind: string; t: number; line: number }[] = [];
    let runs = 0;
    for await (const run of mergeRuns(sources().map(reusing))) {
      runs++;
      for (const s of run) for (let i = s.from; i < s.to; i++) got.push({ kind: s.batch.kind, t: s.batch.t[i]!, line: s.batch.line[i]! });
    }
    expect(got).toEqual(expected);
    expect(got.length).toBe(499 + 300);
    // Runs end with a batch: fewer than the slices, at least one per batch.
    expect(runs).toBeGreaterThanOrEqual(Math.ceil(499 / 7) + Math.ceil(300 / 5));
  });
});

