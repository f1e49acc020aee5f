import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { leakyReluConfig } from './leaky-relu.ts';
import { stockKernel } from './stock-kernels.ts';
import { expectClose, randomData, runOn, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

describe('LeakyRelu (wasm) vs cpu', () => {
  it('replaces the stock wasm kernel, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('LeakyRelu', 'wasm').kernelFunc).toBe(leakyReluConfig.kernelFunc);
  });

  it.each([0.2, 0, 1, 1.5, -0.3])('alpha %s, on DCGAN-sized activations', async (alpha) => {
    const shape = [8, 14, 14, 64];
    const x = randomData(size(shape), 1);
    const run = () => tf.leakyRelu(tf.tensor(x, shape), alpha);
    const cpu = await runOn('cpu', run);
    const ours = await runOn('wasm', run);
    expectClose(ours, cpu, 1e-6);
    // The stock wasm kernel forms the same float32 products: equal, not just close.
    const backend = tf.backend() as BackendWasm;
    const xt = tf.tensor(x, shape);
    const out = stockKernel('LeakyRelu', 'test').kernelFunc({
      inputs: { x: xt },
      backend,
      attrs: { alpha },
    }) as tf.TensorInfo;
    const stock = backend.readSync(out.dataId) as Float32Array;
    let mismatches = 0;
    for (let i = 0; i < stock.length; i++) if (!Object.is(stock[i], ours[i])) mismatches++;
    expect(mismatches).toBe(0);
    backend.disposeData(out.dataId);
    xt.dispose();
  });

  it('passes NaN through and keeps infinities and zeros', async () => {
    const x = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 1e-40, -1e-40, 3, -3];
    const out = await runOn('wasm', () => tf.leakyRelu(tf.tensor1d(x), 0.2));
    expect(Array.from(out)).toEqual([
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      0,
      -0,
      Math.fround(1e-40),
      Math.fround(Math.fround(-1e-40) * Math.fround(0.2)),
      3,
      Math.fround(-3 * Math.fround(0.2)),
    ]);
  });

  it('turns int32 input into float32 as the stock kernel does', async () => {
    const out = await runOn('wasm', () => tf.leakyRelu(tf.tensor1d([-5, 0, 5], 'int32'), 0.5));
    expect(Array.from(out)).toEqual([-2.5, 0, 5]);
  });

  it('matches the gradient of sum(leakyRelu(x) * r)', async () => {
    const shape = [4, 7, 7, 16];
    const x = randomData(size(shape), 2);
    const r = randomData(size(shape), 3);
    const grad = () =>
      tf.grad((xt: tf.Tensor) => tf.sum(tf.mul(tf.leakyRelu(xt, 0.2), tf.tensor(r, shape))))(
        tf.tensor(x, shape),
      );
    expectClose(await runOn('wasm', grad), await runOn('cpu', grad));
  });

  it('does not leak tensors through the engine', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const tensors = tf.memory().numTensors;
    const ids = backend.numDataIds();
    tf.tidy(() => tf.leakyRelu(tf.tensor(randomData(1000, 4)), 0.2)).dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(ids);
  });
});
