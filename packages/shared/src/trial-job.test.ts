import { describe, expect, it } from 'vitest';
import { InvalidJobPayloadError } from './errors.ts';
import { MODEL_PARAMS } from './families.ts';
import { DEFAULT_HEALTH } from './health.ts';
import { jobStage, parseTrialJob, stageAlpha, stageEnd, trialJobId } from './trial-job.ts';

function validJob(): Record<string, unknown> {
  return {
    v: 2,
    sweepId: 'dcgan-lr-0a1b2c3d',
    trialId: 'dcgan-lr-0a1b2c3d-t000',
    index: 0,
    model: 'dcgan',
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: 742993631,
    steps: 600,
    checkpointEvery: 100,
    params: Object.fromEntries(Object.entries(MODEL_PARAMS.dcgan).map(([name, def]) => [name, def.default])),
  };
}

function withParams(overrides: Record<string, unknown>, drop: string[] = []): Record<string, unknown> {
  const job = validJob();
  const params = { ...(job.params as Record<string, unknown>), ...overrides };
  for (const name of drop) delete params[name];
  return { ...job, params };
}

/** Expects parseTrialJob to reject `data` with InvalidJobPayloadError; returns the issue paths, sorted. */
function rejectedPaths(data: unknown): string[] {
  let caught: unknown;
  try {
    parseTrialJob(data, 'job-1');
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidJobPayloadError);
  const err = caught as InvalidJobPayloadError;
  expect(err.code).toBe('INVALID_JOB_PAYLOAD');
  expect(err.context).toEqual({ jobId: 'job-1' });
  return err.issues.map((i) => i.path).sort();
}

describe('parseTrialJob', () => {
  it('accepts a valid payload and returns it unchanged, with the default health settings filled in', () => {
    const job = validJob();
    expect(parseTrialJob(structuredClone(job))).toEqual({ ...job, health: DEFAULT_HEALTH });
    const custom = { ...job, health: { ...DEFAULT_HEALTH, eval_every_steps: 10 } };
    expect(parseTrialJob(structuredClone(custom))).toEqual(custom);
  });

  it('accepts a cgan payload on mnist', () => {
    const dataset = { name: 'mnist', version: 'fedcba9876543210', image_size: 28, channels: 1 };
    expect(parseTrialJob({ ...validJob(), model: 'cgan', dataset }).dataset).toEqual(dataset);
  });

  it.each<[string, unknown, string[]]>([
    ['params missing entirely', (({ params: _p, ...rest }) => rest)(validJob()), ['params']],
    ['one model parameter missing', withParams({}, ['lr_g']), ['params.lr_g']],
    [
      'two model parameters missing',
      withParams({}, ['beta1', 'latent_dim']),
      ['params.beta1', 'params.latent_dim'],
    ],
    ['an unknown parameter', withParams({ gamma: 1 }), ['params.gamma']],
    ['an out-of-range parameter (lr_g 0)', withParams({ lr_g: 0 }), ['params.lr_g']],
    ['an out-of-range parameter (beta2 1)', withParams({ beta2: 1 }), ['params.beta2']],
    ['a fractional integer parameter', withParams({ batch_size: 32.5 }), ['params.batch_size']],
    ['a non-number parameter', withParams({ lr_d: '2e-4' }), ['params.lr_d']],
    ['a wrong version', { ...validJob(), v: 3 }, ['v']],
    ['an extra top-level key', { ...validJob(), priority: 5 }, ['priority']],
    ['an uppercase sweep id', { ...validJob(), sweepId: 'DcGan' }, ['sweepId']],
    ['a trial id with a slash', { ...validJob(), trialId: 'a/../b' }, ['trialId']],
    ['an empty trial id', { ...validJob(), trialId: '' }, ['trialId']],
    ['a trial id longer than 128 characters', { ...validJob(), trialId: 'a'.repeat(129) }, ['trialId']],
    ['a negative index', { ...validJob(), index: -1 }, ['index']],
    ['an unknown model', { ...validJob(), model: 'stylegan' }, ['model']],
    ['a data set by name only (v1 form)', { ...validJob(), dataset: 'cifar10' }, ['dataset']],
    [
      'a data set version that is not 16 hex digits',
      {
        ...validJob(),
        dataset: { name: 'fashion-mnist', version: 'latest', image_size: 28, channels: 1 },
      },
      ['dataset.version'],
    ],
    ['a v1 payload', { ...validJob(), v: 1 }, ['v']],
    ['zero steps', { ...validJob(), steps: 0 }, ['steps']],
    ['a seed beyond 32 bits', { ...validJob(), seed: 2 ** 32 }, ['seed']],
  ])('rejects %s naming the field', (_what, data, paths) => {
    expect(rejectedPaths(data)).toEqual(paths);
  });

  it('rejects payloads crafted by someone with Redis access: ids that reach keys or paths, odd values', () => {
    const job = validJob();
    expect(rejectedPaths({ ...job, trialId: '../../other/t000' })).toEqual(['trialId']);
    expect(rejectedPaths({ ...job, trialId: 'dcgan-lr-0a1b2c3d-t000:lock' })).toEqual(['trialId']);
    // A valid id, but another sweep's trial (its keys and objects are not this job's to write).
    expect(rejectedPaths({ ...job, trialId: 'other-sweep-t000' })).toEqual(['trialId']);
    expect(rejectedPaths({ ...job, index: 1 })).toEqual(['trialId']);
    expect(rejectedPaths({ ...job, sweepId: 'a/../../b' })).toContain('sweepId');
    expect(rejectedPaths({ ...job, dataset: { ...(job.dataset as object), name: '../x' } })).toEqual([
      'dataset.name',
    ]);
    expect(rejectedPaths({ ...job, dataset: { ...(job.dataset as object), version: '../../etc' } })).toEqual([
      'dataset.version',
    ]);
    expect(rejectedPaths({ ...job, steps: 1e12 })).toEqual(['steps']);
    expect(rejectedPaths({ ...job, checkpointEvery: 0 })).toEqual(['checkpointEvery']);
    expect(rejectedPaths(withParams({ lr_g: Number.POSITIVE_INFINITY }))).toEqual(['params.lr_g']);
    expect(
      rejectedPaths(JSON.parse(JSON.stringify(job).replace('"params":{', '"params":{"__proto__":1,'))),
    ).toEqual(['params.__proto__']);
    expect(rejectedPaths({ ...job, extra: 'x' })).toEqual(['extra']);
  });

  it('rejects a payload that is not an object', () => {
    expect(rejectedPaths(null)).toEqual(['']);
    expect(rejectedPaths('{"v":1}')).toEqual(['']);
  });

  it('reports every missing and bad parameter at once', () => {
    expect(rejectedPaths(withParams({ lr_g: -1, gamma: 2 }, ['batch_size']))).toEqual([
      'params.batch_size',
      'params.gamma',
      'params.lr_g',
    ]);
  });
});

