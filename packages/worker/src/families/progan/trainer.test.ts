import { jobStage, MODEL_PARAMS, parseTrialJob, type StageSpec, type TrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { padDataset } from '../../data/datasets.ts';
import { fakeDataset } from '../../testing/fake-dataset.ts';
import type { TrainerState } from '../family.ts';
import { familyOf } from '../registry.ts';
import { upsample2x } from './blocks.ts';
import { ProganTrainer, proganCanvas } from './trainer.ts';

const STAGES: StageSpec[] = [
  { resolution: 4, fade_steps: 0, stable_steps: 4, batch_size: 4 },
  { resolution: 8, fade_steps: 4, stable_steps: 2, batch_size: 4 },
];

function job(stage: number, params: Record<string, number> = {}): TrialJob {
  const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS.progan).map(([k, d]) => [k, d.default]));
  const p = { ...defaults, base_filters: 8, latent_dim: 8, ...params };
  return parseTrialJob({
    v: 2,
    sweepId: 'pg',
    trialId: 'pg-t000',
    index: 0,
    model: 'progan',
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: 9,
    steps: 10,
    checkpointEvery: 2,
    params: p,
    stage: jobStage(STAGES, stage, p),
  });
}

const data = padDataset(fakeDataset(3, 64), proganCanvas(28));

function withTrainer<T>(j: TrialJob, fn: (t: ProganTrainer) => T): T {
  const trainer = new ProganTrainer(j, data);
  try {
    return fn(trainer);
  } finally {
    trainer.dispose();
  }
}

const flat = (xs: readonly { name: string; data: Float32Array }[]) =>
  Object.fromEntries(xs.map((a) => [a.name, Array.from(a.data)]));

beforeAll(async () => {
  await initBackend('wasm');
});

