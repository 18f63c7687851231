/**
 * The byte-level reader (src/traces/scan.ts) against things it is not: csv-parse (the reader it
 * replaced, an independent CSV implementation) on random lines, String.split on random chunkings,
 * and parseUint (the string parser) on random digit strings. Plus the cases a real file has: CRLF,
 * a BOM however the chunks are cut, a last line without a newline, a line cut at a chunk end.
 */
import fc from 'fast-check';
import { parse as parseSync } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { PARSED, parseUint } from '../../src/traces/exact.js';
import { ByteNames, Fields, LineScanner, MAX_LINE_BYTES, parseUintAt } from '../../src/traces/scan.js';
import { chunkStream } from '../../src/traces/csv.js';
import { CswitchDecoder } from '../../src/traces/cswitch.js';
import { machineOf } from '../helpers.js';

/** Every line's fields as strings, scanning `chunks` in order (stopping after every line). */
function scanAll(chunks: readonly Buffer[]): string[][] {
  const lines: string[][] = [];
  const sink = {
    push(f: Fields) {
      const out: string[] = [];
      for (let i = 0; i < f.n; i++) out.push(f.text(i));
      lines.push(out);
    },
  };
  const s = new LineScanner(sink, 'x.csv');
  s.fields.reserve(1024);
  for (const c of chunks) {
    s.feed(c);
    while (s.pending) s.scan(() => true);
  }
  s.end();
  return lines;
}

/** Cuts `buf` at the given fractions. */
function cutAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * buf.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let p = 0;
  for (const a of at) {
    out.push(buf.subarray(p, a));
    p = a;
  }
  out.push(buf.subarray(p));
  return out;
}

// Field text: anything but the line ends and the comma (and '"', which csv-parse with quote:false
// reads as a character too, but keep the alphabet to what trace fields hold plus some noise).
const field = fc.string({ unit: fc.constantFrom('0', '1', '9', 'a', 'v', 'm', '-', '.', ' ', 'é', '\u0000', '\t'), maxLength: 12 });
const line = fc.array(field, { minLength: 1, maxLength: 8 }).map((fs) => fs.join(','));

describe('byte-level scanner', () => {
  it('splits lines and fields as csv-parse (quote: false) does, for \\n and for \\r\\n files', () => {
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 30 }), fc.boolean(), fc.boolean(), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), (ls, crlf, finalNewline, cuts) => {
        const eol = crlf ? '\r\n' : '\n';
        const text = ls.join(eol) + (finalNewline ? eol : '');
        const reference = parseSync(text, { cast: false, quote: false, relax_column_count: true, skip_empty_lines: false, record_delimiter: crlf ? '\r\n' : '\n' }) as string[][];
        expect(scanAll(cutAt(Buffer.from(text), cuts))).toEqual(reference);
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same lines however the bytes are chunked, one byte at a time included', () => {
    const text = '\uFEFFts_ns,cpu\r\n1,0\n22,é\r\n\n333,1';
    const whole = scanAll([Buffer.from(text)]);
    expect(whole).toEqual([['ts_ns', 'cpu'], ['1', '0'], ['22', 'é'], [''], ['333', '1']]);
    const bytes = Buffer.from(text);
    expect(scanAll([...bytes].map((b) => Buffer.from([b])))).toEqual(whole);
  });

  it('refuses a line longer than 64 MiB instead of growing without end', () => {
    const s = new LineScanner({ push() {} }, 'big.csv');
    const chunk = Buffer.alloc(1 << 20, 0x31);
    expect(() => {
      for (let i = 0; i <= MAX_LINE_BYTES >> 20; i++) {
        s.feed(chunk);
        s.scan(() => false);
      }
    }).toThrow(expect.objectContaining({ message: expect.stringMatching(/^line 1 is longer than 64 MiB without a newline/), where: { file: 'big.csv', line: 1 } }));
  });

  it('parses integers from bytes exactly as parseUint does from text, failures included', () => {
    const digits = fc.string({ unit: fc.constantFrom('0', '1', '5', '9'), minLength: 1, maxLength: 22 });
    const noisy = fc.string({ unit: fc.constantFrom('0', '7', '9', '-', '.', 'e', ' ', '+', 'x'), maxLength: 22 });
    fc.assert(
      fc.property(fc.oneof(digits, noisy, fc.constantFrom('18446744073709551615', '18446744073709551616', '99999999999999999999', '')), (s) => {
        const byText = parseUint(s);
        const t = { ...PARSED };
        const buf = Buffer.from(`,${s},`);
        const byBytes = parseUintAt(buf, 1, buf.length - 1);
        expect(byBytes).toBe(byText);
        if (byText === 0) expect({ ...PARSED }).toEqual(t);
      }),
      { numRuns: 2000 },
    );
  });

  it('looks names up by their bytes, new names added as they come', () => {
    const names = new ByteNames([
      ['vm1', 0],
      ['idle', 7],
    ]);
    const b = Buffer.from('vm1,idle,vm10,vm,ïdle');
    expect([names.get(b, 0, 3), names.get(b, 4, 8), names.get(b, 9, 13), names.get(b, 14, 16), names.get(b, 17, b.length)]).toEqual([0, 7, -1, -1, -1]);
    let next = 100;
    for (let i = 0; i < 1000; i++) {
      const k = Buffer.from(`c${i}`);
      expect(names.intern(k, 0, k.length, () => next++)).toBe(100 + i);
    }
    const k = Buffer.from('c500');
    expect(names.intern(k, 0, k.length, () => -5)).toBe(600);
    expect(names.size).toBe(1002);
  });

  it('streams a trace cut into chunks of every size to the same periods', async () => {
    const rows = ['ts_ns,cpu,vm,tsc,uops', ...Array.from({ length: 300 }, (_, i) => `${1000 + i * 10},${i % 2},${i % 3 ? 'a' : 'b'},${i * 10},${i * 7}`)];
    const text = rows.join('\r\n') + '\r\n';
    const read = async (n: number) => {
      const buf = Buffer.from(text);
      const chunks: Buffer[] = [];
      for (let i = 0; i < buf.length; i += n) chunks.push(buf.subarray(i, i + n));
      const out: number[] = [];
      for await (const b of chunkStream(chunks, new CswitchDecoder('c.csv', { hi: 0, lo: 1000 }, machineOf()))) {
        for (let i = 0; i < b.length; i++) out.push(b.t[i]!, b.t0[i]!, b.vm[i]!, b.dev[i]!, b.line[i]!);
      }
      return out;
    };
    const whole = await read(text.length);
    expect(whole.length).toBe(298 * 5);
    for (const n of [1, 2, 7, 64, 1000]) expect(await read(n)).toEqual(whole);
  });
});
