import { describe, expect, it } from 'vitest';
import { SpecValidationError } from './errors.ts';
import { ashaRungs, pbtParams } from './search.ts';
import { compileSweepSpec, type SweepSpec } from './sweep-spec.ts';

const base = {
  name: 'search',
  model: 'dcgan',
  dataset: 'mnist',
  metric: { name: 'fld', goal: 'minimize' },
  budget: { trials: 4, steps: 600 },
  health: { eval_every_steps: 100 },
  parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
};

/** The issues of a spec that must be refused, as "path: message". */
function issues(spec: Record<string, unknown>): string[] {
  try {
    compileSweepSpec({ ...base, ...spec });
  } catch (err) {
    if (err instanceof SpecValidationError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  throw new Error('the spec was accepted');
}

describe('the spec of adaptive search', () => {
  it('fills every scheduler and tpe default', () => {
    const asha = compileSweepSpec({ ...base, scheduler: { type: 'asha', min_steps: 100 } });
    expect(asha.scheduler).toEqual({ type: 'asha', min_steps: 100, eta: 3, brackets: 1, mode: 'stop' });
    const median = compileSweepSpec({ ...base, scheduler: { type: 'median' } });
    expect(median.scheduler).toEqual({ type: 'median', grace_steps: 0, min_trials: 3 });
    const pbt = compileSweepSpec({ ...base, scheduler: { type: 'pbt', interval: 200 } });
    expect(pbt.scheduler).toEqual({
      type: 'pbt',
      interval: 200,
      quantile: 0.25,
      resample_probability: 0.25,
      perturb: [0.8, 1.2],
    });
    const tpe = compileSweepSpec({ ...base, method: 'tpe' });
    expect(tpe.tpe).toEqual({
      startup_trials: 10,
      gamma: 0.1,
      n_ei_candidates: 24,
      prior_weight: 1,
      constant_liar: true,
    });
    expect(compileSweepSpec(base).tpe).toBeUndefined();
  });

  it('puts rungs at min_steps * eta^k below the budget, per bracket', () => {
    expect(ashaRungs({ min_steps: 100, eta: 3 }, 0, 1000)).toEqual([100, 300, 900]);
    expect(ashaRungs({ min_steps: 100, eta: 3 }, 1, 1000)).toEqual([300, 900]);
    expect(ashaRungs({ min_steps: 100, eta: 2 }, 0, 400)).toEqual([100, 200]);
    expect(ashaRungs({ min_steps: 500, eta: 2 }, 0, 400)).toEqual([]);
  });

  it("explores the searched parameters unless pbt's params names them", () => {
    const spec = compileSweepSpec({
      ...base,
      parameters: { ...base.parameters, lr_d: { values: [1e-4, 2e-4] }, beta1: { value: 0.5 } },
      scheduler: { type: 'pbt', interval: 100 },
    }) as SweepSpec & { scheduler: { type: 'pbt' } };
    expect(pbtParams(spec.scheduler as never, spec.parameters)).toEqual(['lr_d', 'lr_g']);
  });

  it.each([
    [
      'a rung off the evaluations',
      { scheduler: { type: 'asha', min_steps: 150 } },
      'scheduler.min_steps: must be a multiple of health.eval_every_steps (100)',
    ],
    [
      'a first rung past the budget',
      { scheduler: { type: 'asha', min_steps: 600 } },
      'scheduler.min_steps: must be below',
    ],
    [
      'a bracket starting past the budget',
      { scheduler: { type: 'asha', min_steps: 100, eta: 3, brackets: 3 } },
      'scheduler.brackets: bracket 2 would start at step 900',
    ],
    ['eta 1', { scheduler: { type: 'asha', min_steps: 100, eta: 1 } }, 'scheduler.eta: must be >= 2'],
    ['an unknown scheduler', { scheduler: { type: 'hyperband' } }, 'scheduler.type'],
    [
      'a step metric under a scheduler',
      { metric: { name: 'g_loss', goal: 'minimize' }, scheduler: { type: 'median' } },
      'scheduler: needs a metric of the quality evaluation',
    ],
    [
      'no evaluations under a scheduler',
      {
        metric: { name: 'd_loss', goal: 'minimize' },
        health: { eval_every_steps: 0 },
        scheduler: { type: 'median' },
      },
      'health.eval_every_steps: must be > 0 with a scheduler',
    ],
    [
      'a pbt interval off the evaluations',
      { scheduler: { type: 'pbt', interval: 250 } },
      'scheduler.interval: must be a multiple',
    ],
    [
      'pbt over a parameter that shapes the networks',
      { parameters: { base_filters: { values: [8, 16] } }, scheduler: { type: 'pbt', interval: 100 } },
      "parameters.base_filters: 'base_filters' shapes the networks",
    ],
    [
      'pbt exploring a constant',
      {
        parameters: { ...base.parameters, beta1: { value: 0.5 } },
        scheduler: { type: 'pbt', interval: 100, params: ['beta1'] },
      },
      "scheduler.params.0: 'beta1' is not a searched parameter",
    ],
    [
      'pbt perturbing upwards only',
      { scheduler: { type: 'pbt', interval: 100, perturb: [1.1, 1.2] } },
      'scheduler.perturb: must be [down, up]',
    ],
    [
      'a pbt quantile over a half',
      { scheduler: { type: 'pbt', interval: 100, quantile: 0.6 } },
      'scheduler.quantile',
    ],
    [
      'pbt on a staged model',
      {
        model: 'progan',
        budget: { trials: 2 },
        parameters: { lr_g: { values: [1e-3, 2e-3] } },
        stages: [{ resolution: 4, stable_steps: 200 }],
        scheduler: { type: 'pbt', interval: 100 },
      },
      'scheduler: pbt is not for staged models (progan)',
    ],
    ['a tpe block without tpe', { tpe: { startup_trials: 3 } }, "tpe: only with method 'tpe'"],
    ['warm_start without tpe', { warm_start: ['old-sweep'] }, "warm_start: only with method 'tpe'"],
    ['pbt-replay without replay', { method: 'pbt-replay', parameters: {} }, 'replay: is required'],
    [
      'pbt-replay with a searched parameter',
      { method: 'pbt-replay', replay: { sweep: 'a', trial: 'a-t000' } },
      "parameters.lr_g.distribution: pbt-replay search needs 'value' or 'values'",
    ],
    [
      'replay without pbt-replay',
      { replay: { sweep: 'a', trial: 'a-t000' } },
      "replay: only with method 'pbt-replay'",
    ],
    ['an unknown method', { method: 'bayes' }, 'method: must be one of grid, random, list, tpe, pbt-replay'],
  ])('refuses %s, naming the field', (_what, spec, expected) => {
    expect(issues(spec).join('\n')).toContain(expected);
  });
});
