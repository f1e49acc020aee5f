import {
  type AugmentConfig,
  augmentSchema,
  jobStage,
  MODEL_PARAMS,
  type ModelName,
  parseTrialJob,
  Rng,
  type StageSpec,
  type TrialJob,
} from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { type Dataset, padDataset } from '../data/datasets.ts';
import type { StepStats, Trainer, TrainerState } from '../families/family.ts';
import { proganCanvas } from '../families/progan/trainer.ts';
import { familyOf } from '../families/registry.ts';
import { fakeDataset } from '../testing/fake-dataset.ts';

const defaults = (model: ModelName) =>
  Object.fromEntries(Object.entries(MODEL_PARAMS[model]).map(([k, d]) => [k, d.default]));

/** A job of `model` at the smallest sizes its family takes, with `augment`. */
function job(model: ModelName, augment?: AugmentConfig, side = 28): TrialJob {
  const small: Partial<Record<ModelName, Record<string, number>>> = {
    dcgan: { batch_size: 8, latent_dim: 8, base_filters: 8 },
    cgan: { batch_size: 8, latent_dim: 8, base_filters: 8 },
    'wgan-gp': { batch_size: 8, latent_dim: 8, base_filters: 8, n_critic: 2 },
    // One critic update per step: with two, p can go up and back within a step.
    progan: { base_filters: 8, latent_dim: 8, n_critic: 1 },
    srgan: { blocks: 1, base_filters: 8, batch_size: 8 },
    pix2pix: { base_filters: 8, batch_size: 4, n_layers: 2 },
  };
  const params = { ...defaults(model), ...small[model] };
  const stages: StageSpec[] | undefined =
    model === 'progan'
      ? [{ resolution: 8, fade_steps: 0, stable_steps: 10, batch_size: 8 }]
      : model === 'srgan'
        ? [
            { phase: 'pretrain', fade_steps: 0, stable_steps: 1, batch_size: 8 },
            { phase: 'adversarial', fade_steps: 0, stable_steps: 10, batch_size: 8 },
          ]
        : undefined;
  return parseTrialJob({
    v: 2,
    sweepId: 'aug',
    trialId: 'aug-t000',
    index: 0,
    model,
    dataset: { name: 'fake', version: '0123456789abcdef', image_size: side, channels: 1 },
    seed: 5,
    steps: 11,
    checkpointEvery: 5,
    params,
    ...(augment ? { augment } : {}),
    ...(stages ? { stage: jobStage(stages, stages.length - 1, params) } : {}),
  });
}

function dataFor(model: ModelName): Dataset {
  if (model === 'progan') return padDataset(fakeDataset(3, 64), proganCanvas(28));
  if (model === 'pix2pix') return fakeDataset(3, 64, true);
  return fakeDataset(3, 64);
}

/** Runs `fn` on a fresh trainer, then disposes it (one trainer per process at a time: tfjs names). */
function withTrainer<T>(j: TrialJob, fn: (t: Trainer) => T): T {
  const trainer = familyOf(j.model).createTrainer(j, dataFor(j.model));
  try {
    return fn(trainer);
  } finally {
    trainer.dispose();
  }
}

const steps = (t: Trainer, n: number) => Array.from({ length: n }, () => t.trainStep());
const scalars = (s: StepStats[]) => s.map((x) => [x.d_loss, x.g_loss, x.d_real, x.d_fake, x.augment_p]);

/** An ADA that moves p at every D update: each step's scores change p before the next. */
const ADA = augmentSchema.parse({ p: 0.5, adaptive: { interval: 1, ramp_images: 40 } });

beforeAll(async () => {
  await initBackend('wasm');
});