describe('ProganTrainer', () => {
  it("pads the data to the canvas and is what progan's family makes", () => {
    expect([data.height, data.width]).toEqual([32, 32]);
    // Row 1 of the padding is background, row 2 holds the image's first row.
    const src = fakeDataset(3, 64);
    expect(data.images[32 + 5]).toBe(-1);
    expect(data.images[2 * 32 + 2]).toBe(src.images[0]);
    expect(data.images[(2 + 27) * 32 + 2 + 27]).toBe(src.images[27 * 28 + 27]);
    const t = familyOf('progan').createTrainer(job(0), src);
    try {
      expect(t).toBeInstanceOf(ProganTrainer);
      expect(t.sampleShape).toEqual({ height: 4, width: 4, channels: 1 });
    } finally {
      t.dispose();
    }
  });

  it('trains a stage with finite scalars and resumes it bit for bit from its own checkpoint', () => {
    let state!: TrainerState;
    const uninterrupted = withTrainer(job(0), (t) => {
      expect(t.alpha).toBe(1);
      for (let i = 0; i < 2; i++) t.trainStep();
      state = t.exportState();
      const rest = [t.trainStep(), t.trainStep()];
      for (const s of rest)
        for (const v of Object.values(s)) expect(Number.isFinite(v), JSON.stringify(s)).toBe(true);
      return { rest, after: flat(t.exportState().ema!) };
    });
    expect(state.stage).toBe(0);
    expect(state.ema).toHaveLength(state.g.length);
    const resumed = withTrainer(job(0), (t) => {
      t.importState(state);
      expect(t.step).toBe(2);
      return { rest: [t.trainStep(), t.trainStep()], after: flat(t.exportState().ema!) };
    });
    expect(resumed).toEqual(uninterrupted);
  });

  it('keeps a moving average of G, warmed up from the stage start: d = min(ema_decay, (1 + t) / (10 + t))', () => {
    withTrainer(job(0, { ema_decay: 0 }), (t) => {
      t.trainStep();
      const s = t.exportState();
      expect(flat(s.ema!)).toEqual(
        Object.fromEntries(s.g.map((a) => [a.name.replace(/^g\//, 'g_ema/'), Array.from(a.data)])),
      );
    });
    // The third step of the stage (t = 2) averages with d = 3 / 12 = 0.25, or ema_decay when smaller.
    for (const [emaDecay, d] of [
      [0.999, 0.25],
      [0.2, 0.2],
    ] as const) {
      withTrainer(job(0, { ema_decay: emaDecay }), (t) => {
        t.trainStep();
        t.trainStep();
        const before = t.exportState();
        t.trainStep();
        const after = t.exportState();
        before.ema!.forEach((e0, i) => {
          const w1 = after.g[i]!.data;
          const e1 = after.ema![i]!.data;
          for (let k = 0; k < e0.data.length; k += 7)
            expect(e1[k]).toBeCloseTo(d * e0.data[k]! + (1 - d) * w1[k]!, 5);
        });
      });
    }
  });

  it("starts the next stage from the previous stage's end: layers carried, optimizers reset, faded in from alpha 0", () => {
    let end!: TrainerState;
    let lowRes!: Float32Array;
    withTrainer(job(0, { ema_decay: 0.5 }), (t) => {
      for (let i = 0; i < 4; i++) t.trainStep();
      end = t.exportState();
      lowRes = t.sample(6);
    });
    expect(end.step).toBe(4);
    withTrainer(job(1, { ema_decay: 0.5 }), (t) => {
      const fresh = t.exportState();
      t.importState(end);
      const grown = t.exportState();
      expect(grown.step).toBe(4);
      expect(grown.stage).toBe(1);
      expect(grown.optG.t).toBe(0);
      expect(grown.optD.t).toBe(0);
      expect(grown.optG.arrays.every((a) => a.data.every((x) => x === 0))).toBe(true);
      const carried = flat(end.g);
      const initial = flat(fresh.g);
      for (const [name, values] of Object.entries(flat(grown.g))) {
        // Names of the 4x4 stage's layers keep their trained weights; the 8x8 block keeps its initialisation.
        expect(values, name).toEqual(name in carried ? carried[name] : initial[name]);
      }
      expect(Object.keys(flat(grown.g)).some((n) => !(n in carried))).toBe(true);
      // At alpha 0 the 8x8 generator draws the 4x4 stage's (EMA) images, upsampled.
      expect(t.alpha).toBe(0);
      const highRes = t.sample(6);
      const expected = tf.tidy(() => upsample2x(tf.tensor4d(lowRes, [6, 4, 4, 1])).dataSync());
      expect(highRes.length).toBe(expected.length);
      for (const [i, v] of highRes.entries()) expect(Math.abs(v - expected[i]!)).toBeLessThan(1e-5);
      for (let i = 0; i < 2; i++) t.trainStep();
      expect(t.alpha).toBe(0.5);
      // A rewind to the stage's start (a health restart) returns the new layers to their initialisation.
      t.importState(end);
      expect(flat(t.exportState().g)).toEqual(flat(grown.g));
      expect(t.exportState().optD.t).toBe(0);
    });
  });

  it('refuses checkpoints that cannot start or resume the stage', () => {
    let s0!: TrainerState;
    withTrainer(job(0), (t) => {
      t.trainStep();
      s0 = t.exportState();
    });
    withTrainer(job(1), (t) => {
      expect(() => t.importState(s0)).toThrow(/starts at step 4, but stage 0's checkpoint is at step 1/);
      expect(() => t.importState({ ...s0, stage: undefined })).toThrow(/stage none cannot/);
    });
  });

  it('scores every stage at the classifier size: 28x28 crops of the upsampled canvas in [-1, 1]', () => {
    withTrainer(job(0), (t) => {
      const { images, labels } = t.evalSamples(5, 2) as { images: Float32Array; labels?: Int32Array };
      expect(labels).toBeUndefined();
      expect(images.length).toBe(5 * 28 * 28);
      expect(Math.max(...images)).toBeLessThanOrEqual(1);
      expect(Math.min(...images)).toBeGreaterThanOrEqual(-1);
      // The 4x4 output upsampled 8x, then cropped by 2: columns 0-5 show pixel 0, 6-13 pixel 1, 14-21
      // pixel 2, 22-27 pixel 3 of the first row.
      const row = Array.from(images.subarray(0, 28));
      const blocks = [row.slice(0, 6), row.slice(6, 14), row.slice(14, 22), row.slice(22)];
      for (const b of blocks) expect(new Set(b).size).toBe(1);
      expect(new Set(blocks.map((b) => b[0])).size).toBe(4);
      // Real images the same way: box-filtered to 4x4, so pixel (0, 0) is the mean of the padded image's
      // top-left 8x8 block.
      const real = t.realEvalSamples(3).images;
      expect(real.length).toBe(3 * 28 * 28);
      let sum = 0;
      for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) sum += data.images[y * 32 + x]!;
      expect(real[0]).toBeCloseTo(sum / 64, 5);
      expect(new Set(Array.from(real.subarray(0, 6))).size).toBe(1);
    });
  });
});
