import { readFileSync } from 'node:fs';
import { type ParameterSpec, Rng, type TpeSpec } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import {
  CategoricalParzen,
  logGaussMass,
  logNdtr,
  type NumericalParzen,
  ndtr,
  parzenEstimator,
  type SearchedParameter,
} from './parzen.ts';
import {
  defaultWeights,
  splitTrials,
  suggestTpe,
  type TpeInput,
  type TpeObservation,
  tpeEstimators,
  tpeGamma,
} from './tpe.ts';

/** What scripts/tpe-fixtures.py records of one Optuna _ParzenEstimator. */
interface EstimatorRecord {
  mixture: number[];
  table?: number[][];
  mus?: number[];
  sigmas?: number[];
  low?: number;
  high?: number;
  points: number[];
  log_pdf: number[];
}
interface ParzenCase extends EstimatorRecord {
  label: string;
  spec: SearchedParameter;
  observations: number[];
  weights: number[];
  prior_weight: number;
}
interface TpeCase {
  label: string;
  space: Record<string, SearchedParameter>;
  complete: TpeInput['complete'];
  pruned: TpeInput['pruned'];
  running: TpeInput['running'];
  config: Omit<TpeSpec, 'constant_liar'> & { constant_liar: boolean };
  params: Record<
    string,
    { n: number; n_below: number; below: number[]; above: number[]; l: EstimatorRecord; g: EstimatorRecord }
  >;
}
interface Fixture {
  optuna: string;
  gamma: { n: number; n_below: number }[];
  weights: { n: number; weights: number[] }[];
  parzen: ParzenCase[];
  tpe: TpeCase[];
}

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/tpe-optuna.json', import.meta.url), 'utf8'),
) as Fixture;

/** |actual - expected| <= 1e-6 |expected| (elementwise). */
function expectClose(actual: readonly number[], expected: readonly number[], what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    expect(Math.abs(a - e), `${what}[${i}]: ${a} vs ${e}`).toBeLessThanOrEqual(1e-6 * Math.abs(e) + 1e-300);
  });
}

function expectEstimator(est: NumericalParzen | CategoricalParzen, ref: EstimatorRecord, what: string): void {
  expectClose(est.weights, ref.mixture, `${what} mixture weights`);
  if (est instanceof CategoricalParzen) {
    expectClose(est.table.flat(), ref.table!.flat(), `${what} kernel table`);
  } else {
    expectClose([est.low, est.high], [ref.low!, ref.high!], `${what} bounds`);
    expectClose(est.mus, ref.mus!, `${what} mus`);
    expectClose(est.sigmas, ref.sigmas!, `${what} sigmas`);
  }
  expectClose(
    ref.points.map((x) => est.logPdf(x)),
    ref.log_pdf,
    `${what} log-pdf`,
  );
}

const config = (over: Partial<TpeSpec> = {}): TpeSpec => ({
  startup_trials: 10,
  gamma: 0.1,
  n_ei_candidates: 24,
  prior_weight: 1,
  constant_liar: true,
  ...over,
});

