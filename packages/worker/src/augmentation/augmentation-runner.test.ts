import type { AugmentationRecord, AugmentationStore } from '@gantry/shared';
import { createLogger } from '@gantry/shared';
import { type Job, UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import type { DatasetCache } from '../data/dataset-cache.ts';
import { runAugmentationAttempt } from './augmentation-runner.ts';

const trial = {
  v: 2,
  sweepId: 'aug',
  trialId: 'aug-t000',
  index: 0,
  model: 'cgan',
  dataset: {
    name: 'fashion-mnist',
    version: '0123456789abcdef',
    image_size: 28,
    channels: 1,
    subset_per_class: 10,
  },
  seed: 1,
  steps: 10,
  checkpointEvery: 10,
  params: { lr_g: 2e-4, lr_d: 2e-4, beta1: 0.5, beta2: 0.999, batch_size: 8, latent_dim: 8, base_filters: 8 },
};
const good = {
  v: 1,
  augmentationId: 'aug-t000-a1',
  trial,
  checkpoint: { step: 10, manifestKey: 'm/10' },
  params: { real_per_class: 10, synthetic_per_class: 5, seeds: 2, classifier_steps: 2 },
};

/** Runs one attempt of a job carrying `data` against an in-memory record; nothing else may be touched. */
async function attempt(data: unknown) {
  const record: AugmentationRecord = {
    id: 'aug-t000-a1',
    trialId: 'aug-t000',
    sweepId: 'aug',
    state: 'queued',
    params: good.params,
    checkpoint: { step: 10 },
    attempts: 0,
    createdAt: 0,
  };
  let current = record;
  const records = {
    update: async (_id: string, fields: Partial<AugmentationRecord>) => {
      current = { ...current, ...fields };
      return current;
    },
  } as unknown as AugmentationStore;
  let fetched = 0;
  const datasets = {
    acquire: async () => {
      fetched += 1;
      throw new Error('no data set fetch for a bad payload');
    },
  } as unknown as DatasetCache;
  const job = { id: 'aug-t000-a1', data, attemptsMade: 0, opts: { attempts: 3 } } as unknown as Job;
  const err = await runAugmentationAttempt(job, 'token', new AbortController().signal, {
    records,
    datasets,
    store: { bucket: 'b', region: 'us-east-1', forcePathStyle: true },
    workerId: 'w1',
    log: createLogger('test', 'silent'),
  }).then(
    () => new Error('the attempt succeeded'),
    (e: unknown) => e as Error,
  );
  return { err, record: current, fetched };
}

describe('an augmentation attempt', () => {
  it.each([
    ['a missing field', { ...good, params: { ...good.params, seeds: undefined } }, /params\.seeds/],
    ['an unknown field', { ...good, extra: 1 }, /extra: unknown field/],
    ['a bad count', { ...good, params: { ...good.params, synthetic_per_class: 0 } }, /synthetic_per_class/],
    [
      'a bad trial job',
      { ...good, trial: { ...trial, params: { ...trial.params, lr_g: -1 } } },
      /params\.lr_g/,
    ],
  ])('fails for good on a payload with %s, before fetching anything', async (_what, data, message) => {
    const { err, record, fetched } = await attempt(data);
    expect(err).toBeInstanceOf(UnrecoverableError);
    expect(err.message).toMatch(message);
    expect(record.state).toBe('failed');
    expect(record.error).toMatch(message);
    expect(fetched).toBe(0);
  });

  it('runs a good payload on this worker, and a fetch that fails leaves it queued for a retry', async () => {
    const { err, record, fetched } = await attempt(good);
    expect(fetched).toBe(1);
    expect(err).not.toBeInstanceOf(UnrecoverableError);
    expect(err.message).toBe('no data set fetch for a bad payload');
    expect(record).toMatchObject({
      state: 'queued',
      worker: 'w1',
      attempts: 1,
      error: 'attempt 1 failed: no data set fetch for a bad payload',
    });
  });
});
