import { Rng } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { frechetDistance, type GaussianStats, gaussianStats, sqrtPsd, symmetricEigen } from './frechet.ts';

function stats(mean: number[], cov: number[][]): GaussianStats {
  const d = mean.length;
  return { dim: d, count: 0, mean: Float64Array.from(mean), cov: Float64Array.from(cov.flat()) };
}

/** A random symmetric positive definite d x d matrix, B B^T + d/10 I. */
function randomSpd(rng: Rng, d: number): number[][] {
  const b = Array.from({ length: d }, () => Array.from({ length: d }, () => rng.normal()));
  return b.map((row, i) =>
    b.map((other, j) => row.reduce((s, x, k) => s + x * (other[k] as number), 0) + (i === j ? d / 10 : 0)),
  );
}

/** A random rotation (orthogonal matrix) by Gram-Schmidt on normal vectors. */
function randomRotation(rng: Rng, d: number): number[][] {
  const q: number[][] = [];
  while (q.length < d) {
    const v = Array.from({ length: d }, () => rng.normal());
    for (const u of q) {
      const dot = v.reduce((s, x, k) => s + x * (u[k] as number), 0);
      for (let k = 0; k < d; k++) v[k]! -= dot * (u[k] as number);
    }
    const n = Math.hypot(...v);
    q.push(v.map((x) => x / n));
  }
  return q;
}

const mul = (a: number[][], b: number[][]) =>
  a.map((row) => b[0]!.map((_, j) => row.reduce((s, x, k) => s + x * (b[k]![j] as number), 0)));
const transpose = (a: number[][]) => a[0]!.map((_, j) => a.map((row) => row[j] as number));

describe('Fréchet distance', () => {
  it('is the closed form for diagonal covariances: |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2', () => {
    const p = stats(
      [1, 2, 3],
      [
        [4, 0, 0],
        [0, 9, 0],
        [0, 0, 1],
      ],
    );
    const q = stats(
      [0, 2, 5],
      [
        [1, 0, 0],
        [0, 4, 0],
        [0, 0, 16],
      ],
    );
    const expected = 1 + 0 + 4 + (2 - 1) ** 2 + (3 - 2) ** 2 + (1 - 4) ** 2;
    expect(frechetDistance(p, q)).toBeCloseTo(expected, 10);
  });

  it('is the 2x2 closed form for non-commuting covariances: tr sqrt(S1 S2) = sqrt(tr + 2 sqrt(det))', () => {
    const rng = new Rng(7);
    for (let trial = 0; trial < 20; trial++) {
      const s1 = randomSpd(rng, 2);
      const s2 = randomSpd(rng, 2);
      const p = stats([rng.normal(), rng.normal()], s1);
      const q = stats([rng.normal(), rng.normal()], s2);
      const m = mul(s1, s2);
      const tr = m[0]![0]! + m[1]![1]!;
      const det = m[0]![0]! * m[1]![1]! - m[0]![1]! * m[1]![0]!;
      const trRoot = Math.sqrt(tr + 2 * Math.sqrt(det));
      const meanTerm = (p.mean[0]! - q.mean[0]!) ** 2 + (p.mean[1]! - q.mean[1]!) ** 2;
      const expected = meanTerm + s1[0]![0]! + s1[1]![1]! + s2[0]![0]! + s2[1]![1]! - 2 * trRoot;
      expect(frechetDistance(p, q)).toBeCloseTo(expected, 8);
    }
  });

  it('is zero for identical statistics, symmetric, and unchanged by a common rotation (64-d)', () => {
    const rng = new Rng(11);
    const d = 64;
    const s1 = randomSpd(rng, d);
    const s2 = randomSpd(rng, d);
    const m1 = Array.from({ length: d }, () => rng.normal());
    const m2 = Array.from({ length: d }, () => rng.normal());
    const p = stats(m1, s1);
    const q = stats(m2, s2);
    expect(frechetDistance(p, p)).toBeLessThan(1e-6);
    const pq = frechetDistance(p, q);
    expect(frechetDistance(q, p)).toBeCloseTo(pq, 6);
    const r = randomRotation(rng, d);
    const rotate = (mean: number[], cov: number[][]) =>
      stats(
        mul(
          r,
          mean.map((x) => [x]),
        ).map((row) => row[0] as number),
        mul(mul(r, cov), transpose(r)),
      );
    expect(frechetDistance(rotate(m1, s1), rotate(m2, s2))).toBeCloseTo(pq, 5);
  });

  it('decomposes symmetric matrices: A V = V diag(values), and sqrtPsd(A)^2 = A', () => {
    const rng = new Rng(3);
    const d = 12;
    const a = randomSpd(rng, d);
    const flat = Float64Array.from(a.flat());
    const { values, vectors } = symmetricEigen(flat, d);
    for (let k = 0; k < d; k++) {
      for (let i = 0; i < d; i++) {
        let av = 0;
        for (let j = 0; j < d; j++) av += a[i]![j]! * vectors[j * d + k]!;
        expect(av).toBeCloseTo(values[k]! * vectors[i * d + k]!, 8);
      }
    }
    const root = sqrtPsd(flat, d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        let sq = 0;
        for (let k = 0; k < d; k++) sq += root[i * d + k]! * root[k * d + j]!;
        expect(sq).toBeCloseTo(a[i]![j]!, 8);
      }
    }
  });

  it('estimates mean and unbiased covariance from samples', () => {
    const s = gaussianStats([1, 2, 3, 6, 5, 4], 2);
    expect(Array.from(s.mean)).toEqual([3, 4]);
    // Deviations (-2,-2), (0,2), (2,0): sums of products 8, 4, 8 over n - 1 = 2.
    expect(Array.from(s.cov)).toEqual([4, 2, 2, 4]);
    expect(() => gaussianStats([1, 2], 2)).toThrow(/at least 2/);
  });
});
