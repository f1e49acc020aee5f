import '../../gradients.ts';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { gradientPenalty, wassersteinGeneratorLoss } from '../../losses.ts';
import {
  analyticGrads,
  expectBackendsAgree,
  expectFiniteDifferences,
} from '../../testing/finite-differences.ts';
import {
  buildTransgan,
  type TransganNetworks,
  type TransganShape,
  transganFlopsPerImage,
} from './networks.ts';

/**
 * Small enough for the cpu backend: 16 px, 4x4 tokens at the bottom, windows of 4x4 above it. The last
 * stage keeps 8 channels: a layer norm over 2 would be nearly a sign function, too rough to difference.
 */
const SHAPE: TransganShape = {
  side: 16,
  channels: 1,
  latentDim: 6,
  gEmbed: 128,
  dEmbed: 16,
  gDepths: [1, 1, 1],
  dDepth: 1,
  heads: 2,
  mlpRatio: 2,
  patch: 4,
};
const N = 3;

describe('TransGAN networks at each side', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('generates [N, side, side, C] images in [-1, 1] at 16, 28 and 32 px, and D gives one score per image', () => {
    for (const side of [16, 28, 32]) {
      const n = buildTransgan({ ...SHAPE, side, channels: side === 32 ? 3 : 1 }, new Rng(1));
      try {
        const [shape, min, max, scores] = tf.tidy(() => {
          const img = n.generate(tf.randomNormal([N, SHAPE.latentDim], 0, 10, 'float32', 1) as tf.Tensor2D);
          return [
            img.shape,
            tf.min(img).dataSync()[0]!,
            tf.max(img).dataSync()[0]!,
            n.discriminate(img).shape,
          ];
        });
        expect(shape).toEqual([N, side, side, side === 32 ? 3 : 1]);
        expect(min).toBeGreaterThanOrEqual(-1);
        expect(max).toBeLessThanOrEqual(1);
        expect(max).toBeGreaterThan(min);
        expect(scores).toEqual([N]);
      } finally {
        n.dispose();
      }
    }
  });

  it('refuses shapes it cannot build, naming the parameter', () => {
    expect(() => buildTransgan({ ...SHAPE, side: 18 }, new Rng(1))).toThrow(/divisible by 4/);
    expect(() => buildTransgan({ ...SHAPE, side: 28, patch: 8 }, new Rng(1))).toThrow(/patch_size 8/);
    expect(() => buildTransgan({ ...SHAPE, heads: 3 }, new Rng(1))).toThrow(/heads 3/);
  });
});

