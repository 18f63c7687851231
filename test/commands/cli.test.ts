/** The compiled CLI end to end, as a user runs it (dist/ is built by the global setup). */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { sha256File, tmpDir } from '../helpers.js';

const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');
const dir = tmpDir();

function wattrace(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('wattrace CLI', () => {
  it('--help explains each command', () => {
    const r = wattrace(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/replay <pipeline>\s+Run a pipeline/);
    expect(r.out).toMatch(/matrix\s+Print the energy matrix/);
    const rr = wattrace(['replay', '--help']);
    for (const opt of ['--db', '--variant', '--trace', '--profile', '--interval-ms']) expect(rr.out).toContain(opt);
  });

  it('replays the demo and prints the energy matrix (what npm start does)', () => {
    const db = path.join(dir, 'demo.sqlite');
    const r = wattrace(['replay', 'pipelines/demo.json', '--db', db]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^run 1: pipeline 'demo' \(variant 'base'\), 9\.917 s of trace, 5,000 cswitch rows, 531 disk rows/);
    for (const vm of ['core', 'vm1', 'vm2']) expect(r.out).toMatch(new RegExp(`^${vm}\\s+-\\s+\\d+\\.\\d{3}`, 'm'));
    // Figure 5: the driver is charged to its clients, so it has no row of its own.
    expect(r.out).not.toMatch(/^drv\s/m);
    for (const vm of ['vm1', 'vm2']) expect(r.out).toMatch(new RegExp(`^${vm}\\s+drv\\s+\\d+\\.\\d{3}`, 'm'));
    // Equal idle split: 2 CPUs × 42 W idle over 4 VMs is about 21 W each.
    const idle = [...r.out.matchAll(/^(core|vm1|vm2)\s+-\s+([\d.]+)/gm)].map((m) => Number(m[2]));
    for (const w of idle) expect(w).toBeCloseTo(21, 0);
    // The driver's 21 W share, with its kernel work, is its baseline: about 13.6 W to each client.
    const viaIdle = [...r.out.matchAll(/^(vm1|vm2)\s+drv\s+([\d.]+)/gm)].map((m) => Number(m[2]));
    expect(viaIdle).toHaveLength(2);
    for (const w of viaIdle) expect(w).toBeGreaterThan(12);
    const joules = wattrace(['matrix', '--db', db, '--unit', 'J']);
    expect(joules.out).toMatch(/cpu idle J\s+cpu active J\s+disk idle J\s+disk active J\s+total W\s+total J/);
    // A cell in joules is its watts × the run's 9.917 s.
    const w = Number(/^vm2\s+drv\s+([\d.]+)/m.exec(r.out)![1]);
    const jv = Number(/^vm2\s+drv\s+([\d.]+)/m.exec(joules.out)![1]);
    expect(jv).toBeCloseTo(w * 9.917, 0);
    const m = wattrace(['matrix', '--db', db, '--format', 'json']);
    expect(m.code).toBe(0);
    const j = JSON.parse(m.out) as { run: { run_id: number }; cells: unknown[] };
    expect(j.run.run_id).toBe(1);
  });

  it('decodes (and writes) on worker threads with the same results and the same errors as in-thread', () => {
    const a = path.join(dir, 'threads.sqlite');
    const b = path.join(dir, 'nothreads.sqlite');
    // The demo's traces are small enough to be read in-thread unless a thread is asked for.
    expect(wattrace(['replay', 'pipelines/demo.json', '--db', a, '--quiet'], { WATTRACE_THREADS: '1' }).code).toBe(0);
    expect(wattrace(['replay', 'pipelines/demo.json', '--db', b, '--quiet'], { WATTRACE_THREADS: '0' }).code).toBe(0);
    const rows = (f: string) => {
      const d = new Database(f, { readonly: true });
      const r = d.prepare('SELECT t0_ns, t1_ns, consumer, kind, joules FROM energy ORDER BY rowid').all();
      d.close();
      return r;
    };
    expect(rows(a)).toEqual(rows(b));
    expect(rows(a).length).toBeGreaterThan(500);
    // The demo reads its traces twice (driver-charge's baseline); the inputs' sha256, taken in the
    // first reading, are the files' own either way.
    for (const f of [a, b]) {
      const d = new Database(f, { readonly: true });
      const inputs = JSON.parse((d.prepare('SELECT inputs FROM runs').pluck().get() as string)) as Record<string, { path: string; sha256: string }>;
      d.close();
      expect(Object.keys(inputs).sort()).toEqual(['cswitch', 'disk', 'profile']);
      for (const v of Object.values(inputs)) expect(v.sha256).toBe(sha256File(v.path));
    }
    const bad = path.join(dir, 'bad-threads.csv');
    const good = fs.readFileSync('fixtures/demo/cswitch.csv', 'utf8');
    fs.writeFileSync(bad, `${good}99,0,vm1,x,0,0\n`);
    const errors = ['1', '0'].map((t) => wattrace(['replay', 'pipelines/demo.json', '--db', path.join(dir, `bad-${t}.sqlite`), '--trace', `cswitch=${bad}`], { WATTRACE_THREADS: t }));
    expect(errors.map((e) => e.code)).toEqual([2, 2]);
    // Written on a writer thread or not, a failed run leaves no database behind.
    for (const t of ['1', '0']) expect(fs.existsSync(path.join(dir, `bad-${t}.sqlite`))).toBe(false);
    expect(errors[0]!.err).toMatch(/bad-threads\.csv:\d+:4 \(column tsc\): tsc is not a number \('x'\)/);
    expect(errors[0]!.err).toBe(errors[1]!.err);
  });

  it('prints bad input as one line without a stack trace and exits 2', () => {
    const bad = path.join(dir, 'bad.csv');
    // On the demo disk log's clock (its requests run from 1732400001.5 s), so the two meet in time.
    fs.writeFileSync(bad, 'ts_ns,cpu,vm,tsc,uops,l2_miss\n1732400002000000000,0,vm1,0,0,0\n1732400003000000000,0,vm9,1,1,1\n');
    const r = wattrace(['replay', 'pipelines/demo.json', '--db', path.join(dir, 'x.sqlite'), '--trace', `cswitch=${bad}`]);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toMatch(/^wattrace: .*bad\.csv:3:3 \(column vm\): unknown VM 'vm9'/);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(fs.existsSync(path.join(dir, 'x.sqlite'))).toBe(false);
  });

  it('refuses a compressed trace given to replay as the importers do, saying how to decompress it', () => {
    const gz = path.join(dir, 'cswitch.csv.gz');
    // gzip's magic bytes and a little of its binary: before, its bytes were quoted in the error.
    fs.writeFileSync(gz, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xc5, 0x9d]));
    const db = path.join(dir, 'gz.sqlite');
    const r = wattrace(['replay', 'pipelines/demo.json', '--db', db, '--trace', `cswitch=${gz}`]);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(`wattrace: ${gz}: is gzip-compressed; decompress it first (e.g. gunzip -k cswitch.csv.gz)`);
    expect(fs.existsSync(db)).toBe(false);
  });

  it('reports a missing database and an unknown run clearly', () => {
    expect(wattrace(['matrix', '--db', path.join(dir, 'none.sqlite')])).toMatchObject({ code: 2 });
    const db = path.join(dir, 'demo.sqlite');
    const r = wattrace(['matrix', '--db', db, '--run', '99']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no run 99/);
    expect(wattrace(['frobnicate']).code).toBe(2);
  });

  it('is the package bin', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin['wattrace']).toBe('dist/cli.js');
    expect(fs.readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node')).toBe(true);
    expect(execFileSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' }).trim()).toBe('0.1.0');
  });
});
