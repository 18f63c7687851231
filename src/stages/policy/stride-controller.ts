/**
 * The host-level energy manager's stride controllers (§3.3.6): every period, a limited VM's
 * stride follows its active CPU energy e_c against the limit e_l. A larger stride is a smaller
 * share of the CPU (Waldspurger's stride scheduling).
 */
import { mutated } from './mutations.js';

/** The largest stride a controller sets (a share of about 1e-3 against the idle processor). */
export const MAX_STRIDE = 1_000_000;

/** The paper's controller: the stride moves by a constant `offset`, up when over, down (not below 1) when under. */
export function paperStride(stride: number, ec: number, el: number, offset: number): number {
  const up = mutated('stride-direction') ? ec < el : ec > el;
  const down = mutated('stride-direction') ? ec > el : ec < el;
  if (up) return Math.min(MAX_STRIDE, stride + offset);
  if (down) return Math.max(1, stride - offset);
  return stride;
}

/** The state of the adaptive controller: the stride it aims at (real), and the rounding carried. */
export interface AdaptiveState {
  ideal: number;
  carry: number;
}

/** How strongly one period's error moves the stride (1: all of it; less damps bursty load). */
export const ADAPTIVE_GAIN = 0.7;

/**
 * The adaptive controller: with a CPU share roughly inverse to the stride, a VM at e_c against a
 * limit e_l needs its stride scaled by e_c / e_l; the step is that ratio to the power
 * ADAPTIVE_GAIN, bounded to ×¼ … ×4 per period, so it settles in a few periods beside CPU-bound
 * neighbours where a constant offset is too slow or too coarse (a stride of 1 vs 2 halves a
 * share). The stride the scheduler uses is a whole number (its passes stay exact integers): the
 * fraction is carried from period to period, so the strides average the ideal.
 */
export function adaptiveStride(s: AdaptiveState, ec: number, el: number): number {
  const ratio = el > 0 ? ec / el : 4;
  let step = Math.min(4, Math.max(0.25, Math.pow(Math.max(ratio, 1e-9), ADAPTIVE_GAIN)));
  if (mutated('stride-direction')) step = 1 / step;
  s.ideal = Math.min(MAX_STRIDE, Math.max(1, s.ideal * step));
  const target = s.ideal + s.carry;
  const stride = Math.max(1, Math.round(target));
  s.carry = target - stride;
  return stride;
}
