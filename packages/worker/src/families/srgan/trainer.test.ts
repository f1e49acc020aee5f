import { jobStage, MODEL_PARAMS, parseTrialJob, Rng, type StageSpec, type TrialJob } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import type { Dataset } from '../../data/datasets.ts';
import { imagePairScores } from '../../quality/image-metrics.ts';
import { expectSameArrays } from '../../testing/same-state.ts';
import { SrganTrainer } from './trainer.ts';

/**
 * 16x16 gray images of 4x4 blocks, each +-1 at random: a 4x SR network can undo the bicubic blur of their
 * 4x4 inputs (each block is one input pixel), bicubic upsampling cannot.
 */
function blocks(seed: number, count: number): Dataset {
  const rng = new Rng(seed);
  const images = new Float32Array(count * 256);
  for (let n = 0; n < count; n++)
    for (let by = 0; by < 4; by++)
      for (let bx = 0; bx < 4; bx++) {
        const v = rng.uniform() < 0.5 ? -0.8 : 0.8;
        for (let y = 0; y < 4; y++)
          for (let x = 0; x < 4; x++) images[n * 256 + (by * 4 + y) * 16 + bx * 4 + x] = v;
      }
  return {
    name: 'blocks',
    images,
    labels: new Uint8Array(count),
    count,
    height: 16,
    width: 16,
    channels: 1,
    numClasses: 0,
    classNames: [],
  };
}

const PARAMS = {
  ...Object.fromEntries(Object.entries(MODEL_PARAMS.srgan).map(([k, d]) => [k, d.default])),
  blocks: 1,
  base_filters: 8,
  batch_size: 16,
  lr_pretrain: 2e-3,
  lr_g: 1e-4,
};

function job(stages: StageSpec[], index: number): TrialJob {
  return parseTrialJob({
    v: 2,
    sweepId: 'sr',
    trialId: 'sr-t000',
    index: 0,
    model: 'srgan',
    dataset: { name: 'blocks', version: '0123456789abcdef', image_size: 16, channels: 1 },
    seed: 3,
    steps: stages.reduce((n, s) => n + s.stable_steps, 0),
    checkpointEvery: 10,
    params: PARAMS,
    stage: jobStage(stages, index, PARAMS),
  });
}

const STAGES: StageSpec[] = [
  { phase: 'pretrain', fade_steps: 0, stable_steps: 150, batch_size: 16 },
  { phase: 'adversarial', fade_steps: 0, stable_steps: 20, batch_size: 16 },
];

beforeAll(async () => {
  await initBackend('wasm');
});

describe('srgan trainer', () => {
  it('pretraining on MSE learns to beat bicubic upsampling on held-out images', () => {
    const train = blocks(1, 256);
    const test = blocks(2, 64);
    const t = new SrganTrainer(job(STAGES, 0), train, { heldOut: test });
    try {
      const { inputs, targets, count } = t.imageTask.pairs(test, 64);
      const shape = { count, ...t.sampleShape };
      const before = imagePairScores(t.translate(inputs, count), targets, shape, { cropBorder: 2 });
      const bicubic = imagePairScores(t.imageTask.baseline!(inputs, count), targets, shape, {
        cropBorder: 2,
      });
      const first = t.trainStep();
      expect(first.d_loss).toBe(0);
      expect(first.d_real).toBe(0);
      while (t.step < 150) t.trainStep();
      const after = imagePairScores(t.translate(inputs, count), targets, shape, { cropBorder: 2 });
      expect(
        after.psnr,
        `before ${before.psnr.toFixed(2)} dB, bicubic ${bicubic.psnr.toFixed(2)} dB`,
      ).toBeGreaterThan(bicubic.psnr + 1);
      expect(after.psnr).toBeGreaterThan(before.psnr + 5);
    } finally {
      t.dispose();
    }
  });

  it('resumes a stage exactly, and starts the adversarial stage from the pretraining stage only at its end', () => {
    const stages: StageSpec[] = [
      { phase: 'pretrain', fade_steps: 0, stable_steps: 6, batch_size: 4 },
      { phase: 'adversarial', fade_steps: 0, stable_steps: 6, batch_size: 4 },
    ];
    const data = blocks(4, 32);
    const pre = new SrganTrainer(job(stages, 0), data);
    let early: ReturnType<SrganTrainer['exportState']>;
    let handover: ReturnType<SrganTrainer['exportState']>;
    try {
      for (let i = 0; i < 3; i++) pre.trainStep();
      early = pre.exportState();
      while (pre.step < 6) pre.trainStep();
      handover = pre.exportState();
    } finally {
      pre.dispose();
    }
    expect(handover.stats?.length).toBeGreaterThan(0);
    const adv = new SrganTrainer(job(stages, 1), data);
    try {
      expect(() => adv.importState(early)).toThrow(/starts at step 6/);
      adv.importState(handover);
      expect(adv.adversarial).toBe(true);
      const s7 = adv.trainStep();
      expect(s7.d_loss).toBeGreaterThan(0);
      expect(s7.d_real).toBeGreaterThan(0);
      const mid = adv.exportState();
      const rest = [adv.trainStep(), adv.trainStep()];
      const end = adv.exportState();
      adv.importState(mid);
      expect([adv.trainStep(), adv.trainStep()]).toEqual(rest);
      const again = adv.exportState();
      expect(again.step).toBe(end.step);
      for (const k of ['g', 'd', 'stats'] as const) expectSameArrays(again[k]!, end[k]!);
      expect(again.rng).toEqual(end.rng);
    } finally {
      adv.dispose();
    }
  });

  it('shows LR | bicubic | SR | HR per example in its grid, at the HR size', () => {
    const stages: StageSpec[] = [{ phase: 'pretrain', fade_steps: 0, stable_steps: 2, batch_size: 4 }];
    const test = blocks(6, 20);
    const t = new SrganTrainer(job(stages, 0), blocks(5, 8), { heldOut: test });
    try {
      const tiles = t.sample();
      expect(t.sampleGrid).toEqual({ count: 64, cols: 8 });
      expect(tiles.length).toBe(64 * 256);
      // Tile 3 of example 0 is its HR image; tile 0 its input, nearest-upscaled (4x4 blocks of one value).
      expect(Array.from(tiles.subarray(3 * 256, 4 * 256))).toEqual(Array.from(test.images.subarray(0, 256)));
      const lr = tiles.subarray(0, 256);
      for (let y = 0; y < 16; y++)
        for (let x = 0; x < 16; x++) expect(lr[y * 16 + x]).toBe(lr[(y - (y % 4)) * 16 + x - (x % 4)]);
    } finally {
      t.dispose();
    }
  });
});
