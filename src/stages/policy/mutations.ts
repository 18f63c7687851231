/**
 * A test-only seam: deliberate faults a test switches on with the environment variable
 * WATTRACE_TEST_MUTATION=<name>, to prove that the shipped pipelines' `expect` blocks catch a
 * broken policy (test/commands/mutations.test.ts). Unset, nothing changes. The names:
 *   disk-sign            the throttle controller moves t the wrong way (sgn flipped)
 *   stride-direction     host-strides lowers the stride of a VM over its limit (and raises it under)
 *   ignore-container-budgets  guest-containers lets containers run past their budgets
 *   truncate-closed      closed arrival replays only each client's first 256 requests, over again
 */
const active = process.env['WATTRACE_TEST_MUTATION'] ?? '';

export function mutated(name: 'disk-sign' | 'stride-direction' | 'ignore-container-budgets' | 'truncate-closed'): boolean {
  return active === name;
}
