import * as tf from '@tensorflow/tfjs-core';
import { fusedBatchNorm } from '../kernels/batch-norm.ts';
import { fusedPrelu } from '../kernels/prelu.ts';

/** x @ W + b for x [N, in], W [in, out]. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const y: tf.Tensor2D = tf.matMul(x, w);
  return b ? tf.add<tf.Tensor2D>(y, b) : y;
}

/**
 * Batch normalisation with batch statistics (Ioffe & Szegedy, 2015) over every axis but the last.
 * GAN training and sampling both use batch statistics here, as in the DCGAN reference code.
 *
 * The backward pass is the closed form of the paper (section 3, per channel over M = N*H*W values):
 *   dbeta = sum(dy), dgamma = sum(dy * xhat), dx = gamma * rstd / M * (M * dy - dbeta - xhat * dgamma),
 * a handful of kernels instead of the dozens that differentiating through tf.moments takes.
 */
export function batchNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5): T {
  // On wasm, one SIMD kernel each way (kernels/batch-norm.ts), the same closed forms.
  const fused = fusedBatchNorm(x, gamma, beta, eps);
  if (fused !== undefined) return fused as T;
  return batchNormOp(x, gamma, beta, tf.scalar(eps)) as T;
}

const batchNormOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, gamma, beta, eps] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const save = args[4] as tf.GradSaveFunc;
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const { mean, variance } = tf.moments(x, axes);
  const rstd = tf.rsqrt(tf.add(variance, eps));
  const xhat = tf.mul(tf.sub(x, mean), rstd);
  save([xhat, rstd, gamma]);
  return {
    value: tf.add(tf.mul(xhat, gamma), beta),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sXhat, sRstd, sGamma] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const m = sXhat.size / sXhat.shape[sXhat.rank - 1]!;
      const dbeta = tf.sum(dy, axes);
      const dgamma = tf.sum(tf.mul(dy, sXhat), axes);
      const scale = tf.div(tf.mul(sGamma, sRstd), m);
      const dx = tf.mul(scale, tf.sub(tf.sub(tf.mul(dy, m), dbeta), tf.mul(sXhat, dgamma)));
      return [dx, dgamma, dbeta, tf.zerosLike(eps)];
    },
  };
});

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

/**
 * PReLU (He et al., 2015): x for x > 0, alpha * x below, alpha per channel. On wasm one fused op with its
 * own gradient (kernels/prelu.ts; its gradient falls back on ops when it is differentiated again), else
 * from ops that differentiate twice.
 */
export function prelu(x: tf.Tensor4D, alpha: tf.Tensor1D): tf.Tensor4D {
  return fusedPrelu(x, alpha) ?? tf.sub(tf.relu(x), tf.mul(alpha, tf.relu(tf.neg(x))));
}

/**
 * Sub-pixel convolution's shuffle (Shi et al., 2016; TensorFlow's depth_to_space): [N, H, W, r*r*C] ->
 * [N, H*r, W*r, C], output (h*r + i, w*r + j, c) taken from input channel (i*r + j)*C + c. Written as a
 * rank-4 reshape and transpose, which tfjs differentiates (its DepthToSpace has no gradient).
 */
export function pixelShuffle(x: tf.Tensor4D, r: number): tf.Tensor4D {
  const [n, h, w, depth] = x.shape;
  const c = depth / (r * r);
  if (!Number.isInteger(c))
    throw new Error(`pixel shuffle by ${r} needs channels divisible by ${r * r}, got ${depth}`);
  // [N*H, W, i, (j, c)] -> [N*H, i, W, (j, c)]: rows h*r + i, columns w*r + j.
  const t = tf.transpose(tf.reshape(x, [n * h, w, r, r * c]), [0, 2, 1, 3]);
  return tf.reshape(t, [n, h * r, w * r, c]);
}

/** Batch normalisation with given (running) statistics, for inference. */
export function batchNormWith<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  eps = 1e-5,
): T {
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), gamma), beta) as T;
}
