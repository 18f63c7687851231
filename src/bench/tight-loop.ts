/**
 * The benchmark's anchor: the fastest a Node program reasonably reads a cswitch trace. A tight
 * loop over 4 MiB chunks scans the bytes straight into numbers and sums, per VM, the counter
 * advances and the TSC ticks of the periods that VM ran (the columns cpu-split reads). No
 * validation, no exact 64-bit arithmetic (timestamps are not even read as numbers), no error
 * locations, no output: the upper bound that the replay is measured against, not a reader to
 * use. Columns are taken in the file's header order.
 */
import fs from 'node:fs';

export interface TightLoopResult {
  rows: number;
  /** Per VM name: [Σ Δtsc, Σ Δevent for each event column after tsc]. */
  sums: Record<string, number[]>;
}

export function tightLoop(file: string): TightLoopResult {
  const fd = fs.openSync(file, 'r');
  const chunk = Buffer.allocUnsafe(4 << 20);
  let carry: Buffer | null = null;
  let header: string[] | null = null;
  let iCpu = 0;
  let iVm = 0;
  let numeric: number[] = [];
  const vmIds = new Map<number, number>();
  const vmNames: string[] = [];
  let sums: Float64Array = new Float64Array(0);
  let nVals = 0;
  // Per CPU: whether seen, and its previous values (tsc, events).
  const prev: Float64Array[] = [];
  const vals = new Float64Array(64);
  let rows = 0;

  const line = (b: Buffer, s: number, e: number): void => {
    if (header === null) {
      header = b.toString('utf8', s, e).trim().split(',');
      iCpu = header.indexOf('cpu');
      iVm = header.indexOf('vm');
      numeric = header.map((h, i) => (i === iCpu || i === iVm || h === 'ts_ns' ? -1 : i));
      nVals = numeric.filter((i) => i >= 0).length;
      return;
    }
    let field = 0;
    let v = 0;
    let k = 0;
    let cpu = 0;
    let vmStart = 0;
    let vmEnd = 0;
    let from = s;
    // The VM field as a hash of its bytes (FNV-1a), the rest as numbers.
    let h = 0x811c9dc5;
    for (let i = s; i <= e; i++) {
      const c = i < e ? b[i]! : 44;
      if (c === 44) {
        if (field === iCpu) cpu = v;
        else if (field === iVm) {
          vmStart = from;
          vmEnd = i;
        } else if (numeric[field]! >= 0) vals[k++] = v;
        field++;
        v = 0;
        from = i + 1;
      } else if (field === iVm) h = Math.imul(h ^ c, 0x01000193);
      else if (c !== 13) v = v * 10 + (c - 48);
    }
    let vm = vmIds.get(h) ?? -1;
    if (vm < 0) {
      const key = b.toString('latin1', vmStart, vmEnd);
      vm = vmNames.length;
      vmIds.set(h, vm);
      vmNames.push(key);
      const grown = new Float64Array((vm + 1) * nVals);
      grown.set(sums);
      sums = grown;
    }
    let p = prev[cpu];
    if (p === undefined) {
      p = prev[cpu] = new Float64Array(nVals);
      p.set(vals.subarray(0, nVals));
      return;
    }
    for (let j = 0; j < nVals; j++) {
      sums[vm * nVals + j] = sums[vm * nVals + j]! + vals[j]! - p[j]!;
      p[j] = vals[j]!;
    }
    rows++;
  };

  try {
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      const c = chunk.subarray(0, n);
      let p = 0;
      if (carry !== null) {
        const nl = c.indexOf(10);
        if (nl < 0) {
          carry = Buffer.concat([carry, c]);
          continue;
        }
        const joined: Buffer = Buffer.concat([carry, c.subarray(0, nl)]);
        line(joined, 0, joined.length);
        carry = null;
        p = nl + 1;
      }
      for (;;) {
        const nl = c.indexOf(10, p);
        if (nl < 0) break;
        line(c, p, nl);
        p = nl + 1;
      }
      if (p < n) carry = Buffer.from(c.subarray(p));
    }
    if (carry !== null) line(carry, 0, carry.length);
  } finally {
    fs.closeSync(fd);
  }
  const out: Record<string, number[]> = {};
  vmNames.forEach((name, vm) => (out[name] = Array.from(sums.subarray(vm * nVals, (vm + 1) * nVals))));
  return { rows, sums: out };
}
