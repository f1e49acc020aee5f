import '../gradients.ts';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { prelu } from '../models/layers.ts';
import { fusedPrelu, PRELU, PRELU_GRAD } from './prelu.ts';
import { expectClose, expectNoLeaks, randomData, runOn, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/fma gemm/);
});

/** The ops PReLU was written as before the fused kernel: the reference on both backends. */
const preluOps = (x: tf.Tensor4D, alpha: tf.Tensor1D) =>
  tf.sub(tf.relu(x), tf.mul(alpha, tf.relu(tf.neg(x))));

/** Slopes of both signs, zero and one, so every branch of the kernel is taken. */
const slopes = (c: number) =>
  Float32Array.from({ length: c }, (_, j) => [0.25, -0.5, 0, 1, 1.75][j % 5] as number);

/** x with exact zeros at every 7th value, so the x > 0 test meets its boundary. */
function inputs(shape: number[], seed: number): Float32Array {
  const x = randomData(size(shape), seed);
  for (let i = 0; i < x.length; i += 7) x[i] = 0;
  return x;
}

/** SRGAN G's PReLU shapes (batch 16 cut to 2-4 to keep the cpu reference quick), and small odd ones. */
const shapes: number[][] = [
  [4, 16, 16, 32], // the residual blocks
  [2, 64, 64, 32], // after the last pixel shuffle
  [3, 5, 7, 4],
  [1, 3, 3, 36],
];

describe('fused PReLU (wasm) vs the ops on cpu', () => {
  it.each(shapes)('values, %s x %s x %s x %s', async (...shape) => {
    const x = inputs(shape, 1);
    const a = slopes(shape[3] as number);
    const run = (f: typeof preluOps) => () => f(tf.tensor4d(x, shape as never), tf.tensor1d(a));
    await tf.setBackend('wasm');
    expect(fusedPrelu(tf.zeros(shape as never), tf.tensor1d(a))).toBeDefined();
    const ours = await runOn('wasm', run(prelu));
    const cpu = await runOn('cpu', run(preluOps));
    // x or alpha * x, the same float32 products: equal (=== takes -0 for 0, which the ops may give).
    let mismatches = 0;
    for (let i = 0; i < cpu.length; i++) if (ours[i] !== cpu[i]) mismatches++;
    expect(mismatches).toBe(0);
  });

  it.each(shapes)('gradients in x and alpha, %s x %s x %s x %s', async (...shape) => {
    const x = inputs(shape, 2);
    const r = randomData(size(shape), 3);
    const a = slopes(shape[3] as number);
    const grads = (f: typeof preluOps, which: 0 | 1) => () =>
      tf.grads((xt: tf.Tensor, at: tf.Tensor) =>
        tf.sum(tf.mul(f(xt as tf.Tensor4D, at as tf.Tensor1D), tf.tensor(r, shape))),
      )([tf.tensor(x, shape), tf.tensor1d(a)])[which] as tf.Tensor;
    const dx = await runOn('wasm', grads(prelu, 0));
    const dxCpu = await runOn('cpu', grads(preluOps, 0));
    // Away from x = 0 (where relu's gradient is 0 and the fused one alpha * dy) the same products.
    for (let i = 0; i < x.length; i++) if (x[i] === 0) dx[i] = dxCpu[i] as number;
    expectClose(dx, dxCpu, 1e-7);
    // dalpha against a float64 closed form: the sum of r * x where x <= 0, per channel.
    const c = shape[3] as number;
    const expected = new Float64Array(c);
    for (let i = 0; i < x.length; i++)
      if ((x[i] as number) <= 0) expected[i % c]! += (r[i] as number) * (x[i] as number);
    const da = await runOn('wasm', grads(prelu, 1));
    expectClose(da, expected, 1e-5);
    expectClose(await runOn('cpu', grads(preluOps, 1)), expected, 1e-5);
  });

  it('differentiates again through its gradient (the ops take over under a tape)', async () => {
    const shape = [2, 6, 6, 8];
    const x = inputs(shape, 4);
    const r = randomData(size(shape), 5);
    const a = slopes(8);
    // d/dalpha of sum((d/dx sum(prelu(x, alpha) * r))^2): 2 r^2 alpha summed where x <= 0.
    const second = (f: typeof preluOps) => () =>
      tf.grad((at: tf.Tensor) => {
        const dx = tf.grad((xt: tf.Tensor) =>
          tf.sum(tf.mul(f(xt as tf.Tensor4D, at as tf.Tensor1D), tf.tensor(r, shape))),
        )(tf.tensor(x, shape));
        return tf.sum(tf.square(dx));
      })(tf.tensor1d(a));
    const ours = await runOn('wasm', second(prelu));
    const expected = new Float64Array(8);
    for (let i = 0; i < x.length; i++) {
      // The fused gradient takes alpha * dy at x = 0 too.
      if ((x[i] as number) <= 0) expected[i % 8]! += 2 * (r[i] as number) ** 2 * (a[i % 8] as number);
    }
    expectClose(ours, expected, 1e-5);
  });

  it('is declined where it cannot run, and prelu still matches the ops there', async () => {
    await tf.setBackend('wasm');
    const odd = tf.tensor4d(randomData(2 * 3 * 3 * 6, 6), [2, 3, 3, 6]);
    expect(fusedPrelu(odd, tf.tensor1d(slopes(6)))).toBeUndefined();
    expect(
      fusedPrelu(tf.zeros([1, 2, 2, 4], 'int32') as tf.Tensor4D, tf.tensor1d(slopes(4))),
    ).toBeUndefined();
    expect(fusedPrelu(tf.zeros([1, 2, 2, 8]), tf.tensor1d(slopes(4)))).toBeUndefined();
    await tf.setBackend('cpu');
    expect(fusedPrelu(tf.zeros([1, 2, 2, 4]), tf.tensor1d(slopes(4)))).toBeUndefined();
    const run = (f: typeof preluOps) => () =>
      f(tf.tensor4d(randomData(54, 7), [1, 3, 3, 6]), tf.tensor1d(slopes(6)));
    expectClose(await runOn('wasm', run(prelu)), await runOn('cpu', run(preluOps)), 1e-7);
    odd.dispose();
  });

  it('leaks no tensors or wasm buffers through a forward and backward pass', async () => {
    await tf.setBackend('wasm');
    const shape = [2, 8, 8, 32];
    const x = tf.tensor4d(inputs(shape, 8), shape as never);
    const a = tf.tensor1d(slopes(32));
    const step = () => {
      const [dx, da] = tf.grads((xt: tf.Tensor, at: tf.Tensor) =>
        tf.sum(prelu(xt as tf.Tensor4D, at as tf.Tensor1D)),
      )([x, a]);
      dx?.dispose();
      da?.dispose();
    };
    expectNoLeaks(step);
    // The step ran the fused kernels, not the ops.
    const { kernelNames } = await tf.profile(step);
    expect(kernelNames).toContain(PRELU);
    expect(kernelNames).toContain(PRELU_GRAD);
    expect(kernelNames).not.toContain('Relu');
    x.dispose();
    a.dispose();
  });
});
