// Reference Philox4x32-10 in BigInt arithmetic (slow, obvious), checked against the published
// Random123 known-answer vectors in test/kernels/random.test.ts.
export function philoxRef(ctr: number[], key: number[]): number[] {
  const M0 = 0xd2511f53n, M1 = 0xcd9e8d57n, W0 = 0x9e3779b9n, W1 = 0xbb67ae85n, MASK = 0xffffffffn;
  let [c0, c1, c2, c3] = ctr.map(BigInt);
  let [k0, k1] = key.map(BigInt);
  for (let r = 0; r < 10; r++) {
    const p0 = M0 * c0, p1 = M1 * c2;
    const hi0 = p0 >> 32n, lo0 = p0 & MASK, hi1 = p1 >> 32n, lo1 = p1 & MASK;
    [c0, c1, c2, c3] = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0];
    k0 = (k0 + W0) & MASK;
    k1 = (k1 + W1) & MASK;
  }
  return [c0, c1, c2, c3].map(Number);
}

/** Stream element g of seed (lo, hi) as dd2 defines it: block g/4, lane g%4, 24-bit uniform. */
export function uniformRef(g: number, lo: number, hi: number): number {
  const block = Math.floor(g / 4);
  const out = philoxRef([block % 2 ** 32, Math.floor(block / 2 ** 32), 0, 0], [lo, hi]);
  return (out[g % 4] >>> 8) / 2 ** 24;
}

export function normalRef(g: number, lo: number, hi: number): number {
  const block = Math.floor(g / 4);
  const out = philoxRef([block % 2 ** 32, Math.floor(block / 2 ** 32), 0, 0], [lo, hi]);
  const p = (g % 4) >> 1;
  const u1 = ((out[2 * p] >>> 8) + 1) / 2 ** 24, u2 = (out[2 * p + 1] >>> 8) / 2 ** 24;
  const rad = Math.sqrt(-2 * Math.log(u1)), ang = 2 * Math.PI * u2;
  return rad * (g % 2 ? Math.sin(ang) : Math.cos(ang));
}
