import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { addConfig, binaryBroadcastReady, broadcastPattern, multiplyConfig } from './binary-broadcast.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { randomData, runOn, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
  await binaryBroadcastReady();
});

/** Random data with NaN, infinities, signed zeros, subnormals and huge values sprinkled in. */
function specialData(n: number, seed: number): Float32Array {
  const x = randomData(n, seed);
  const special = [Number.NaN, Infinity, -Infinity, 0, -0, 1e-40, -3e-39, 3e38, -3e38, 1e-20];
  for (let i = seed % 7; i < n; i += 11) x[i] = special[(i + seed) % special.length] as number;
  return x;
}

/** Equal as float32 values, NaN to NaN and -0 to -0. */
function expectIdentical(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  let bad = -1;
  for (let i = 0; i < expected.length && bad < 0; i++) {
    if (!Object.is(actual[i], expected[i])) bad = i;
  }
  expect(bad, `index ${bad}: ${actual[bad]} vs ${expected[bad]}`).toBe(-1);
}

// [a, b, the path ours takes] at small batch: Gantry's bias adds, pixel norms, scalar scales, WGAN-GP's
// per-sample interpolation, and odd sizes (lengths and channel counts that are not multiples of 4).
const CASES: [number[], number[], string][] = [
  [[2, 64, 64, 8], [8], 'period'],
  [[2, 64, 64, 3], [3], 'period'],
  [[2, 8, 8, 64], [64], 'period'],
  [[2, 5, 7, 3], [3], 'period'],
  [[3], [2, 5, 7, 3], 'period'],
  [[2, 4, 4, 6], [4, 4, 6], 'period'],
  [[2, 3, 3, 7], [1, 3, 3, 7], 'period'],
  [[2, 32, 32, 16], [2, 32, 32, 1], 'rows'],
  [[2, 16, 16, 1], [2, 16, 16, 32], 'rows'],
  [[2, 9, 9, 5], [2, 9, 9, 1], 'rows'],
  [[2, 9, 9, 2], [2, 9, 9, 1], 'rows'],
  [[2, 3, 3, 7], [2, 1, 1, 1], 'rows'],
  [[2, 1, 1, 1], [2, 4, 4, 8], 'rows'],
  [[2, 32, 32, 16], [], 'scalar'],
  [[], [2, 13, 3], 'scalar'],
  [[3, 3, 64, 65], [1, 1, 1, 1], 'scalar'],
  [[5], [1], 'scalar'],
  [[2, 16, 16, 32], [2, 16, 16, 32], 'same'],
  [[3, 5, 7], [3, 5, 7], 'same'],
  [[1, 6], [6], 'same'],
  [[3], [3], 'same'],
  [[1], [1], 'same'],
  [[2, 3, 4], [3, 1], 'other'],
  [[2, 1, 3], [1, 4, 3], 'other'],
];

describe('Add and Multiply (wasm) vs cpu', () => {
  it('replace the stock wasm kernels, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('Add', 'wasm').kernelFunc).toBe(addConfig.kernelFunc);
    expect(tf.getKernel('Multiply', 'wasm').kernelFunc).toBe(multiplyConfig.kernelFunc);
  });

  it.each(CASES)('%j op %j (%s): bit for bit', async (aShape, bShape, path) => {
    const out = tf.broadcast_util.assertAndGetBroadcastShape(aShape, bShape);
    const [full, small] = size(aShape) === size(out) ? [aShape, bShape] : [bShape, aShape];
    expect(size(full) === size(out) ? broadcastPattern(small, out).kind : 'other').toBe(path);
    const a = specialData(size(aShape), 3 + aShape.length);
    const b = specialData(size(bShape), 5 + bShape.length);
    for (const op of [tf.add, tf.mul]) {
      const run = () => op(tf.tensor(a, aShape), tf.tensor(b, bShape));
      const cpu = await runOn('cpu', run);
      const ours = await runOn('wasm', run);
      expectIdentical(ours, cpu);
    }
  });

  it('leaves int32 to the stock kernels', async () => {
    const run = () => tf.add(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([4], [1], 'int32'));
    await tf.setBackend('wasm');
    const t = tf.tidy(run);
    expect(t.dtype).toBe('int32');
    expect(Array.from(t.dataSync())).toEqual([5, 6, 7]);
    t.dispose();
  });

  it('leaks no tensors or buffers (the tiled period is freed)', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const x = tf.tensor(randomData(2 * 5 * 5 * 3, 1), [2, 5, 5, 3]);
    const tensors = tf.memory().numTensors;
    const ids = backend.numDataIds();
    for (const [aShape, bShape] of CASES) {
      tf.tidy(() => {
        tf.add(tf.ones(aShape), tf.ones(bShape)).dataSync();
        tf.mul(tf.ones(aShape), tf.ones(bShape)).dataSync();
      });
    }
    tf.tidy(() => tf.add(x, tf.ones([3])).dataSync());
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(ids);
    x.dispose();
  });

  it('gives the cpu gradients through broadcast products and sums', async () => {
    const shapes: [number[], number[]][] = [
      [[2, 6, 6, 5], [5]],
      [
        [2, 6, 6, 5],
        [2, 6, 6, 1],
      ],
      [[2, 6, 6, 5], []],
      [
        [2, 6, 6, 5],
        [2, 1, 1, 1],
      ],
    ];
    for (const [aShape, bShape] of shapes) {
      const a = randomData(size(aShape), 7);
      const b = randomData(size(bShape), 9);
      const grads = (backend: 'cpu' | 'wasm') =>
        Promise.all(
          [0, 1].map((which) =>
            runOn(backend, () => {
              const f = (x: tf.Tensor, y: tf.Tensor) => tf.add(tf.mul(x, y), y).square().sum();
              return tf.grads(f)([tf.tensor(a, aShape), tf.tensor(b, bShape)])[which] as tf.Tensor;
            }),
          ),
        );
      const [cpu, ours] = [await grads('cpu'), await grads('wasm')];
      for (const k of [0, 1]) {
        const c = cpu[k] as Float32Array;
        const o = ours[k] as Float32Array;
        // The sums of the broadcast gradients are reduced in different orders on the two backends.
        for (let i = 0; i < c.length; i++) expect(o[i]).toBeCloseTo(c[i] as number, 3);
      }
    }
  });
});
