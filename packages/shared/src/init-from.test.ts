import { describe, expect, it } from 'vitest';
import { InvalidJobPayloadError, SpecValidationError } from './errors.ts';
import { MODEL_PARAMS } from './families.ts';
import { jobInitFrom } from './init-from.ts';
import { compileSweepSpec } from './sweep-spec.ts';
import { parseTrialJob } from './trial-job.ts';

function spec(init_from: unknown): Record<string, unknown> {
  return {
    name: 'warm',
    model: 'dcgan',
    dataset: 'mnist',
    budget: { trials: 1, steps: 10 },
    init_from,
  };
}

function issues(input: unknown): { path: string; message: string }[] {
  try {
    compileSweepSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(SpecValidationError);
    return [...(err as SpecValidationError).issues];
  }
  throw new Error('the spec was accepted');
}

describe('init_from in a sweep spec', () => {
  it('takes a trial, an optional step and the networks (both by default)', () => {
    expect(compileSweepSpec(spec({ trial: 'src-0a1b2c3d-t000' })).init_from).toEqual({
      trial: 'src-0a1b2c3d-t000',
      nets: ['g', 'd'],
    });
    expect(compileSweepSpec(spec({ trial: 'src-t001', step: 200, nets: ['g'] })).init_from).toEqual({
      trial: 'src-t001',
      step: 200,
      nets: ['g'],
    });
    expect(compileSweepSpec(spec(undefined)).init_from).toBeUndefined();
  });

  it.each<[string, unknown, string, RegExp]>([
    ['not a mapping', 'src-t000', 'init_from', /./],
    ['no trial', { step: 10 }, 'init_from.trial', /is required/],
    ['a trial that is no id', { trial: '../etc' }, 'init_from.trial', /trial id/],
    ['a trial that is a number', { trial: 7 }, 'init_from.trial', /./],
    ['a negative step', { trial: 'a-t000', step: -1 }, 'init_from.step', />= 0/],
    ['a fractional step', { trial: 'a-t000', step: 2.5 }, 'init_from.step', /integer/],
    ['an unknown network', { trial: 'a-t000', nets: ['g', 'e'] }, 'init_from.nets.1', /g or d/],
    ['no network', { trial: 'a-t000', nets: [] }, 'init_from.nets', /at least one/],
    ['nets not a list', { trial: 'a-t000', nets: 'g' }, 'init_from.nets', /list/],
    ['a network twice', { trial: 'a-t000', nets: ['g', 'g'] }, 'init_from.nets.1', /twice/],
    ['an unknown key', { trial: 'a-t000', net: ['g'] }, 'init_from.net', /unknown key/],
    [
      'the pinned source written by hand',
      { trial: 'a-t000', source: { sweepId: 'a', manifestKey: 'k' } },
      'init_from.source',
      /unknown key/,
    ],
  ])('refuses %s with 400 naming the field', (_what, init, path, message) => {
    const found = issues(spec(init)).find((i) => i.path === path);
    expect(found, JSON.stringify(issues(spec(init)))).toBeDefined();
    expect(found!.message).toMatch(message);
  });
});

function job(initFrom?: unknown): Record<string, unknown> {
  return {
    v: 2,
    sweepId: 'dst-0a1b2c3d',
    trialId: 'dst-0a1b2c3d-t000',
    index: 0,
    model: 'dcgan',
    dataset: { name: 'mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: 1,
    steps: 10,
    checkpointEvery: 10,
    params: Object.fromEntries(Object.entries(MODEL_PARAMS.dcgan).map(([n, d]) => [n, d.default])),
    ...(initFrom ? { initFrom } : {}),
  };
}

const source = {
  sweepId: 'src-0a1b2c3d',
  trialId: 'src-0a1b2c3d-t000',
  step: 20,
  manifestKey: 'sweeps/src-0a1b2c3d/trials/src-0a1b2c3d-t000/checkpoints/20/w1-x/manifest.json',
  nets: ['g'],
};

describe('initFrom in a trial job', () => {
  it('is optional: payloads from before it parse as they are; a resolved one parses whole', () => {
    expect(parseTrialJob(job()).initFrom).toBeUndefined();
    expect(parseTrialJob(job(source)).initFrom).toEqual(source);
  });

  it.each<[string, unknown, string]>([
    ['no manifest key', { ...source, manifestKey: undefined }, 'initFrom.manifestKey'],
    ['an unknown network', { ...source, nets: ['z'] }, 'initFrom.nets.0'],
    ['no network', { ...source, nets: [] }, 'initFrom.nets'],
    ['an unknown key', { ...source, extra: 1 }, 'initFrom.extra'],
  ])('refuses %s naming the field', (_what, initFrom, path) => {
    let caught: unknown;
    try {
      parseTrialJob(job(initFrom));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidJobPayloadError);
    expect((caught as InvalidJobPayloadError).issues.map((i) => i.path)).toContain(path);
  });

  it('is built from a pinned init_from only', () => {
    expect(jobInitFrom(undefined)).toBeUndefined();
    expect(jobInitFrom({ trial: 't', nets: ['g'] })).toBeUndefined();
    expect(
      jobInitFrom({
        trial: source.trialId,
        step: 20,
        nets: ['g'],
        source: { sweepId: source.sweepId, manifestKey: source.manifestKey },
      }),
    ).toEqual(source);
  });
});
