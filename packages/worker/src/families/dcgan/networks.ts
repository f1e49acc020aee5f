import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { batchNorm, conv, deconv, dense } from '../../models/layers.ts';
import { init, ParamStore } from '../../models/param-store.ts';

/**
 * DCGAN (Radford, Metz & Chintala, 2016) at any side s0 * 2^k, and its conditional form (cGAN, Mirza &
 * Osindero, 2014): the generator sees z concatenated with the one-hot label; the discriminator conditions by
 * projection (Miyato & Koyama, 2018), adding <embed(y), features> to its logit.
 *
 * The networks start (G) or end (D) at s0 x s0: 7 for 28x28 images, 4 for powers of two. With
 * k = log2(side / s0) stride-2 layers and widths w_i = f * min(2^i, 8) (the paper's 64x64 network: f = 64,
 * 512 maps at 4x4):
 * G: z -> dense s0 x s0 x w_(k-1) -> BN, ReLU -> (deconv 4x4/2 -> BN, ReLU) x (k-1), halving the width
 *    -> deconv 4x4/2 C -> tanh
 * D: x -> conv 4x4/2 f -> LReLU(0.2) -> (conv 4x4/2 -> BN, LReLU(0.2)) x (k-1), doubling -> dense 1
 *    (+ projection)
 * At 28x28 that is G dense 7x7x2f, deconvs to f and C; D convs f, 2f (the network of the issue-1 trials,
 * with the same parameter names). Weights N(0, 0.02), BN scale N(1, 0.02), as in the paper.
 *
 * With `critic` (WGAN-GP, Gulrajani et al., 2017, section 4) D has no batch norm, which would make each
 * sample's score depend on the others and void the per-sample gradient penalty; its convs have biases
 * instead.
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
  /**
   * D's activations before its last linear layer, flattened: images -> [N, s0 * s0 * w_top], what the DCGAN
   * paper's classifiers on D's features read (section 5.1; cGAN's projection term is not part of them).
   * Batch norm normalises by the batch given, as in training.
   */
  features(x: tf.Tensor4D): tf.Tensor2D;
  dispose(): void;
}

/** The stride-2 layers between s0 x s0 and the image, and each level's width (index 0 next to the image). */
export function dcganLayout(shape: Pick<GanShape, 'height' | 'width' | 'baseFilters'>): {
  s0: number;
  depth: number;
  widths: number[];
} {
  const { height, width, baseFilters: f } = shape;
  if (height !== width) throw new Error(`DCGAN needs square images, got ${height}x${width}`);
  const s0 = height % 7 === 0 ? 7 : 4;
  const depth = Math.log2(height / s0);
  if (!Number.isInteger(depth) || depth < 1)
    throw new Error(`DCGAN needs a side of 7 * 2^k or 4 * 2^k (k >= 1), got ${height}`);
  return { s0, depth, widths: Array.from({ length: depth }, (_, i) => f * Math.min(2 ** i, 8)) };
}

