import type { ParameterSpec, Rng, TpeSpec } from '@gantry/shared';
import { sampleParameter } from '../planner/sample-parameter.ts';
import { inDomain, type ParzenEstimator, parzenEstimator, type SearchedParameter } from './parzen.ts';

/**
 * `method: tpe`: the Tree-structured Parzen Estimator (Bergstra et al. 2011, "Algorithms for
 * Hyper-Parameter Optimization") as Optuna 3.1's TPESampler runs it by default: independent (one parameter at
 * a time), with the prior, the magic clip, `default_gamma`, `default_weights` and the constant liar (Optuna's
 * `constant_liar=True`), the densities as parzen.ts gives them.
 */

/** A finished observation; `value` is a loss (lower is better: the caller negates maximised metrics). */
export interface TpeObservation {
  params: Record<string, number>;
  value: number;
}

/** A trial stopped early by a scheduler: ranked after every complete one, deeper steps first, then value. */
export interface TpePruned {
  params: Record<string, number>;
  step: number;
  value: number;
}

export interface TpeInput {
  /** Searched parameters only (no {kind:'value'}). */
  space: Record<string, ParameterSpec>;
  complete: TpeObservation[];
  pruned: TpePruned[];
  /** Trials suggested but not finished (queued or running): the constant liar's worst results. */
  running: { params: Record<string, number> }[];
  config: TpeSpec;
  rng: Rng;
}

/** Optuna's gamma(n): how many of n finished trials form the good group, min(ceil(gamma * n), 25). */
export function tpeGamma(gamma: number, n: number): number {
  return Math.min(Math.ceil(gamma * n), 25);
}

/**
 * Optuna's default_weights(n) for n observations, oldest first: all 1 below 25; from 25 on the newest 25 weigh
 * 1 and the older n - 25 ramp up linearly from 1/n (numpy's linspace(1/n, 1, n - 25)).
 */
export function defaultWeights(n: number): number[] {
  if (n < 25) return new Array<number>(n).fill(1);
  const num = n - 25;
  const start = 1 / n;
  const step = num > 1 ? (1 - start) / (num - 1) : 0;
  const ramp = Array.from({ length: num }, (_, i) => (num > 1 && i === num - 1 ? 1 : start + i * step));
  return [...ramp, ...new Array<number>(25).fill(1)];
}

/** The trials TPE sees, in the order they were given, and its split of them into the good and the rest. */
export interface TpeSplit {
  /** Complete, then pruned, then (with constant_liar) running trials, each array in its given order. */
  trials: { params: Record<string, number> }[];
  /** Finished trials: complete and pruned (gamma's n). */
  finished: number;
  /** Indices into `trials` of the best tpeGamma(n) (l), ascending. */
  below: number[];
  /** Indices of the others (g), running trials among them, ascending. */
  above: number[];
}

/** Optuna's ranking key (step key, value), compared in order: complete (-inf), pruned (-step), running (+inf). */
type RankKey = readonly [number, number];

function compareKeys(a: RankKey, b: RankKey): number {
  for (let i = 0; i < 2; i++) {
    if (a[i]! < b[i]!) return -1;
    if (a[i]! > b[i]!) return 1;
  }
  return 0;
}

/** A loss as Optuna ranks it: NaN as +Infinity (the worst). */
const lossKey = (v: number) => (Number.isNaN(v) ? Number.POSITIVE_INFINITY : v);

/**
 * Optuna's _get_observation_pairs and _split_observation_pairs: finished trials sorted by (step key, value),
 * stably; the first tpeGamma(n) are the good group; with `constant_liar` running trials rank last, in g.
 */
export function splitTrials(input: Pick<TpeInput, 'complete' | 'pruned' | 'running' | 'config'>): TpeSplit {
  const keyed: { params: Record<string, number>; key: RankKey }[] = [
    ...input.complete.map((t) => ({
      params: t.params,
      key: [Number.NEGATIVE_INFINITY, lossKey(t.value)] as const,
    })),
    ...input.pruned.map((t) => ({ params: t.params, key: [-t.step, lossKey(t.value)] as const })),
    ...(input.config.constant_liar ? input.running : []).map((t) => ({
      params: t.params,
      key: [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY] as const,
    })),
  ];
  const finished = input.complete.length + input.pruned.length;
  const ranked = keyed.map((_, i) => i).sort((i, j) => compareKeys(keyed[i]!.key, keyed[j]!.key));
  const nBelow = tpeGamma(input.config.gamma, finished);
  const ascending = (xs: number[]) => xs.sort((a, b) => a - b);
  return {
    trials: keyed.map((t) => ({ params: t.params })),
    finished,
    below: ascending(ranked.slice(0, nBelow)),
    above: ascending(ranked.slice(nBelow)),
  };
}

/**
 * The good (l) and bad (g) estimators of parameter `name`: each group's trials that have a value of it in its
 * domain (others are left out of this parameter's estimators, as Optuna leaves out trials without the
 * parameter), weighted by defaultWeights in the order given.
 */
export function tpeEstimators(
  split: TpeSplit,
  name: string,
  spec: SearchedParameter,
  priorWeight: number,
): { l: ParzenEstimator; g: ParzenEstimator } {
  const build = (indices: number[]) => {
    const values = indices.map((i) => split.trials[i]!.params[name]).filter((v) => inDomain(spec, v));
    return parzenEstimator(spec, values, defaultWeights(values.length), priorWeight);
  };
  return { l: build(split.below), g: build(split.above) };
}

/** The one value of a parameter with a single value (Optuna does not sample those), else undefined. */
function singleValue(spec: SearchedParameter): number | undefined {
  if (spec.kind === 'values') return spec.values.length === 1 ? spec.values[0] : undefined;
  return spec.min === spec.max ? spec.min : undefined;
}

/**
 * The candidate of `n` draws from l with the largest log l(x) - log g(x) (the first of equals): where l is
 * dense relative to g, which maximises expected improvement for TPE's model (Bergstra et al., section 4.1).
 */
function bestCandidate(l: ParzenEstimator, g: ParzenEstimator, n: number, rng: Rng): number {
  let best = Number.NaN;
  let bestScore = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const x = l.sample(rng);
    const score = l.logPdf(x) - g.logPdf(x);
    if (i === 0 || score > bestScore) {
      best = x;
      bestScore = score;
    }
  }
  return best;
}

/** Parameters for the next trial (one value per name of `space`), deterministic given `rng`'s state. */
export function suggestTpe(input: TpeInput): Record<string, number> {
  const { config, rng } = input;
  const names = Object.keys(input.space)
    .filter((name) => input.space[name]!.kind !== 'value')
    .sort();
  const out: Record<string, number> = {};
  const finished = input.complete.length + input.pruned.length;
  if (finished < config.startup_trials) {
    // Startup: each parameter from its prior, as Optuna's RandomSampler (and random search) draws it.
    for (const name of names) out[name] = sampleParameter(input.space[name]!, rng);
    return out;
  }
  const split = splitTrials(input);
  for (const name of names) {
    const spec = input.space[name] as SearchedParameter;
    const single = singleValue(spec);
    if (single !== undefined) {
      out[name] = single;
      continue;
    }
    const { l, g } = tpeEstimators(split, name, spec, config.prior_weight);
    out[name] = bestCandidate(l, g, config.n_ei_candidates, rng);
  }
  return out;
}
