import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { batchNorm, conv, deconv, dense } from './layers.ts';
import { init, ParamStore } from './param-store.ts';

/**
 * DCGAN (Radford, Metz & Chintala, 2016) sized for 28x28 images, and its conditional form (cGAN, Mirza &
 * Osindero, 2014): the generator sees z concatenated with the one-hot label; the discriminator conditions by
 * projection (Miyato & Koyama, 2018), adding <embed(y), features> to its logit.
 *
 * G: z -> dense 7x7x2f -> BN, ReLU -> deconv 4x4/2 f -> BN, ReLU -> deconv 4x4/2 C -> tanh
 * D: x -> conv 4x4/2 f -> LReLU(0.2) -> conv 4x4/2 2f -> BN, LReLU(0.2) -> dense 1 (+ projection)
 * Weights N(0, 0.02), BN scale N(1, 0.02), as in the paper.
 *
 * With `critic` (WGAN-GP, Gulrajani et al., 2017, section 4) D has no batch norm, which would make each
 * sample's score depend on the others and void the per-sample gradient penalty; its second conv has a
 * bias instead.
 */
export interface GanShape {
  height: number;
  width: number;
  channels: number;
  latentDim: number;
  baseFilters: number;
  /** Number of classes when conditional, else 0. */
  numClasses: number;
  /** D is a Wasserstein critic: no batch norm. @default false */
  critic?: boolean;
}

export interface GanNetworks {
  shape: GanShape;
  g: ParamStore;
  d: ParamStore;
  /** Generator: z [N, latent] (+ one-hot labels [N, classes]) -> images [N, H, W, C] in [-1, 1]. */
  generate(z: tf.Tensor2D, labels?: tf.Tensor2D): tf.Tensor4D;
  /** Discriminator: images (+ one-hot labels) -> logits [N]. */
  discriminate(x: tf.Tensor4D, labels?: tf.Tensor2D): tf.Tensor1D;
  dispose(): void;
}

export function buildDcgan(shape: GanShape, rng: Rng): GanNetworks {
  const { height, width, channels, latentDim, baseFilters: f, numClasses } = shape;
  if (height % 4 !== 0 || width % 4 !== 0)
    throw new Error(`DCGAN needs sizes divisible by 4, got ${height}x${width}`);
  const h0 = height / 4;
  const w0 = width / 4;
  const feat = h0 * w0 * 2 * f;
  const wInit = init.normal(rng, 0.02);
  const gammaInit = init.normal(rng, 0.02, 1);

  const g = new ParamStore('g');
  g.add('fc/w', [latentDim + numClasses, feat], wInit);
  g.add('bn0/gamma', [2 * f], gammaInit);
  g.add('bn0/beta', [2 * f], init.zeros());
  g.add('dc1/w', [4, 4, f, 2 * f], wInit);
  g.add('bn1/gamma', [f], gammaInit);
  g.add('bn1/beta', [f], init.zeros());
  g.add('dc2/w', [4, 4, channels, f], wInit);
  g.add('dc2/b', [channels], init.zeros());

  const d = new ParamStore('d');
  d.add('c1/w', [4, 4, channels, f], wInit);
  d.add('c1/b', [f], init.zeros());
  d.add('c2/w', [4, 4, f, 2 * f], wInit);
  if (shape.critic) d.add('c2/b', [2 * f], init.zeros());
  else {
    d.add('bn2/gamma', [2 * f], gammaInit);
    d.add('bn2/beta', [2 * f], init.zeros());
  }
  d.add('fc/w', [feat, 1], wInit);
  d.add('fc/b', [1], init.zeros());
  if (numClasses > 0) d.add('embed', [numClasses, feat], wInit);

  const p = (s: ParamStore, n: string) => s.get(n) as tf.Tensor as never;

  function checkLabels(labels: tf.Tensor2D | undefined): void {
    if (numClasses > 0 && !labels) throw new Error('conditional GAN needs labels');
  }

  return {
    shape,
    g,
    d,
    generate(z, labels) {
      checkLabels(labels);
      const input = numClasses > 0 && labels ? tf.concat([z, labels], 1) : z;
      const n = z.shape[0];
      let x = tf.reshape(dense(input, p(g, 'fc/w')), [n, h0, w0, 2 * f]) as tf.Tensor4D;
      x = tf.relu(batchNorm(x, p(g, 'bn0/gamma'), p(g, 'bn0/beta')));
      x = tf.relu(batchNorm(deconv(x, p(g, 'dc1/w'), 2), p(g, 'bn1/gamma'), p(g, 'bn1/beta')));
      return tf.tanh(deconv(x, p(g, 'dc2/w'), 2, p(g, 'dc2/b')));
    },
    discriminate(x, labels) {
      checkLabels(labels);
      const n = x.shape[0];
      let h = tf.leakyRelu(conv(x, p(d, 'c1/w'), 2, p(d, 'c1/b')), 0.2);
      h = shape.critic
        ? tf.leakyRelu(conv(h, p(d, 'c2/w'), 2, p(d, 'c2/b')), 0.2)
        : tf.leakyRelu(batchNorm(conv(h, p(d, 'c2/w'), 2), p(d, 'bn2/gamma'), p(d, 'bn2/beta')), 0.2);
      const flat = tf.reshape(h, [n, feat]) as tf.Tensor2D;
      let logit = tf.reshape(dense(flat, p(d, 'fc/w'), p(d, 'fc/b')), [n]) as tf.Tensor1D;
      if (numClasses > 0 && labels) {
        const e = tf.matMul(labels, p(d, 'embed'));
        logit = tf.add(logit, tf.sum(tf.mul(flat, e), 1));
      }
      return logit;
    },
    dispose() {
      g.dispose();
      d.dispose();
    },
  };
}

/** Multiply-add count of one forward pass of G and of D per image (for GFLOP/s reports). */
export function dcganFlopsPerImage(shape: GanShape): { g: number; d: number } {
  const { height: H, width: W, channels: C, latentDim: L, baseFilters: f, numClasses: K } = shape;
  const feat = (H / 4) * (W / 4) * 2 * f;
  const g = 2 * ((L + K) * feat + (H / 4) * (W / 4) * 16 * 2 * f * f + (H / 2) * (W / 2) * 16 * f * C);
  const d =
    2 * ((H / 2) * (W / 2) * f * 16 * C + (H / 4) * (W / 4) * 2 * f * 16 * f + feat * (1 + (K > 0 ? 1 : 0)));
  return { g, d };
}
