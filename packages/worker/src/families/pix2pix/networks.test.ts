import '../../gradients.ts';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { generatorLoss } from '../../losses.ts';
import {
  analyticGrads,
  expectBackendsAgree,
  expectFiniteDifferences,
} from '../../testing/finite-differences.ts';
import { buildPix2pix, type Pix2pixNetworks, patchReceptiveField, pix2pixFlopsPerImage } from './networks.ts';

const N = 2;
let nets: Pix2pixNetworks;
let a: tf.Tensor4D;
let b: tf.Tensor4D;
let masks: tf.Tensor4D[];

const uniform = (rng: Rng, n: number) => Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
  const rng = new Rng(33);
  nets = buildPix2pix({ side: 16, channels: 3, baseFilters: 4, nLayers: 2 }, rng);
  // As in the DCGAN test: weights x10 put pre-activations O(1) away from the ReLU kinks.
  tf.tidy(() => {
    for (const v of [...nets.g.vars, ...nets.d.vars]) if (v.name.endsWith('/w')) v.assign(tf.mul(v, 10));
  });
  a = tf.tensor4d(uniform(rng, N * 16 * 16 * 3), [N, 16, 16, 3]);
  b = tf.tensor4d(uniform(rng, N * 16 * 16 * 3), [N, 16, 16, 3]);
  masks = nets.dropoutMaskShapes().map(([h, w, c]) =>
    tf.tensor4d(
      Float32Array.from({ length: N * h * w * c }, () => (rng.uniform() < 0.5 ? 0 : 2)),
      [N, h, w, c],
    ),
  );
});
afterAll(() => {
  nets.dispose();
  tf.dispose([a, b, ...masks]);
});

const gLoss = () =>
  tf.tidy(() => {
    const out = nets.generate(a, 'train', masks);
    return tf.add(
      generatorLoss(nets.discriminate(a, out)),
      tf.mul(10, tf.mean(tf.abs(tf.sub(out, b)))),
    ) as tf.Scalar;
  });
const dLoss = () =>
  tf.tidy(() => {
    const fake = nets.generate(a, 'train', masks);
    const real = tf.mean(tf.softplus(tf.neg(nets.discriminate(a, b))));
    return tf.mul(0.5, tf.add(real, tf.mean(tf.softplus(nets.discriminate(a, fake))))) as tf.Scalar;
  });

describe('pix2pix networks', () => {
  it('translates [N, 16, 16, 3] to the same shape in [-1, 1]; the PatchGAN scores 4x4 patches', () => {
    tf.setBackend('wasm');
    expect(nets.depth).toBe(4);
    expect(nets.dropoutMaskShapes()).toEqual([
      [2, 2, 16],
      [4, 4, 8],
      [8, 8, 4],
    ]);
    tf.tidy(() => {
      const out = nets.generate(a, 'eval', masks);
      expect(out.shape).toEqual([N, 16, 16, 3]);
      expect(tf.max(tf.abs(out)).dataSync()[0]).toBeLessThanOrEqual(1);
      // Two strided convs: 16 -> 4, then two stride-1 convs: one logit per 4x4 patch position.
      expect(nets.discriminate(a, out).shape).toEqual([N * 4 * 4]);
    });
  });

  it('has the receptive fields of the paper: 16, 34, 70, 142 px for 1-4 strided layers', () => {
    expect([1, 2, 3, 4].map(patchReceptiveField)).toEqual([16, 34, 70, 142]);
  });

  it('counts a 256 px network of f 64 at the multiply-adds of the paper architecture', () => {
    // Encoder of the paper's U-Net: C64-C128-C256-C512-C512-C512-C512-C512 with 4x4 kernels.
    const f = pix2pixFlopsPerImage({ side: 256, channels: 3, baseFilters: 64, nLayers: 3 });
    const widths = [64, 128, 256, 512, 512, 512, 512, 512];
    let enc = 0;
    widths.forEach((w, i) => {
      const s = 256 / 2 ** (i + 1);
      enc += 2 * s * s * 16 * (i === 0 ? 3 : widths[i - 1]!) * w;
    });
    expect(f.g).toBeGreaterThan(2 * enc);
    expect(f.g).toBeLessThan(4 * enc);
  });

  it('drops what the masks drop: a zero mask on the innermost block cuts the bottleneck off', () => {
    tf.setBackend('wasm');
    const cut = [tf.zerosLike(masks[0]!), ...masks.slice(1)];
    const out = () => tf.sum(tf.square(nets.generate(a, 'train', cut))) as tf.Scalar;
    const grads = analyticGrads(out, nets.g.vars);
    const norm = (name: string) => grads.get(name)!.reduce((s, x) => s + x * x, 0);
    // Nothing below the innermost decoder block reaches the output any more; the skips still do.
    expect(norm('g/enc3/w')).toBe(0);
    expect(norm('g/dec3/w')).toBe(0);
    expect(norm('g/enc2/w')).toBeGreaterThan(0);
    tf.dispose(cut[0]);
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`has loss gradients that match central finite differences (${backend})`, () => {
      tf.setBackend(backend);
      const g = analyticGrads(gLoss, nets.g.vars);
      const d = analyticGrads(dLoss, nets.d.vars);
      for (const name of [
        'enc0/w',
        'enc0/b',
        'enc1/w',
        'enc2/bn/gamma',
        'enc3/w',
        'dec3/w',
        'dec2/bn/beta',
        'dec1/w',
        'dec0/w',
        'dec0/b',
      ])
        expectFiniteDifferences(gLoss, nets.g.get(name), g.get(`g/${name}`)!, `G ${name}`);
      for (const name of ['conv0/w', 'conv0/b', 'conv1/w', 'bn1/gamma', 'conv2/w', 'out/w', 'out/b'])
        expectFiniteDifferences(dLoss, nets.d.get(name), d.get(`d/${name}`)!, `D ${name}`);
    });
  }

  it('gives the same gradients on wasm and cpu', () => {
    expectBackendsAgree([
      [gLoss, nets.g.vars],
      [dLoss, nets.d.vars],
    ]);
  });
});
