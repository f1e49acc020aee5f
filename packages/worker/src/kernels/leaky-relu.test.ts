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

  it.each([
    [[64, 14, 14, 64], 0.2],
    [[64, 7, 7, 128], 0.2],
    [[3, 5, 7], 0.5],
  ])('fuses the gradient on %j (alpha %s): the values of dy * step(x, alpha), exactly', async (shape, alpha) => {
    const n = size(shape);
    const x = randomData(n, 5);
    x[0] = 0;
    x[1] = -0;
    const r = randomData(n, 6);
    const grad = () =>
      tf.grad((xt: tf.Tensor) => tf.sum(tf.mul(tf.leakyRelu(xt, alpha), tf.tensor(r, shape))))(
        tf.tensor(x, shape),
      );
    await tf.setBackend('wasm');
    const kernels = (await tf.profile(() => grad())).kernelNames;
    expect(kernels).toContain('GantryLeakyReluGrad');
    expect(kernels).not.toContain('Step');
    const ours = await runOn('wasm', grad);
    const cpu = await runOn('cpu', grad);
    let mismatches = 0;
    for (let i = 0; i < n; i++) if (!Object.is(ours[i], cpu[i])) mismatches++;
    expect(mismatches).toBe(0);
  });

  it('fused gradient: NaN where x is NaN, infinities and zeros as Step and Multiply give them', async () => {
    const x = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 2, -2, 1, -1];
    const dy = [1, 2, 3, 4, 5, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, -7];
    const run = () => {
      const [xt, dyt] = [tf.tensor1d(x), tf.tensor1d(dy)];
      return tf.engine().runKernel('GantryLeakyReluGrad', { dy: dyt, x: xt }, { alpha: 0.2 }) as tf.Tensor;
    };
    const out = await runOn('wasm', run);
    const a = Math.fround(0.2);
    expect(Array.from(out)).toEqual([
      Number.NaN,
      2,
      Math.fround(3 * a),
      Math.fround(4 * a),
      Math.fround(5 * a),
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      Math.fround(-7 * a),
    ]);
  });

  it('keeps the tfjs ops where a tape records the gradient (second order, as in WGAN-GP)', async () => {
    const shape = [4, 7, 7, 16];
    const x = randomData(size(shape), 7);
    const r = randomData(size(shape), 8);
    // d/dx sum((d/dx sum(leakyRelu(x) * r))^2 * x): the inner gradient is differentiated again.
    const run = () =>
      tf.grad((xt: tf.Tensor) => {
        const g = tf.grad((u: tf.Tensor) => tf.sum(tf.mul(tf.leakyRelu(u, 0.2), tf.tensor(r, shape))))(xt);
        return tf.sum(tf.mul(tf.square(g), xt));
      })(tf.tensor(x, shape));
    expectClose(await runOn('wasm', run), await runOn('cpu', run), 1e-5);
    // The recorded gradient has no edge to x: no zeros sent back through the forward pass.
    await tf.setBackend('wasm');
    const kernels = (await tf.profile(() => run())).kernelNames;
    expect(kernels).not.toContain('ZerosLike');
    expect(kernels).not.toContain('Step');
  });

  it('second order through a conv, as in WGAN-GP: the weights gradient of a gradient norm penalty', async () => {
    const xs = randomData(2 * 8 * 8 * 2, 10);
    const ws = randomData(3 * 3 * 2 * 4, 11).map((v) => v * 0.3);
    const run = () => {
      const w = tf.tensor4d(ws, [3, 3, 2, 4]);
      return tf.grad((wt: tf.Tensor) => {
        const g = tf.grad((u: tf.Tensor) =>
          tf.sum(tf.leakyRelu(tf.conv2d(u as tf.Tensor4D, wt as tf.Tensor4D, 2, 'same'), 0.2)),
        )(tf.tensor4d(xs, [2, 8, 8, 2]));
        return tf.sum(tf.square(g));
      })(w);
    };
    expectClose(await runOn('wasm', run), await runOn('cpu', run), 1e-4);
  });

  it('does not leak tensors through the fused gradient', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const xt = tf.tensor(randomData(1000, 9));
    const tensors = tf.memory().numTensors;
    const ids = backend.numDataIds();
    tf.tidy(() => tf.grad((u: tf.Tensor) => tf.sum(tf.leakyRelu(u, 0.2)))(xt)).dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(ids);
    xt.dispose();
  });
});
