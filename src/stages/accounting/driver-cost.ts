/**
 * The formulas of driver-charge (§3.3.3), as plain functions of their inputs.
 */

/** Least-squares sums of the per-byte fit, older windows weighted down: [weight, Σx, Σy, Σx², Σxy]. */
export type FitSums = Float64Array;

/** per-byte: windows to wait for requests of different sizes before charging a constant cost. */
export const PER_BYTE_PATIENCE = 4;

/**
 * A cost window's new predicted cost per request, p = a + b·bytes (§3.3.3: the translation module
 * re-estimates the cost of a request from the driver's measured energy every so many requests).
 * `x` is the window's mean bytes per request, `y` its active energy per request; `sums` (updated in
 * place) hold the earlier windows weighted by `forget`. constant model: b = 0, a = the weighted
 * mean of y (the paper's). per-byte: a + b·x by least squares once at least two windows of
 * different sizes are known (a = 0, nothing charged, for up to PER_BYTE_PATIENCE windows before
 * that; then the constant cost); costs never negative.
 */
export function fitCost(sums: FitSums, x: number, y: number, forget: number, model: 'constant' | 'per-byte', windows: number): { a: number; b: number } {
  const f = sums;
  f[0] = forget * f[0]! + 1;
  f[1] = forget * f[1]! + x;
  f[2] = forget * f[2]! + y;
  f[3] = forget * f[3]! + x * x;
  f[4] = forget * f[4]! + x * y;
  const mx = f[1]! / f[0]!;
  const my = f[2]! / f[0]!;
  if (model === 'constant') return { a: Math.max(0, my), b: 0 };
  const vx = f[3]! / f[0]! - mx * mx;
  const determined = windows >= 2 && vx > 1e-12 * Math.max(1, mx * mx);
  let b = determined ? (f[4]! / f[0]! - mx * my) / vx : 0;
  let a = my - b * mx;
  if (!determined && windows < PER_BYTE_PATIENCE) return { a: 0, b: 0 };
  if (b < 0) {
    b = 0;
    a = Math.max(0, my);
  } else if (a < 0) {
    a = 0;
    b = mx > 0 ? Math.max(0, my) / mx : 0;
  }
  return { a, b };
}

/**
 * The scale of the next window's costs that pays back the deviation carried forward (the paper's
 * `unaccounted_cpu_energy`): a window like the last one, predicted to cost G in all, is charged
 * G + U, so each cost is scaled by 1 + U / G (never below 0).
 */
export function paybackScale(unaccounted: number, predictedTotal: number): number {
  return predictedTotal > 0 ? Math.max(0, 1 + unaccounted / predictedTotal) : 0;
}

/**
 * How energy a driver was charged is passed on to its clients (§3.3.3, recursive accounting):
 * idle energy in equal parts; active energy in proportion to what the clients' requests cost on
 * the device it was spent on (`weights`), or, where those are all 0 (no request yet, or a cost
 * model that predicts nothing), to their numbers of requests (`counts`), else in equal parts.
 * Returns each client's share (summing to 1).
 */
export function passOnShares(kind: 'idle' | 'active', clients: readonly number[], weights: ArrayLike<number>, counts: ArrayLike<number>): number[] {
  const equal = clients.map(() => 1 / clients.length);
  if (kind === 'idle') return equal;
  for (const w of [weights, counts]) {
    const total = clients.reduce((a, c) => a + w[c]!, 0);
    if (total > 0) return clients.map((c) => w[c]! / total);
  }
  return equal;
}
