import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import '../gradients.ts';
import { batchNorm } from './layers.ts';

/** Reference: the same normalisation differentiated by autograd through tf.moments. */
function batchNormAutograd(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const { mean, variance } = tf.moments(x, axes);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}

function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  const scale = Math.max(...Array.from(y, Math.abs), 1e-6);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / scale);
  return worst;
}

describe.each(['cpu', 'wasm'] as const)('batchNorm on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it.each<[number[], string]>([
    [[16, 6], 'dense features'],
    [[4, 7, 7, 8], 'conv feature maps'],
    [[3, 5, 5, 1], 'one channel'],
  ])('has the closed-form gradient of autograd through moments for %j (%s)', (shape) => {
    const channels = shape[shape.length - 1]!;
    const x = tf.randomNormal([...shape], 0.5, 2, 'float32', 1);
    const gamma = tf.randomNormal([channels], 1, 0.3, 'float32', 2);
    const beta = tf.randomNormal([channels], 0, 0.3, 'float32', 3);
    // A non-uniform upstream gradient, so every term of the backward pass matters.
    const r = tf.randomNormal([...shape], 0, 1, 'float32', 4);
    const loss = (f: typeof batchNorm) => (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(f(a, g as tf.Tensor1D, b as tf.Tensor1D), r));
    const ours = tf.grads(loss(batchNorm))([x, gamma, beta]);
    const ref = tf.grads(loss(batchNormAutograd as typeof batchNorm))([x, gamma, beta]);
    expect(
      maxRelDiff(batchNorm(x, gamma as tf.Tensor1D, beta as tf.Tensor1D), batchNormAutograd(x, gamma, beta)),
    ).toBeLessThan(1e-5);
    ours.forEach((g, i) => {
      expect(maxRelDiff(g, ref[i]!), `gradient ${['x', 'gamma', 'beta'][i]}`).toBeLessThan(1e-4);
    });
  });

  it('has the LeakyRelu gradient dy * step(x, alpha), x = 0 included', () => {
    const x = tf.tensor1d([-2, -0.5, 0, 0.5, 3]);
    const dy = tf.tensor1d([1, 2, 3, 4, 5]);
    const g = tf.grad((t: tf.Tensor) => tf.leakyRelu(t, 0.2))(x, dy);
    expect(Array.from(g.dataSync())).toEqual([0.2, 0.4, 0.6000000238418579, 4, 5].map((v) => Math.fround(v)));
  });
});
