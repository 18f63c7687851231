/**
 * The benchmark's second anchor and an independent cross-check of cpu-split: DuckDB reads the
 * cswitch CSV (read_csv, its own parser, all cores) and computes, in SQL, what cpu-split charges
 * per VM over the run (§3.2.1, §3.3.1): each period between two rows of one CPU is charged to the
 * VM on the later row with Σ_e w_e · Δe of access energy (counter advances modulo 2^counter_bits),
 * and the idle energy w_tsc · Δtsc of every period is shared equally by the profile's VMs
 * (idle_split: equal). `@duckdb/node-api` is a devDependency: the bench only.
 */
import type { Machine } from '../core/machine.js';

export interface DuckdbSplit {
  rows: number;
  /** Access joules per consumer (the VMs and `idle`). */
  active: Record<string, number>;
  /** Idle joules of all periods together (shared equally by the VMs). */
  idle: number;
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

export async function duckdbCpuSplit(file: string, machine: Machine, threads = 2): Promise<DuckdbSplit> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', { threads: String(threads) });
  const c = await db.connect();
  try {
    const bits = machine.profile.cpu.counter_bits;
    const events = machine.eventNames;
    // Counters below 2^63 are BIGINT, and a wrap is undone with a mask (two's complement); 64-bit
    // ones go through HUGEINT. The TSC is taken as BIGINT (it does not wrap in a bench trace).
    const wide = bits > 62;
    const counterType = wide ? 'HUGEINT' : 'BIGINT';
    const columns = [
      ['ts_ns', 'UBIGINT'],
      ['cpu', 'INTEGER'],
      ['vm', 'VARCHAR'],
      ['tsc', 'BIGINT'],
      ...events.map((e) => [e, counterType]),
    ]
      .map(([name, type]) => `${quote(name!)}: ${quote(type!)}`)
      .join(', ');
    const adv = (col: string, b: number) =>
      b > 62 ? `CAST(((${col} - lag(${col}) OVER w) % ${2n ** BigInt(b)} + ${2n ** BigInt(b)}) % ${2n ** BigInt(b)} AS DOUBLE)` : `CAST((${col} - lag(${col}) OVER w) & ${2n ** BigInt(b) - 1n} AS DOUBLE)`;
    const access = events.map((e, k) => `${machine.eventWeights[k]} * ${adv(ident(e), bits)}`).join(' + ') || '0';
    const sql = `
      WITH p AS (
        SELECT vm, lag(ts_ns) OVER w IS NOT NULL AS has_prev, ${access} AS access, ${adv('tsc', 62)} AS dtsc
        FROM read_csv(${quote(file)}, header = true, auto_detect = false, columns = {${columns}})
        WINDOW w AS (PARTITION BY cpu ORDER BY ts_ns)
      )
      SELECT vm, count(*) AS periods, sum(access) AS access, sum(dtsc) AS dtsc FROM p WHERE has_prev GROUP BY vm ORDER BY vm`;
    const r = await c.runAndReadAll(sql);
    const out: DuckdbSplit = { rows: 0, active: {}, idle: 0 };
    for (const row of r.getRowObjects()) {
      out.rows += Number(row['periods']);
      out.active[String(row['vm'])] = Number(row['access']);
      out.idle += machine.tscWeight * Number(row['dtsc']);
    }
    return out;
  } finally {
    c.closeSync();
    db.closeSync();
  }
}
