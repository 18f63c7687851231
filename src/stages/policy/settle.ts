/**
 * Settling of a power-capped VM (`*.settle_s`, docs/metrics.md): after the limit switches on, the
 * first manager period from which the power averaged over `windowS` (5 s) stays within ±`tol`
 * (10 %) of the limit for the rest of the run. (The paper's throttle controller keeps a limit cycle
 * of a few seconds, and a 200 ms period holds only a handful of disk requests, so shorter averages
 * swing by ±20 % long after the transient is over.) The "after settling" figures use the periods
 * from there on; a VM that never settles is reported over the last quarter of its periods, and the
 * stages leave its settle_s out.
 */
export interface SettleResult {
  /** Seconds from the limit's start to settling. */
  settleS: number;
  /** Index of the first settled period. */
  settledFrom: number;
  settled: boolean;
  meanWatts: number;
  maxWatts: number;
  /** Fraction of settled periods more than 20 % over the limit. */
  overLimitFrac: number;
}

export function settle(watts: readonly number[], limit: number, periodS: number, windowS = 5, tol = 0.1): SettleResult {
  const window = Math.max(1, Math.round(windowS / periodS));
  const n = watts.length;
  let lastBad = -1;
  let sum = 0;
  for (let j = 0; j < n; j++) {
    sum += watts[j]!;
    if (j >= window) sum -= watts[j - window]!;
    if (j >= window - 1 && Math.abs(sum / window - limit) > tol * limit) lastBad = j - window + 1;
  }
  const settled = n >= window && lastBad + 1 <= n - window;
  const from = settled ? lastBad + 1 : Math.floor((3 * n) / 4);
  const rest = watts.slice(from);
  const mean = rest.length ? rest.reduce((a, w) => a + w, 0) / rest.length : NaN;
  return {
    settleS: (settled ? from : n) * periodS,
    settledFrom: from,
    settled,
    meanWatts: mean,
    maxWatts: rest.reduce((a, w) => (w > a ? w : a), rest.length ? -Infinity : NaN),
    overLimitFrac: rest.length ? rest.filter((w) => w > 1.2 * limit).length / rest.length : NaN,
  };
}
