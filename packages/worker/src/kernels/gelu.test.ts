import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { gelu } from '../models/transformer.ts';
import { GELU, GELU_GRAD, geluConfig, hasFusedGelu } from './gelu.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { expectClose, randomData, runOn, size } from './test-support.ts';

/*
 * The fused GELU (wasm, SIMD) against the composite form on cpu (models/transformer.ts picks the fused
 * kernels on wasm): values and gradients, first order (fused) and second (the composite slope).
 */

/** TransGAN's MLP hidden shapes at its default size, batch reduced; odd sizes for the SIMD tail. */
const SHAPES: number[][] = [
  [2, 50, 256],
  [1, 49, 512],
  [1, 196, 128],
  [1, 784, 32],
  [1],
  [3],
  [5, 7],
  [2, 3, 3],
];

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

/** Inputs over GELU's whole curve: [-6, 6], where erf saturates and exp underflows at the ends. */
const inputs = (shape: number[]) => randomData(size(shape), 5).map((v) => 6 * v);

describe('fused GELU (wasm) vs the composite form on cpu', () => {
  it('is registered for wasm and bound to its memory', () => {
    registerWasmTrainingKernels();
    expect(tf.getKernel(GELU, 'wasm').kernelFunc).toBe(geluConfig.kernelFunc);
    expect(tf.getKernel(GELU_GRAD, 'wasm')).toBeDefined();
    expect(tf.getKernel(GELU, 'cpu')).toBeUndefined();
    expect(hasFusedGelu(tf.findBackend('wasm')!)).toBe(true);
  });

  it.each(
    SHAPES.map((s) => [JSON.stringify(s), s] as const),
  )('%s: values, gradients and second derivatives', async (_name, shape) => {
    const x = inputs(shape);
    const dy = randomData(size(shape), 6);
    const u = randomData(size(shape), 7);
    const forward = () => gelu(tf.tensor(x, shape));
    expectClose(await runOn('wasm', forward), await runOn('cpu', forward), 2e-6);
    const loss = (t: tf.Tensor) => tf.sum(tf.mul(tf.tensor(dy, shape), gelu(t)));
    const first = () => tf.grad(loss)(tf.tensor(x, shape));
    expectClose(await runOn('wasm', first), await runOn('cpu', first), 2e-6);
    // The gradient's gradient: recorded, so through the composite slope on both backends.
    const second = () =>
      tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.tensor(u, shape), tf.grad(loss)(t))))(tf.tensor(x, shape));
    expectClose(await runOn('wasm', second), await runOn('cpu', second), 1e-5);
  });

  it('passes NaN and infinities through and saturates at large |x|, as the composite form', async () => {
    const finite = [-100, -10, -3.5, -1e-30, 0, 1e-30, 3.5, 10, 100];
    const run = () => gelu(tf.tensor1d(finite));
    expectClose(await runOn('wasm', run), await runOn('cpu', run), 1e-6);
    const odd = await runOn('wasm', () => gelu(tf.tensor1d([Number.NaN, Number.POSITIVE_INFINITY])));
    expect(odd[0]).toBeNaN();
    expect(odd[1]).toBe(Number.POSITIVE_INFINITY);
  });

  it('leaves only its result behind, forward and backward', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const x = tf.tensor(inputs([2, 50, 256]), [2, 50, 256]);
    const before = [tf.memory().numTensors, backend.numDataIds()];
    const y = tf.engine().runKernel<tf.Tensor>(GELU, { x });
    const dx = tf.engine().runKernel<tf.Tensor>(GELU_GRAD, { x, dy: y });
    tf.dispose([y, dx]);
    expect([tf.memory().numTensors, backend.numDataIds()]).toEqual(before);
    tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x)).dispose();
    expect([tf.memory().numTensors, backend.numDataIds()]).toEqual(before);
    x.dispose();
  });
});