describe('DiffAugment in every family', () => {
  const models: ModelName[] = ['dcgan', 'cgan', 'wgan-gp', 'progan', 'srgan', 'pix2pix'];
  for (const model of models) {
    it(`${model}: D sees augmented images, p is reported and moves, and a resumed run is bit-exact`, () => {
      const plain = withTrainer(job(model), (t) => steps(t, 1));
      expect(plain[0]!.augment_p).toBeUndefined();
      const straight = withTrainer(job(model, ADA), (t) => {
        const run = steps(t, 2);
        const live = tf.memory().numTensors;
        run.push(...steps(t, 2));
        // No tensor outlives its step, the kept scores of ADA's intervals included.
        expect(tf.memory().numTensors).toBe(live);
        return run;
      });
      for (const s of straight)
        for (const v of [s.d_loss, s.g_loss, s.d_real, s.d_fake]) expect(Number.isFinite(v)).toBe(true);
      // The same seed without augmentation scores D differently: T reached D's input.
      expect(straight[0]!.d_loss).not.toBe(plain[0]!.d_loss);
      expect(new Set(straight.map((s) => s.augment_p)).size).toBeGreaterThan(1);
      expect(straight.every((s) => s.augment_rt !== undefined)).toBe(true);
      // 2 steps, a checkpoint (as JSON, like a manifest), a fresh trainer, 2 more: the same 4 steps.
      const { first, state } = withTrainer(job(model, ADA), (t) => ({
        first: steps(t, 2),
        state: JSON.parse(
          JSON.stringify(t.exportState(), (_k, v) => (v instanceof Float32Array ? Array.from(v) : v)),
        ),
      }));
      const revive = (xs: TrainerState['g']) => xs.map((a) => ({ ...a, data: Float32Array.from(a.data) }));
      const restored: TrainerState = {
        ...state,
        g: revive(state.g),
        d: revive(state.d),
        optG: { ...state.optG, arrays: revive(state.optG.arrays) },
        optD: { ...state.optD, arrays: revive(state.optD.arrays) },
        ...(state.ema ? { ema: revive(state.ema) } : {}),
        ...(state.stats ? { stats: revive(state.stats) } : {}),
      };
      expect(restored.augment?.p).toBe(first[1]!.augment_p);
      const rest = withTrainer(job(model, ADA), (t) => {
        t.importState(restored);
        return steps(t, 2);
      });
      expect(scalars([...first, ...rest])).toEqual(scalars(straight));
    });
  }
});

/** 16x16 RGB: white with an orange disk at a random place, as dcgan's own learning test uses. */
function disks(count: number): Dataset {
  const rng = new Rng(5);
  const images = new Float32Array(count * 768).fill(1);
  for (let n = 0; n < count; n++) {
    const [cy, cx, r] = [5 + rng.uniform() * 6, 5 + rng.uniform() * 6, 3 + rng.uniform() * 2];
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++)
        if ((y - cy) ** 2 + (x - cx) ** 2 < r * r) images.set([1, 0.3, -0.8], (n * 256 + y * 16 + x) * 3);
  }
  return { ...fakeDataset(), name: 'disks', images, count, height: 16, width: 16, channels: 3 };
}

const meanImage = (images: Float32Array, n: number) => {
  const m = new Float64Array(768);
  for (let i = 0; i < n; i++) for (let p = 0; p < 768; p++) m[p]! += images[i * 768 + p]! / n;
  return m;
};
const mse = (a: Float64Array, b: Float64Array) => a.reduce((s, v, p) => s + (v - b[p]!) ** 2, 0) / a.length;

describe('training with DiffAugment', () => {
  /** 150 dcgan steps on `set`; the distance of the mean sample to the mean image before and after. */
  function run(set: Dataset, augment: AugmentConfig) {
    const base = job('dcgan', augment, 16);
    const j: TrialJob = {
      ...base,
      dataset: { ...base.dataset, channels: 3 },
      params: { ...base.params, lr_g: 1e-3, lr_d: 4e-4 },
    };
    const target = meanImage(set.images, set.count);
    const trainer = familyOf('dcgan').createTrainer(j, set);
    try {
      const before = mse(meanImage(trainer.sample(64), 64), target);
      const stats = steps(trainer, 150);
      return { before, after: mse(meanImage(trainer.sample(64), 64), target), stats };
    } finally {
      trainer.dispose();
    }
  }

  it('still learns the disks with every transform at p = 1: the samples move from gray to the data', () => {
    const { before, after } = run(disks(64), augmentSchema.parse({}));
    // A frozen or broken G stays near its initial gray output (about the distance to white, ~0.8).
    expect(before).toBeGreaterThan(0.5);
    expect(after).toBeLessThan(0.25 * before);
  });

  it('ADA raises p from 0 while D is sure of 8 real images (r_t > 0.6), and G still learns', () => {
    const ada = augmentSchema.parse({ adaptive: { ramp_images: 2000 } });
    const { before, after, stats } = run(disks(8), ada);
    expect(stats[0]!.augment_p).toBe(0);
    const p = stats.map((s) => s.augment_p!);
    // p moves in steps of 4 updates x 8 images / 2000 images; while r_t > 0.6 it rises.
    expect(p.at(-1)!).toBeGreaterThan(0.2);
    expect(stats.find((s) => s.augment_rt !== undefined)!.augment_rt).toBeGreaterThan(0.6);
    expect(after).toBeLessThan(0.25 * before);
  });
});
