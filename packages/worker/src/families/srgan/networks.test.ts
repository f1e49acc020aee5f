import '../../gradients.ts';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { discriminatorLoss, generatorLoss } from '../../losses.ts';
import { pixelShuffle } from '../../models/layers.ts';
import {
  analyticGrads,
  expectBackendsAgree,
  expectFiniteDifferences,
} from '../../testing/finite-differences.ts';
import { buildSrgan, type SrganNetworks, srganDLayers } from './networks.ts';

const N = 3;
let nets: SrganNetworks;
let lr: tf.Tensor4D;
let hr: tf.Tensor4D;

const uniform = (rng: Rng, n: number) => Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
  const rng = new Rng(21);
  nets = buildSrgan({ side: 16, scale: 4, channels: 3, blocks: 2, baseFilters: 4 }, rng);
  lr = tf.tensor4d(uniform(rng, N * 4 * 4 * 3), [N, 4, 4, 3]);
  hr = tf.tensor4d(uniform(rng, N * 16 * 16 * 3), [N, 16, 16, 3]);
});
afterAll(() => {
  nets.dispose();
  tf.dispose([lr, hr]);
});

// The adversarial stage's G loss (content MSE + weighted adversarial term) and D's loss.
const gLoss = () =>
  tf.tidy(() => {
    const sr = nets.generate(lr, 'train');
    return tf.add(
      tf.mean(tf.squaredDifference(sr, hr)),
      tf.mul(0.1, generatorLoss(nets.discriminate(sr))),
    ) as tf.Scalar;
  });
const dLoss = () => discriminatorLoss(nets.discriminate(hr), nets.discriminate(nets.generate(lr, 'train')));

describe('SRGAN networks', () => {
  it('super-resolves [N, 4, 4, 3] to [N, 16, 16, 3] in [-1, 1]; D gives one logit per image', () => {
    tf.setBackend('wasm');
    tf.tidy(() => {
      const sr = nets.generate(lr, 'eval');
      expect(sr.shape).toEqual([N, 16, 16, 3]);
      expect(tf.max(tf.abs(sr)).dataSync()[0]).toBeLessThanOrEqual(1);
      expect(nets.discriminate(sr).shape).toEqual([N]);
    });
    // 16 px: strided convs to 8 and 4; 64 px: to 4 after four.
    expect(srganDLayers(16, 4).finalSide).toBe(4);
    expect(srganDLayers(64, 4).layers.filter(([, s]) => s === 2)).toHaveLength(4);
  });

  it('shuffles pixels as depth_to_space: output (h*r+i, w*r+j, c) from channel (i*r+j)*C + c', () => {
    tf.setBackend('wasm');
    const r = 2;
    const c = 3;
    const x = tf.tensor4d(
      Float32Array.from({ length: 2 * 2 * r * r * c }, (_, k) => k),
      [1, 2, 2, r * r * c],
    );
    const y = pixelShuffle(x, r).arraySync()[0]!;
    const src = x.arraySync()[0]!;
    for (let h = 0; h < 2; h++)
      for (let w = 0; w < 2; w++)
        for (let i = 0; i < r; i++)
          for (let j = 0; j < r; j++)
            for (let k = 0; k < c; k++)
              expect(y[h * r + i]![w * r + j]![k]).toBe(src[h]![w]![(i * r + j) * c + k]);
    x.dispose();
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`has loss gradients that match central finite differences (${backend})`, () => {
      tf.setBackend(backend);
      const g = analyticGrads(gLoss, nets.g.vars);
      const d = analyticGrads(dLoss, nets.d.vars);
      for (const name of [
        'in/w',
        'in/prelu',
        'res0/conv1/w',
        'res1/bn2/gamma',
        'mid/w',
        'up0/w',
        'up1/prelu',
        'out/w',
        'out/b',
      ])
        expectFiniteDifferences(gLoss, nets.g.get(name), g.get(`g/${name}`)!, `G ${name}`);
      for (const name of ['conv0/w', 'conv1/w', 'bn1/gamma', 'conv2/w', 'fc1/w', 'fc2/w', 'fc2/b'])
        expectFiniteDifferences(dLoss, nets.d.get(name), d.get(`d/${name}`)!, `D ${name}`);
    });
  }

  it('gives the same gradients on wasm and cpu', () => {
    expectBackendsAgree([
      [gLoss, nets.g.vars],
      [dLoss, nets.d.vars],
    ]);
  });

  it('normalises by running statistics in eval mode and by the batch in train mode', () => {
    tf.setBackend('wasm');
    // One image alone gives the same output in eval mode as inside a batch; in train mode it does not.
    const [alone, inBatch, trainAlone, trainBatch] = tf.tidy(() => {
      const one = tf.slice(lr, [0, 0, 0, 0], [1, 4, 4, 3]);
      const first = (x: tf.Tensor4D) => tf.slice(x, [0, 0, 0, 0], [1, 16, 16, 3]).dataSync();
      return [
        nets.generate(one, 'eval').dataSync(),
        first(nets.generate(lr, 'eval')),
        nets.generate(one, 'train').dataSync(),
        first(nets.generate(lr, 'train')),
      ];
    });
    for (let i = 0; i < alone.length; i++) expect(alone[i]).toBeCloseTo(inBatch[i]!, 5);
    let differs = 0;
    for (let i = 0; i < trainAlone.length; i++)
      differs = Math.max(differs, Math.abs(trainAlone[i]! - trainBatch[i]!));
    expect(differs).toBeGreaterThan(1e-3);
  });
});
