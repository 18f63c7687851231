/**
 * Fuzzing every reader and importer through the CLI (fast-check over random bytes and over
 * mutations of valid inputs): the outcome is always a result (exit 0, which the run-time
 * conservation check guards) or one line naming where the input is wrong (exit 2) — never exit 70,
 * never a stack trace, never a silent partial result. Bounded to a few seconds per target in
 * `npm test`; WATTRACE_FUZZ_SECONDS=60 (per target) fuzzes longer.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { demoCswitchText, demoDiskText } from '../src/generate/demo-fixture.js';
import { PROJECT_ROOT } from '../src/core/json.js';
import { cli, perfStat, tmpDir } from './helpers.js';

const SECONDS = Number(process.env['WATTRACE_FUZZ_SECONDS'] ?? '3');
const dir = tmpDir('wattrace-fuzz-');
let n = 0;

/** A random edit of a text: bytes replaced, inserted or deleted, a cut, a line repeated or dropped. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ kind: fc.constant('insertText' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), text: fc.constantFrom(',', '\n', '-', '1e308', '99999999999999999999999', 'idle', '"', '\r\n', '', ' ', '0', 'NaN', '\u0000', 'vm9') }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), len: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('dupLine' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(text: Buffer, ms: readonly Mutation[]): Buffer {
  let b = text;
  for (const m of ms) {
    const at = Math.floor(m.at * b.length);
    if (m.kind === 'replace') b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at + m.bytes.length)]);
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
    else if (m.kind === 'insertText') b = Buffer.concat([b.subarray(0, at), Buffer.from(m.text), b.subarray(at)]);
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
    else if (m.kind === 'cut') b = b.subarray(0, at);
    else {
      const s = b.toString('latin1');
      const start = s.lastIndexOf('\n', at) + 1;
      const end = s.indexOf('\n', at);
      const line = s.slice(start, end < 0 ? s.length : end + 1);
      b = Buffer.concat([b.subarray(0, start), Buffer.from(line, 'latin1'), b.subarray(start)]);
    }
  }
  return b;
}

/** An input: either a mutation of a valid one, or bytes of no format at all. */
const inputOf = (valid: Buffer) => fc.oneof({ weight: 4, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 4 }).map((ms) => mutate(valid, ms)) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)) });

/** Exit 0, or exit 2 with one line that names the problem; anything else is a failure. */
function expectClean(r: { code: number; out: string; err: string }, what: string): void {
  expect([0, 2], `${what}: exit ${r.code}: ${r.err}`).toContain(r.code);
  expect(r.err, what).not.toMatch(/internal error|\n\s+at |Error:/);
  if (r.code === 2) {
    const errors = r.err.split('\n').filter((l) => l.startsWith('wattrace: ') && !l.startsWith('wattrace: note: '));
    expect(errors, `${what}: ${r.err}`).toHaveLength(1);
    expect(errors[0]!.length, what).toBeLessThan(1000);
  }
}

const options = { numRuns: 100_000, interruptAfterTimeLimit: SECONDS * 1000, markInterruptAsFailure: false };

/** Replays `stages` over the traces (one of them mutated) and the profile. */
async function replayWith(files: Record<string, Buffer | string>, pipeline: object): Promise<{ code: number; out: string; err: string }> {
  const d = path.join(dir, `r${n++}`);
  fs.mkdirSync(d);
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(d, name), content);
  fs.writeFileSync(path.join(d, 'p.json'), JSON.stringify(pipeline));
  return cli(['replay', path.join(d, 'p.json'), '--db', path.join(d, 'db.sqlite'), '--quiet']);
}

const demoProfile = fs.readFileSync(path.join(PROJECT_ROOT, 'fixtures', 'demo', 'machine.json'));
const cswitch = Buffer.from(demoCswitchText().split('\n').slice(0, 300).join('\n') + '\n');
const disk = Buffer.from(demoDiskText().split('\n').slice(0, 60).join('\n') + '\n');
const STAGES = ['cpu-split', 'disk-energy', 'driver-charge', 'virtual-counters'];
const PIPELINE = { name: 'fuzz', profile: 'machine.json', traces: { cswitch: 'cswitch.csv', disk: 'disk.csv' }, stages: STAGES };

