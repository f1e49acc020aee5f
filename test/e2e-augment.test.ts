import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AugmentationRecord, compileSweepSpec, createLogger, loadConfig } from '@gantry/shared';
import { afterAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../packages/coordinator/src/coordinator.ts';
import {
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { runGantry } from './support/cli.ts';
import { testEnv } from './support/infra.ts';
import { waitForSweepEnd } from './support/wait-for.ts';

describe('GAN data augmentation on real Redis and S3', () => {
  const env = testEnv({ GANTRY_LOCK_MS: '5000' });
  let coordinator: Coordinator | undefined;
  let worker: WorkerProcess | undefined;

  afterAll(async () => {
    if (worker) await stopWorker(worker, 10_000);
    await coordinator?.close();
  });

  it('gantry augment measures a cgan trained on 10 images per class of Fashion-MNIST, and the result is in the API', async () => {
    coordinator = new Coordinator(loadConfig(env), createLogger('e2e', 'silent'), {
      schedulerIntervalMs: 250,
    });
    const apiUrl = (await coordinator.start({ host: '127.0.0.1', port: 0 }))!;
    worker = await spawnWorker('w1', env, await mkdtemp(join(tmpdir(), 'gantry-e2e-')));
    // A tiny cgan that saw only the first 10 images of each class, ranked by aug_gain (a short recipe).
    const { id, trialIds } = await coordinator.submit(
      compileSweepSpec({
        name: 'e2e-augment',
        model: 'cgan',
        dataset: { name: 'fashion-mnist', subset_per_class: 10 },
        method: 'grid',
        budget: { trials: 1, parallel: 1, steps: 10 },
        checkpoint: { every_steps: 10 },
        health: { eval_every_steps: 10, eval_samples: 64 },
        metric: { name: 'aug_gain', goal: 'maximize' },
        aug_gain: { synthetic_per_class: 5, seeds: 1, classifier_steps: 2, test_per_class: 20 },
        parameters: { batch_size: { value: 16 }, base_filters: { value: 8 }, latent_dim: { value: 16 } },
      }),
    );
    expect((await waitForSweepEnd(coordinator, id, 120_000)).state).toBe('completed');
    const trialId = trialIds[0]!;
    // The last evaluation measured aug_gain beside the quality classifier's scores; the sweep ranks by it.
    const trained = (await coordinator.store.trial(trialId))!;
    expect(trained.quality?.aug_gain).toBeTypeOf('number');
    expect(trained.quality?.fld).toBeTypeOf('number');
    expect(trained.result).toBe(trained.quality?.aug_gain);
    const gantry = (args: string[]) =>
      runGantry({ ...env, GANTRY_API_URL: apiUrl }, ['augment', trialId, ...args]);

    // A short recipe for the test (classifier_steps and test_per_class are for tests and quick looks).
    const run = await gantry([
      '--real-per-class',
      '10',
      '--synthetic-per-class',
      '5',
      '--seeds',
      '2',
      '--classifier-steps',
      '2',
      '--test-per-class',
      '20',
    ]);
    expect(run.code, run.err).toBe(0);
    // Progress lines are polled (a short recipe can finish between two polls): only the end is certain.
    expect(run.err).toMatch(/: completed\n/);
    expect(run.out).toMatch(/real only \(K = 10\)\s+\d+\.\d% ± \d/);
    expect(run.out).toMatch(/GAN-train \(5 generated per class only\)/);

    const view = await coordinator.app.inject({ method: 'GET', url: `/v1/trials/${trialId}` });
    const [record] = (view.json() as { augmentations: AugmentationRecord[] }).augmentations;
    expect(record).toMatchObject({
      state: 'completed',
      worker: 'w1',
      checkpoint: { step: 10 },
      params: { real_per_class: 10, synthetic_per_class: 5, seeds: 2, classifier_steps: 2 },
    });
    const r = record!.result!;
    expect(r.test_images).toBe(200);
    expect(r.real.values).toHaveLength(2);
    expect(r.augmented[0]!.accuracy.values).toHaveLength(2);
    expect(r.gan_test.images).toBe(50);
    for (const v of [...r.real.values, ...r.gan_train.values, ...r.gan_test.values]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    const got = await coordinator.app.inject({ method: 'GET', url: `/v1/augmentations/${record!.id}` });
    expect(got.json()).toEqual(record);
  }, 300_000);
});
