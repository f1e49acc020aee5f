import { FEATURE_DIM, type RealDataStats } from './classifier.ts';
import { frechetDistance, type GaussianStats, gaussianStats } from './frechet.ts';

/** What one quality evaluation reports (the sweep metric `fld` and the mode-collapse signals). */
export interface QualityScores {
  /** Fréchet distance of classifier features, generated against the real train split. Lower is better. */
  fld: number;
  /**
   * Fraction of the data's classes that the generated samples cover (see {@link COVERED_SHARE}); absent
   * when the features come from a label-free network (a set without classes).
   */
  class_coverage?: number;
  /** KL(generated class histogram || the data's), in nats. 0 when the proportions match; absent as above. */
  class_kl?: number;
  /** Mean pairwise feature distance of generated samples over the real data's: ~1 healthy, low = collapse. */
  diversity_ratio: number;
  /** cGAN only: how often the classifier predicts the class a sample was conditioned on. */
  cond_accuracy?: number;
}

/** A class counts as covered when its generated share is at least this fraction of its share in the data. */
export const COVERED_SHARE = 0.25;

/** Class shares of `predictions` over `numClasses` classes. */
export function classShares(predictions: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < predictions.length; i++) counts[predictions[i] as number]! += 1;
  return counts.map((c) => c / Math.max(predictions.length, 1));
}

/** KL(p || q) in nats; terms with p = 0 contribute 0; q must be positive wherever p is. */
export function klDivergence(p: readonly number[], q: readonly number[]): number {
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] as number;
    if (pi > 0) kl += pi * Math.log(pi / Math.max(q[i] as number, 1e-12));
  }
  return kl;
}

/** Fraction of classes whose share in `shares` reaches COVERED_SHARE of their share in `dataShares`. */
export function classCoverage(shares: readonly number[], dataShares: readonly number[]): number {
  let covered = 0;
  for (let i = 0; i < dataShares.length; i++) {
    if ((shares[i] as number) >= COVERED_SHARE * (dataShares[i] as number)) covered += 1;
  }
  return covered / dataShares.length;
}

/**
 * Mean L2 distance between the features of sample i and sample i + n/2 (n/2 disjoint pairs; samples
 * come in random order, so these are random pairs).
 */
export function pairDiversity(features: Float32Array, dim: number = FEATURE_DIM): number {
  const n = Math.floor(features.length / dim);
  const half = Math.floor(n / 2);
  if (half === 0) return 0;
  let total = 0;
  for (let i = 0; i < half; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const d = (features[i * dim + j] as number) - (features[(i + half) * dim + j] as number);
      s += d * d;
    }
    total += Math.sqrt(s);
  }
  return total / half;
}

/** The real data's statistics as a Gaussian. */
export function realGaussian(stats: RealDataStats): GaussianStats {
  return {
    dim: stats.mean.length,
    count: stats.count,
    mean: Float64Array.from(stats.mean),
    cov: Float64Array.from(stats.cov),
  };
}

/**
 * Scores generated samples from their classifier features and predictions. `conditioned` holds the
 * labels a cGAN's samples were generated for. With `classes` false (features of a label-free network,
 * whose predictions are no classes of the data) only FLD and diversity are scored.
 */
export function scoreSamples(
  features: Float32Array,
  predictions: Int32Array,
  stats: RealDataStats,
  conditioned?: ArrayLike<number>,
  classes = true,
): QualityScores {
  const scores: QualityScores = {
    fld: frechetDistance(gaussianStats(features, FEATURE_DIM), realGaussian(stats)),
    diversity_ratio: pairDiversity(features) / stats.diversity,
  };
  if (classes) {
    const shares = classShares(predictions, stats.classShare.length);
    scores.class_coverage = classCoverage(shares, stats.classShare);
    scores.class_kl = klDivergence(shares, stats.classShare);
  }
  if (conditioned !== undefined) {
    let hits = 0;
    for (let i = 0; i < predictions.length; i++) if (predictions[i] === conditioned[i]) hits += 1;
    scores.cond_accuracy = hits / Math.max(predictions.length, 1);
  }
  return scores;
}
