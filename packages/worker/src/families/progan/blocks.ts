import * as tf from '@tensorflow/tfjs-core';

/**
 * Building blocks of progressive growing (Karras et al., 2018, "Progressive Growing of GANs"), NHWC.
 * Each is written with ops whose gradients tfjs can differentiate again (reshape, mean, mul, sqrt of an
 * input, concat), because the WGAN-GP penalty differentiates the critic's input gradient: tfjs's AvgPool
 * and resize gradients are kernels without gradients of their own. progan-layers.test.ts checks values
 * against closed forms and the penalty's second derivatives through them against finite differences.
 */

/** Pixel-wise feature normalisation (section 4.2): x / sqrt(mean over channels of x^2 + eps). */
export function pixelNorm<T extends tf.Tensor4D>(x: T, eps = 1e-8): T {
  return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 3, true), eps))) as T;
}

/**
 * Minibatch standard deviation (section 3): the standard deviation of each feature over the batch,
 * averaged over features and positions, appended as one more channel. Groups are the whole batch.
 */
export function minibatchStd(x: tf.Tensor4D, eps = 1e-8): tf.Tensor4D {
  const [n, h, w] = x.shape;
  const centred = tf.sub(x, tf.mean(x, 0, true));
  const std = tf.sqrt(tf.add(tf.mean(tf.square(centred), 0), eps));
  const stat = tf.mean(std);
  return tf.concat([x, tf.mul(tf.ones([n, h, w, 1]), stat)], 3) as tf.Tensor4D;
}

/** 2x2 average pooling, stride 2, by reshape and mean (twice differentiable). Sizes must be even. */
export function downsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (h % 2 !== 0 || w % 2 !== 0) throw new Error(`downsample2x needs even sizes, got ${h}x${w}`);
  return tf.mean(tf.reshape(x, [n, h / 2, 2, w / 2, 2, c]), [2, 4]) as tf.Tensor4D;
}

/**
 * Nearest-neighbour 2x upsampling by concat and reshape (twice differentiable: concat's gradient is a
 * slice, a slice's a pad). Each pixel's channels are repeated side by side, which read as [2w, c] are two
 * equal columns; then each row is repeated the same way. tfjs-wasm's Tile, the obvious alternative, is
 * several times slower here and its gradient exists only up to rank 4.
 */
export function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const cols = tf.reshape(tf.concat([x, x], 3), [n, h, 1, 2 * w * c]);
  return tf.reshape(tf.concat([cols, cols], 2), [n, 2 * h, 2 * w, c]) as tf.Tensor4D;
}

/**
 * Equalised learning rate (section 4.1): weights are stored N(0, 1) and scaled at run time by He's
 * constant sqrt(2 / fan_in), so Adam's per-parameter step sizes are the same for every layer.
 */
export function equalizedScale(fanIn: number, gain = Math.SQRT2): number {
  return gain / Math.sqrt(fanIn);
}

/** The fade-in of a new resolution: (1 - alpha) * old path + alpha * new path, alpha in [0, 1]. */
export function fadeIn<T extends tf.Tensor>(old: T, fresh: T, alpha: number): T {
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`fade-in alpha must be in [0, 1], got ${alpha}`);
  return tf.add(tf.mul(old, 1 - alpha), tf.mul(fresh, alpha)) as T;
}
