/**
 * Ctrl-C, SIGTERM and SIGKILL in the middle of a run: the store is as it was (a new database is
 * not left behind), and a database left with a hot journal by a kill still reads.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/commands/generate.js';
import { bufferIO } from '../../src/commands/io.js';
import { PROJECT_ROOT } from '../../src/core/json.js';
import { sha256File, tmpDir } from '../helpers.js';

const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');
const dir = tmpDir('wattrace-interrupt-');
const pipeline = path.join(dir, 'p.json');

/** Runs the CLI and sends `signal` once the database file exists and the run has gone on 300 ms. */
function interrupted(args: string[], db: string, signal: NodeJS.Signals, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const started = Date.now();
    const poll = setInterval(() => {
      if (fs.existsSync(`${db}-journal`) || Date.now() - started > 5000) {
        clearInterval(poll);
        setTimeout(() => child.kill(signal), 300);
      }
    }, 20);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

function integrity(db: string): string {
  const d = new Database(db, { readonly: true });
  try {
    return d.pragma('integrity_check', { simple: true }) as string;
  } finally {
    d.close();
  }
}

describe('interrupted runs', () => {
  beforeAll(() => {
    // Figure 8's two minutes: long enough (~2 s) to interrupt in the middle.
    generate({ scenario: 'paper-fig8', out: dir, seed: 1 }, bufferIO());
    fs.writeFileSync(pipeline, JSON.stringify({ name: 'f8', profile: 'machine.json', traces: { cswitch: 'cswitch.csv', disk: 'disk.csv' }, stages: ['cpu-split', 'disk-energy', 'driver-charge', 'virtual-counters'] }));
  }, 30_000);

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} during replay into an existing database: exit 130, one line, the database unchanged and whole, no journal`, async () => {
      const db = path.join(dir, `existing-${signal}.sqlite`);
      expect(spawnSync(process.execPath, [CLI, 'replay', pipeline, '--db', db, '--quiet']).status).toBe(0);
      const before = sha256File(db);
      const r = await interrupted(['replay', pipeline, '--db', db, '--quiet'], db, signal);
      expect(r.code).toBe(130);
      expect(r.stderr.trim().split('\n')).toEqual([`wattrace: interrupted (${signal}): the run was rolled back; ${db} is as it was`]);
      expect(sha256File(db)).toBe(before);
      expect(fs.existsSync(`${db}-journal`)).toBe(false);
      expect(integrity(db)).toBe('ok');
    }, 30_000);
  }

  it('SIGINT while a writer thread holds the run (WATTRACE_THREADS=1): rolled back there, the database unchanged', async () => {
    const db = path.join(dir, 'existing-writer-thread.sqlite');
    expect(spawnSync(process.execPath, [CLI, 'replay', pipeline, '--db', db, '--quiet']).status).toBe(0);
    const before = sha256File(db);
    const r = await interrupted(['replay', pipeline, '--db', db, '--quiet'], db, 'SIGINT', { ...process.env, WATTRACE_THREADS: '1' });
    expect(r.code).toBe(130);
    expect(r.stderr.trim().split('\n')).toEqual([`wattrace: interrupted (SIGINT): the run was rolled back; ${db} is as it was`]);
    expect(sha256File(db)).toBe(before);
    expect(fs.existsSync(`${db}-journal`)).toBe(false);
    expect(integrity(db)).toBe('ok');
  }, 30_000);

  it('SIGINT during replay into a new database: nothing is left behind', async () => {
    const db = path.join(dir, 'new.sqlite');
    const r = await interrupted(['replay', pipeline, '--db', db, '--quiet'], db, 'SIGINT');
    expect(r.code).toBe(130);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('new.sqlite'))).toEqual([]);
  }, 30_000);

  it('SIGINT during compare: exit 130, no run added, no scratch database left', async () => {
    const db = path.join(dir, 'compare.sqlite');
    expect(spawnSync(process.execPath, [CLI, 'replay', pipeline, '--db', db, '--quiet']).status).toBe(0);
    const before = sha256File(db);
    const child = spawn(process.execPath, [CLI, 'compare', pipeline, '--db', db], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise((r) => setTimeout(r, 1200));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted \(SIGINT\): no run was added/);
    expect(sha256File(db)).toBe(before);
  }, 30_000);

  it('SIGKILL leaves a hot journal: matrix still reads the database, recovered byte for byte', async () => {
    // 1 ms intervals: enough rows that SQLite spills pages into the database before the commit, so
    // a kill leaves a hot journal (its header written) and the database file alone inconsistent.
    const db = path.join(dir, 'killed.sqlite');
    expect(spawnSync(process.execPath, [CLI, 'replay', pipeline, '--db', db, '--quiet']).status).toBe(0);
    const before = sha256File(db);
    const child = spawn(process.execPath, [CLI, 'replay', pipeline, '--db', db, '--quiet', '--interval-ms', '1'], { stdio: 'ignore' });
    const hot = () => {
      try {
        const h = Buffer.alloc(8);
        const fd = fs.openSync(`${db}-journal`, 'r');
        fs.readSync(fd, h, 0, 8, 0);
        fs.closeSync(fd);
        return h.readUInt32BE(0) === 0xd9d505f9 && sha256File(db) !== before;
      } catch {
        return false;
      }
    };
    const started = Date.now();
    while (!hot() && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 25));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('close', resolve));
    expect(hot(), 'a hot journal beside a changed database').toBe(true);
    const m = spawnSync(process.execPath, [CLI, 'matrix', '--db', db], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    expect(m.stdout).toMatch(/Energy matrix: run 1/);
    expect(fs.existsSync(`${db}-journal`)).toBe(false);
    expect(sha256File(db)).toBe(before);
    expect(integrity(db)).toBe('ok');
  }, 40_000);
});
