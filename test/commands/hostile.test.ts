/** Hostile and careless input: every case a clear one-line error (exit 2), or a result with a note. */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { cli, profileOf, sha256File, tmpDir } from '../helpers.js';

const dir = tmpDir('wattrace-hostile-');
const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');
const TRACE = ['ts_ns,cpu,vm,tsc,uops', '1000,0,a,0,0', '2000,0,a,1000,500', '3000,0,b,2000,900'].join('\n');
const at = (f: string) => path.join(dir, f);
fs.writeFileSync(at('m.json'), JSON.stringify(profileOf()));
fs.writeFileSync(at('c.csv'), TRACE + '\n');
const pipeline = (name: string, extra: object = {}) => {
  fs.writeFileSync(at(`${name}.json`), JSON.stringify({ name, profile: 'm.json', traces: { cswitch: 'c.csv' }, stages: ['cpu-split'], ...extra }));
  return at(`${name}.json`);
};
const oneLine = (err: string) => err.trim().split('\n').filter((l) => !l.startsWith('Run ')).length === 1;

describe('hostile input', () => {
  it('an option given twice is a usage error, not exit 70', async () => {
    for (const args of [['--db', 'a.sqlite', '--db', 'b.sqlite'], ['--profile', 'm.json', '--profile', 'n.json']]) {
      const r = await cli(['replay', pipeline('twice'), ...args]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(/--(db|profile) is given 2 times; give it once/);
    }
    // Named as typed (yargs also keeps it as intervalMs).
    const i = await cli(['replay', pipeline('twice'), '--interval-ms', '5', '--interval-ms', '6']);
    expect(i.err.trim()).toBe('wattrace: --interval-ms is given 2 times; give it once');
    // Two paths for one trace kind: before, the second was used without a word.
    const t = await cli(['replay', pipeline('twice'), '--trace', 'cswitch=a.csv', '--trace', 'cswitch=b.csv']);
    expect(t.code).toBe(2);
    expect(t.err.trim()).toBe("wattrace: --trace cswitch= is given twice ('a.csv' and 'b.csv'); give each kind once");
  });

  it('--db naming a folder: one line that says so, on the main thread and on the writer thread, and in compare', () => {
    const folder = at('a-folder.sqlite');
    fs.mkdirSync(folder, { recursive: true });
    const demo = path.join(PROJECT_ROOT, 'pipelines', 'demo.json');
    for (const [args, threads] of [[['replay', demo, '--quiet'], '0'], [['replay', demo, '--quiet'], '1'], [['compare', demo], '0']] as const) {
      const r = spawnSync(process.execPath, [CLI, ...args, '--db', folder], { encoding: 'utf8', env: { ...process.env, WATTRACE_THREADS: threads } });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim()).toBe(`wattrace: ${folder}: is a folder, not a database`);
    }
    expect(fs.readdirSync(folder)).toEqual([]);
  }, 30_000);

  it('a 10 MB field and a NUL byte are quoted cut and escaped', async () => {
    fs.writeFileSync(at('huge.csv'), `${TRACE.split('\n').slice(0, 2).join('\n')}\n2000,0,${'x'.repeat(10_000_000)},1000,5\n`);
    const r = await cli(['replay', pipeline('huge', { traces: { cswitch: 'huge.csv' } }), '--db', at('h.sqlite')]);
    expect(r.code).toBe(2);
    expect(r.err.length).toBeLessThan(600);
    expect(r.err).toMatch(/unknown VM 'x{60}… \(10,000,000 characters\)'/);
    fs.writeFileSync(at('nul.csv'), `${TRACE.split('\n').slice(0, 2).join('\n')}\n2000,0,a\u0000b,1000,5\n`);
    const n = await cli(['replay', pipeline('nul', { traces: { cswitch: 'nul.csv' } }), '--db', at('h.sqlite')]);
    expect(n.code).toBe(2);
    expect(n.err).toContain("unknown VM 'a\\x00b'");
    expect(n.err).not.toContain('\u0000');
  });

  it('a BOM in a pipeline, a VM named idle, --run abc, an expectation without bounds, an interval of 1e-9 ms', async () => {
    fs.writeFileSync(at('bom.json'), '\ufeff' + fs.readFileSync(pipeline('bom'), 'utf8'));
    const bom = await cli(['replay', at('bom.json'), '--db', at('bom.sqlite'), '--quiet']);
    expect(bom.code, bom.err).toBe(0);
    const p = profileOf();
    p.vms.push({ id: 'idle', role: 'client' });
    fs.writeFileSync(at('idle.json'), JSON.stringify(p));
    const idle = await cli(['replay', pipeline('idlevm', { profile: 'idle.json' }), '--db', at('x.sqlite')]);
    expect(idle.err).toMatch(/idle\.json at \/vms\/2\/id: machine profile: not allowed here: 'idle' is reserved for the idle virtual processor/);
    const run = await cli(['matrix', '--db', at('bom.sqlite'), '--run', 'abc']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/--run must be a run id \(a positive integer\); got 'abc'/);
    // A number option's text that is no number is said as given (yargs makes it NaN first).
    const nan = await cli(['replay', pipeline('bom'), '--db', at('bom.sqlite'), '--interval-ms', 'abc']);
    expect([nan.code, nan.err.trim()]).toEqual([2, "wattrace: --interval-ms must be a number; got 'abc'"]);
    const eq = await cli(['generate', 'demo', '--out', at('g'), '--seconds=1x']);
    expect([eq.code, eq.err.trim()]).toEqual([2, "wattrace: --seconds must be a number; got '1x'"]);
    const bounds = await cli(['replay', pipeline('nobounds', { expect: [{ metric: 'energy.total_joules' }] }), '--db', at('x.sqlite')]);
    expect(bounds.err).toMatch(/at \/expect\/0: pipeline: an expectation needs a bound: min, max or max_delta/);
    const before = sha256File(at('bom.sqlite'));
    fs.writeFileSync(at('long.csv'), ['ts_ns,cpu,vm,tsc,uops', '0,0,a,0,0', '120000000000,0,a,120000000000,5'].join('\n') + '\n');
    const tiny = await cli(['replay', pipeline('tiny', { traces: { cswitch: 'long.csv' }, interval_ms: 1e-6 }), '--db', at('bom.sqlite')]);
    expect(tiny.code).toBe(2);
    expect(tiny.err).toMatch(/at \/interval_ms: interval_ms 0\.000001 over the 120\.0 s the traces span would write about .* energy rows .*; use interval_ms \d+ or more/);
    expect(sha256File(at('bom.sqlite'))).toBe(before);
    for (const r of [idle, run, bounds, tiny]) expect(oneLine(r.err), r.err).toBe(true);
  });

  it('a trace whose last line lacks a newline is read, with a note that it may have been cut', async () => {
    fs.writeFileSync(at('cut.csv'), TRACE);
    const r = await cli(['replay', pipeline('cut', { traces: { cswitch: 'cut.csv' } }), '--db', at('cut.sqlite'), '--quiet']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/note: .*cut\.csv ends without a newline: its last line was read as it stands, but it may have been cut short/);
  });

  it('an import of an empty or a binary file is an error naming what it expected; no output is left', async () => {
    fs.writeFileSync(at('empty.txt'), '');
    fs.writeFileSync(at('junk.bin'), Buffer.from([0, 1, 2, 255, 254, 10, 65, 66]));
    for (const [format, file, says] of [
      ['blkparse', 'empty.txt', /found no requests to import; expected blkparse's default output .* the first line reads \(the file is empty\)/],
      ['ftrace', 'junk.bin', /found no sched_switch events to import; expected .* the first line reads '\\x00\\x01\\x02/],
      ['vscsi-csv', 'empty.txt', /found no requests to import; expected CloudPhysics vscsi CSV/],
    ] as const) {
      const out = at(`out-${format}`);
      const r = await cli(['import', format, at(file), '--out', out]);
      expect(r.code, `${format}: ${r.err}`).toBe(2);
      expect(r.err).toMatch(says);
      expect(fs.existsSync(out)).toBe(false);
    }
  });

  it('a closed output pipe ends the output quietly', () => {
    // 3,000 VMs share the idle energy: a matrix of 3,000 rows, more than a pipe holds.
    const many = profileOf({ vms: Array.from({ length: 3000 }, (_, i) => `v${i}`) });
    fs.writeFileSync(at('many.json'), JSON.stringify(many));
    fs.writeFileSync(at('many.csv'), ['ts_ns,cpu,vm,tsc,uops', '1000,0,v0,0,0', '2000,0,v1,1000,500'].join('\n') + '\n');
    const db = at('pipe.sqlite');
    const rp = spawnSync(process.execPath, [CLI, 'replay', pipeline('pipe', { profile: 'many.json', traces: { cswitch: 'many.csv' } }), '--db', db, '--quiet'], { encoding: 'utf8' });
    expect(rp.status, rp.stderr).toBe(0);
    // `matrix | head -2`, as a shell runs it: head closes the pipe while matrix still writes.
    const r = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" matrix --db "${db}" | head -2`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('a closed pipe keeps the exit status (compare with a broken expectation: 1); a full disk is one line and exit 2', async () => {
    const demo = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'pipelines', 'demo.json'), 'utf8')) as Record<string, unknown>;
    const p = at('broken.json');
    // vm1's energy is hundreds of joules: at most 1 J is broken.
    fs.writeFileSync(p, JSON.stringify({ ...demo, profile: path.join(PROJECT_ROOT, 'pipelines', String(demo['profile'])), traces: Object.fromEntries(Object.entries(demo['traces'] as Record<string, string>).map(([k, v]) => [k, path.join(PROJECT_ROOT, 'pipelines', v)])), expect: [{ metric: 'energy.vm1.joules', max: 1 }] }));
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'compare', p, '--db', at('broken.sqlite')], { stdio: ['ignore', 'pipe', 'ignore'] });
      child.stdout.destroy(); // the reader is gone before anything is written
      child.on('close', resolve);
    });
    expect(code).toBe(1);
    if (fs.existsSync('/dev/full')) {
      const full = fs.openSync('/dev/full', 'w');
      try {
        const r = spawnSync(process.execPath, [CLI, 'matrix', '--db', at('broken.sqlite')], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' });
        expect(r.status).toBe(2);
        expect(r.stderr.trim()).toBe('wattrace: cannot write to standard output: ENOSPC: no space left on device, write');
        // stderr full while compare writes a note: it still finishes and cleans up (before, the
        // exit at the note left its scratch databases behind), then exits 2.
        const tmp = at('tmp-full');
        fs.mkdirSync(tmp, { recursive: true });
        const c = spawnSync(process.execPath, [CLI, 'compare', path.join(PROJECT_ROOT, 'pipelines', 'demo.json'), '--variants', 'coarse,per-byte', '--db', at('full.sqlite')], { stdio: ['ignore', 'ignore', full], env: { ...process.env, TMPDIR: tmp } });
        expect(c.status).toBe(2);
        expect(fs.readdirSync(tmp)).toEqual([]);
      } finally {
        fs.closeSync(full);
      }
    }
  }, 60_000);
});

