/**
 * Every bad input (docs/formats.md) is a clear error naming file, line and column, exit status 2,
 * and the store is left byte for byte as it was (or not created at all).
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIO } from '../../src/commands/io.js';
import { profileOf, sha256File, tmpDir } from '../helpers.js';

const dir = tmpDir();
const GOOD_TRACE = ['ts_ns,cpu,vm,tsc,uops', '1000,0,a,0,0', '2000,0,a,1000,500', '3000,0,b,2000,900', ''].join('\n');
const db = path.join(dir, 'store.sqlite');

function write(name: string, content: string | object): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return f;
}

function pipelineFor(name: string, over: Record<string, unknown> = {}): string {
  return write(`${name}.pipeline.json`, {
    name,
    profile: over['profile'] ?? 'machine.json',
    traces: over['traces'] ?? { cswitch: `${name}.csv` },
    stages: over['stages'] ?? ['cpu-split'],
    ...Object.fromEntries(Object.entries(over).filter(([k]) => !['profile', 'traces', 'stages'].includes(k))),
  });
}

async function run(args: string[]) {
  const io = bufferIO();
  const code = await main(args, io);
  return { code, err: io.stderr.join('\n'), out: io.stdout.join('\n') };
}

beforeAll(async () => {
  write('machine.json', profileOf());
  write('good.csv', GOOD_TRACE);
  const r = await run(['replay', pipelineFor('good'), '--db', db, '--quiet']);
  expect(r.code, r.err).toBe(0);
});

interface Case {
  name: string;
  /** The trace to write as <name>.csv, if any. */
  trace?: string;
  /** Extra pipeline settings or files. */
  pipeline?: Record<string, unknown>;
  setup?: () => void;
  /** Where the error must point: a regex over stderr. */
  where: RegExp;
  /** What it must say. */
  says: RegExp;
}

const header = 'ts_ns,cpu,vm,tsc,uops';
const rows = (...r: string[]) => [header, '1000,0,a,0,0', ...r, ''].join('\n');

