import { describe, expect, it } from 'vitest';
import { PayloadTooLargeError, SpecValidationError } from './errors.ts';
import { DEFAULT_HEALTH } from './health.ts';
import { LIMITS } from './limits.ts';
import { compileSweepSpec, parseSweepSpec } from './sweep-spec.ts';

/** The example of DESIGN.md with the metric g_loss (DESIGN's `fld` is tested below). */
const DESIGN_YAML = `
name: dcgan-lr            # lowercase letters, digits, '-'; at most 63 characters
model: dcgan              # dcgan | cgan | wgan-gp | progan | srgan | pix2pix | transgan
dataset: fashion-mnist    # fashion-mnist | mnist
method: random            # grid | random (more later)
metric: {name: g_loss, goal: minimize}
seed: 7
budget: {trials: 4, parallel: 2, steps: 600}   # trials is ignored for grid (product of values)
checkpoint: {every_steps: 100}
parameters:
  lr_g: {distribution: log_uniform, min: 1.0e-5, max: 1.0e-3}
  lr_d: {values: [1.0e-4, 2.0e-4]}
  batch_size: {value: 64}
`;

/** A minimal valid spec as an object; tests override single fields. */
function base(): Record<string, unknown> {
  return {
    name: 'ok',
    model: 'dcgan',
    dataset: 'mnist',
    method: 'random',
    budget: { trials: 2, parallel: 1, steps: 10 },
    parameters: {},
  };
}

function withParams(parameters: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { ...base(), ...extra, parameters };
}

/** Runs `fn`, expects a SpecValidationError and returns its issues. */
function issuesOf(fn: () => unknown) {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SpecValidationError);
  const err = caught as SpecValidationError;
  expect(err.code).toBe('INVALID_SPEC');
  expect(err.status).toBe(400);
  expect(err.issues.length).toBeGreaterThan(0);
  return err.issues;
}

const pathsOf = (fn: () => unknown) => issuesOf(fn).map((i) => i.path);