describe('fuzzing the readers', () => {
  it('cswitch.csv', async () => {
    await fc.assert(fc.asyncProperty(inputOf(cswitch), async (c) => expectClean(await replayWith({ 'machine.json': demoProfile, 'cswitch.csv': c, 'disk.csv': disk }, PIPELINE), 'cswitch')), options);
  }, 120_000);

  it('disk.csv', async () => {
    await fc.assert(fc.asyncProperty(inputOf(disk), async (d) => expectClean(await replayWith({ 'machine.json': demoProfile, 'cswitch.csv': cswitch, 'disk.csv': d }, PIPELINE), 'disk')), options);
  }, 120_000);

  it('guest.csv and measured.csv', async () => {
    const guest = Buffer.from(['ts_ns,vm,cpu,container,tsc,uops,l2_miss', ...cswitch.toString().split('\n').slice(1, -1).filter((l) => l.split(',')[2] === 'vm2').map((l, i) => { const f = l.split(','); return [f[0], 'vm2', f[1], i % 2 ? 'a' : 'b', f[3], f[4], f[5]].join(','); })].join('\n') + '\n');
    const measured = Buffer.from(['ts_ns,device,watts', ...Array.from({ length: 50 }, (_, i) => `${1_732_400_000_000_000_000n + BigInt(i) * 20_000_000n},cpu,${100 + (i % 7)}`)].join('\n') + '\n');
    const p = { ...PIPELINE, traces: { cswitch: 'cswitch.csv', guest: 'guest.csv', measured: 'measured.csv' }, stages: ['cpu-split', 'virtual-counters', 'guest-containers'] };
    await fc.assert(
      fc.asyncProperty(inputOf(guest), inputOf(measured), fc.boolean(), async (g, m, which) =>
        expectClean(await replayWith({ 'machine.json': demoProfile, 'cswitch.csv': cswitch, 'guest.csv': which ? g : guest, 'measured.csv': which ? measured : m }, p), 'guest/measured'),
      ),
      options,
    );
  }, 120_000);

  it('machine profiles and pipelines', async () => {
    await fc.assert(
      fc.asyncProperty(inputOf(demoProfile), inputOf(Buffer.from(JSON.stringify(PIPELINE))), fc.boolean(), async (prof, pipe, which) => {
        const d = path.join(dir, `j${n++}`);
        fs.mkdirSync(d);
        fs.writeFileSync(path.join(d, 'machine.json'), which ? prof : demoProfile);
        fs.writeFileSync(path.join(d, 'cswitch.csv'), cswitch);
        fs.writeFileSync(path.join(d, 'disk.csv'), disk);
        fs.writeFileSync(path.join(d, 'p.json'), which ? JSON.stringify(PIPELINE) : pipe);
        expectClean(await cli(['replay', path.join(d, 'p.json'), '--db', path.join(d, 'db.sqlite'), '--quiet']), 'json');
      }),
      options,
    );
  }, 120_000);
});

/** Valid inputs of each importer, small. */
const IMPORTS: Record<string, Buffer> = {
  blkparse: fs.readFileSync(path.join(PROJECT_ROOT, 'test', 'importers', 'blkparse', 'vda.blkparse.txt')),
  ftrace: Buffer.from(
    ['# tracer: nop', ...Array.from({ length: 40 }, (_, i) => `          app-1${i % 3}    [00${i % 2}] d..2 ${(1 + i / 1000).toFixed(6)}: sched_switch: prev_comm=app prev_pid=1${i % 3} prev_prio=120 prev_state=R ==> next_comm=${i % 4 ? 'b' : 'swapper/0'} next_pid=${i % 4 ? 11 : 0} next_prio=120`)].join('\n') + '\n',
  ),
  disksim: Buffer.from(Array.from({ length: 30 }, (_, i) => `${i * 1000} 0 ${i * 8} 8 ${i % 2}`).join('\n') + '\n'),
  'vscsi-csv': Buffer.from(['version,time,op,size,lbn', ...Array.from({ length: 30 }, (_, i) => `1,${5633898 + i},2a,4096,${i * 8}`)].join('\n') + '\n'),
  msr: Buffer.from(Array.from({ length: 30 }, (_, i) => `${128166372000000000 + i * 1000},usr,0,${i % 2 ? 'Read' : 'Write'},${i * 4096},4096,${100 + i}`).join('\n') + '\n'),
};

describe('fuzzing calibrate --samples', () => {
  const samples = Buffer.from(['power,cycles,misses', ...Array.from({ length: 40 }, (_, i) => `${20 + (i % 7) * 3 + (i % 3)},${1e9 * (1 + (i % 7))},${1e6 * (1 + (i % 3))}`)].join('\n') + '\n');
  for (const [name, valid, target] of [['a samples CSV', samples, 'power'], ['perf stat -I -x,', Buffer.from(perfStat()), 'power/energy-pkg/']] as const) {
    it(name, async () => {
      await fc.assert(
        fc.asyncProperty(inputOf(valid), async (input) => {
          const d = path.join(dir, `c${n++}`);
          fs.mkdirSync(d);
          fs.writeFileSync(path.join(d, 'samples'), input);
          expectClean(await cli(['calibrate', '--samples', path.join(d, 'samples'), '--target', target, '--out', path.join(d, 'profile.json')]), name);
        }),
        options,
      );
    }, 120_000);
  }
});

describe('fuzzing the importers', () => {
  for (const [format, valid] of Object.entries(IMPORTS)) {
    it(format, async () => {
      await fc.assert(
        fc.asyncProperty(inputOf(valid), async (input) => {
          const d = path.join(dir, `i${n++}`);
          fs.mkdirSync(d);
          const f = path.join(d, 'input');
          fs.writeFileSync(f, input);
          const r = await cli(['import', format, f, '--out', path.join(d, 'out')]);
          expectClean(r, format);
          // What an import wrote replays (or is refused with one located line).
          if (r.code === 0 && fs.existsSync(path.join(d, 'out', 'pipeline.json'))) expectClean(await cli(['replay', path.join(d, 'out', 'pipeline.json'), '--db', path.join(d, 'db.sqlite'), '--quiet']), `${format} replay`);
        }),
        options,
      );
    }, 120_000);
  }
});
