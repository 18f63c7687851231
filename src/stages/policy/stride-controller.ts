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

/**
 * The adaptive controller. A VM's share of its CPU against the others runnable there (other VMs'
 * tickets 1/stride and the idle processor's 1/1000, together W) is σ = (1/s) / (1/s + W). In the
 * last period it drew e_c at a share σ_m (the time it ran over the period's length); at the limit
 * e_l it would have had σ* = σ_m · e_l / e_c. With W unchanged, the stride that gives σ* is
 *   s* = s · (e_c / e_l) · (1 − σ*) / (1 − σ_m)
 * — about s · e_c / e_l while its share is small (beside a CPU-bound neighbour), and a large step
 * where it had the CPU nearly to itself (against the idle processor alone a fifth of the CPU is a
 * stride of 4000, not 4). One period's step is bounded to ×1/64 … ×1024, so a period of unusual
 * load does not throw it far. The stride the scheduler uses is a whole number (its passes stay
 * exact integers): the fraction is carried from period to period, so the strides average s*.
 */
export function adaptiveStride(s: AdaptiveState, ec: number, el: number, share: number): number {
  const sm = Math.min(0.999, Math.max(0, share));
  let ratio: number;
  if (el <= 0) ratio = 1024;
  else if (ec <= 0) ratio = 1 / 64;
  else {
    const target = Math.min(0.999, (sm * el) / ec);
    ratio = (ec / el) * ((1 - target) / (1 - sm));
  }
  ratio = Math.min(1024, Math.max(1 / 64, ratio));
  if (mutated('stride-direction')) ratio = 1 / ratio;
  s.ideal = Math.min(MAX_STRIDE, Math.max(1, s.ideal * ratio));
  const target = s.ideal + s.carry;
  const stride = Math.max(1, Math.round(target));
  s.carry = target - stride;
  return stride;
}
