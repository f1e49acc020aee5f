import '../gradients.ts';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { pixelNorm } from '../families/progan/blocks.ts';
import { fusedPixelNorm, PIXEL_NORM, PIXEL_NORM_GRAD } from './pixel-norm.ts';
import { expectClose, expectNoLeaks, randomData, runOn, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/fma gemm/);
});

/** The ops pixel norm was written as before the fused kernel: the reference on cpu. */
const pixelNormOps = (x: tf.Tensor4D, eps = 1e-8) =>
  tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 3, true), eps)));

/** ProGAN's pixel norm shapes (G at 32 and 16 px, the latent as [N, 1, 1, L]) and small odd ones. */
const shapes: number[][] = [
  [4, 32, 32, 16],
  [2, 16, 16, 64],
  [32, 1, 1, 128],
  [3, 5, 7, 4],
];

/** Inputs with a few all-zero pixels (r = 1 / sqrt(eps) there) and one pixel scaled up 1e3. */
function inputs(shape: number[], seed: number): Float32Array {
  const x = randomData(size(shape), seed);
  const c = shape[3] as number;
  x.fill(0, 0, c);
  for (let j = 0; j < c; j++) x[x.length - c + j]! *= 1e3;
  return x;
}

/**
 * pixelNorm's output and the gradient of sum(pixelNorm(x) * r) in x, computed where a tape records the
 * forward pass (as in training, where the fused op runs).
 */
function valueAndGrad(f: (x: tf.Tensor4D) => tf.Tensor, x: Float32Array, r: Float32Array, shape: number[]) {
  let value: tf.Tensor | undefined;
  const dx = tf.grad((xt: tf.Tensor) => {
    const y = f(xt as tf.Tensor4D);
    value = tf.keep(y);
    return tf.sum(tf.mul(y, tf.tensor(r, shape)));
  })(tf.tensor(x, shape));
  return { value: value as tf.Tensor, dx };
}

describe('fused pixel norm (wasm) vs the ops on cpu', () => {
  it.each(shapes)('values and gradient, %s x %s x %s x %s', async (...shape) => {
    const x = inputs(shape, 1);
    const r = randomData(size(shape), 2);
    const results = async (backend: 'wasm' | 'cpu', f: (x: tf.Tensor4D) => tf.Tensor) => {
      await tf.setBackend(backend);
      const { value, dx } = valueAndGrad(f, x, r, shape);
      const out = { y: Float32Array.from(value.dataSync()), dx: Float32Array.from(dx.dataSync()) };
      value.dispose();
      dx.dispose();
      return out;
    };
    const ours = await results('wasm', pixelNorm);
    const cpu = await results('cpu', pixelNormOps);
    expectClose(ours.y, cpu.y, 1e-6);
    expectClose(ours.dx, cpu.dx, 1e-5);
  });

  it('runs the fused kernels while a tape records, and the ops otherwise', async () => {
    await tf.setBackend('wasm');
    const shape = [2, 8, 8, 16];
    const x = tf.tensor4d(inputs(shape, 3), shape as never);
    const trained = await tf.profile(() =>
      tf.grad((xt: tf.Tensor) => tf.sum(pixelNorm(xt as tf.Tensor4D)))(x),
    );
    expect(trained.kernelNames).toContain(PIXEL_NORM);
    expect(trained.kernelNames).toContain(PIXEL_NORM_GRAD);
    expect(trained.kernelNames).not.toContain('Rsqrt');
    const sampled = await tf.profile(() => pixelNorm(x));
    expect(sampled.kernelNames).not.toContain(PIXEL_NORM);
    expect(sampled.kernelNames).toContain('Rsqrt');
    x.dispose();
  });

  it('differentiates again through its gradient (the ops take over under a tape)', async () => {
    const shape = [2, 4, 4, 8];
    const x = inputs(shape, 4);
    const r = randomData(size(shape), 5);
    // d/dx of sum((d/dx sum(pixelNorm(x) * r))^2): the gradient's own gradient, on both backends.
    const second = (f: (x: tf.Tensor4D) => tf.Tensor) => () =>
      tf.grad((xt: tf.Tensor) => {
        const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(f(xi as tf.Tensor4D), tf.tensor(r, shape))))(xt);
        return tf.sum(tf.square(dx));
      })(tf.tensor(x, shape));
    expectClose(await runOn('wasm', second(pixelNorm)), await runOn('cpu', second(pixelNormOps)), 1e-4);
  });

  it('is declined where it cannot run', async () => {
    await tf.setBackend('wasm');
    const declined: (tf.Tensor | undefined)[] = [];
    tf.grad((xt: tf.Tensor) => {
      declined.push(fusedPixelNorm(tf.zeros([1, 2, 2, 6]), 1e-8));
      declined.push(fusedPixelNorm(tf.zeros([1, 2, 2, 4], 'int32'), 1e-8));
      return tf.sum(xt);
    })(tf.zeros([1]));
    expect(fusedPixelNorm(tf.zeros([1, 2, 2, 4]), 1e-8)).toBeUndefined();
    await tf.setBackend('cpu');
    tf.grad((xt: tf.Tensor) => {
      declined.push(fusedPixelNorm(tf.zeros([1, 2, 2, 4]), 1e-8));
      return tf.sum(xt);
    })(tf.zeros([1]));
    expect(declined).toEqual([undefined, undefined, undefined]);
  });

  it('leaks no tensors or wasm buffers through a forward and backward pass', async () => {
    await tf.setBackend('wasm');
    const shape = [2, 8, 8, 32];
    const x = tf.tensor4d(inputs(shape, 6), shape as never);
    const step = () =>
      tf
        .grad((xt: tf.Tensor) => tf.sum(pixelNorm(xt as tf.Tensor4D)))(x)
        .dispose();
    expectNoLeaks(step);
    x.dispose();
  });
});
