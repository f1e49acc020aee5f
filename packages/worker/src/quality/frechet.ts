/**
 * Gaussian statistics of feature vectors and the Fréchet distance between two Gaussians, in float64:
 *
 *   d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)
 *
 * (Dowson & Landau, 1982; the FID of Heusel et al., 2017 applies it to Inception features, Gantry to
 * its own small classifier's: "FLD"). tr((S1 S2)^1/2) is computed through the symmetric form
 * S1^1/2 S2 S1^1/2, whose eigenvalues are those of S1 S2 but which stays symmetric positive
 * semi-definite, so a Jacobi eigen-decomposition (exact to rounding for the 64x64 matrices used here)
 * is enough: no complex square roots, no scipy.
 */

/** Mean and covariance (row-major d x d, unbiased) of n feature vectors of dimension d. */
export interface GaussianStats {
  dim: number;
  count: number;
  mean: Float64Array;
  cov: Float64Array;
}

/** Statistics of `features`, n rows of `dim` values each (row-major). */
export function gaussianStats(features: ArrayLike<number>, dim: number): GaussianStats {
  const n = Math.floor(features.length / dim);
  if (n < 2) throw new Error(`need at least 2 feature vectors, got ${n}`);
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j]! += features[i * dim + j] as number;
  for (let j = 0; j < dim; j++) mean[j]! /= n;
  const cov = new Float64Array(dim * dim);
  const centred = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) centred[j] = (features[i * dim + j] as number) - mean[j]!;
    for (let a = 0; a < dim; a++) {
      const ca = centred[a]!;
      if (ca === 0) continue;
      for (let b = a; b < dim; b++) cov[a * dim + b]! += ca * centred[b]!;
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = cov[a * dim + b]! / (n - 1);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  }
  return { dim, count: n, mean, cov };
}

/** Fréchet distance (squared, as FID is reported) between two Gaussians of the same dimension. */
export function frechetDistance(p: GaussianStats, q: GaussianStats): number {
  if (p.dim !== q.dim) throw new Error(`dimension mismatch: ${p.dim} vs ${q.dim}`);
  const d = p.dim;
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (p.mean[i]! - q.mean[i]!) ** 2;
  let trace = 0;
  for (let i = 0; i < d; i++) trace += p.cov[i * d + i]! + q.cov[i * d + i]!;
  const root = sqrtPsd(p.cov, d);
  const m = multiply(multiply(root, q.cov, d), root, d);
  symmetrise(m, d);
  const { values } = symmetricEigen(m, d);
  let traceRoot = 0;
  for (const v of values) traceRoot += Math.sqrt(Math.max(v, 0));
  // Rounding can take a distance of identical statistics a hair below zero.
  return Math.max(meanTerm + trace - 2 * traceRoot, 0);
}

/** Principal square root of a symmetric positive semi-definite matrix (negative eigenvalues clamped to 0). */
export function sqrtPsd(a: Float64Array, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(values[k]!, 0));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vik = vectors[i * d + k]! * s;
      if (vik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j]! += vik * vectors[j * d + k]!;
    }
  }
  return out;
}

/**
 * Eigenvalues and eigenvectors (columns of `vectors`, row-major) of a symmetric matrix by the cyclic
 * Jacobi method: rotations zero the off-diagonal entries until their norm is negligible against the
 * matrix's. Quadratically convergent; ~10 sweeps for 64x64.
 */
export function symmetricEigen(a: Float64Array, d: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let norm = 0;
  for (let i = 0; i < d * d; i++) norm += m[i]! ** 2;
  const tolerance = 1e-24 * Math.max(norm, Number.MIN_VALUE);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += m[p * d + q]! ** 2;
    if (off <= tolerance) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q]!;
        if (apq === 0) continue;
        const app = m[p * d + p]!;
        const aqq = m[q * d + q]!;
        // The rotation angle that zeroes m[p][q] (Golub & Van Loan, Algorithm 8.4.1).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p]!;
          const mkq = m[k * d + q]!;
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k]!;
          const mqk = m[q * d + k]!;
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p]!;
          const vkq = v[k * d + q]!;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = m[i * d + i]!;
  return { values, vectors: v };
}

function multiply(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j]! += aik * b[k * d + j]!;
    }
  }
  return out;
}

function symmetrise(a: Float64Array, d: number): void {
  for (let i = 0; i < d; i++) {
    for (let j = i + 1; j < d; j++) {
      const v = (a[i * d + j]! + a[j * d + i]!) / 2;
      a[i * d + j] = v;
      a[j * d + i] = v;
    }
  }
}
