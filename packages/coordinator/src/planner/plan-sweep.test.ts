import {
  compileSweepSpec,
  deriveSeed,
  MODEL_PARAMS,
  type ParameterSpec,
  Rng,
  type SweepSpec,
} from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { planSweep } from './plan-sweep.ts';
import { sampleParameter } from './sample-parameter.ts';

function spec(fields: Record<string, unknown>): SweepSpec {
  return compileSweepSpec({
    name: 'plan',
    model: 'dcgan',
    dataset: 'mnist',
    budget: { trials: 10, parallel: 2, steps: 100 },
    ...fields,
  });
}

const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS.dcgan).map(([n, d]) => [n, d.default]));

const randomSpec = (seed: number, trials = 10) =>
  spec({
    method: 'random',
    seed,
    budget: { trials, parallel: 2, steps: 100 },
    parameters: {
      lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-2 },
      lr_d: { values: [1e-4, 2e-4, 4e-4] },
      beta1: { distribution: 'uniform', min: 0.1, max: 0.9 },
      latent_dim: { distribution: 'int_uniform', min: 16, max: 128 },
      batch_size: { value: 32 },
    },
  });

describe('planSweep: grid', () => {
  it('expands the cartesian product in spec order, last parameter varying fastest', () => {
    const plan = planSweep(
      spec({
        method: 'grid',
        parameters: {
          lr_g: { values: [1e-4, 2e-4] },
          batch_size: { values: [32, 64, 128] },
          beta1: { value: 0.3 },
        },
      }),
    );
    expect(plan.map((t) => t.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(plan.map((t) => [t.params.lr_g, t.params.batch_size, t.params.beta1])).toEqual([
      [1e-4, 32, 0.3],
      [1e-4, 64, 0.3],
      [1e-4, 128, 0.3],
      [2e-4, 32, 0.3],
      [2e-4, 64, 0.3],
      [2e-4, 128, 0.3],
    ]);
  });

  it('follows the order keys appear in the spec, not alphabetical order', () => {
    const plan = planSweep(
      spec({ method: 'grid', parameters: { lr_g: { values: [1e-4, 2e-4] }, beta1: { values: [0.1, 0.2] } } }),
    );
    // beta1 (second in the spec) varies fastest although it sorts first.
    expect(plan.map((t) => [t.params.lr_g, t.params.beta1])).toEqual([
      [1e-4, 0.1],
      [1e-4, 0.2],
      [2e-4, 0.1],
      [2e-4, 0.2],
    ]);
  });

  it('fills every unspecified model parameter with its default', () => {
    const [only, ...rest] = planSweep(spec({ method: 'grid', parameters: { lr_d: { values: [3e-4] } } }));
    expect(rest).toEqual([]);
    expect(only?.params).toEqual({ ...defaults, lr_d: 3e-4 });
    expect(Object.keys(only?.params ?? {}).sort()).toEqual(Object.keys(MODEL_PARAMS.dcgan).sort());
  });

  it('plans one default trial for a grid without parameters', () => {
    const plan = planSweep(spec({ method: 'grid' }));
    expect(plan).toEqual([{ index: 0, seed: deriveSeed(0, 0), params: defaults }]);
  });

  it('ignores budget.trials', () => {
    const plan = planSweep(
      spec({
        method: 'grid',
        budget: { trials: 50, parallel: 1, steps: 10 },
        parameters: { lr_g: { values: [1e-4, 2e-4, 3e-4] } },
      }),
    );
    expect(plan).toHaveLength(3);
  });

  it("gives each trial the seed derived from the sweep seed and the trial's index", () => {
    const plan = planSweep(spec({ method: 'grid', seed: 7, parameters: { lr_g: { values: [1e-4, 2e-4] } } }));
    expect(plan.map((t) => t.seed)).toEqual([deriveSeed(7, 0), deriveSeed(7, 1)]);
  });
});

describe('planSweep: random', () => {
  it('plans budget.trials trials with every parameter resolved within its bounds', () => {
    const plan = planSweep(randomSpec(7, 25));
    expect(plan).toHaveLength(25);
    expect(plan.map((t) => t.index)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    for (const t of plan) {
      expect(Object.keys(t.params).sort()).toEqual(Object.keys(MODEL_PARAMS.dcgan).sort());
      expect(t.params.lr_g).toBeGreaterThanOrEqual(1e-5);
      expect(t.params.lr_g).toBeLessThanOrEqual(1e-2);
      expect([1e-4, 2e-4, 4e-4]).toContain(t.params.lr_d);
      expect(t.params.beta1).toBeGreaterThanOrEqual(0.1);
      expect(t.params.beta1).toBeLessThan(0.9);
      expect(Number.isInteger(t.params.latent_dim)).toBe(true);
      expect(t.params.batch_size).toBe(32);
      expect(t.params.beta2).toBe(MODEL_PARAMS.dcgan.beta2?.default);
    }
  });

  it('is reproducible: the same spec and seed give identical plans', () => {
    expect(planSweep(randomSpec(7))).toEqual(planSweep(randomSpec(7)));
  });

  it('gives a different plan for a different seed', () => {
    const a = planSweep(randomSpec(7)).map((t) => t.params);
    const b = planSweep(randomSpec(8)).map((t) => t.params);
    expect(a).not.toEqual(b);
    // Not merely a shuffle: the continuous draws themselves differ.
    expect(a.map((p) => p.lr_g).filter((x) => b.some((p) => p.lr_g === x))).toEqual([]);
  });

  it('draws different parameters for different trials of one sweep', () => {
    const lrs = planSweep(randomSpec(7)).map((t) => t.params.lr_g);
    expect(new Set(lrs).size).toBe(lrs.length);
  });

  it('re-derives each trial on its own: trials 0..3 equal the first four of a ten-trial plan', () => {
    expect(planSweep(randomSpec(7, 4))).toEqual(planSweep(randomSpec(7, 10)).slice(0, 4));
  });

  it('draws parameters by name, so reordering the spec does not change the plan', () => {
    const reordered = randomSpec(7);
    reordered.parameters = Object.fromEntries(Object.entries(reordered.parameters).reverse());
    expect(Object.keys(reordered.parameters)).not.toEqual(Object.keys(randomSpec(7).parameters));
    expect(planSweep(reordered)).toEqual(planSweep(randomSpec(7)));
  });
});

describe('sampleParameter', () => {
  const draw = (p: ParameterSpec, n: number, seed = 1) => {
    const rng = new Rng(seed);
    return Array.from({ length: n }, () => sampleParameter(p, rng));
  };

  it('returns a constant for {value}', () => {
    expect(new Set(draw({ kind: 'value', value: 0.25 }, 50))).toEqual(new Set([0.25]));
  });

  it('chooses among {values} and reaches each of them', () => {
    expect(new Set(draw({ kind: 'values', values: [3, 5, 7] }, 300))).toEqual(new Set([3, 5, 7]));
  });

  it('samples log_uniform within [min, max], uniformly in log space', () => {
    const min = 1e-5;
    const max = 1e-1;
    const xs = draw({ kind: 'distribution', distribution: 'log_uniform', min, max }, 2000);
    expect(xs.every((x) => x >= min && x <= max)).toBe(true);
    const sorted = [...xs].sort((a, b) => a - b);
    const median = sorted[1000] ?? Number.NaN;
    const geometricMean = Math.sqrt(min * max); // 1e-3; the arithmetic midpoint would be ~0.05
    expect(Math.abs(Math.log10(median) - Math.log10(geometricMean))).toBeLessThan(0.2);
    // Each decade gets about a quarter of the draws.
    for (let d = -5; d < -1; d++) {
      const share = xs.filter((x) => x >= 10 ** d && x < 10 ** (d + 1)).length / xs.length;
      expect(share).toBeGreaterThan(0.2);
      expect(share).toBeLessThan(0.3);
    }
  });

  it('samples uniform within [min, max) with its midpoint as median', () => {
    const xs = draw({ kind: 'distribution', distribution: 'uniform', min: 2, max: 4 }, 2000);
    expect(xs.every((x) => x >= 2 && x < 4)).toBe(true);
    const sorted = [...xs].sort((a, b) => a - b);
    expect(Math.abs((sorted[1000] ?? Number.NaN) - 3)).toBeLessThan(0.1);
  });

  it('samples int_uniform as integers hitting both ends inclusive', () => {
    const xs = draw({ kind: 'distribution', distribution: 'int_uniform', min: 3, max: 6 }, 400);
    expect(xs.every((x) => Number.isInteger(x))).toBe(true);
    expect(new Set(xs)).toEqual(new Set([3, 4, 5, 6]));
  });

  it('samples int_uniform with min == max as that constant', () => {
    expect(new Set(draw({ kind: 'distribution', distribution: 'int_uniform', min: 8, max: 8 }, 20))).toEqual(
      new Set([8]),
    );
  });
});

describe('planSweep: list', () => {
  it('plans one trial per configuration, in order, over the constants and the model defaults', () => {
    const s = spec({
      method: 'list',
      seed: 5,
      parameters: { batch_size: { value: 16 } },
      configurations: [{ lr_g: 2e-4 }, { lr_g: 2e-5, lr_d: 2e-3, batch_size: 8 }],
    });
    expect(planSweep(s)).toEqual([
      { index: 0, seed: deriveSeed(5, 0), params: { ...defaults, batch_size: 16, lr_g: 2e-4 } },
      { index: 1, seed: deriveSeed(5, 1), params: { ...defaults, batch_size: 8, lr_g: 2e-5, lr_d: 2e-3 } },
    ]);
  });
});
