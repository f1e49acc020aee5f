import type { ParameterSpec, Rng } from '@gantry/shared';

/**
 * Parzen estimators of TPE (Bergstra et al. 2011), univariate, as Optuna 3.1's `_ParzenEstimator` builds
 * them (consider_prior, consider_magic_clip, not consider_endpoints) with the true truncated-normal density
 * (Optuna 3.1's logpdf leaves out -log(sigma); optuna/optuna#5109, fixed in 3.5).
 *
 * Each observation is a kernel, plus one prior kernel; the mixture weights are the observations' weights and
 * `priorWeight`, normalised. Numerical parameters live in a transformed space (log for `log_uniform`; the
 * integers of `int_uniform` on [min - 0.5, max + 0.5], each value the mass of its unit cell), and densities
 * are in that space: TPE only compares l(x) / g(x), where the transform's Jacobian cancels.
 */
export interface ParzenEstimator {
  /**
   * Log density (numerical) or log probability (integers, choices) of an external value; -Infinity off the
   * domain.
   */
  logPdf(x: number): number;
  /** One external value drawn from the mixture. */
  sample(rng: Rng): number;
}

/** A parameter TPE searches: a list of choices or a distribution (constants are not searched). */
export type SearchedParameter = Exclude<ParameterSpec, { kind: 'value' }>;

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);
const SQRT_PI = Math.sqrt(Math.PI);

/** erf(t) for 0 <= t < 3 by its series of positive terms: (2/sqrt(pi)) e^(-t^2) sum t (2t^2)^n / (2n+1)!!. */
function erfSeries(t: number): number {
  const t2 = 2 * t * t;
  let term = t;
  let sum = t;
  for (let n = 0; term > 1e-17 * sum; n++) {
    term *= t2 / (2 * n + 3);
    sum += term;
  }
  return (2 / SQRT_PI) * Math.exp(-t * t) * sum;
}

/**
 * log(erfc(t) e^(t^2) sqrt(pi)) for t >= 3, by the continued fraction erfc(t) = e^(-t^2) / sqrt(pi) /
 * (t + (1/2) / (t + 1 / (t + (3/2) / (t + ...)))), evaluated with Lentz's method.
 */
function logErfcScaled(t: number): number {
  let f = t;
  let c = t;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = 1 / (t + a * d);
    c = t + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return -Math.log(f);
}

/** Upper tail of the standard normal, 1 - Phi(x) = Phi(-x), for x >= 0. */
function upperTail(x: number): number {
  const t = x * Math.SQRT1_2;
  if (t < 3) return 0.5 * (1 - erfSeries(t));
  return (0.5 / SQRT_PI) * Math.exp(-t * t + logErfcScaled(t));
}

/** Standard normal CDF Phi(x). */
export function ndtr(x: number): number {
  return x >= 0 ? 1 - upperTail(x) : upperTail(-x);
}

/** log Phi(x), accurate far into the lower tail (no underflow) and near 1 (log1p). */
export function logNdtr(x: number): number {
  if (x > 0) return Math.log1p(-upperTail(x));
  const t = -x * Math.SQRT1_2;
  if (t < 3) return Math.log(0.5 * (1 - erfSeries(t)));
  return Math.log(0.5 / SQRT_PI) - t * t + logErfcScaled(t);
}

/** log(Phi(b) - Phi(a)) for a <= b: the log mass of the standard normal on [a, b], computed in its left tail. */
export function logGaussMass(a: number, b: number): number {
  const leftTail = (lo: number, hi: number) => {
    const lhi = logNdtr(hi);
    return lhi + Math.log1p(-Math.exp(logNdtr(lo) - lhi));
  };
  if (b <= 0) return leftTail(a, b);
  if (a > 0) return leftTail(-b, -a);
  return Math.log1p(-ndtr(a) - ndtr(-b));
}

/**
 * A draw of the standard normal truncated to [a, b] (a < b): the inverse CDF at a uniform, by bisection
 * (one uniform per draw). The lower tail is used (mirrored when a > 0) so that Phi keeps its precision.
 */
