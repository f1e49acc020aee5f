import * as tf from '@tensorflow/tfjs-core';
import { fusedPixelNorm } from '../../kernels/pixel-norm.ts';

/**
 * Building blocks of progressive growing (Karras et al., 2018, "Progressive Growing of GANs"), NHWC.
 * Each is written with ops whose gradients tfjs can differentiate again (reshape, mean, mul, sqrt of an
 * input, or a pair of kernels whose gradients are each other), because the WGAN-GP penalty differentiates
 * the critic's input gradient: tfjs's own AvgPool and resize gradients are kernels without gradients.
 * blocks.test.ts checks values against closed forms and the penalty's second derivatives through them
 * against finite differences.
 */

/**
 * Pixel-wise feature normalisation (section 4.2): x / sqrt(mean over channels of x^2 + eps). While
 * training on wasm one fused op each way (kernels/pixel-norm.ts), else these ops.
 */
export function pixelNorm<T extends tf.Tensor4D>(x: T, eps = 1e-8): T {
  return fusedPixelNorm(x, eps) ?? (tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 3, true), eps))) as T);
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

/**
 * 2x2 average pooling, stride 2 (sizes must be even), and nearest-neighbour 2x upsampling: tfjs's AvgPool
 * and ResizeNearestNeighbor kernels (XNNPACK's pooling in wasm; the 2x resize a copy pass of Gantry's on
 * wasm, kernels/resize-nearest.ts), each with its gradient written as the
 * other one (the adjoint of the 2x2 mean is a quarter of the upsample, the upsample's is four times the
 * mean), so both are differentiable any number of times as the WGAN-GP penalty needs: tfjs's own
 * gradients of these kernels are kernels without gradients. Measured on wasm at [32, 32, 32, 16]:
 * AvgPool 0.6 ms against 2.8 ms for the reshape-and-mean this replaces, whose gradient also multiplied by
 * a tensor of ones; the upsample 2.2 ms against 6.5 ms for the concat-and-reshape one. The quarter is taken
 * of dy before the upsample, on a quarter of the values (exact: a power of two).
 */
const pool2x = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.avgPool(args[0] as tf.Tensor4D, 2, 2, 'valid'),
  gradFunc: (dy: tf.Tensor) => unpool2x(tf.mul(dy, 0.25) as tf.Tensor4D),
})) as (x: tf.Tensor4D) => tf.Tensor4D;

const unpool2x = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor4D;
  const [, h, w] = x.shape;
  return {
    value: tf.image.resizeNearestNeighbor(x, [2 * h, 2 * w]),
    gradFunc: (dy: tf.Tensor) => tf.mul(pool2x(dy as tf.Tensor4D), 4),
  };
}) as (x: tf.Tensor4D) => tf.Tensor4D;

/** 2x2 average pooling, stride 2 (twice differentiable, see above). Sizes must be even. */
export function downsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  if (h % 2 !== 0 || w % 2 !== 0) throw new Error(`downsample2x needs even sizes, got ${h}x${w}`);
  return pool2x(x);
}

/** Nearest-neighbour 2x upsampling: each pixel becomes a 2x2 block (twice differentiable, see above). */
export function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  return unpool2x(x);
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
