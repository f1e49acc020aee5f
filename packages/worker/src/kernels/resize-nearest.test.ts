import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { resizeNearestNeighborConfig } from './resize-nearest.ts';
import { randomData, runOn, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/fma gemm/);
});

/** Bit-for-bit equality (a resize copies values; -0 and NaN included). */
function expectSame(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  let mismatches = 0;
  for (let i = 0; i < expected.length; i++) if (!Object.is(actual[i], expected[i])) mismatches++;
  expect(mismatches).toBe(0);
}

type Resize = { shape: number[]; size: [number, number]; alignCorners?: boolean; halfPixelCenters?: boolean };

const cases: Resize[] = [
  { shape: [4, 32, 32, 16], size: [64, 64] }, // ProGAN 64's upsample and the 2x2 mean's gradient
  { shape: [4, 16, 16, 32], size: [32, 32] },
  { shape: [4, 32, 32, 3], size: [64, 64] }, // toRGB's, float by float
  { shape: [2, 16, 16, 1], size: [32, 32] },
  { shape: [3, 5, 7, 12], size: [10, 14], halfPixelCenters: true },
  { shape: [1, 1, 1, 4], size: [2, 2] },
  // The stock kernel's: not an exact 2x, or corners aligned.
  { shape: [2, 5, 7, 4], size: [15, 21] },
  { shape: [2, 6, 6, 8], size: [12, 12], alignCorners: true },
  { shape: [2, 6, 6, 8], size: [9, 12] },
];

describe('ResizeNearestNeighbor (wasm) vs cpu', () => {
  it('replaces the stock wasm kernel, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('ResizeNearestNeighbor', 'wasm').kernelFunc).toBe(
      resizeNearestNeighborConfig.kernelFunc,
    );
  });

  it.each(cases)('$shape -> $size (align $alignCorners, half-pixel $halfPixelCenters)', async (c) => {
    const x = randomData(size(c.shape), 1);
    x[0] = -0;
    x[1] = Number.NaN;
    const run = () =>
      tf.image.resizeNearestNeighbor(
        tf.tensor4d(x, c.shape as never),
        c.size,
        c.alignCorners,
        c.halfPixelCenters,
      );
    expectSame(await runOn('wasm', run), await runOn('cpu', run));
  });

  it('takes int32 images to the stock kernel', async () => {
    const x = Int32Array.from({ length: 2 * 3 * 3 * 4 }, (_, i) => i - 20);
    const run = () => tf.image.resizeNearestNeighbor(tf.tensor4d(x, [2, 3, 3, 4], 'int32'), [6, 6]);
    expectSame(await runOn('wasm', run), await runOn('cpu', run));
  });

  it('leaks no wasm buffers', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor4d(randomData(2 * 8 * 8 * 16, 2), [2, 8, 8, 16]);
    const wasm = tf.backend() as BackendWasm;
    const buffers = wasm.numDataIds();
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.image.resizeNearestNeighbor(x, [16, 16]).dispose();
    expect(wasm.numDataIds()).toBe(buffers);
    expect(tf.memory().numTensors).toBe(tensors);
    x.dispose();
  });
});