export function buildDcgan(shape: GanShape, rng: Rng): GanNetworks {
  const { channels, latentDim, numClasses } = shape;
  const { s0, depth: k, widths } = dcganLayout(shape);
  const top = widths[k - 1]!;
  const feat = s0 * s0 * top;
  const wInit = init.normal(rng, 0.02);
  const gammaInit = init.normal(rng, 0.02, 1);

  // G's layer i (1-based) maps width widths[k-i] to widths[k-i-1], the last one to the image's channels.
  const g = new ParamStore('g');
  g.add('fc/w', [latentDim + numClasses, feat], wInit);
  g.add('bn0/gamma', [top], gammaInit);
  g.add('bn0/beta', [top], init.zeros());
  for (let i = 1; i < k; i++) {
    const out = widths[k - i - 1]!;
    g.add(`dc${i}/w`, [4, 4, out, widths[k - i]!], wInit);
    g.add(`bn${i}/gamma`, [out], gammaInit);
    g.add(`bn${i}/beta`, [out], init.zeros());
  }
  g.add(`dc${k}/w`, [4, 4, channels, widths[0]!], wInit);
  g.add(`dc${k}/b`, [channels], init.zeros());

  const d = new ParamStore('d');
  d.add('c1/w', [4, 4, channels, widths[0]!], wInit);
  d.add('c1/b', [widths[0]!], init.zeros());
  for (let i = 2; i <= k; i++) {
    const out = widths[i - 1]!;
    d.add(`c${i}/w`, [4, 4, widths[i - 2]!, out], wInit);
    if (shape.critic) d.add(`c${i}/b`, [out], init.zeros());
    else {
      d.add(`bn${i}/gamma`, [out], gammaInit);
      d.add(`bn${i}/beta`, [out], init.zeros());
    }
  }
  d.add('fc/w', [feat, 1], wInit);
  d.add('fc/b', [1], init.zeros());
  if (numClasses > 0) d.add('embed', [numClasses, feat], wInit);

  const p = (s: ParamStore, n: string) => s.get(n) as tf.Tensor as never;

  function checkLabels(labels: tf.Tensor2D | undefined): void {
    if (numClasses > 0 && !labels) throw new Error('conditional GAN needs labels');
  }

  function features(x: tf.Tensor4D): tf.Tensor2D {
    let h = tf.leakyRelu(conv(x, p(d, 'c1/w'), 2, p(d, 'c1/b')), 0.2);
    for (let i = 2; i <= k; i++) {
      h = shape.critic
        ? tf.leakyRelu(conv(h, p(d, `c${i}/w`), 2, p(d, `c${i}/b`)), 0.2)
        : tf.leakyRelu(
            batchNorm(conv(h, p(d, `c${i}/w`), 2), p(d, `bn${i}/gamma`), p(d, `bn${i}/beta`)),
            0.2,
          );
    }
    return tf.reshape(h, [x.shape[0], feat]) as tf.Tensor2D;
  }

  return {
    shape,
    g,
    d,
    generate(z, labels) {
      checkLabels(labels);
      const input = numClasses > 0 && labels ? tf.concat([z, labels], 1) : z;
      const n = z.shape[0];
      let x = tf.reshape(dense(input, p(g, 'fc/w')), [n, s0, s0, top]) as tf.Tensor4D;
      x = tf.relu(batchNorm(x, p(g, 'bn0/gamma'), p(g, 'bn0/beta')));
      for (let i = 1; i < k; i++)
        x = tf.relu(batchNorm(deconv(x, p(g, `dc${i}/w`), 2), p(g, `bn${i}/gamma`), p(g, `bn${i}/beta`)));
      return tf.tanh(deconv(x, p(g, `dc${k}/w`), 2, p(g, `dc${k}/b`)));
    },
    features,
    discriminate(x, labels) {
      checkLabels(labels);
      const n = x.shape[0];
      const flat = features(x);
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

/** Floating-point operations (2 per multiply-add) of one forward pass of G and of D per image. */
export function dcganFlopsPerImage(shape: GanShape): { g: number; d: number } {
  const { channels: C, latentDim: L, numClasses: K } = shape;
  const { s0, depth: k, widths } = dcganLayout(shape);
  const feat = s0 * s0 * widths[k - 1]!;
  // A 4x4 stride-2 layer between side s (small) and 2s (large) costs (2s)^2 / 4 * 16 * in * out either way.
  let convs = 0;
  for (let i = 0; i < k; i++) {
    const small = s0 * 2 ** (k - 1 - i);
    const inner = i === 0 ? C : widths[i - 1]!;
    convs += small * small * 16 * inner * widths[i]!;
  }
  return { g: 2 * ((L + K) * feat + convs), d: 2 * (convs + feat * (1 + (K > 0 ? 1 : 0))) };
}