describe('staged jobs', () => {
  const stages = [
    { resolution: 4, fade_steps: 0, stable_steps: 300, batch_size: 64 },
    { resolution: 8, fade_steps: 200, stable_steps: 300, batch_size: 0 },
  ];
  const progan = (stage: unknown) => ({
    ...validJob(),
    model: 'progan',
    steps: 800,
    params: Object.fromEntries(Object.entries(MODEL_PARAMS.progan).map(([name, def]) => [name, def.default])),
    stage,
  });

  it('resolves a stage: global start step, batch size from the trial, end and alpha', () => {
    const s1 = jobStage(stages, 1, { batch_size: 16 });
    expect(s1).toEqual({
      index: 1,
      count: 2,
      resolution: 8,
      fade_steps: 200,
      stable_steps: 300,
      batch_size: 16,
      start_step: 300,
    });
    expect(jobStage(stages, 0, { batch_size: 16 }).batch_size).toBe(64);
    expect(stageEnd(s1)).toBe(800);
    expect(stageAlpha(s1, 300)).toBe(0);
    expect(stageAlpha(s1, 350)).toBe(0.25);
    expect(stageAlpha(s1, 500)).toBe(1);
    expect(stageAlpha(s1, 700)).toBe(1);
    expect(stageAlpha(jobStage(stages, 0, {}), 0)).toBe(1);
    expect(() => jobStage(stages, 2, {})).toThrow(/no stage 2/);
    expect(trialJobId('sw-t001')).toBe('sw-t001');
    expect(trialJobId('sw-t001', 2)).toBe('sw-t001-s2');
    expect(parseTrialJob(progan(s1)).stage).toEqual(s1);
  });

  it('requires a stage for progan, refuses one elsewhere, and checks it against the trial', () => {
    const s1 = jobStage(stages, 1, { batch_size: 16 });
    expect(rejectedPaths(progan(undefined))).toEqual(['stage']);
    expect(rejectedPaths({ ...validJob(), stage: s1 })).toEqual(['stage']);
    expect(rejectedPaths(progan({ ...s1, index: 2 }))).toEqual(['stage.index']);
    expect(rejectedPaths(progan({ ...s1, resolution: 12 }))).toEqual(['stage.resolution']);
    expect(rejectedPaths({ ...progan(s1), steps: 700 })).toEqual(['stage']);
    expect(rejectedPaths(progan({ ...jobStage(stages, 0, {}), fade_steps: 5 }))).toEqual([
      'stage.fade_steps',
    ]);
  });
});

describe('augment in the job', () => {
  const augment = {
    policy: ['color', 'translation', 'cutout'],
    p: 0,
    adaptive: { target: 0.6, interval: 4, ramp_images: 50_000 },
  };

  it('carries a compiled augment block unchanged, and a payload without one has none', () => {
    expect(parseTrialJob({ ...validJob(), augment }).augment).toEqual(augment);
    expect(parseTrialJob(validJob()).augment).toBeUndefined();
    expect('augment' in parseTrialJob(validJob())).toBe(false);
  });

  it('rejects a bad augment block naming the field', () => {
    expect(rejectedPaths({ ...validJob(), augment: { ...augment, p: 2 } })).toEqual(['augment.p']);
    expect(rejectedPaths({ ...validJob(), augment: { ...augment, policy: ['flip'] } })).toEqual([
      'augment.policy.0',
    ]);
    expect(rejectedPaths({ ...validJob(), augment: { ...augment, extra: 1 } })).toEqual(['augment.extra']);
  });
});