describe('Parzen estimators against Optuna 3.1', () => {
  it.each(fixture.parzen.map((c) => [c.label, c] as const))('matches Optuna: %s', (_, c) => {
    const est = parzenEstimator(c.spec, c.observations, c.weights, c.prior_weight);
    expectEstimator(est, c, c.label);
  });

  it('gives densities that integrate (sum) to one over the domain', () => {
    const obs = [0.3, -2.1, 4.9, 4.95];
    const float = parzenEstimator(
      { kind: 'distribution', distribution: 'uniform', min: -5, max: 5 },
      obs,
      [1, 1, 1, 1],
      1,
    );
    const lr = parzenEstimator(
      { kind: 'distribution', distribution: 'log_uniform', min: 1e-5, max: 0.1 },
      [3e-5, 1e-3, 2e-3],
      [1, 0.5, 1],
      2,
    );
    // Trapezoid rule over the transformed space (log for log_uniform).
    const integrate = (f: (y: number) => number, lo: number, hi: number) => {
      const n = 20_000;
      const h = (hi - lo) / n;
      let s = 0.5 * (f(lo) + f(hi));
      for (let i = 1; i < n; i++) s += f(lo + i * h);
      return s * h;
    };
    expect(integrate((y) => Math.exp(float.logPdf(y)), -5, 5)).toBeCloseTo(1, 6);
    expect(integrate((y) => Math.exp(lr.logPdf(Math.exp(y))), Math.log(1e-5), Math.log(0.1))).toBeCloseTo(
      1,
      6,
    );
    const ints = parzenEstimator(
      { kind: 'distribution', distribution: 'int_uniform', min: 1, max: 10 },
      [3, 3, 7],
      [1, 1, 1],
      1,
    );
    const sum = (xs: number[], e: { logPdf(x: number): number }) =>
      xs.reduce((s, x) => s + Math.exp(e.logPdf(x)), 0);
    expect(sum([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ints)).toBeCloseTo(1, 12);
    const cat = parzenEstimator({ kind: 'values', values: [16, 32, 64] }, [32], [1], 1);
    expect(sum([16, 32, 64], cat)).toBeCloseTo(1, 12);
    expect(float.logPdf(5.01)).toBe(Number.NEGATIVE_INFINITY);
    expect(cat.logPdf(48)).toBe(Number.NEGATIVE_INFINITY);
  });

  it('draws from the mixture: a sample histogram follows the density', () => {
    const spec: SearchedParameter = { kind: 'distribution', distribution: 'int_uniform', min: 0, max: 4 };
    const est = parzenEstimator(spec, [1, 1, 3], [1, 1, 1], 1);
    const rng = new Rng(7);
    const counts = [0, 0, 0, 0, 0];
    const n = 20_000;
    for (let i = 0; i < n; i++) counts[est.sample(rng)]! += 1;
    // Binomial standard error <= sqrt(0.25 / n) = 0.0035; 5 sigma.
    counts.forEach((c, x) => {
      expect(Math.abs(c / n - Math.exp(est.logPdf(x)))).toBeLessThan(0.018);
    });
  });
});

describe('closed forms', () => {
  it('one observation and the prior: weights 1/2, sigma from the magic clip, the mixture density by hand', () => {
    const est = parzenEstimator(
      { kind: 'distribution', distribution: 'uniform', min: 0, max: 10 },
      [2],
      [1],
      1,
    ) as NumericalParzen;
    expect(est.weights).toEqual([0.5, 0.5]);
    expect(est.mus).toEqual([2, 5]);
    // Sorted centres with the ends: [0, 2, 5, 10]; the first kernel takes its inner gap 5 - 2 = 3, below the
    // clip's minimum (10 - 0) / min(100, 1 + 2) = 10/3; the prior's sigma is the domain's width.
    expect(est.sigmas[0]).toBeCloseTo(10 / 3, 14);
    expect(est.sigmas[1]).toBe(10);
    // At x = 2: 0.5 phi(0) / s1 / (Phi(2.4) - Phi(-0.6)) + 0.5 phi(0.3) / 10 / (Phi(0.5) - Phi(-0.5)), with
    // s1 = 10/3, (10 - 2) / s1 = 2.4, (0 - 2) / s1 = -0.6, and the table values Phi(2.4) = 0.99180246,
    // Phi(-0.6) = 0.27425312, Phi(0.5) = 0.69146246.
    const phi = (z: number) => Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
    const expected =
      (0.5 * phi(0)) / (10 / 3) / (0.99180246 - 0.27425312) + (0.5 * phi(0.3)) / 10 / (2 * 0.69146246 - 1);
    expect(Math.exp(est.logPdf(2))).toBeCloseTo(expected, 7);
  });

  it('prior weight 3 against one observation: mixture weights 1/4 and 3/4', () => {
    const est = parzenEstimator(
      { kind: 'distribution', distribution: 'uniform', min: 0, max: 1 },
      [0.5],
      [1],
      3,
    ) as NumericalParzen;
    expect(est.weights).toEqual([0.25, 0.75]);
  });

  it('categorical: an observation kernel of 1 + priorWeight / (n + 1) on its choice, the prior uniform', () => {
    const est = parzenEstimator(
      { kind: 'values', values: [16, 32, 64, 128] },
      [32],
      [1],
      1,
    ) as CategoricalParzen;
    // Observation row [1/2, 3/2, 1/2, 1/2] / 3; prior row 1/4 each; mixture 1/2 each.
    expect(est.table[0]).toEqual([1 / 6, 1 / 2, 1 / 6, 1 / 6]);
    expect(est.table[1]).toEqual([0.25, 0.25, 0.25, 0.25]);
    const p = [5 / 24, 9 / 24, 5 / 24, 5 / 24];
    expectClose(
      [16, 32, 64, 128].map((v) => Math.exp(est.logPdf(v))),
      p,
      'choice probabilities',
    );
  });

  it('integers: each value is the mass of its unit cell of the kernels on [min - 0.5, max + 0.5]', () => {
    // Prior only on 0..1: one kernel at 0.5 with sigma 2 on [-0.5, 1.5]; by symmetry each value has mass 1/2.
    const est = parzenEstimator(
      { kind: 'distribution', distribution: 'int_uniform', min: 0, max: 1 },
      [],
      [],
      1,
    ) as NumericalParzen;
    expect([est.low, est.high, est.mus[0], est.sigmas[0]]).toEqual([-0.5, 1.5, 0.5, 2]);
    expect(Math.exp(est.logPdf(0))).toBeCloseTo(0.5, 14);
    expect(Math.exp(est.logPdf(1))).toBeCloseTo(0.5, 14);
  });

  it('normal CDF and masses at known values', () => {
    expect(ndtr(1.959963984540054)).toBeCloseTo(0.975, 15);
    expect(ndtr(-1.959963984540054)).toBeCloseTo(0.025, 15);
    // Lower tail, where Phi(x) ~ phi(x) / |x| (1 - 1/x^2 + 3/x^4 - 15/x^6): at x = -40 Phi underflows, its
    // log does not (the next term, 105/x^8, is 2e-11).
    const x = -40;
    const series = -1 / x ** 2 + 3 / x ** 4 - 15 / x ** 6;
    const asymptotic = -0.5 * x * x - Math.log(-x) - 0.5 * Math.log(2 * Math.PI) + Math.log1p(series);
    expect(logNdtr(x)).toBeCloseTo(asymptotic, 9);
    expect(Math.exp(logGaussMass(-1, 1))).toBeCloseTo(0.6826894921370859, 14);
    expect(Math.exp(logGaussMass(3, 4))).toBeCloseTo(0.0013182267897969, 14);
  });

  it('default weights: ones below 25, then a ramp from 1/n for the oldest n - 25', () => {
    expect(defaultWeights(0)).toEqual([]);
    expect(defaultWeights(3)).toEqual([1, 1, 1]);
    expect(defaultWeights(26)).toEqual([1 / 26, ...new Array(25).fill(1)]);
    const w = defaultWeights(30);
    expectClose(
      w.slice(0, 5),
      [1 / 30, 1 / 30 + 29 / 120, 1 / 30 + 58 / 120, 1 / 30 + 87 / 120, 1],
      'ramp of 30',
    );
    expect(tpeGamma(0.1, 11)).toBe(2);
    expect(tpeGamma(0.1, 10)).toBe(1);
    expect(tpeGamma(0.25, 1000)).toBe(25);
  });
});

describe('gamma, split and weights against Optuna 3.1', () => {
  it('gamma(n) and default_weights(n) equal Optuna 3.1', () => {
    expect(fixture.optuna).toBe('3.1.0');
    for (const { n, n_below } of fixture.gamma) expect(tpeGamma(0.1, n), `gamma(${n})`).toBe(n_below);
    for (const { n, weights } of fixture.weights) expectClose(defaultWeights(n), weights, `weights(${n})`);
  });

  it.each(fixture.tpe.map((c) => [c.label, c] as const))('splits and weighs like Optuna: %s', (_, c) => {
    const split = splitTrials(c);
    for (const [name, ref] of Object.entries(c.params)) {
      expect(split.finished, `${name}: n`).toBe(ref.n);
      expect(split.below, `${name}: below`).toEqual(ref.below);
      expect(split.above, `${name}: above`).toEqual(ref.above);
      const { l, g } = tpeEstimators(split, name, c.space[name]!, c.config.prior_weight);
      expectEstimator(l as NumericalParzen | CategoricalParzen, ref.l, `${name} l`);
      expectEstimator(g as NumericalParzen | CategoricalParzen, ref.g, `${name} g`);
    }
  });
});

describe('suggestTpe', () => {
  const line: ParameterSpec = { kind: 'distribution', distribution: 'uniform', min: -10, max: 10 };
  const loss = (x: number) => (x - 3) ** 2;
  /** 30 observations of (x - 3)^2 on a grid over [-10, 10]. */
  const grid: TpeObservation[] = Array.from({ length: 30 }, (_, i) => {
    const x = -10 + (20 * (i + 0.5)) / 30;
    return { params: { x }, value: loss(x) };
  });
  const suggestMany = (input: Omit<TpeInput, 'rng'>, n: number) =>
    Array.from({ length: n }, (_, seed) => suggestTpe({ ...input, rng: new Rng(seed) }).x!);

  it('suggests near the good region of a 1-D quadratic far more often than a uniform draw', () => {
    const xs = suggestMany(
      { space: { x: line }, complete: grid, pruned: [], running: [], config: config() },
      200,
    );
    // |x - 3| < 1 is a tenth of the domain: a uniform draw lands there 10% of the time.
    const near = xs.filter((x) => Math.abs(x - 3) < 1).length / xs.length;
    expect(near).toBeGreaterThan(0.5);
    for (const x of xs) expect(x >= -10 && x <= 10).toBe(true);
  });

  it('draws from the prior while fewer than startup_trials have finished', () => {
    const nine = grid.filter((o) => Math.abs(o.params.x! - 3) < 5).slice(0, 9);
    const xs = suggestMany(
      { space: { x: line }, complete: nine, pruned: [], running: [], config: config() },
      400,
    );
    const near = xs.filter((x) => Math.abs(x - 3) < 1).length / xs.length;
    // Uniform: 0.1, standard error 0.015.
    expect(near).toBeGreaterThan(0.04);
    expect(near).toBeLessThan(0.16);
  });

  it('constant liar: with trials running at the best point, the next suggestion moves away from it', () => {
    const running = Array.from({ length: 6 }, () => ({ params: { x: 3 } }));
    const base = { space: { x: line }, complete: grid, pruned: [] };
    const near = (xs: number[]) => xs.filter((x) => Math.abs(x - 3) < 0.35).length / xs.length;
    const withLiar = suggestMany({ ...base, running, config: config({ constant_liar: true }) }, 200);
    const without = suggestMany({ ...base, running, config: config({ constant_liar: false }) }, 200);
    expect(near(without)).toBeGreaterThan(0.2);
    expect(near(withLiar)).toBeLessThan(near(without) / 3);
  });

  it('ranks pruned trials after every complete one: a pruned trial with a low value does not lead', () => {
    // 19 complete trials far from 8, one pruned at x = 8 with the lowest value: gamma(20) = 2 takes the two
    // best complete trials (near 3), so suggestions stay near 3, not 8.
    const complete = grid.filter((_, i) => i % 3 !== 0).slice(0, 19);
    const pruned = [{ params: { x: 8 }, step: 100, value: -100 }];
    const xs = suggestMany({ space: { x: line }, complete, pruned, running: [], config: config() }, 100);
    expect(xs.filter((x) => Math.abs(x - 3) < 2).length).toBeGreaterThan(
      xs.filter((x) => Math.abs(x - 8) < 2).length * 3,
    );
  });

  it('suggests every kind of parameter within its domain and skips constants', () => {
    const space: Record<string, ParameterSpec> = {
      lr: { kind: 'distribution', distribution: 'log_uniform', min: 1e-5, max: 0.1 },
      layers: { kind: 'distribution', distribution: 'int_uniform', min: 1, max: 8 },
      width: { kind: 'values', values: [16, 32, 64, 128] },
      beta: { kind: 'value', value: 0.5 },
      fixed: { kind: 'values', values: [7] },
    };
    const rng = new Rng(3);
    const complete = Array.from({ length: 20 }, (_, i) => ({
      params: {
        lr: 10 ** (-5 + (4 * i) / 19),
        layers: 1 + (i % 8),
        width: [16, 32, 64, 128][i % 4]!,
        fixed: 7,
      },
      value: i % 5,
    }));
    for (let k = 0; k < 20; k++) {
      const s = suggestTpe({ space, complete, pruned: [], running: [], config: config(), rng });
      expect(Object.keys(s).sort()).toEqual(['fixed', 'layers', 'lr', 'width']);
      expect(s.lr! >= 1e-5 && s.lr! <= 0.1).toBe(true);
      expect(Number.isInteger(s.layers) && s.layers! >= 1 && s.layers! <= 8).toBe(true);
      expect([16, 32, 64, 128]).toContain(s.width);
      expect(s.fixed).toBe(7);
    }
  });

  it('leaves observations without the parameter or off its domain out of its estimators', () => {
    const spec: SearchedParameter = { kind: 'distribution', distribution: 'uniform', min: 0, max: 1 };
    const complete: TpeObservation[] = [
      { params: { x: 0.2 }, value: 1 },
      { params: {}, value: 0 },
      { params: { x: 1.5 }, value: 2 },
      { params: { x: 0.7 }, value: 3 },
    ];
    const split = splitTrials({ complete, pruned: [], running: [], config: config({ gamma: 0.5 }) });
    expect(split.below).toEqual([0, 1]);
    const { l, g } = tpeEstimators(split, 'x', spec, 1);
    expect((l as NumericalParzen).mus).toEqual([0.2, 0.5]);
    expect((g as NumericalParzen).mus).toEqual([0.7, 0.5]);
  });

  it('is deterministic: the same seed and inputs give the same suggestion and leave the same Rng state', () => {
    const c = fixture.tpe.find((t) => t.label.startsWith('mixed'))!;
    const run = (seed: number) => {
      const rng = new Rng(seed);
      const s = suggestTpe({ ...c, config: config(c.config), rng });
      return { s, state: rng.getState() };
    };
    expect(run(11)).toEqual(run(11));
    expect(run(11).s).not.toEqual(run(12).s);
  });
});
