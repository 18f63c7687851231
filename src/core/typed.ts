/** A copy of typed array `a` grown to length `n` (new elements zero). */
export function resized<T extends Float64Array | Uint8Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
