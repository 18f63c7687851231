/**
 * compare's import of its scratch runs into --db (RunImport): one transaction, and a long copy lets
 * the event loop run (so Ctrl-C is seen during it) and can be aborted while it waits, leaving the
 * database as it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { joules, ns } from '../../src/core/units.js';
import { RunImport, RunWriter } from '../../src/store/store.js';
import { sha256File, tmpDir } from '../helpers.js';

const dir = tmpDir('wattrace-import-');
const source = path.join(dir, 'source.sqlite');
const ROWS = 300_000;

function count(db: string, sql: string): number {
  const d = new Database(db, { readonly: true });
  try {
    return (d.prepare(sql).pluck().get() as number) ?? 0;
  } finally {
    d.close();
  }
}

beforeAll(() => {
  // A run of 300,000 energy rows whose joules sum to a known total: 1 J each.
  const w = RunWriter.begin(source, { pipeline: 'p', variant: 'base', params: {}, toolVersion: 'test' });
  for (let i = 0; i < ROWS; i++) w.energy({ t0: ns(i), t1: ns(i + 1), consumer: `vm${i % 7}`, container: null, via: null, device: 'cpu', kind: 'active', joules: joules(1) });
  w.metric('energy.total_joules', ROWS);
  w.commit({ inputs: {}, baseTsNs: '0', t0Ns: 0, t1Ns: ROWS, intervalNs: 1 });
}, 60_000);

describe('RunImport', () => {
  it('copies runs as new runs of the target, all their rows, in one commit', async () => {
    const target = path.join(dir, 'copied.sqlite');
    const imp = new RunImport(target);
    await imp.begin();
    const ids = await imp.copy([{ file: source, runId: 1 }, { file: source, runId: 1 }]);
    imp.commit();
    expect(ids).toEqual([1, 2]);
    expect(count(target, 'SELECT SUM(joules) FROM energy WHERE run_id = 2')).toBe(ROWS);
    expect(count(target, "SELECT value FROM metrics WHERE run_id = 1 AND name = 'energy.total_joules'")).toBe(ROWS);
  }, 60_000);

  it('lets timers run during a long copy, and an abort from one leaves an existing database as it was', async () => {
    const target = path.join(dir, 'existing.sqlite');
    const first = new RunImport(target);
    await first.begin();
    await first.copy([{ file: source, runId: 1 }]);
    first.commit();
    const before = sha256File(target);
    const imp = new RunImport(target);
    await imp.begin();
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
      if (ticks === 2) imp.abort(); // as compare's signal handler does
    }, 1);
    try {
      await expect(imp.copy([{ file: source, runId: 1 }, { file: source, runId: 1 }])).rejects.toThrow(/aborted/);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThanOrEqual(2);
    expect(sha256File(target)).toBe(before);
    expect(fs.existsSync(`${target}-journal`)).toBe(false);
    expect(count(target, 'SELECT COUNT(*) FROM runs')).toBe(1);
  }, 60_000);

  it('an abort of an import that created the database removes it', async () => {
    const target = path.join(dir, 'created.sqlite');
    const imp = new RunImport(target);
    await imp.begin();
    const timer = setTimeout(() => imp.abort(), 5);
    await expect(imp.copy([{ file: source, runId: 1 }, { file: source, runId: 1 }])).rejects.toThrow(/aborted/);
    clearTimeout(timer);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('created.sqlite'))).toEqual([]);
  }, 60_000);

  it('waits for another writer between turns of the event loop: an abort ends the wait, and the import goes on once the lock is freed', async () => {
    const target = path.join(dir, 'locked.sqlite');
    const first = new RunImport(target);
    await first.begin();
    await first.copy([{ file: source, runId: 1 }]);
    first.commit();
    const before = sha256File(target);
    // Another writer holds the store (as a replay into it would).
    const holder = new Database(target);
    holder.exec('BEGIN IMMEDIATE');
    try {
      const waiting = new RunImport(target);
      const started = Date.now();
      setTimeout(() => waiting.abort(), 200); // as compare's signal handler does
      // Before: SQLite's busy wait held the thread for up to 600 s, so no timer (no signal) ran.
      await expect(waiting.begin()).rejects.toThrow(/aborted/);
      expect(Date.now() - started).toBeLessThan(5_000);
      const next = new RunImport(target);
      setTimeout(() => holder.exec('ROLLBACK'), 200);
      await next.begin();
      const ids = await next.copy([{ file: source, runId: 1 }]);
      next.commit();
      expect(ids).toEqual([2]);
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK');
      holder.close();
    }
    expect(sha256File(target)).not.toBe(before);
    expect(count(target, 'SELECT COUNT(*) FROM runs')).toBe(2);
  }, 60_000);
});

