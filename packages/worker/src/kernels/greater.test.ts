import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { greaterConfig } from './greater.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { randomData, runOn, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

/** Runs `fn` on both backends; expects the same shape, dtype and values. */
async function sameAsCpu(fn: () => tf.Tensor): Promise<void> {
  const cpu = await runOn('cpu', fn);
  await tf.setBackend('wasm');
  const out = tf.tidy(fn);
  expect(out.dtype).toBe('bool');
  const ref = tf.tidy(() => tf.zeros(out.shape));
  expect(out.shape).toEqual(ref.shape);
  const values = Float32Array.from(out.dataSync());
  tf.dispose([out, ref]);
  let mismatches = 0;
  for (let i = 0; i < cpu.length; i++) if (values[i] !== cpu[i]) mismatches++;
  expect(values.length).toBe(cpu.length);
  expect(mismatches).toBe(0);
}

describe('Greater (wasm) vs cpu', () => {
  it('replaces the stock wasm kernel, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('Greater', 'wasm').kernelFunc).toBe(greaterConfig.kernelFunc);
  });

  it.each([
    [[8, 14, 14, 64], 0],
    [[8, 7, 7, 128], 0.25],
    [[13], -0.5],
    [[3, 5], 2],
  ] as const)('x [%s] > %s', async (shape, threshold) => {
    const x = randomData(size(shape), 1);
    await sameAsCpu(() => tf.greater(tf.tensor(x, [...shape]), threshold));
  });

  it('compares against single-element tensors of any rank', async () => {
    const x = randomData(24, 2);
    await sameAsCpu(() => tf.greater(tf.tensor(x, [2, 3, 4]), tf.tensor([0.1], [1, 1, 1])));
    await sameAsCpu(() => tf.greater(tf.tensor(x.subarray(0, 4), [4]), tf.tensor([0.1], [1, 1])));
  });

  it('handles NaN, infinities and signed zeros', async () => {
    const x = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 1e-40, -1e-40];
    await sameAsCpu(() => tf.greater(tf.tensor1d(x), 0));
    await sameAsCpu(() => tf.greater(tf.tensor1d(x), Number.NaN));
  });

  it('leaves other comparisons to the stock kernel', async () => {
    const x = randomData(24, 3);
    const y = randomData(24, 4);
    await sameAsCpu(() => tf.greater(tf.tensor(x, [4, 6]), tf.tensor(y, [4, 6])));
    await sameAsCpu(() => tf.greater(tf.tensor(x, [4, 6]), tf.tensor(y.subarray(0, 6), [6])));
    await sameAsCpu(() => tf.greater(tf.scalar(0.2), tf.tensor(x, [4, 6])));
    await sameAsCpu(() => tf.greater(tf.tensor([1, 2, 3], [3], 'int32'), tf.scalar(2, 'int32')));
  });

  it('does not leak tensors through the engine', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const tensors = tf.memory().numTensors;
    const ids = backend.numDataIds();
    tf.tidy(() => tf.greater(tf.tensor(randomData(1000, 5)), 0)).dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(ids);
  });
});
