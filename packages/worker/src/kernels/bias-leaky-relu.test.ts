import '../gradients.ts';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { BIAS_LEAKY_RELU, BIAS_LEAKY_RELU_GRAD, biasLeakyRelu } from './bias-leaky-relu.ts';
import { expectClose, expectNoLeaks, randomData, runOn, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/fma gemm/);
});

/** The two ops the fused one replaces: the reference on cpu. */
const ops = (y: tf.Tensor, b: tf.Tensor, alpha: number) => tf.leakyRelu(tf.add(y, b), alpha);

/** ProGAN's conv outputs (D and G at 64 and 32 px, the 4x4 block) and small ones; rank 2 too. */
const shapes: number[][] = [
  [4, 64, 64, 8],
  [4, 32, 32, 16],
  [32, 4, 4, 64],
  [3, 5, 7, 4],
  [6, 12],
];

/** y with values that make y + b exactly 0 at every 9th place (the slope's boundary). */
function inputs(shape: number[], seed: number): { y: Float32Array; b: Float32Array } {
  const c = shape[shape.length - 1] as number;
  const y = randomData(size(shape), seed);
  const b = randomData(c, seed + 100);
  for (let i = 0; i < y.length; i += 9) y[i] = -(b[i % c] as number);
  return { y, b };
}

/** Value and both gradients of sum(f(y, b) * r), computed where a tape records (as in training). */
function valueAndGrads(f: typeof ops, shape: number[], seed: number, alpha: number) {
  const { y, b } = inputs(shape, seed);
  const r = randomData(size(shape), seed + 1);
  let value: tf.Tensor | undefined;
  const [dy, db] = tf.grads((yt: tf.Tensor, bt: tf.Tensor) => {
    const z = f(yt, bt, alpha);
    value = tf.keep(z);
    return tf.sum(tf.mul(z, tf.tensor(r, shape)));
  })([tf.tensor(y, shape), tf.tensor1d(b)]);
  return [value as tf.Tensor, dy as tf.Tensor, db as tf.Tensor];
}

async function read(backend: 'wasm' | 'cpu', f: typeof ops, shape: number[], seed: number, alpha: number) {
  await tf.setBackend(backend);
  const ts = valueAndGrads(f, shape, seed, alpha);
  const out = ts.map((t) => Float32Array.from(t.dataSync()));
  for (const t of ts) t.dispose();
  return out;
}

describe('fused bias + LeakyRelu (wasm) vs Add then LeakyRelu on cpu', () => {
  it.each(shapes)('values and gradients, %j', async (...shape) => {
    const [z, dy, db] = await read('wasm', biasLeakyRelu, shape, 1, 0.2);
    // The same float32 sums and products as the two ops on wasm: equal.
    const [zw, dyw] = await read('wasm', ops, shape, 1, 0.2);
    expectClose(z as Float32Array, zw as Float32Array, 0);
    expectClose(dy as Float32Array, dyw as Float32Array, 0);
    // cpu rounds alpha * x from doubles (an ulp apart at most) and sums b's gradient in its own order.
    const [zc, dyc, dbc] = await read('cpu', ops, shape, 1, 0.2);
    expectClose(z as Float32Array, zc as Float32Array, 1e-6);
    expectClose(dy as Float32Array, dyc as Float32Array, 1e-6);
    expectClose(db as Float32Array, dbc as Float32Array, 1e-5);
  });

  it('runs the fused kernels while a tape records, and the ops otherwise', async () => {
    await tf.setBackend('wasm');
    const y = tf.tensor4d(randomData(2 * 8 * 8 * 16, 2), [2, 8, 8, 16]);
    const b = tf.tensor1d(randomData(16, 3));
    const trained = await tf.profile(() =>
      tf.grads((yt: tf.Tensor, bt: tf.Tensor) => tf.sum(biasLeakyRelu(yt, bt, 0.2)))([y, b]),
    );
    expect(trained.kernelNames).toContain(BIAS_LEAKY_RELU);
    expect(trained.kernelNames).toContain(BIAS_LEAKY_RELU_GRAD);
    expect(trained.kernelNames).not.toContain('LeakyRelu');
    const sampled = await tf.profile(() => biasLeakyRelu(y, b, 0.2));
    expect(sampled.kernelNames).toEqual(['Add', 'LeakyRelu']);
    // A slope that is not positive, or channels not in fours: the ops even under a tape.
    for (const [yt, alpha] of [
      [y, 0],
      [tf.zeros([2, 3, 3, 6]), 0.2],
    ] as const) {
      const bt = tf.zeros([yt.shape[3] as number]);
      const declined = await tf.profile(() =>
        tf.grad((t: tf.Tensor) => tf.sum(biasLeakyRelu(t, bt, alpha)))(yt),
      );
      expect(declined.kernelNames).not.toContain(BIAS_LEAKY_RELU);
    }
    y.dispose();
    b.dispose();
  });

  it('differentiates again through its gradient, as the WGAN-GP penalty does', async () => {
    const shape = [2, 4, 4, 8];
    const { y, b } = inputs(shape, 4);
    const w = randomData(3 * 3 * 8 * 8, 5);
    const r = randomData(size(shape), 6);
    // d/dw of ||d/dx sum(f(conv(x, w), b) * r)||^2: the penalty's shape of second derivative.
    const penaltyGrad = (f: typeof ops) => () =>
      tf.grad((wt: tf.Tensor) => {
        const dx = tf.grad((xt: tf.Tensor) =>
          tf.sum(
            tf.mul(
              f(tf.conv2d(xt as tf.Tensor4D, wt as tf.Tensor4D, 1, 'same'), tf.tensor1d(b), 0.2),
              tf.tensor(r, shape),
            ),
          ),
        )(tf.tensor(y, shape));
        return tf.sum(tf.square(dx));
      })(tf.tensor4d(w, [3, 3, 8, 8]));
    expectClose(await runOn('wasm', penaltyGrad(biasLeakyRelu)), await runOn('cpu', penaltyGrad(ops)), 1e-4);
  });

  it('leaks no tensors or wasm buffers through a forward and backward pass', async () => {
    await tf.setBackend('wasm');
    const y = tf.tensor4d(randomData(2 * 8 * 8 * 32, 7), [2, 8, 8, 32]);
    const b = tf.tensor1d(randomData(32, 8));
    const step = () => {
      for (const t of tf.grads((yt: tf.Tensor, bt: tf.Tensor) => tf.sum(biasLeakyRelu(yt, bt, 0.2)))([y, b]))
        t.dispose();
    };
    expectNoLeaks(step);
    y.dispose();
    b.dispose();
  });
});
