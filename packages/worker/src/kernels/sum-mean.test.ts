import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { meanConfig, reduceSumOrMean, sumConfig } from './sum-mean.ts';
import { expectClose, randomData, runOn, size } from './test-support.ts';

/** One reduction: input shape, axes as tfjs takes them, keepDims. */
interface Case {
  shape: number[];
  axis: number | number[] | null;
  keepDims: boolean;
}

const label = (c: Case): string =>
  `[${c.shape}] axis ${JSON.stringify(c.axis)}${c.keepDims ? ' keepDims' : ''}`;

const cases: Case[] = [
  // Batch-norm statistics and the gradients of its scale and shift (batch reduced).
  { shape: [4, 14, 14, 64], axis: [0, 1, 2], keepDims: false },
  { shape: [4, 7, 7, 128], axis: [0, 1, 2], keepDims: true },
  { shape: [4, 28, 28, 1], axis: [0, 1, 2], keepDims: false },
  // Dense-layer bias gradient, middle axes, unordered and negative axes.
  { shape: [37, 5], axis: 0, keepDims: false },
  { shape: [2, 3, 4, 5], axis: [1, 2], keepDims: true },
  { shape: [2, 3, 4, 5], axis: [1], keepDims: false },
  { shape: [2, 3, 4, 5], axis: [2, 0, 1], keepDims: false },
  { shape: [2, 3, 4, 5], axis: [-4, -3], keepDims: true },
  { shape: [3, 1, 7, 2], axis: [0, 1], keepDims: false },
  // Handed to the stock kernel: the last axis, all axes, axes with a gap, one element, no axes.
  { shape: [2, 3, 4, 5], axis: [2, 3], keepDims: false },
  { shape: [2, 3, 4, 5], axis: null, keepDims: false },
  { shape: [2, 3, 4, 5], axis: [0, 2], keepDims: true },
  { shape: [1, 1, 6], axis: [0, 1], keepDims: false },
  { shape: [2, 3], axis: [], keepDims: false },
];

function reduce(kind: 'Sum' | 'Mean', c: Case, x: Float32Array): tf.Tensor {
  const t = tf.tensor(x, c.shape);
  const axis = c.axis ?? undefined;
  return kind === 'Sum' ? tf.sum(t, axis, c.keepDims) : tf.mean(t, axis, c.keepDims);
}

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

describe('Sum and Mean (wasm) vs cpu', () => {
  it('replace the stock wasm kernels, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('Sum', 'wasm').kernelFunc).toBe(sumConfig.kernelFunc);
    expect(tf.getKernel('Mean', 'wasm').kernelFunc).toBe(meanConfig.kernelFunc);
  });

  it.each(
    cases.flatMap((c) => (['Sum', 'Mean'] as const).map((k) => [`${k} ${label(c)}`, k, c] as const)),
  )('%s', async (_name, kind, c) => {
    const x = randomData(size(c.shape), 1);
    const cpu = await runOn('cpu', () => reduce(kind, c, x));
    await tf.setBackend('wasm');
    const out = tf.tidy(() => reduce(kind, c, x));
    expect(out.shape).toEqual(tf.tidy(() => reduce(kind, c, new Float32Array(size(c.shape))).shape));
    expectClose(Float32Array.from(out.dataSync()), cpu, 1e-5);
    out.dispose();
  });

  it('leaves exactly its result behind when called directly', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const x = tf.tensor(randomData(4 * 7 * 7 * 8, 2), [4, 7, 7, 8]);
    const before = backend.numDataIds();
    const out = reduceSumOrMean(
      { inputs: { x }, backend, attrs: { axis: [0, 1, 2], keepDims: false } },
      'Sum',
    );
    expect(out.shape).toEqual([8]);
    expect(backend.numDataIds()).toBe(before + 1);
    backend.disposeData(out.dataId);
    x.dispose();
  });

  it('reduces integer tensors with the stock kernel', async () => {
    const run = () =>
      tf.sum(
        tf.tensor(
          [
            [1, 2, 3],
            [4, 5, 6],
          ],
          [2, 3],
          'int32',
        ),
        0,
      );
    await tf.setBackend('wasm');
    const out = tf.tidy(run);
    expect(out.dtype).toBe('int32');
    expect(Array.from(out.dataSync())).toEqual([5, 7, 9]);
    out.dispose();
  });

  it('does not leak tensors through the engine', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const x = randomData(4 * 7 * 7 * 16, 3);
    const tensors = tf.memory().numTensors;
    const dataIds = backend.numDataIds();
    tf.tidy(() =>
      tf.add(
        tf.sum(tf.tensor(x, [4, 7, 7, 16]), [0, 1, 2]),
        tf.moments(tf.tensor(x, [4, 7, 7, 16]), [0, 1, 2]).variance,
      ),
    ).dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(dataIds);
  });
});

describe('batch normalisation on wasm vs cpu', () => {
  it('matches the gradients of sum(batchNorm(x) * r) w.r.t. x, scale and shift', async () => {
    const shape = [4, 7, 7, 16];
    const x = randomData(size(shape), 4);
    const r = randomData(size(shape), 5);
    const gamma = randomData(16, 6);
    const beta = randomData(16, 7);
    const grads = (which: 0 | 1 | 2) => () => {
      const loss = (xt: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(xt, [0, 1, 2]);
        const normed = tf.mul(tf.sub(xt, mean), tf.rsqrt(tf.add(variance, 1e-5)));
        return tf.sum(tf.mul(tf.add(tf.mul(normed, g), b), tf.tensor(r, shape)));
      };
      return tf.grads(loss)([tf.tensor(x, shape), tf.tensor1d(gamma), tf.tensor1d(beta)])[which] as tf.Tensor;
    };
    for (const which of [0, 1, 2] as const) {
      expectClose(await runOn('wasm', grads(which)), await runOn('cpu', grads(which)), 1e-4);
    }
  });
});