describe('TransGAN networks', () => {
  let nets: TransganNetworks;
  let z: tf.Tensor2D;
  let real: tf.Tensor4D;
  let fake: tf.Tensor4D;
  let eps: tf.Tensor1D;
  let weights: tf.Tensor4D;

  beforeAll(() => {
    nets = buildTransgan(SHAPE, new Rng(5));
    z = tf.randomNormal([N, SHAPE.latentDim], 0, 1, 'float32', 1) as tf.Tensor2D;
    real = tf.randomUniform([N, 16, 16, 1], -1, 1, 'float32', 2) as tf.Tensor4D;
    fake = tf.randomUniform([N, 16, 16, 1], -1, 1, 'float32', 3) as tf.Tensor4D;
    eps = tf.tensor1d([0.2, 0.6, 0.9]);
    weights = tf.randomNormal([N, 16, 16, 1], 0, 1, 'float32', 4) as tf.Tensor4D;
  });

  afterAll(() => {
    nets.dispose();
    tf.dispose([z, real, fake, eps, weights]);
  });

  /** G's output against fixed weights: G's gradients apart from D's (an untrained D barely responds). */
  const gOut = () => tf.sum(tf.mul(nets.generate(z), weights)) as tf.Scalar;
  const gLoss = () => wassersteinGeneratorLoss(nets.discriminate(nets.generate(z)));
  /** The critic loss's penalty alone: its gradient w.r.t. D's weights is a second derivative of D. */
  const penalty = () => gradientPenalty((x) => nets.discriminate(x), real, fake, eps, 10);
  /** D's scores, weighted per image and scaled so that their differences rise clear of float32 noise. */
  const dScore = () => tf.sum(tf.mul(nets.discriminate(real), tf.tensor1d([100, -60, 80]))) as tf.Scalar;

  it('generates in a tidy of its own: outside any tidy only the images are left', () => {
    const before = tf.memory().numTensors;
    const img = nets.generate(z);
    expect(tf.memory().numTensors).toBe(before + 1);
    img.dispose();
  });

  it("scores each image on its own: D's score of one image does not depend on the rest of the batch", () => {
    const [batch, alone] = tf.tidy(() => [
      nets.discriminate(real).dataSync(),
      nets.discriminate(tf.slice(real, [1, 0, 0, 0], [1, 16, 16, 1])).dataSync(),
    ]);
    expect(Math.abs(batch[1]! - alone[0]!)).toBeLessThan(1e-5);
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`${backend}: D's and G's gradients and the penalty's (second-order) gradient match finite differences`, async () => {
      await tf.setBackend(backend);
      const dGrads = analyticGrads(dScore, nets.d.vars);
      const gGrads = backend === 'wasm' ? analyticGrads(gOut, nets.g.vars) : undefined;
      const gpGrads = analyticGrads(penalty, nets.d.vars);
      for (const name of ['patch_w', 'pos', 'cls', 'b0/k_w', 'b0/mlp1_w', 'b0/ln1_gamma', 'head_w']) {
        const v = nets.d.get(name);
        expectFiniteDifferences(dScore, v, dGrads.get(v.name)!, `D score, ${v.name}`, { h: 2e-3 });
      }
      // The class token moves the penalty too little to rise clear of float32 noise (the backend agreement
      // below covers it); every other kind of weight is differenced.
      // The penalty curves strongly: a smaller step keeps forward and backward differences within 2%.
      for (const name of ['patch_w', 'b0/q_w', 'b0/v_w', 'b0/mlp1_w', 'b0/ln1_gamma', 'ln_gamma', 'head_w']) {
        const v = nets.d.get(name);
        expectFiniteDifferences(penalty, v, gpGrads.get(v.name)!, `penalty, ${v.name}`, { h: 2e-3 });
      }
      // G's on cpu: through the backend agreement below (differencing G on cpu takes ~10 s).
      for (const name of gGrads ? ['in_w', 's0/b0/q_w', 's1/b0/mlp2_w', 's2/b0/v_w', 'pos2', 'out_w'] : []) {
        const v = nets.g.get(name);
        expectFiniteDifferences(gOut, v, gGrads!.get(v.name)!, `G output, ${v.name}`, { h: 1e-2 });
      }
      await tf.setBackend('wasm');
    });
  }

  it('gives the same first and second-order gradients on cpu as on wasm', () => {
    expectBackendsAgree([
      [gLoss, nets.g.vars],
      [penalty, nets.d.vars],
    ]);
  });

  it('counts the flops of its linear layers and attention (2 per multiply-add)', () => {
    // G: z -> 16 tokens x 128, then blocks at 4x4x128, 8x8x32 (windows of 16 tokens), 16x16x8, then 8 -> 1.
    const block = (t: number, c: number, w: number) => t * (4 * c * c + 2 * c * c * 2) + 2 * t * w * c;
    const g = 6 * 16 * 128 + block(16, 128, 16) + block(64, 32, 16) + block(256, 8, 16) + 256 * 8;
    // D: 16 patches of 16 px to 16, one block over 17 tokens, the head.
    const d = 16 * 16 * 16 + block(17, 16, 17) + 16;
    expect(transganFlopsPerImage(SHAPE)).toEqual({ g: 2 * g, d: 2 * d });
  });
});
