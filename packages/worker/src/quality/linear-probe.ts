import * as tf from '@tensorflow/tfjs-core';

/** How a linear probe is fitted. Every field has a default. */
export interface LinearProbeOptions {
  /** L2 penalty on the weights (not the biases), lambda / 2 |W|^2 added to the mean cross-entropy. @default 1e-3 */
  l2?: number;
  /** Full-batch Adam steps. @default 300 */
  iterations?: number;
  /** Adam's step size. @default 0.01 */
  lr?: number;
}

/** Features (row-major [count, dim]) with their class labels. */
export interface LabelledFeatures {
  features: Float32Array;
  labels: ArrayLike<number>;
  count: number;
  dim: number;
}

/** A fitted probe: the standardisation of its training features, and the linear map to class scores. */
export interface LinearProbe {
  readonly dim: number;
  readonly numClasses: number;
  /** Per feature, from the training set; constant features get std 1. */
  readonly mean: Float32Array;
  readonly std: Float32Array;
  /** [dim, classes] and [classes], on the standardised features. */
  readonly weights: Float32Array;
  readonly bias: Float32Array;
  /** The objective (mean cross-entropy + L2 term) at the weights each iteration started from. */
  readonly losses: number[];
}

/** Mean and standard deviation (population) of every column of `x` [count, dim]; 1 where it is constant. */
export function columnMoments(
  x: Float32Array,
  count: number,
  dim: number,
): { mean: Float32Array; std: Float32Array } {
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    const row = i * dim;
    for (let j = 0; j < dim; j++) mean[j]! += x[row + j]!;
  }
  for (let j = 0; j < dim; j++) mean[j]! /= count;
  for (let i = 0; i < count; i++) {
    const row = i * dim;
    for (let j = 0; j < dim; j++) {
      const d = x[row + j]! - mean[j]!;
      sq[j]! += d * d;
    }
  }
  const std = new Float32Array(dim);
  for (let j = 0; j < dim; j++) {
    const s = Math.sqrt(sq[j]! / count);
    std[j] = s > 1e-6 ? s : 1;
  }
  return { mean: Float32Array.from(mean), std };
}

/**
 * A linear probe (the DCGAN paper's use of D's features, Radford et al. 2016, section 5.1; the protocol of
 * linear evaluation in representation learning): multinomial logistic regression on features standardised
 * by the training set's moments, minimising mean cross-entropy + lambda / 2 |W|^2 by full-batch Adam for a
 * fixed number of iterations from W = 0, b = 0 (a convex objective: the answer does not depend on a seed).
 * The gradient is the closed form, dW = X^T (softmax(XW + b) - Y) / n + lambda W, db = mean(softmax - Y).
 */
export function fitLinearProbe(
  train: LabelledFeatures,
  numClasses: number,
  opts: LinearProbeOptions = {},
): LinearProbe {
  const { l2 = 1e-3, iterations = 300, lr = 0.01 } = opts;
  const { count: n, dim } = train;
  const { mean, std } = columnMoments(train.features, n, dim);
  const losses: number[] = [];
  const [weights, bias] = tf.tidy(() => {
    const x = standardised(train.features, n, dim, mean, std);
    const y = tf.cast(tf.oneHot(tf.tensor1d(Array.from(train.labels), 'int32'), numClasses), 'float32');
    let w: tf.Tensor = tf.zeros([dim, numClasses]);
    let b: tf.Tensor = tf.zeros([numClasses]);
    const state = { mw: tf.zerosLike(w), vw: tf.zerosLike(w), mb: tf.zerosLike(b), vb: tf.zerosLike(b) };
    const [beta1, beta2, eps] = [0.9, 0.999, 1e-8];
    for (let t = 1; t <= iterations; t++) {
      const next = tf.tidy(() => {
        const logits = tf.add(tf.matMul(x, w), b);
        const p = tf.softmax(logits);
        const r = tf.sub(p, y);
        const gw = tf.add(tf.div(tf.matMul(x, r, true, false), n), tf.mul(w, l2));
        const gb = tf.mean(r, 0);
        const adam = (param: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => {
          const m2 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
          const v2 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
          const step = tf.div(tf.div(m2, 1 - beta1 ** t), tf.add(tf.sqrt(tf.div(v2, 1 - beta2 ** t)), eps));
          return [tf.sub(param, tf.mul(step, lr)), m2, v2];
        };
        const [w2, mw, vw] = adam(w, gw, state.mw, state.vw);
        const [b2, mb, vb] = adam(b, gb, state.mb, state.vb);
        const ce = tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(logits)), 1)));
        const loss = tf.add(ce, tf.mul(tf.sum(tf.square(w)), l2 / 2));
        return { w: w2!, b: b2!, mw: mw!, vw: vw!, mb: mb!, vb: vb!, loss };
      });
      for (const old of [w, b, state.mw, state.vw, state.mb, state.vb]) old.dispose();
      ({ w, b } = next);
      Object.assign(state, { mw: next.mw, vw: next.vw, mb: next.mb, vb: next.vb });
      losses.push(next.loss.dataSync()[0]!);
      next.loss.dispose();
    }
    return [w.dataSync() as Float32Array, b.dataSync() as Float32Array];
  });
  return { dim, numClasses, mean, std, weights, bias, losses };
}

function standardised(
  features: Float32Array,
  count: number,
  dim: number,
  mean: Float32Array,
  std: Float32Array,
): tf.Tensor2D {
  return tf.div(tf.sub(tf.tensor2d(features, [count, dim]), mean), std) as tf.Tensor2D;
}

/** The probe's class for each of `count` feature rows. */
export function probePredict(probe: LinearProbe, features: Float32Array, count: number): Int32Array {
  const out = new Int32Array(count);
  // In chunks, so a test split of 10,000 rows of several thousand features stays small in memory.
  const chunk = 1000;
  for (let i0 = 0; i0 < count; i0 += chunk) {
    const n = Math.min(chunk, count - i0);
    const part = features.subarray(i0 * probe.dim, (i0 + n) * probe.dim);
    out.set(
      tf.tidy(() => {
        const x = standardised(part, n, probe.dim, probe.mean, probe.std);
        const w = tf.tensor2d(probe.weights, [probe.dim, probe.numClasses]);
        return tf.argMax(tf.add(tf.matMul(x, w), probe.bias), 1).dataSync() as Int32Array;
      }),
      i0,
    );
  }
  return out;
}

/** Fraction of `data`'s rows the probe classifies right. */
export function probeAccuracy(probe: LinearProbe, data: LabelledFeatures): number {
  const predicted = probePredict(probe, data.features, data.count);
  let right = 0;
  for (let i = 0; i < data.count; i++) if (predicted[i] === data.labels[i]) right += 1;
  return right / data.count;
}
