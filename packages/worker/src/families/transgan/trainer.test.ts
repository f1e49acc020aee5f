import { parseTrialJob, type TrialJob } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import type { Dataset } from '../../data/datasets.ts';
import { fakeDataset } from '../../testing/fake-dataset.ts';
import type { StepStats, Trainer } from '../family.ts';
import { familyOf } from '../registry.ts';

/** A transgan job small enough to train in seconds: 16 px (4x4 tokens at the bottom), one block a stage. */
function job(over: Partial<TrialJob> = {}, params: Record<string, number> = {}): TrialJob {
  return parseTrialJob({
    v: 2,
    sweepId: 'tg',
    trialId: 'tg-t000',
    index: 0,
    model: 'transgan',
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 16, channels: 3 },
    seed: 3,
    steps: 100,
    checkpointEvery: 10,
    params: {
      lr_g: 1e-3,
      lr_d: 1e-3,
      beta1: 0,
      beta2: 0.99,
      batch_size: 8,
      latent_dim: 16,
      g_embed_dim: 128,
      d_embed_dim: 32,
      g_depth_1: 1,
      g_depth_2: 1,
      g_depth_3: 1,
      d_depth: 1,
      heads: 2,
      mlp_ratio: 2,
      patch_size: 4,
      n_critic: 1,
      gp_lambda: 10,
      drift: 0.001,
      ...params,
    },
    ...over,
  });
}

/** 16x16 RGB: an orange disk of varying radius on white, in [-1, 1]. */
function disks(count: number): Dataset {
  const images = new Float32Array(count * 768);
  for (let i = 0; i < count; i++) {
    const r = 3 + (i % 4);
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++) {
        const inside = (x - 7.5) ** 2 + (y - 7.5) ** 2 < r * r;
        images.set(inside ? [0.9, -0.1, -0.7] : [1, 1, 1], i * 768 + (y * 16 + x) * 3);
      }
  }
  return { ...fakeDataset(), name: 'disks', images, count, height: 16, width: 16, channels: 3 };
}

const meanImage = (images: Float32Array, n: number) => {
  const m = new Float64Array(768);
  for (let i = 0; i < n; i++) for (let p = 0; p < 768; p++) m[p]! += images[i * 768 + p]! / n;
  return m;
};
const mse = (a: Float64Array, b: Float64Array) => a.reduce((s, v, p) => s + (v - b[p]!) ** 2, 0) / a.length;

const set = disks(64);

function withTrainer<T>(j: TrialJob, fn: (t: Trainer) => T): T {
  const trainer = familyOf('transgan').createTrainer(j, set);
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

describe('transgan trainer', () => {
  it(
    'learns a 16x16 RGB set in a short run: its samples move from grey noise to the white background',
    {
      timeout: 120_000,
    },
    async () => {
      const target = meanImage(set.images, set.count);
      // One block at the bottom stage only: fewer kernels a step (the cost of a step this small).
      const t = familyOf('transgan').createTrainer(
        job({}, { g_depth_2: 0, g_depth_3: 0, lr_g: 2e-3, lr_d: 2e-3 }),
        set,
      );
      try {
        expect(t.sampleShape).toEqual({ height: 16, width: 16, channels: 3 });
        const before = mse(meanImage(t.sample(64), 64), target);
        // From step 50 on the samples oscillate around the white background (a GAN's early dance: 0.3-0.5
        // of the initial distance, the corner pixel between dark and white); their mean over steps 60, 70
        // and 80 is steady. A frozen or broken G stays near its initial grey output (0.8 from the mean image).
        const distances: number[] = [];
        const corners: number[] = [];
        for (let s = 1; s <= 80; s++) {
          t.trainStep();
          if (s >= 60 && s % 10 === 0) {
            const m = meanImage(t.sample(64), 64);
            distances.push(mse(m, target) / before);
            corners.push(m[0]!);
          }
          if (s % 20 === 0) await new Promise((r) => setImmediate(r));
        }
        const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
        expect(before).toBeGreaterThan(0.6);
        expect(mean(distances)).toBeLessThan(0.6);
        expect(mean(corners)).toBeGreaterThan(0.3);
      } finally {
        t.dispose();
      }
    },
  );

  it('resumes bit-exactly with DiffAugment: 2 steps, export, import into a fresh trainer, 1 more equals 3', () => {
    const j = job({ augment: { policy: ['translation', 'cutout', 'color'], p: 0.5 } } as Partial<TrialJob>, {
      n_critic: 2,
    });
    const uninterrupted = withTrainer(j, (t) => steps(t, 3));
    const saved = withTrainer(j, (t) => {
      steps(t, 2);
      return t.exportState();
    });
    expect(saved.optD.t).toBe(4);
    expect(saved.optG.t).toBe(2);
    const resumed = withTrainer(j, (t) => {
      t.importState(saved);
      return steps(t, 1);
    });
    expect(resumed[0]).toEqual(uninterrupted[2]);
    for (const v of Object.values(uninterrupted[2]!)) expect(Number.isFinite(v)).toBe(true);
    expect(uninterrupted[2]!.augment_p).toBe(0.5);
    // Augmentation changes what D sees: the same seed without it trains differently from the first step.
    const plain = withTrainer(job({}, { n_critic: 2 }), (t) => steps(t, 1));
    expect(plain[0]!.d_loss).not.toBe(uninterrupted[0]!.d_loss);
  });

  it('refuses images that are not square', () => {
    const wide = { ...set, width: 32 };
    expect(() => familyOf('transgan').createTrainer(job(), wide)).toThrow(/square/);
  });
});