const CASES: Case[] = [
  { name: 'wrong-header', trace: 'time,cpu,vm,tsc,uops\n1,0,a,0,0\n', where: /wrong-header\.csv:1:1 \(column time\)/, says: /unknown column 'time'/ },
  { name: 'unknown-event', trace: 'ts_ns,cpu,vm,tsc,uops,l3_miss\n', where: /unknown-event\.csv:1:6 \(column l3_miss\)/, says: /unknown event column 'l3_miss'/ },
  { name: 'missing-event', trace: 'ts_ns,cpu,vm,tsc\n1,0,a,0\n', where: /missing-event\.csv:1:/, says: /lacks event column 'uops'/ },
  { name: 'duplicate-column', trace: 'ts_ns,cpu,vm,tsc,uops,cpu\n', where: /duplicate-column\.csv:1:6 \(column cpu\)/, says: /names column 'cpu' twice/ },
  { name: 'unknown-vm', trace: rows('2000,0,zz,1000,5'), where: /unknown-vm\.csv:3:3 \(column vm\)/, says: /unknown VM 'zz'/ },
  { name: 'non-numeric', trace: rows('2000,0,a,12x,5'), where: /non-numeric\.csv:3:4 \(column tsc\)/, says: /tsc is not a number \('12x'\)/ },
  { name: 'negative-counter', trace: rows('2000,0,a,1000,-5'), where: /negative-counter\.csv:3:5 \(column uops\)/, says: /uops is negative/ },
  { name: 'fractional-counter', trace: rows('2000,0,a,1000,5.5'), where: /fractional-counter\.csv:3:5 \(column uops\)/, says: /not a whole number/ },
  { name: 'time-backwards', trace: rows('2000,0,a,1000,5', '1999,0,a,2000,6'), where: /time-backwards\.csv:4:1 \(column ts_ns\)/, says: /time goes backwards on cpu 0.*line 3/ },
  { name: 'counter-backwards', trace: rows('2000,0,a,1000,500', '3000,0,a,2000,400'), where: /counter-backwards\.csv:4:5 \(column uops\)/, says: /goes backwards or jumps on cpu 0, from 500 \(line 3\) to 400.*no plausible advance/ },
  { name: 'tsc-backwards', trace: rows('2000,0,a,1000,5', '3000,0,a,999,6'), where: /tsc-backwards\.csv:4:4 \(column tsc\)/, says: /counter tsc goes backwards/ },
  { name: 'counter-too-wide', trace: rows(`2000,0,a,1000,${2n ** 48n}`), where: /counter-too-wide\.csv:3:5/, says: /above the 48-bit counter range/ },
  { name: 'field-count', trace: rows('2000,0,a,1000'), where: /field-count\.csv:3:/, says: /expected 5 fields as in the header, found 4/ },
  { name: 'empty-line', trace: [header, '1000,0,a,0,0', '', '2000,0,a,1000,5', ''].join('\n'), where: /empty-line\.csv:3:/, says: /empty line/ },
  { name: 'empty-file', trace: '', where: /empty-file\.csv:1:/, says: /trace is empty; expected a header line \(ts_ns,cpu,vm,tsc,uops\)/ },
  { name: 'no-period', trace: rows(), where: /no-period\.csv:/, says: /no complete period/ },
  // 20,000 rows 1 ms apart: 20 s, so many energy rows are written before line 20,003 fails.
  { name: 'late-error', trace: rows(...Array.from({ length: 20000 }, (_, i) => `${1000 + (i + 1) * 1_000_000},0,a,${(i + 1) * 1_000_000},${5 + i}`), '99999999999,0,a,5,x'), where: /late-error\.csv:20003:5/, says: /uops is not a number/ },
  { name: 'trace-missing', pipeline: { traces: { cswitch: 'does-not-exist.csv' } }, where: /does-not-exist\.csv: /, says: /cswitch trace file does not exist/ },
  { name: 'missing-profile-key', trace: GOOD_TRACE, pipeline: { profile: 'no-tsc.json' }, setup: () => {
      const p = profileOf() as unknown as { cpu: Record<string, unknown> };
      delete p.cpu['tsc_hz'];
      write('no-tsc.json', p);
    }, where: /no-tsc\.json at \/cpu: /, says: /missing required key 'tsc_hz'/ },
  { name: 'profile-bad-type', trace: GOOD_TRACE, pipeline: { profile: 'bad-type.json' }, setup: () => {
      const p = profileOf() as unknown as { cpu: Record<string, unknown> };
      p.cpu['idle_watts'] = 'forty';
      write('bad-type.json', p);
    }, where: /bad-type\.json at \/cpu\/idle_watts: /, says: /must be number/ },
  { name: 'unknown-stage', trace: GOOD_TRACE, pipeline: { stages: ['cpu-split', 'cpu-splitt'] }, where: /unknown-stage\.pipeline\.json at \/stages\/1: /, says: /must be one of "cpu-split", "disk-energy"/ },
  { name: 'stage-missing-trace', pipeline: { traces: {} }, where: /stage-missing-trace\.pipeline\.json at \/traces: /, says: /stage 'cpu-split' reads the cswitch trace, but the pipeline gives none/ },
  { name: 'unused-trace-missing', trace: GOOD_TRACE, pipeline: { traces: { cswitch: 'unused-trace-missing.csv', disk: 'no-disk.csv' } }, where: /no-disk\.csv: /, says: /disk trace file does not exist/ },
  { name: 'bad-json', setup: () => write('bad-json.pipeline.json', '{ "name": "x",\n  "profile": }'), where: /bad-json\.pipeline\.json:2:14: /, says: /not valid JSON/ },
  { name: 'service-cycle', trace: GOOD_TRACE, pipeline: { profile: 'cycle.json' }, setup: () => {
      const p = profileOf();
      p.vms.push({ id: 'd1', role: 'driver' }, { id: 'd2', role: 'driver' });
      p.services = [
        { id: 's1', driver: 'd1', device: 's2', clients: ['a'] },
        { id: 's2', driver: 'd2', device: 's1', clients: ['d1'] },
      ];
      write('cycle.json', p);
    }, where: /cycle\.json at \/services: /, says: /services form a cycle: s1 → s2 → s1/ },
  // A TSC that jumps (a reset, a migration, a wrong tsc_hz): 1 ms of time, 1e15 ticks.
  { name: 'tsc-jump', trace: rows('1001000,0,a,1000000,5', '2001000,0,b,1000000001000000,6'), where: /tsc-jump\.csv:4:4 \(column tsc\)/, says: /the TSC of cpu 0 advanced 1\.0000e\+15 ticks since line 3, but 1\.000 ms at tsc_hz 1000000000 is 1\.0000e\+6 ticks/ },
  // An event counter that jumps within its 48-bit range: 2^40 uops in 1 ms at 1 GHz would be 1.1e6
  // per tick (over 1 kW of CPU active at the test weight), beyond the 256 per tick any hardware counts.
  { name: 'event-jump', trace: rows('1001000,0,a,1000000,5', '2001000,0,b,2000000,1099511627781'), where: /event-jump\.csv:4:5 \(column uops\)/,
    says: /counter uops of cpu 0 advanced 1\.0995e\+12 since line 3, in 1\.000 ms: more than the 5\.1200e\+8 that cpu\.max_events_per_tick 256 allows at tsc_hz 1000000000 \(per tick of the period and 1 ms for the reads' skew\): a counter reset or jump, or a corrupt reading/ },
  { name: 'wrong-tsc-hz', trace: rows('3001000,0,a,3000000,5'), pipeline: { profile: 'slow-tsc.json' }, setup: () => write('slow-tsc.json', profileOf({ tscHz: 3e9 })),
    where: /wrong-tsc-hz\.csv:3:4 \(column tsc\)/, says: /advanced 3\.0000e\+6 ticks since line 2, but 3\.000 ms at tsc_hz 3000000000 is 9\.0000e\+6 ticks \(beyond cpu\.tsc_tolerance 0\.02\): a TSC reset or jump, or a wrong tsc_hz/ },
  // Numbers beyond any physical machine, and a disk that draws less active than idle.
  { name: 'huge-idle-watts', trace: GOOD_TRACE, pipeline: { profile: 'huge.json' }, setup: () => write('huge.json', profileOf({ idleWatts: 1e300 })), where: /huge\.json at \/cpu\/idle_watts: /, says: /must be <= 100000/ },
  { name: 'disk-active-below-idle', trace: GOOD_TRACE, pipeline: { profile: 'below.json' }, setup: () => {
      const p = profileOf();
      p.disks['disk']!.active_watts = 2;
      write('below.json', p);
    }, where: /below\.json at \/disks\/disk\/active_watts: /, says: /active_watts 2 is below idle_watts 3\.6/ },
  { name: 'interval-huge', trace: GOOD_TRACE, pipeline: { interval_ms: 1e308 }, where: /interval-huge\.pipeline\.json at \/interval_ms: /, says: /must be <= 86400000/ },
  // A limit for a VM the profile does not have would change nothing, without a word.
  { name: 'limit-unknown-vm', trace: GOOD_TRACE, pipeline: { stages: ['cpu-split', 'host-strides'], policy: { cpu: { limits_watts: { vm9: 10 } } } },
    where: /limit-unknown-vm\.pipeline\.json at \/policy\/cpu\/limits_watts\/vm9: /, says: /names VM 'vm9', but the machine profile .* does not have it; it has a, b/ },
  ...diskCases(),
  // A stage whose input no earlier stage of the pipeline produces: refused, naming both stages.
  { name: 'driver-charge-without-cpu-split', trace: GOOD_TRACE, pipeline: { profile: 'svc.json', stages: ['disk-energy', 'driver-charge'], traces: { cswitch: 'driver-charge-without-cpu-split.csv', disk: 'good-disk.csv' } }, setup: goodDisk,
    where: /driver-charge-without-cpu-split\.pipeline\.json at \/stages: /, says: /stage 'driver-charge' needs the cpu-periods output of stage 'cpu-split'.*add it to "stages"/ },
  { name: 'guest-log-without-virtual-counters', trace: GOOD_TRACE, pipeline: { stages: ['cpu-split', 'host-strides'], traces: { cswitch: 'guest-log-without-virtual-counters.csv', guest: 'good-guest.csv' } },
    setup: () => write('good-guest.csv', 'ts_ns,vm,cpu,container,tsc,uops\n1000,a,0,x,0,0\n2000,a,0,x,1000,500\n'),
    where: /guest-log-without-virtual-counters\.pipeline\.json at \/stages: /, says: /stage 'host-strides' needs the guest-periods output of stage 'virtual-counters' \(the guest log's container periods/ },
  { name: 'disk-limit-without-driver-cost', trace: GOOD_TRACE, pipeline: { profile: 'svc.json', stages: ['cpu-split', 'disk-energy', 'disk-budgets'], traces: { cswitch: 'disk-limit-without-driver-cost.csv', disk: 'good-disk.csv' } }, setup: goodDisk,
    where: /disk-limit-without-driver-cost\.pipeline\.json at \/stages: /, says: /stage 'disk-budgets' needs the driver-cost output of stage 'driver-charge' \(driver VM 'd' serves disk 'disk'/ },
  { name: 'unknown-cost-model', trace: GOOD_TRACE, pipeline: { accounting: { driver: { model: 'per-block' } } },
    where: /unknown-cost-model\.pipeline\.json at \/accounting\/driver\/model: /, says: /must be one of "constant", "per-byte"/ },
];

/** A disk log next to GOOD_TRACE, through a driver 'd' serving a and b. */
function goodDisk(): void {
  const p = profileOf();
  p.vms.push({ id: 'd', role: 'driver' });
  p.services = [{ id: 'vdisk', driver: 'd', device: 'disk', clients: ['a', 'b'] }];
  write('svc.json', p);
  write('good-disk.csv', 'ts_ns,vm,op,offset,bytes,latency_ns\n1500,a,R,0,4096,100\n2500,b,W,0,512,100\n');
}

/** Bad disk logs replayed through the complete accounting (cpu-split, disk-energy, driver-charge). */
function diskCases(): Case[] {
  const dh = 'ts_ns,vm,op,offset,bytes,latency_ns';
  const bad: [string, string, RegExp, RegExp][] = [
    ['disk-unknown-vm', `${dh}\n1500,a,R,0,4096,100\n2500,zz,R,0,4096,100\n`, /disk-unknown-vm\.disk\.csv:3:2 \(column vm\)/, /unknown VM 'zz'/],
    ['disk-bad-op', `${dh}\n1500,a,X,0,4096,100\n`, /disk-bad-op\.disk\.csv:2:3 \(column op\)/, /op is 'X'; expected R or W/],
    ['disk-negative-bytes', `${dh}\n1500,a,R,0,-4096,100\n`, /disk-negative-bytes\.disk\.csv:2:5 \(column bytes\)/, /bytes is negative/],
    ['disk-time-backwards', `${dh}\n1500,a,R,0,4096,100\n1400,b,R,0,4096,100\n`, /disk-time-backwards\.disk\.csv:3:1 \(column ts_ns\)/, /time goes backwards on the disk/],
    ['disk-bad-latency', `${dh}\n1500,a,R,0,4096,1e3\n`, /disk-bad-latency\.disk\.csv:2:6 \(column latency_ns\)/, /latency_ns is not/],
    ['disk-unknown-disk', 'ts_ns,vm,op,offset,bytes,disk\n1500,a,R,0,4096,ssd\n', /disk-unknown-disk\.disk\.csv:2:6 \(column disk\)/, /unknown disk 'ssd'/],
  ];
  return bad.map(([name, text, where, says]) => ({
    name,
    trace: GOOD_TRACE,
    pipeline: { profile: 'svc.json', stages: ['cpu-split', 'disk-energy', 'driver-charge', 'virtual-counters'], traces: { cswitch: `${name}.csv`, disk: `${name}.disk.csv` } },
    setup: () => {
      goodDisk();
      write(`${name}.disk.csv`, text);
    },
    where,
    says,
  }));
}

describe('bad input: clear error, exit 2, store unchanged', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      c.setup?.();
      if (c.trace !== undefined) write(`${c.name}.csv`, c.trace);
      const pipeline = c.name === 'bad-json' ? path.join(dir, 'bad-json.pipeline.json') : pipelineFor(c.name, c.pipeline);
      const before = sha256File(db);
      const r = await run(['replay', pipeline, '--db', db]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(c.where);
      expect(r.err).toMatch(c.says);
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
      expect(sha256File(db)).toBe(before);
      // A database that did not exist is not created by a failed run.
      const fresh = path.join(dir, `${c.name}.fresh.sqlite`);
      const r2 = await run(['replay', pipeline, '--db', fresh]);
      expect(r2.code).toBe(2);
      expect(fs.existsSync(fresh)).toBe(false);
      expect(fs.existsSync(`${fresh}-journal`)).toBe(false);
    });
  }

  it('an unknown variant and a bad --trace are errors too', async () => {
    const p = pipelineFor('good');
    const before = sha256File(db);
    let r = await run(['replay', p, '--db', db, '--variant', 'nope']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no variant 'nope'/);
    r = await run(['replay', p, '--db', db, '--trace', 'cpu=x.csv']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--trace expects KIND=PATH/);
    r = await run(['replay']);
    expect(r.code).toBe(2);
    for (const bad of ['0', '-5', 'abc']) {
      r = await run(['replay', p, '--db', db, '--interval-ms', bad]);
      expect(r.code, bad).toBe(2);
      expect(r.err).toMatch(bad === 'abc' ? /--interval-ms must be a number; got 'abc'/ : /--interval-ms must be a number of milliseconds above 0/);
    }
    expect(sha256File(db)).toBe(before);
  });
});
