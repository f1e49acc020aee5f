import * as tf from '@tensorflow/tfjs-core';

/** x @ W + b for x [N, in], W [in, out]. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const y: tf.Tensor2D = tf.matMul(x, w);
  return b ? tf.add<tf.Tensor2D>(y, b) : y;
}

/**
 * Batch normalisation with batch statistics (Ioffe & Szegedy, 2015) over every axis but the last.
 * GAN training and sampling both use batch statistics here, as in the DCGAN reference code.
 */
export function batchNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5): T {
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const { mean, variance } = tf.moments(x, axes);
  const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(normed, gamma), beta) as T;
}

/** 2-D convolution, NHWC, filter [kh, kw, in, out]. */
export function conv(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, b?: tf.Tensor1D): tf.Tensor4D {
  const y = tf.conv2d(x, w, stride, 'same');
  return b ? tf.add(y, b) : y;
}

/** Transposed convolution ("fractionally strided"), NHWC, filter [kh, kw, out, in], 'same' padding. */
export function deconv(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, b?: tf.Tensor1D): tf.Tensor4D {
  const [n, h, wd] = x.shape;
  const outC = w.shape[2];
  const y = tf.conv2dTranspose(x, w, [n, h * stride, wd * stride, outC], stride, 'same');
  return b ? tf.add(y, b) : y;
}
