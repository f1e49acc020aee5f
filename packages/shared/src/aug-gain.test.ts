import { describe, expect, it } from 'vitest';
import { SpecValidationError } from './errors.ts';
import { compileSweepSpec } from './sweep-spec.ts';
import { parseTrialJob } from './trial-job.ts';

const spec = (extra: Record<string, unknown> = {}) => ({
  name: 'aug-gain',
  model: 'cgan',
  dataset: { name: 'fashion-mnist', subset_per_class: 10 },
  metric: { name: 'aug_gain', goal: 'maximize' },
  budget: { trials: 2, steps: 100 },
  ...extra,
});

/** The issues a spec is refused with. */
function refusal(input: unknown): { path: string; message: string }[] {
  try {
    compileSweepSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(SpecValidationError);
    return [...(err as SpecValidationError).issues];
  }
  throw new Error('spec was accepted');
}

describe('the aug_gain metric in a spec', () => {
  it('ranks a cgan on a subset by aug_gain, with the defaults or the block as given', () => {
    expect(compileSweepSpec(spec()).aug_gain).toEqual({
      synthetic_per_class: 100,
      seeds: 3,
      classifier_steps: 300,
    });
    const given = compileSweepSpec(spec({ aug_gain: { synthetic_per_class: 1000, seeds: 5 } }));
    expect(given.aug_gain).toEqual({ synthetic_per_class: 1000, seeds: 5, classifier_steps: 300 });
    // The block alone measures it beside another metric; without either nothing is measured.
    const beside = compileSweepSpec(spec({ metric: { name: 'fld', goal: 'minimize' }, aug_gain: {} }));
    expect(beside.aug_gain?.seeds).toBe(3);
    expect(compileSweepSpec(spec({ metric: { name: 'fld', goal: 'minimize' } })).aug_gain).toBeUndefined();
  });

  it('refuses it for an unconditional model, without subset_per_class, or without evaluations', () => {
    expect(refusal(spec({ model: 'dcgan' }))).toEqual([
      { path: 'metric.name', message: expect.stringMatching(/model dcgan does not report aug_gain/) },
    ]);
    expect(
      refusal(spec({ model: 'dcgan', metric: { name: 'fld', goal: 'minimize' }, aug_gain: {} })),
    ).toEqual([{ path: 'aug_gain', message: expect.stringMatching(/needs a conditional generator/) }]);
    expect(refusal(spec({ dataset: 'fashion-mnist' }))).toEqual([
      {
        path: 'dataset.subset_per_class',
        message: expect.stringMatching(/is required with aug_gain.*leakage/),
      },
    ]);
    expect(refusal(spec({ health: { eval_every_steps: 0 } }))[0]?.path).toBe('health.eval_every_steps');
    const unmeasured = spec({
      metric: { name: 'g_loss', goal: 'minimize' },
      aug_gain: {},
      health: { eval_every_steps: 0 },
    });
    expect(refusal(unmeasured)).toEqual([
      { path: 'health.eval_every_steps', message: expect.stringMatching(/must be > 0 with aug_gain/) },
    ]);
  });

  it.each([
    [{ seeds: 0 }, 'aug_gain.seeds'],
    [{ synthetic_per_class: 2.5 }, 'aug_gain.synthetic_per_class'],
    [{ classifier_steps: 0 }, 'aug_gain.classifier_steps'],
    [{ m: 100 }, 'aug_gain.m'],
  ])('refuses aug_gain %j naming %s', (block, path) => {
    expect(refusal(spec({ aug_gain: block })).map((i) => i.path)).toContain(path);
  });

  it("is carried by the trial's job, checked like the rest of it", () => {
    const job = {
      v: 2,
      sweepId: 'aug',
      trialId: 'aug-t000',
      index: 0,
      model: 'cgan',
      dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
      seed: 1,
      steps: 10,
      checkpointEvery: 10,
      params: {
        lr_g: 2e-4,
        lr_d: 2e-4,
        beta1: 0.5,
        beta2: 0.999,
        batch_size: 8,
        latent_dim: 8,
        base_filters: 8,
      },
      augGain: { synthetic_per_class: 10, seeds: 2, classifier_steps: 5 },
    };
    expect(parseTrialJob(job).augGain).toEqual({ synthetic_per_class: 10, seeds: 2, classifier_steps: 5 });
    expect(() => parseTrialJob({ ...job, augGain: { seeds: -1 } })).toThrow(/augGain.seeds/);
  });
});