describe('parseSweepSpec accepts valid specs', () => {
  it('parses the DESIGN example spec from YAML with every field as written', () => {
    const spec = parseSweepSpec(DESIGN_YAML);
    expect(spec).toEqual({
      name: 'dcgan-lr',
      model: 'dcgan',
      dataset: { name: 'fashion-mnist' },
      method: 'random',
      metric: { name: 'g_loss', goal: 'minimize' },
      seed: 7,
      budget: { trials: 4, parallel: 2, steps: 600 },
      checkpoint: { every_steps: 100 },
      parameters: {
        lr_g: { kind: 'distribution', distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
        lr_d: { kind: 'values', values: [1e-4, 2e-4] },
        batch_size: { kind: 'value', value: 64 },
      },
      configurations: [],
      health: DEFAULT_HEALTH,
    });
  });

  it('parses the same spec written as JSON to the same result', () => {
    const asObject = parseSweepSpec(DESIGN_YAML);
    const json = JSON.stringify({
      name: 'dcgan-lr',
      model: 'dcgan',
      dataset: 'fashion-mnist',
      method: 'random',
      metric: { name: 'g_loss', goal: 'minimize' },
      seed: 7,
      budget: { trials: 4, parallel: 2, steps: 600 },
      checkpoint: { every_steps: 100 },
      parameters: {
        lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
        lr_d: { values: [1e-4, 2e-4] },
        batch_size: { value: 64 },
      },
    });
    expect(parseSweepSpec(json)).toEqual(asObject);
    expect(compileSweepSpec(JSON.parse(json))).toEqual(asObject);
  });

  it('fills defaults for method, metric, seed, budget.trials/parallel, checkpoint and parameters', () => {
    const spec = parseSweepSpec('name: tiny\nmodel: cgan\ndataset: mnist\nbudget: {steps: 50}\n');
    expect(spec).toEqual({
      name: 'tiny',
      model: 'cgan',
      dataset: { name: 'mnist' },
      method: 'random',
      metric: { name: 'g_loss', goal: 'minimize' },
      seed: 0,
      budget: { trials: 1, parallel: 1, steps: 50 },
      checkpoint: { every_steps: 100 },
      parameters: {},
      configurations: [],
      health: DEFAULT_HEALTH,
    });
  });

  it('accepts the DESIGN example with its metric fld, which the quality evaluation reports', () => {
    expect(parseSweepSpec(DESIGN_YAML.replace('name: g_loss', 'name: fld')).metric.name).toBe('fld');
  });

  it('merges a partial health block over the documented defaults', () => {
    const spec = compileSweepSpec({
      ...base(),
      health: { eval_every_steps: 20, d_dominance: { policy: 'restart', lr_scale: { d: 0.1 } } },
    });
    expect(spec.health.eval_every_steps).toBe(20);
    expect(spec.health.eval_samples).toBe(DEFAULT_HEALTH.eval_samples);
    expect(spec.health.d_dominance).toEqual({
      ...DEFAULT_HEALTH.d_dominance,
      policy: 'restart',
      lr_scale: { g: 1, d: 0.1 },
    });
    expect(spec.health.divergence).toEqual(DEFAULT_HEALTH.divergence);
    expect(DEFAULT_HEALTH.divergence.policy).toBe('stop');
  });

  it("plans one trial per entry of 'configurations' with method list", () => {
    const spec = compileSweepSpec({
      ...base(),
      method: 'list',
      parameters: { batch_size: { value: 16 } },
      configurations: [
        { lr_g: 2e-4, lr_d: 2e-4 },
        { lr_g: 2e-5, lr_d: 2e-3 },
      ],
    });
    expect(spec.configurations).toEqual([
      { lr_g: 2e-4, lr_d: 2e-4 },
      { lr_g: 2e-5, lr_d: 2e-3 },
    ]);
  });

  it('accepts a name of exactly the maximum length and boundary parameter values', () => {
    const spec = compileSweepSpec(
      withParams(
        { beta1: { value: 0 }, lr_g: { value: 1 }, batch_size: { values: [1, 1024] } },
        { name: 'a'.repeat(LIMITS.maxNameLength), method: 'grid' },
      ),
    );
    expect(spec.name).toHaveLength(LIMITS.maxNameLength);
    expect(spec.parameters.batch_size).toEqual({ kind: 'values', values: [1, 1024] });
  });

  it('accepts a grid of exactly LIMITS.maxTrials trials', () => {
    const ten = (scale: number) => Array.from({ length: 10 }, (_, i) => (i + 1) * scale);
    const spec = compileSweepSpec(
      withParams(
        {
          lr_g: { values: ten(1e-5) },
          lr_d: { values: ten(1e-5) },
          batch_size: { values: ten(8) },
          beta1: { values: ten(0.05) },
        },
        { method: 'grid' },
      ),
    );
    expect(spec.method).toBe('grid');
  });
});

describe('parseSweepSpec rejects invalid specs naming the field', () => {
  const ten = (scale: number) => Array.from({ length: 10 }, (_, i) => (i + 1) * scale);
  const cases: { what: string; spec: Record<string, unknown>; path: string }[] = [
    { what: 'an unknown top-level key', spec: { ...base(), learning_rate: 1 }, path: 'learning_rate' },
    {
      what: 'an unknown key in budget',
      spec: { ...base(), budget: { steps: 10, x: 1 } },
      path: 'budget.x',
    },
    {
      what: 'an unknown key in metric',
      spec: { ...base(), metric: { name: 'g_loss', goal: 'minimize', x: 1 } },
      path: 'metric.x',
    },
    {
      what: 'an unknown key in checkpoint',
      spec: { ...base(), checkpoint: { every_steps: 10, x: 1 } },
      path: 'checkpoint.x',
    },
    {
      what: 'an unknown parameter for the model',
      spec: withParams({ gamma: { value: 1 } }),
      path: 'parameters.gamma',
    },
    {
      what: 'an unknown key inside a parameter',
      spec: withParams({ lr_g: { value: 1e-4, step: 2 } }),
      path: 'parameters.lr_g.step',
    },
    { what: 'a name with uppercase letters', spec: { ...base(), name: 'DcGan' }, path: 'name' },
    {
      what: 'a name longer than 63 characters',
      spec: { ...base(), name: 'a'.repeat(LIMITS.maxNameLength + 1) },
      path: 'name',
    },
    { what: "a name starting with '-'", spec: { ...base(), name: '-lr' }, path: 'name' },
    { what: 'an unknown model', spec: { ...base(), model: 'stylegan' }, path: 'model' },
    { what: 'a data set name with capitals', spec: { ...base(), dataset: 'CIFAR10' }, path: 'dataset.name' },
    {
      what: 'a data set with an unknown option',
      spec: { ...base(), dataset: { name: 'x', colour: 1 } },
      path: 'dataset.colour',
    },
    {
      what: 'a data set version that is not a content hash',
      spec: { ...base(), dataset: { name: 'x', version: 'v2' } },
      path: 'dataset.version',
    },
    {
      what: 'an image size no model takes',
      spec: { ...base(), dataset: { name: 'x', image_size: 48 } },
      path: 'dataset.image_size',
    },
    {
      what: 'two channels',
      spec: { ...base(), dataset: { name: 'x', channels: 2 } },
      path: 'dataset.channels',
    },
    {
      what: 'a subset of zero per class',
      spec: { ...base(), dataset: { name: 'x', subset_per_class: 0 } },
      path: 'dataset.subset_per_class',
    },
    { what: 'an unknown method', spec: { ...base(), method: 'bayes' }, path: 'method' },
    {
      what: 'an unknown metric',
      spec: { ...base(), metric: { name: 'psnr', goal: 'minimize' } },
      path: 'metric.name',
    },
    {
      what: 'a bad metric goal',
      spec: { ...base(), metric: { name: 'g_loss', goal: 'up' } },
      path: 'metric.goal',
    },
    { what: 'a negative seed', spec: { ...base(), seed: -1 }, path: 'seed' },
    { what: 'empty values', spec: withParams({ lr_d: { values: [] } }), path: 'parameters.lr_d.values' },
    {
      what: 'more values than LIMITS.maxValuesPerParameter',
      spec: withParams({
        lr_d: { values: Array.from({ length: LIMITS.maxValuesPerParameter + 1 }, (_, i) => (i + 1) * 1e-6) },
      }),
      path: 'parameters.lr_d.values',
    },
    {
      what: 'lr_g: 0 (exclusive minimum)',
      spec: withParams({ lr_g: { value: 0 } }),
      path: 'parameters.lr_g.value',
    },
    {
      what: 'beta1: 1 (exclusive maximum)',
      spec: withParams({ beta1: { value: 1 } }),
      path: 'parameters.beta1.value',
    },
    {
      what: 'batch_size: 1.5 (not an integer)',
      spec: withParams({ batch_size: { value: 1.5 } }),
      path: 'parameters.batch_size.value',
    },
    {
      what: 'batch_size: 0',
      spec: withParams({ batch_size: { value: 0 } }),
      path: 'parameters.batch_size.value',
    },
    {
      what: 'a non-number value',
      spec: withParams({ lr_g: { value: 'fast' } }),
      path: 'parameters.lr_g.value',
    },
    {
      what: 'one bad entry of a values list, by index',
      spec: withParams({ lr_d: { values: [1e-4, 2, 3e-4] } }),
      path: 'parameters.lr_d.values.1',
    },
    {
      what: 'an empty uniform range (min == max)',
      spec: withParams({ lr_g: { distribution: 'uniform', min: 1e-4, max: 1e-4 } }),
      path: 'parameters.lr_g.max',
    },
    {
      what: 'an empty int_uniform range (min > max)',
      spec: withParams({ batch_size: { distribution: 'int_uniform', min: 64, max: 32 } }),
      path: 'parameters.batch_size.max',
    },
    {
      what: 'log_uniform with min <= 0 on a parameter whose own range allows 0',
      spec: withParams({ beta1: { distribution: 'log_uniform', min: 0, max: 0.9 } }),
      path: 'parameters.beta1.min',
    },
    {
      what: 'log_uniform with min <= 0 on lr_g',
      spec: withParams({ lr_g: { distribution: 'log_uniform', min: 0, max: 1e-3 } }),
      path: 'parameters.lr_g.min',
    },
    {
      what: 'a distribution without max',
      spec: withParams({ lr_g: { distribution: 'uniform', min: 1e-4 } }),
      path: 'parameters.lr_g.max',
    },
    {
      what: 'an unknown distribution',
      spec: withParams({ lr_g: { distribution: 'normal', min: 1e-4, max: 1e-3 } }),
      path: 'parameters.lr_g.distribution',
    },
    {
      what: 'a distribution in a grid sweep',
      spec: withParams({ lr_g: { distribution: 'uniform', min: 1e-4, max: 1e-3 } }, { method: 'grid' }),
      path: 'parameters.lr_g.distribution',
    },
    {
      what: 'a float distribution on an int parameter',
      spec: withParams({ batch_size: { distribution: 'uniform', min: 16, max: 128 } }),
      path: 'parameters.batch_size.distribution',
    },
    {
      what: 'a non-integer bound for int_uniform',
      spec: withParams({ latent_dim: { distribution: 'int_uniform', min: 8, max: 64.5 } }),
      path: 'parameters.latent_dim.max',
    },
    {
      what: 'a parameter that is not a mapping',
      spec: withParams({ lr_g: 0.001 }),
      path: 'parameters.lr_g',
    },
    {
      what: 'a grid product over LIMITS.maxTrials',
      spec: withParams(
        {
          lr_g: { values: [...ten(1e-5), 0.5] },
          lr_d: { values: ten(1e-5) },
          batch_size: { values: ten(8) },
          beta1: { values: ten(0.05) },
        },
        { method: 'grid' },
      ),
      path: 'parameters',
    },
    {
      what: 'budget.trials over LIMITS.maxTrials',
      spec: { ...base(), budget: { trials: LIMITS.maxTrials + 1, steps: 10 } },
      path: 'budget.trials',
    },
    {
      what: 'budget.parallel 0',
      spec: { ...base(), budget: { parallel: 0, steps: 10 } },
      path: 'budget.parallel',
    },
    {
      what: 'budget.parallel over LIMITS.maxParallel',
      spec: { ...base(), budget: { parallel: LIMITS.maxParallel + 1, steps: 10 } },
      path: 'budget.parallel',
    },
    {
      what: 'budget.steps over LIMITS.maxSteps',
      spec: { ...base(), budget: { steps: LIMITS.maxSteps + 1 } },
      path: 'budget.steps',
    },
    {
      what: 'a fractional checkpoint interval',
      spec: { ...base(), checkpoint: { every_steps: 2.5 } },
      path: 'checkpoint.every_steps',
    },
  ];

  it.each(cases)('rejects $what naming $path', ({ spec, path }) => {
    expect(pathsOf(() => compileSweepSpec(spec))).toEqual([path]);
    // The same spec through the text entry point (JSON is YAML) gives the same report.
    expect(pathsOf(() => parseSweepSpec(JSON.stringify(spec)))).toEqual([path]);
  });

  it('rejects a missing budget.steps as "is required"', () => {
    const issues = issuesOf(() =>
      parseSweepSpec('name: a\nmodel: dcgan\ndataset: mnist\nbudget: {trials: 4}\n'),
    );
    expect(issues).toEqual([{ path: 'budget.steps', message: 'is required' }]);
  });

  it('rejects a missing budget and a missing dataset, naming both', () => {
    const issues = issuesOf(() => parseSweepSpec('name: a\nmodel: dcgan\n'));
    expect(issues.map((i) => i.path).sort()).toEqual(['budget', 'dataset']);
    expect(issues.find((i) => i.path === 'budget')?.message).toBe('is required');
    expect(issues.find((i) => i.path === 'dataset')?.message).toBe('is required');
  });

  it('rejects an unknown model, listing the available ones (transgan among them)', () => {
    const unknown = issuesOf(() => compileSweepSpec({ ...base(), model: 'stylegan' }));
    expect(unknown.map((i) => i.path)).toEqual(['model']);
    expect(unknown[0]?.message).toMatch(/unknown model 'stylegan'; available: .*transgan/);
    expect(compileSweepSpec({ ...base(), model: 'transgan' }).model).toBe('transgan');
  });

  it('rejects metric fld without quality evaluations, at health.eval_every_steps', () => {
    const yaml = `${DESIGN_YAML.replace('name: g_loss', 'name: fld')}health: {eval_every_steps: 0}\n`;
    expect(pathsOf(() => parseSweepSpec(yaml))).toEqual(['health.eval_every_steps']);
  });

  it('rejects bad health settings naming each field', () => {
    const paths = pathsOf(() =>
      compileSweepSpec({
        ...base(),
        health: {
          eval_samples: 8,
          divergence: { policy: 'explode', loss_max: -1 },
          d_dominance: { d_real_min: 1.5, window: 10 },
          oops: 1,
        },
      }),
    );
    expect(paths.sort()).toEqual(
      [
        'health.d_dominance.d_real_min',
        'health.d_dominance.window',
        'health.divergence.loss_max',
        'health.divergence.policy',
        'health.eval_samples',
        'health.oops',
      ].sort(),
    );
  });

  it("rejects bad 'configurations' naming the entry and parameter", () => {
    expect(pathsOf(() => compileSweepSpec({ ...base(), method: 'list' }))).toEqual(['configurations']);
    expect(
      pathsOf(() => compileSweepSpec({ ...base(), method: 'random', configurations: [{ lr_g: 1e-3 }] })),
    ).toEqual(['configurations']);
    expect(
      pathsOf(() =>
        compileSweepSpec({
          ...base(),
          method: 'list',
          parameters: { lr_d: { values: [1e-4, 2e-4] } },
          configurations: [{ lr_g: 1e-3 }, { lr_g: -1, depth: 3 }],
        }),
      ).sort(),
    ).toEqual(['configurations.1.depth', 'configurations.1.lr_g', 'parameters.lr_d']);
  });

  it.each([
    ['invalid YAML syntax', 'name: [dcgan\nmodel: dcgan\n'],
    ['duplicate keys', 'name: a\nname: b\nmodel: dcgan\ndataset: mnist\nbudget: {steps: 1}\n'],
    ['a list document', '- name: a\n- model: dcgan\n'],
    ['a scalar document', 'just a string'],
    ['a number document', '42'],
    ['an empty document', ''],
    ['unterminated JSON', '{"name": "a", "model": "dcgan"'],
  ])('rejects %s as a whole-document issue (empty path)', (_what, text) => {
    expect(pathsOf(() => parseSweepSpec(text))).toEqual(['']);
  });

  it('rejects a spec bigger than LIMITS.specBytes with PayloadTooLargeError (413)', () => {
    const text = `${DESIGN_YAML}\n# ${'x'.repeat(LIMITS.specBytes)}\n`;
    let caught: unknown;
    try {
      parseSweepSpec(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PayloadTooLargeError);
    expect(caught).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', status: 413 });
  });

  it('counts the size limit in UTF-8 bytes, not characters', () => {
    // Under the limit in characters, over it in bytes (each 'é' is two bytes).
    const padding = 'é'.repeat(Math.ceil(LIMITS.specBytes / 2));
    expect(() => parseSweepSpec(`${DESIGN_YAML}# ${padding}\n`)).toThrow(PayloadTooLargeError);
    expect(() => parseSweepSpec(`${DESIGN_YAML}# ${'é'.repeat(1000)}\n`)).not.toThrow();
  });

  it('reports several top-level problems at once', () => {
    const paths = pathsOf(() =>
      compileSweepSpec({
        name: 'Bad_Name',
        model: 'dcgan',
        dataset: 'CIFAR10',
        budget: { parallel: 0 },
        extra: 1,
      }),
    );
    expect(paths.sort()).toEqual(['budget.parallel', 'budget.steps', 'dataset.name', 'extra', 'name']);
  });

  it('reports several parameter problems at once', () => {
    const paths = pathsOf(() =>
      compileSweepSpec(
        withParams({
          lr_g: { value: 0 },
          beta1: { value: 1 },
          gamma: { value: 1 },
          lr_d: { distribution: 'uniform', min: 1e-3, max: 1e-4 },
          batch_size: { values: [] },
        }),
      ),
    );
    expect(paths.sort()).toEqual([
      'parameters.batch_size.values',
      'parameters.beta1.value',
      'parameters.gamma',
      'parameters.lr_d.max',
      'parameters.lr_g.value',
    ]);
  });

  it('reports top-level and parameter problems together', () => {
    const paths = pathsOf(() => compileSweepSpec(withParams({ lr_g: { value: 0 } }, { extra: true })));
    expect(paths.sort()).toEqual(['extra', 'parameters.lr_g.value']);
  });

  it('serialises code, message and every issue for the HTTP body', () => {
    let caught: unknown;
    try {
      compileSweepSpec({ ...base(), dataset: 'X', method: 'y' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SpecValidationError);
    const err = caught as SpecValidationError;
    expect(err.toJSON()).toEqual({ code: 'INVALID_SPEC', message: err.message, issues: err.issues });
    expect(err.issues).toHaveLength(2);
  });
});

describe('stages (progressive growing)', () => {
  const progan = (stages: unknown, extra: Record<string, unknown> = {}) => ({
    ...base(),
    model: 'progan',
    budget: { trials: 2, parallel: 1 },
    stages,
    ...extra,
  });
  const three = [
    { resolution: 4, stable_steps: 300, batch_size: 64 },
    { resolution: 8, fade_steps: 200, stable_steps: 300, batch_size: 32 },
    { resolution: 16, stable_steps: 100 },
  ];

  it('fills fade_steps (stable_steps; 0 in the first stage) and sums the steps into budget.steps', () => {
    const spec = compileSweepSpec(progan(three, { parameters: { base_filters: { values: [16, 32] } } }));
    expect(spec.stages).toEqual([
      { resolution: 4, fade_steps: 0, stable_steps: 300, batch_size: 64 },
      { resolution: 8, fade_steps: 200, stable_steps: 300, batch_size: 32 },
      // No batch size: the trial's batch_size parameter (resolved per trial, marked 0).
      { resolution: 16, fade_steps: 100, stable_steps: 100, batch_size: 0 },
    ]);
    expect(spec.budget.steps).toBe(300 + 500 + 200);
    expect(spec.parameters.base_filters).toEqual({ kind: 'values', values: [16, 32] });
    // A budget.steps that agrees is fine; YAML works as well.
    expect(compileSweepSpec(progan(three, { budget: { trials: 1, steps: 1000 } })).budget.steps).toBe(1000);
    const yaml = `name: pg\nmodel: progan\ndataset: mnist\nbudget: {trials: 1}\nstages:\n  - {resolution: 4, stable_steps: 10}\n`;
    expect(parseSweepSpec(yaml).stages).toEqual([
      { resolution: 4, fade_steps: 0, stable_steps: 10, batch_size: 0 },
    ]);
  });

  it('requires stages for progan and refuses them for other models', () => {
    expect(pathsOf(() => compileSweepSpec(progan(undefined)))).toEqual(['stages']);
    expect(pathsOf(() => compileSweepSpec({ ...base(), stages: three }))).toEqual(['stages']);
    // dcgan still needs budget.steps.
    expect(pathsOf(() => compileSweepSpec({ ...base(), budget: { trials: 1 } }))).toEqual(['budget.steps']);
  });

  it('names each bad stage field: order of resolutions, first fade, step counts, sums', () => {
    const paths = pathsOf(() =>
      compileSweepSpec(
        progan([
          { resolution: 4, fade_steps: 10, stable_steps: 5 },
          { resolution: 16, stable_steps: 0 },
          { resolution: 12, stable_steps: 5, batch_size: 2000, extra: 1 },
        ]),
      ),
    );
    expect(paths.sort()).toEqual([
      'stages.1.stable_steps',
      'stages.2.batch_size',
      'stages.2.extra',
      'stages.2.resolution',
    ]);
    const order = pathsOf(() =>
      compileSweepSpec(
        progan([
          { resolution: 4, fade_steps: 10, stable_steps: 5 },
          { resolution: 16, stable_steps: 5 },
        ]),
      ),
    );
    expect(order.sort()).toEqual(['stages.0.fade_steps', 'stages.1.resolution']);
    expect(pathsOf(() => compileSweepSpec(progan(three, { budget: { trials: 1, steps: 7 } })))).toEqual([
      'budget.steps',
    ]);
    expect(pathsOf(() => compileSweepSpec(progan([])))).toEqual(['stages']);
    expect(
      pathsOf(() =>
        compileSweepSpec(
          progan([
            { resolution: 4, stable_steps: 600_000 },
            { resolution: 8, stable_steps: 600_000 },
          ]),
        ),
      ),
    ).toEqual(['stages']);
  });

  it('checks progan and wgan-gp parameters against their own definitions', () => {
    const spec = compileSweepSpec(
      progan(three, { parameters: { drift: { value: 0.01 }, ema_decay: { values: [0, 0.99] } } }),
    );
    expect(spec.parameters.drift).toEqual({ kind: 'value', value: 0.01 });
    expect(
      pathsOf(() => compileSweepSpec(progan(three, { parameters: { ema_decay: { value: 1 } } }))),
    ).toEqual(['parameters.ema_decay.value']);
    const wgan = compileSweepSpec({
      ...base(),
      model: 'wgan-gp',
      parameters: { n_critic: { values: [1, 5] } },
    });
    expect(wgan.parameters.n_critic).toEqual({ kind: 'values', values: [1, 5] });
    expect(pathsOf(() => compileSweepSpec({ ...base(), parameters: { n_critic: { value: 5 } } }))).toEqual([
      'parameters.n_critic',
    ]);
  });
});

describe('stages by phase (srgan) and the image-conditioned families', () => {
  const srgan = (stages: unknown, extra: Record<string, unknown> = {}) => ({
    ...base(),
    model: 'srgan',
    dataset: 'emoji',
    budget: { trials: 1, parallel: 1 },
    stages,
    ...extra,
  });
  const two = [
    { phase: 'pretrain', steps: 400, batch_size: 16 },
    { phase: 'adversarial', steps: 200 },
  ];

  it('compiles MSE pretraining then the adversarial phase, each a stage of its own', () => {
    const spec = compileSweepSpec(srgan(two, { parameters: { scale: { values: [2, 4] } } }));
    expect(spec.stages).toEqual([
      { phase: 'pretrain', fade_steps: 0, stable_steps: 400, batch_size: 16 },
      { phase: 'adversarial', fade_steps: 0, stable_steps: 200, batch_size: 0 },
    ]);
    expect(spec.budget.steps).toBe(600);
    // Pretraining alone is SRResNet.
    expect(compileSweepSpec(srgan([two[0]])).stages).toHaveLength(1);
  });

  it('names what is wrong with phase stages', () => {
    expect(pathsOf(() => compileSweepSpec(srgan(undefined)))).toEqual(['stages']);
    expect(issuesOf(() => compileSweepSpec(srgan(undefined)))[0]?.message).toMatch(/pretrain, adversarial/);
    // The adversarial phase needs a pretrained generator; progressive keys are not srgan's.
    const paths = pathsOf(() =>
      compileSweepSpec(
        srgan([
          { phase: 'adversarial', steps: 10 },
          { phase: 'pretrain', resolution: 4 },
        ]),
      ),
    );
    expect(paths.sort()).toEqual([
      'stages.0.phase',
      'stages.1.phase',
      'stages.1.resolution',
      'stages.1.steps',
    ]);
    expect(pathsOf(() => compileSweepSpec(srgan([...two, { phase: 'adversarial', steps: 5 }])))).toContain(
      'stages',
    );
    // progan refuses phase keys.
    const progan = { ...base(), model: 'progan', budget: { trials: 1 } };
    expect(
      pathsOf(() =>
        compileSweepSpec({ ...progan, stages: [{ resolution: 4, stable_steps: 5, phase: 'pretrain' }] }),
      ),
    ).toEqual(['stages.0.phase']);
  });

  it('takes a scale of 2 or 4 only, never from a distribution', () => {
    expect(pathsOf(() => compileSweepSpec(srgan(two, { parameters: { scale: { value: 3 } } })))).toEqual([
      'parameters.scale.value',
    ]);
    expect(
      pathsOf(() =>
        compileSweepSpec(
          srgan(two, { parameters: { scale: { distribution: 'int_uniform', min: 2, max: 4 } } }),
        ),
      ),
    ).toEqual(['parameters.scale.distribution']);
  });

  it('ranks by the metrics a family reports, and no others', () => {
    const withMetric = (model: string, name: string, extra: Record<string, unknown> = {}) => ({
      ...base(),
      model,
      metric: { name, goal: 'maximize' },
      ...extra,
    });
    expect(compileSweepSpec(withMetric('pix2pix', 'l1')).metric.name).toBe('l1');
    expect(compileSweepSpec(withMetric('pix2pix', 'class_accuracy')).metric.name).toBe('class_accuracy');
    expect(compileSweepSpec(srgan(two, { metric: { name: 'psnr', goal: 'maximize' } })).metric.name).toBe(
      'psnr',
    );
    expect(issuesOf(() => compileSweepSpec(withMetric('dcgan', 'psnr')))[0]).toMatchObject({
      path: 'metric.name',
      message: expect.stringMatching(/model dcgan does not report psnr/),
    });
    expect(pathsOf(() => compileSweepSpec(withMetric('pix2pix', 'class_kl')))).toEqual(['metric.name']);
    expect(compileSweepSpec(withMetric('pix2pix', 'g_loss')).metric.name).toBe('g_loss');
    expect(
      pathsOf(() => compileSweepSpec(withMetric('pix2pix', 'psnr', { health: { eval_every_steps: 0 } }))),
    ).toEqual(['health.eval_every_steps']);
  });
});

describe('augment (DiffAugment)', () => {
  it('fills the defaults: all three transforms at p = 1, or p = 0 with ADA and its defaults', () => {
    expect(compileSweepSpec(base()).augment).toBeUndefined();
    expect(compileSweepSpec({ ...base(), augment: {} }).augment).toEqual({
      policy: ['color', 'translation', 'cutout'],
      p: 1,
    });
    expect(compileSweepSpec({ ...base(), augment: { policy: ['cutout'], p: 0.3 } }).augment).toEqual({
      policy: ['cutout'],
      p: 0.3,
    });
    expect(compileSweepSpec({ ...base(), augment: { adaptive: {} } }).augment).toEqual({
      policy: ['color', 'translation', 'cutout'],
      p: 0,
      adaptive: { target: 0.6, interval: 4, ramp_images: 50_000 },
    });
    const yaml = `${DESIGN_YAML}augment: {policy: [translation, color], p: 0.2, adaptive: {target: 0.5}}\n`;
    expect(parseSweepSpec(yaml).augment).toEqual({
      policy: ['translation', 'color'],
      p: 0.2,
      adaptive: { target: 0.5, interval: 4, ramp_images: 50_000 },
    });
  });

  it('names an unknown transform, listing the known ones', () => {
    const issues = issuesOf(() =>
      compileSweepSpec({ ...base(), augment: { policy: ['translation', 'rotate'] } }),
    );
    expect(issues).toEqual([
      { path: 'augment.policy.1', message: "unknown transform 'rotate' (color, translation, cutout)" },
    ]);
  });

  it.each<[string, unknown, string[]]>([
    ['p above 1', { p: 1.5 }, ['augment.p']],
    ['p below 0', { p: -0.1 }, ['augment.p']],
    ['p not a number', { p: 'high' }, ['augment.p']],
    ['an empty policy', { policy: [] }, ['augment.policy']],
    ['a policy that is not a list', { policy: 'cutout' }, ['augment.policy']],
    ['a transform that is not a name', { policy: [3] }, ['augment.policy.0']],
    ['a transform listed twice', { policy: ['cutout', 'color', 'cutout'] }, ['augment.policy.2']],
    ['an unknown key', { prob: 0.5 }, ['augment.prob']],
    ['a target of 1', { adaptive: { target: 1 } }, ['augment.adaptive.target']],
    ['a target of 0', { adaptive: { target: 0 } }, ['augment.adaptive.target']],
    ['interval 0', { adaptive: { interval: 0 } }, ['augment.adaptive.interval']],
    ['a fractional ramp', { adaptive: { ramp_images: 10.5 } }, ['augment.adaptive.ramp_images']],
    ['an unknown adaptive key', { adaptive: { speed: 2 } }, ['augment.adaptive.speed']],
  ])('rejects %s naming the field', (_what, augment, paths) => {
    expect(pathsOf(() => compileSweepSpec({ ...base(), augment }))).toEqual(paths);
  });

  it('rejects an augment block that is not a mapping', () => {
    expect(pathsOf(() => compileSweepSpec({ ...base(), augment: [1] }))).toEqual(['augment']);
  });
});