function truncatedNormal(a: number, b: number, rng: Rng): number {
  if (a > 0) return -truncatedNormal(-b, -a, rng);
  const pa = ndtr(a);
  const p = pa + rng.uniform() * (ndtr(b) - pa);
  let lo = a;
  let hi = b;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (ndtr(mid) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** Index drawn with probability proportional to `weights` (one uniform). */
function drawIndex(weights: readonly number[], rng: Rng): number {
  let u = rng.uniform();
  for (let i = 0; i < weights.length - 1; i++) {
    u -= weights[i]!;
    if (u < 0) return i;
  }
  return weights.length - 1;
}

/** Observation weights and the prior's, normalised (Optuna's _calculate_weights with consider_prior). */
function mixtureWeights(weights: readonly number[], priorWeight: number): number[] {
  const all = [...weights, priorWeight];
  const total = all.reduce((s, w) => s + w, 0);
  return all.map((w) => w / total);
}

/** Truncated-normal kernels on [low, high] of the transformed space, one per observation, plus the prior. */
export class NumericalParzen implements ParzenEstimator {
  /** The domain in the transformed space. */
  readonly low: number;
  readonly high: number;
  /** Kernel centres (observations, then the prior's, (low + high) / 2) in the transformed space. */
  readonly mus: number[];
  /**
   * Kernel widths: the larger gap to a neighbouring centre (the outermost: the inner gap), clipped to
   * [(high - low) / min(100, kernels + 1), high - low] (kernels counting the prior); the prior's is high - low.
   */
  readonly sigmas: number[];
  /** Mixture weights, summing to 1 (the prior's last). */
  readonly weights: number[];
  /** log mass of each kernel's normal on [low, high]. */
  private readonly logMass: number[];

  constructor(
    private readonly spec: Extract<SearchedParameter, { kind: 'distribution' }>,
    observations: readonly number[],
    weights: readonly number[],
    priorWeight: number,
  ) {
    if (observations.length !== weights.length)
      throw new RangeError(`${observations.length} observations but ${weights.length} weights`);
    const log = spec.distribution === 'log_uniform';
    const int = spec.distribution === 'int_uniform';
    this.low = log ? Math.log(spec.min) : int ? spec.min - 0.5 : spec.min;
    this.high = log ? Math.log(spec.max) : int ? spec.max + 0.5 : spec.max;
    this.weights = mixtureWeights(weights, priorWeight);
    this.mus = [...observations.map((v) => (log ? Math.log(v) : v)), 0.5 * (this.low + this.high)];
    this.sigmas = this.kernelWidths();
    this.logMass = this.mus.map((mu, i) =>
      logGaussMass((this.low - mu) / this.sigmas[i]!, (this.high - mu) / this.sigmas[i]!),
    );
  }

  private kernelWidths(): number[] {
    const { low, high, mus } = this;
    const n = mus.length;
    const order = mus.map((_, i) => i).sort((i, j) => mus[i]! - mus[j]!);
    // s[k + 1] is the k-th smallest centre; s[0] and s[n + 1] are the domain's ends.
    const s = [low, ...order.map((i) => mus[i]!), high];
    const widths = order.map((_, k) => Math.max(s[k + 1]! - s[k]!, s[k + 2]! - s[k + 1]!));
    if (n >= 2) {
      // Not consider_endpoints: the outermost kernels take their inner gap only.
      widths[0] = s[2]! - s[1]!;
      widths[n - 1] = s[n]! - s[n - 1]!;
    }
    // Optuna's magic clip.
    const maxSigma = high - low;
    const minSigma = (high - low) / Math.min(100, 1 + n);
    const sigmas = new Array<number>(n);
    order.forEach((i, k) => {
      sigmas[i] = Math.min(Math.max(widths[k]!, minSigma), maxSigma);
    });
    sigmas[n - 1] = high - low;
    return sigmas;
  }

  logPdf(x: number): number {
    const { spec } = this;
    const int = spec.distribution === 'int_uniform';
    const y = spec.distribution === 'log_uniform' ? Math.log(x) : x;
    // Integers: the values min..max; floats: [low, high] of the transformed space (exp(log(min)) may be < min).
    if (int ? !(x >= spec.min && x <= spec.max) : !(y >= this.low && y <= this.high))
      return Number.NEGATIVE_INFINITY;
    const terms = this.mus.map((mu, i) => {
      const sigma = this.sigmas[i]!;
      const logKernel = int
        ? logGaussMass(
            (Math.max(y - 0.5, this.low) - mu) / sigma,
            (Math.min(y + 0.5, this.high) - mu) / sigma,
          )
        : -0.5 * ((y - mu) / sigma) ** 2 - LOG_SQRT_2PI - Math.log(sigma);
      return Math.log(this.weights[i]!) + logKernel - this.logMass[i]!;
    });
    return logSumExp(terms);
  }

  sample(rng: Rng): number {
    const i = drawIndex(this.weights, rng);
    const mu = this.mus[i]!;
    const sigma = this.sigmas[i]!;
    const y = mu + sigma * truncatedNormal((this.low - mu) / sigma, (this.high - mu) / sigma, rng);
    const { min, max, distribution } = this.spec;
    const x =
      distribution === 'log_uniform' ? Math.exp(y) : distribution === 'int_uniform' ? Math.round(y) : y;
    return Math.min(Math.max(x, min), max);
  }
}

/**
 * Choices (by index into `values`): each observation's kernel puts priorWeight / (n + 1) on every choice and
 * 1 more on its own, normalised; the prior kernel is uniform (Optuna 3.1's _calculate_categorical_params).
 */
export class CategoricalParzen implements ParzenEstimator {
  /** Mixture weights, summing to 1 (the prior's last). */
  readonly weights: number[];
  /** Each kernel's probabilities over the choices (rows sum to 1; the prior's last). */
  readonly table: number[][];
  /** The mixture's probability of each choice. */
  readonly probabilities: number[];

  constructor(
    private readonly spec: Extract<SearchedParameter, { kind: 'values' }>,
    observations: readonly number[],
    weights: readonly number[],
    priorWeight: number,
  ) {
    if (observations.length !== weights.length)
      throw new RangeError(`${observations.length} observations but ${weights.length} weights`);
    const k = spec.values.length;
    const n = observations.length;
    this.weights = mixtureWeights(weights, priorWeight);
    const base = priorWeight / (n + 1);
    this.table = [...observations.map((v) => spec.values.indexOf(v)), -1].map((c) => {
      const row = new Array<number>(k).fill(base);
      if (c >= 0) row[c]! += 1;
      const total = row.reduce((s, p) => s + p, 0);
      return row.map((p) => p / total);
    });
    this.probabilities = spec.values.map((_, c) =>
      this.table.reduce((s, row, i) => s + this.weights[i]! * row[c]!, 0),
    );
  }

  logPdf(x: number): number {
    const c = this.spec.values.indexOf(x);
    return c < 0 ? Number.NEGATIVE_INFINITY : Math.log(this.probabilities[c]!);
  }

  sample(rng: Rng): number {
    const row = this.table[drawIndex(this.weights, rng)]!;
    return this.spec.values[drawIndex(row, rng)]!;
  }
}

/** The estimator for one parameter from its observations (external values, all in the domain) and their weights. */
export function parzenEstimator(
  spec: SearchedParameter,
  observations: readonly number[],
  weights: readonly number[],
  priorWeight: number,
): NumericalParzen | CategoricalParzen {
  return spec.kind === 'values'
    ? new CategoricalParzen(spec, observations, weights, priorWeight)
    : new NumericalParzen(spec, observations, weights, priorWeight);
}

/** Whether `x` is a value of the parameter's domain (an observation the estimators can use). */
export function inDomain(spec: SearchedParameter, x: number | undefined): x is number {
  if (x === undefined || !Number.isFinite(x)) return false;
  if (spec.kind === 'values') return spec.values.includes(x);
  if (spec.distribution === 'int_uniform' && !Number.isInteger(x)) return false;
  return x >= spec.min && x <= spec.max;
}

function logSumExp(terms: readonly number[]): number {
  const max = terms.reduce((m, t) => Math.max(m, t), Number.NEGATIVE_INFINITY);
  if (max === Number.NEGATIVE_INFINITY) return max;
  return max + Math.log(terms.reduce((s, t) => s + Math.exp(t - max), 0));
}
