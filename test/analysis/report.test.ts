/** `wattrace report`: Figure 7-style bars across variants, power over time, an offline HTML page. */
import { execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIO } from '../../src/commands/io.js';
import { generate } from '../../src/commands/generate.js';
import { FIG7_CATEGORIES, PAGE_MATRIX_ROWS, fig7Bar, naturalCompare, pageMatrix } from '../../src/analysis/report.js';
import type { MatrixCell } from '../../src/analysis/matrix.js';
import { tmpDir } from '../helpers.js';
import { PROJECT_ROOT } from '../../src/core/json.js';

const dir = tmpDir();
const db = path.join(dir, 'r.sqlite');
const out = path.join(dir, 'report');

async function cli(args: string[]) {
  const io = bufferIO();
  const code = await main(args, io);
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

beforeAll(async () => {
  generate({ scenario: 'paper-fig7', out: path.join(dir, 'fig7'), seed: 2, seconds: 1 }, bufferIO());
  for (const v of ['bs-4096', 'bs-512', 'bs-32768']) {
    const r = await cli(['replay', path.join(dir, 'fig7', 'pipeline.json'), '--variant', v, '--db', db, '--quiet']);
    expect(r.code, r.err).toBe(0);
  }
  const r = await cli(['report', '--db', db, '--out', out]);
  expect(r.code, r.err).toBe(0);
});

describe('report', () => {
  it('writes the bars of every variant (in block-size order), power over time and one HTML page', () => {
    expect(fs.readdirSync(out).sort()).toEqual(['.wattrace-report', 'energy-by-variant.svg', 'index.html', 'power-run-3.svg']);
    const bars = fs.readFileSync(path.join(out, 'energy-by-variant.svg'), 'utf8');
    expect(bars).toMatch(/^<svg /);
    for (const c of FIG7_CATEGORIES) expect(bars).toContain(c.label);
    expect(bars).toContain('measured (DAQ)');
    const order = ['bs-512', 'bs-4096', 'bs-32768'].map((v) => bars.indexOf(`>${v}<`));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it('charts power against the limit and throughput per manager period for policy runs', async () => {
    const copy = path.join(dir, 'policy.sqlite');
    fs.copyFileSync(db, copy);
    const d = new Database(copy);
    const t0 = (d.prepare('SELECT t0_ns FROM runs WHERE run_id = 1').get() as { t0_ns: number }).t0_ns;
    const ins = d.prepare('INSERT INTO disk_policy (run_id, t_ns, vm, throttle, budget, limit_watts, watts, requests, bytes, backlog) VALUES (1, ?, ?, 1, 10, ?, ?, 10, ?, 0)');
    for (let i = 1; i <= 5; i++) ins.run(t0 + i * 200e6, 'vm1', 1.0, 0.8 + 0.05 * i, 4096 * 10 * i);
    d.close();
    const r = await cli(['report', '--db', copy, '--run', '1', '--out', path.join(dir, 'policy')]);
    expect(r.code, r.err).toBe(0);
    const svg = fs.readFileSync(path.join(dir, 'policy', 'disk-policy-run-1.svg'), 'utf8');
    expect(svg).toContain('throughput (bytes/s)');
    expect(fs.readFileSync(path.join(dir, 'policy', 'index.html'), 'utf8')).toContain('Policy, run 1');
  });

  it('compares only runs of the same pipeline on the same machine profile', async () => {
    const copy = path.join(dir, 'mixed.sqlite');
    fs.copyFileSync(db, copy);
    generate({ scenario: 'paper-fig7', out: path.join(dir, 'fig7-65w'), seed: 2, seconds: 1, idleWatts: 65 }, bufferIO());
    const r = await cli(['replay', path.join(dir, 'fig7-65w', 'pipeline.json'), '--variant', 'bs-512', '--db', copy, '--quiet']);
    expect(r.code, r.err).toBe(0);
    const out1 = path.join(dir, 'mixed-1');
    expect((await cli(['report', '--db', copy, '--run', '1', '--out', out1])).code).toBe(0);
    // Run 1 is bs-4096 on the 42 W machine; its bs-512 bar is run 2, not the 65 W machine's run 4.
    const html = fs.readFileSync(path.join(out1, 'index.html'), 'utf8');
    expect(html).toMatch(/<tr><td>bs-512<\/td><td>2<\/td>/);
    expect(html).not.toMatch(/<tr><td>bs-512<\/td><td>4<\/td>/);
    const bad = await cli(['report', '--db', copy, '--out', path.join(out1, 'index.html')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/exists and is not a folder/);
  });

  it('replaces an earlier report whole; refuses another non-empty folder unless --force', async () => {
    // An earlier report of run 3 had a chart run 1 does not make: replaced, nothing stale stays.
    fs.writeFileSync(path.join(out, 'power-run-9.svg'), '<svg/>');
    const again = await cli(['report', '--db', db, '--run', '1', '--out', out]);
    expect(again.code, again.err).toBe(0);
    expect(fs.readdirSync(out)).not.toContain('power-run-9.svg');
    expect(fs.readdirSync(out)).toContain('power-run-1.svg');
    const mine = path.join(dir, 'mine');
    fs.mkdirSync(mine);
    fs.writeFileSync(path.join(mine, 'index.html'), 'my own page');
    const refused = await cli(['report', '--db', db, '--out', mine]);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/--out .*mine is a folder with other files in it \(index\.html\), not an earlier report: choose another folder, or --force to replace it/);
    expect(fs.readFileSync(path.join(mine, 'index.html'), 'utf8')).toBe('my own page');
    const forced = await cli(['report', '--db', db, '--out', mine, '--force']);
    expect(forced.code, forced.err).toBe(0);
    expect(fs.readFileSync(path.join(mine, 'index.html'), 'utf8')).toMatch(/<html/);
    // No temporary folder is left beside it.
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // Put the report of run 3 back for the other tests.
    expect((await cli(['report', '--db', db, '--out', out])).code).toBe(0);
  });

  it('refuses --out naming the current folder, a folder containing it or the database, before writing anything', async () => {
    const here = path.join(dir, 'busy', 'inner');
    fs.mkdirSync(here, { recursive: true });
    fs.writeFileSync(path.join(here, 'notes.txt'), 'mine');
    const before = () => [fs.readdirSync(dir).sort(), fs.readdirSync(path.join(dir, 'busy')).sort(), fs.readdirSync(here).sort()];
    const was = before();
    const cwd = process.cwd();
    process.chdir(here);
    try {
      for (const [o, what] of [
        ['.', 'is the current folder'],
        ['./', 'is the current folder'],
        [here, 'is the current folder'],
        ['..', 'contains the current folder'],
        [path.join('..', '..'), 'contains the current folder'],
        [path.parse(here).root, 'contains the current folder'],
      ] as const) {
        const r = await cli(['report', '--db', db, '--out', o, '--force']);
        expect(r.code, `--out ${o}: ${r.err}`).toBe(2);
        expect(r.err).toBe(`wattrace: --out ${o} ${what}: a report replaces its folder whole; name a folder for the report, such as --out report`);
      }
    } finally {
      process.chdir(cwd);
    }
    expect(before()).toEqual(was);
    expect(fs.readFileSync(path.join(here, 'notes.txt'), 'utf8')).toBe('mine');
    // Replacing the folder that holds the database would delete it.
    const home = path.join(dir, 'dbhome');
    fs.mkdirSync(home);
    fs.copyFileSync(db, path.join(home, 'r.sqlite'));
    const r = await cli(['report', '--db', path.join(home, 'r.sqlite'), '--out', home, '--force']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^wattrace: --out .*dbhome contains the database .*r\.sqlite: a report replaces its folder whole; name another folder$/);
    expect(fs.readdirSync(home)).toEqual(['r.sqlite']);
  });

  it('the page works offline: SVGs inline, no scripts, nothing fetched', () => {
    const html = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html.match(/<svg /g)?.length).toBe(2);
    expect(html).not.toMatch(/<script|<link|src="|url\(/i);
    expect(html).toContain('Validation against measured power');
  });

  it("the page's energy matrix names the 40 rows with the most energy and sums the rest into one row", () => {
    // 1,000 VMs, vm<i> with i J of CPU idle and 2i J active (so vm999 … vm960 have the most).
    const columns = [{ device: 'cpu', kind: 'idle' as const }, { device: 'cpu', kind: 'active' as const }];
    const rows = Array.from({ length: 1000 }, (_, i) => ({ consumer: `vm${i}`, via: null, watts: [i / 10, (2 * i) / 10], joules: [i, 2 * i], totalWatts: (3 * i) / 10, totalJoules: 3 * i }));
    const page = pageMatrix({ columns, rows }, 7);
    expect(page.rows.length).toBe(PAGE_MATRIX_ROWS + 1);
    expect(page.rows.slice(0, -1).map((r) => r.consumer)).toEqual(Array.from({ length: 40 }, (_, i) => `vm${960 + i}`));
    // The others: vm0 … vm959, Σ i = 959·960/2 = 460,320 J idle, twice that active.
    const others = page.rows.at(-1)!;
    expect(others.consumer).toBe('others (960 rows)');
    expect(others.joules).toEqual([460320, 920640]);
    expect(others.totalJoules).toBe(3 * 460320);
    // Nothing is lost: the page's total is the matrix's, 3 · Σ_{0}^{999} i.
    expect(page.rows.reduce((a, r) => a + r.totalJoules, 0)).toBe(3 * 499500);
    expect(page.note.join(' ')).toContain('wattrace matrix --run 7');
    // 41 rows or fewer are listed as they are.
    expect(pageMatrix({ columns, rows: rows.slice(0, 41) }, 7)).toEqual({ columns, rows: rows.slice(0, 41), note: [] });
  });

  it('splits a run into Figure 7 blocks that add up to its total power', () => {
    const cell = (consumer: string, via: string | null, device: string, kind: 'idle' | 'active', watts: number): MatrixCell => ({ consumer, via, device, kind, watts, joules: watts });
    const cells = [
      cell('core', null, 'cpu', 'idle', 8),
      cell('core', null, 'cpu', 'active', 2),
      cell('vm1', null, 'cpu', 'idle', 8),
      cell('vm1', null, 'cpu', 'active', 0.3),
      cell('vm1', 'drv', 'cpu', 'idle', 8),
      cell('vm1', 'drv', 'cpu', 'active', 9),
      cell('vm1', 'drv', 'disk', 'idle', 3.6),
      cell('vm1', 'drv', 'disk', 'active', 2),
    ];
    const b = fig7Bar(1, 'bs-512', cells, []);
    expect(b.watts).toEqual({ base: 18, 'client-cpu': 0.3, 'driver-cpu-idle': 8, 'driver-cpu-active': 9, 'disk-idle': 3.6, 'disk-active': 2 });
    expect(b.measured).toBeNull();
    expect(['bs-32768', 'bs-512', 'bs-4096'].sort(naturalCompare)).toEqual(['bs-512', 'bs-4096', 'bs-32768']);
  });

  it("the README's docs/figure7.svg is such a chart, of all seven block sizes", () => {
    const svg = fs.readFileSync(path.join(PROJECT_ROOT, 'docs', 'figure7.svg'), 'utf8');
    for (const bs of [512, 1024, 2048, 4096, 8192, 16384, 32768]) expect(svg).toContain(`>bs-${bs}<`);
    expect(svg).toContain('measured (DAQ)');
  });

  it('renders in headless Chromium (when installed)', () => {
    const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((f) => fs.existsSync(f));
    if (!chromium) {
      console.warn('[wattrace] skipping the headless Chromium check: no /usr/bin/chromium (apt-get install chromium)');
      return;
    }
    const png = path.join(dir, 'report.png');
    execFileSync(
      chromium,
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, 'chrome')}`, `--screenshot=${png}`, '--window-size=1200,1800', `file://${path.join(out, 'index.html')}`],
      { stdio: 'ignore', timeout: 60_000 },
    );
    // A blank page compresses to a few kB; the charts and tables make it far larger.
    expect(fs.statSync(png).size).toBeGreaterThan(40_000);
  });
});
