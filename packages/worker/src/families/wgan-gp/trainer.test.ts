import { parseTrialJob, type TrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { fakeDataset } from '../../testing/fake-dataset.ts';
import type { StepStats, Trainer } from '../family.ts';
import { familyOf } from '../registry.ts';

const data = fakeDataset();

/** Runs `fn` with a fresh trainer and disposes it (tfjs variable names are global: one at a time). */
function withTrainer<T>(j: TrialJob, fn: (t: Trainer) => T): T {
  const trainer = familyOf(j.model).createTrainer(j, data);
  try {
    return fn(trainer);
  } finally {
    trainer.dispose();
  }
}

const steps = (t: Trainer, n: number): StepStats[] => Array.from({ length: n }, () => t.trainStep());

beforeAll(async () => {
  await initBackend('wasm');
});

describe('wgan-gp: GanTrainer with the Wasserstein update', () => {
  const wgan = (nCritic: number, seed = 42) =>
    parseTrialJob({
      v: 2,
      sweepId: 'sw',
      trialId: 'sw-t000',
      index: 0,
      model: 'wgan-gp',
      dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
      seed,
      steps: 100,
      checkpointEvery: 10,
      params: {
        lr_g: 1e-3,
        lr_d: 1e-3,
        beta1: 0,
        beta2: 0.9,
        batch_size: 8,
        latent_dim: 8,
        base_filters: 8,
        n_critic: nCritic,
        gp_lambda: 10,
      },
    });

  it('takes n_critic critic updates per generator update, with a critic free of batch norm', () => {
    const { stats, state } = withTrainer(wgan(3), (t) => ({ stats: steps(t, 2), state: t.exportState() }));
    expect(state.optD.t).toBe(6);
    expect(state.optG.t).toBe(2);
    expect(state.d.map((a) => a.name)).toEqual(['d/c1/w', 'd/c1/b', 'd/c2/w', 'd/c2/b', 'd/fc/w', 'd/fc/b']);
    // The generator is DCGAN's, batch norm included.
    expect(state.g.some((a) => a.name.includes('bn'))).toBe(true);
    for (const s of stats) {
      for (const v of Object.values(s)) expect(Number.isFinite(v), JSON.stringify(s)).toBe(true);
      // The critic loss includes the penalty, which is >= 0: loss >= -(Wasserstein estimate) = d_fake - d_real.
      expect(s.d_loss).toBeGreaterThanOrEqual(s.d_fake - s.d_real - 1e-5);
      // The generator's loss is -mean D(G(z)) of a fresh batch: a raw critic score, not a probability.
      expect(Number.isFinite(s.g_loss)).toBe(true);
    }
  });

  it('resumes exactly and leaks no tensors across steps', () => {
    const uninterrupted = withTrainer(wgan(2), (t) => steps(t, 4));
    const saved = withTrainer(wgan(2), (t) => {
      steps(t, 2);
      return t.exportState();
    });
    const resumed = withTrainer(wgan(2), (t) => {
      t.importState(saved);
      steps(t, 1);
      const live = tf.memory().numTensors;
      const rest = steps(t, 1);
      expect(tf.memory().numTensors).toBe(live);
      return rest;
    });
    expect(resumed).toEqual(uninterrupted.slice(3));
  });
});
