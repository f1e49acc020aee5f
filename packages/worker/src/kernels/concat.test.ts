import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { concatConfig } from './concat.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { randomData, runOn, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

/** Concat of tensors of these shapes (seeded values) along axis, on both backends: equal, not just close. */
async function expectSameAsCpu(shapes: number[][], axis: number, dtype: 'float32' | 'int32' = 'float32') {
  const data = shapes.map((s, i) => randomData(size(s), 20 + i));
  const run = () =>
    tf.concat(
      data.map((d, i) =>
        tf.tensor(dtype === 'int32' ? Array.from(d, (v) => Math.round(v * 100)) : d, shapes[i], dtype),
      ),
      axis,
    );
  const ours = await runOn('wasm', run);
  const cpu = await runOn('cpu', run);
  expect(ours.length).toBe(cpu.length);
  expect(Array.from(ours)).toEqual(Array.from(cpu));
}

describe('Concat (wasm) vs cpu', () => {
  it('replaces the stock wasm kernel, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('Concat', 'wasm').kernelFunc).toBe(concatConfig.kernelFunc);
  });

  it.each([
    // pix2pix D's input and target on the channel axis.
    [
      [
        [8, 64, 64, 3],
        [8, 64, 64, 3],
      ],
      -1,
    ],
    [
      [
        [8, 64, 64, 3],
        [8, 64, 64, 3],
      ],
      3,
    ],
    // U-Net skips: long runs (the stock path).
    [
      [
        [8, 32, 32, 32],
        [8, 32, 32, 32],
      ],
      3,
    ],
    // mixed short and long runs, three inputs, a middle axis
    [
      [
        [2, 3, 5],
        [2, 40, 5],
        [2, 1, 5],
      ],
      1,
    ],
    [
      [
        [4, 2],
        [4, 7],
        [4, 33],
      ],
      1,
    ],
    [
      [
        [3, 4],
        [5, 4],
      ],
      0,
    ],
  ])('%j along axis %s', async (shapes, axis) => {
    await expectSameAsCpu(shapes as number[][], axis as number);
  });

  it('int32 and empty inputs go to the stock kernel', async () => {
    await expectSameAsCpu(
      [
        [2, 3, 2],
        [2, 3, 1],
      ],
      2,
      'int32',
    );
    await expectSameAsCpu(
      [
        [2, 0, 2],
        [2, 3, 2],
      ],
      1,
    );
  });

  it('matches the gradient through a channel concat', async () => {
    const [a, b, r] = [
      randomData(2 * 4 * 4 * 3, 1),
      randomData(2 * 4 * 4 * 3, 2),
      randomData(2 * 4 * 4 * 6, 3),
    ];
    const grads = () => {
      const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) =>
        tf.sum(tf.mul(tf.concat([x, y], 3), tf.tensor(r, [2, 4, 4, 6]))),
      )([tf.tensor(a, [2, 4, 4, 3]), tf.tensor(b, [2, 4, 4, 3])]);
      return tf.concat([tf.reshape(ga as tf.Tensor, [-1]), tf.reshape(gb as tf.Tensor, [-1])]);
    };
    expect(Array.from(await runOn('wasm', grads))).toEqual(Array.from(await runOn('cpu', grads)));
  });

  it('does not leak tensors through the engine', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const x = tf.tensor(randomData(2 * 5 * 3, 4), [2, 5, 3]);
    const tensors = tf.memory().numTensors;
    const ids = backend.numDataIds();
    tf.tidy(() => tf.concat([x, x], 2)).dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(ids);
    x.dispose();
  });
});
