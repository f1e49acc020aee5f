import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { conv2D, conv2DConfig } from './conv2d.ts';
import { setGemmEnabled } from './gemm/index.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { expectClose, type ConvPad as Pad, randomData, runOn, type Shape4, size } from './test-support.ts';

interface Case {
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
}

const label = (c: Case): string =>
  `x ${c.x.join('x')} f ${c.filter.join('x')} s ${String(c.strides)} pad ${JSON.stringify(c.pad)}`;

const cases: Case[] = [
  // The DCGAN discriminator's layers (batch reduced) and the sub-pixel phases of its generator.
  { x: [4, 28, 28, 1], filter: [4, 4, 1, 64], strides: 2, pad: 'same' },
  { x: [4, 14, 14, 64], filter: [4, 4, 64, 128], strides: 2, pad: 'same' },
  {
    x: [4, 7, 7, 128],
    filter: [2, 2, 128, 64],
    strides: 1,
    pad: [
      [0, 0],
      [1, 0],
      [0, 1],
      [0, 0],
    ],
  },
  // Odd sizes, batch 1, channels 1 to 512, strides 1 to 3, all paddings.
  { x: [1, 5, 5, 3], filter: [3, 3, 3, 8], strides: 1, pad: 'same' },
  { x: [2, 9, 7, 5], filter: [3, 5, 5, 9], strides: [2, 1], pad: 'valid' },
  { x: [3, 8, 8, 16], filter: [1, 1, 16, 24], strides: 1, pad: 'valid' },
  { x: [2, 9, 9, 8], filter: [1, 1, 8, 16], strides: 2, pad: 'valid' },
  { x: [2, 4, 4, 512], filter: [3, 3, 512, 8], strides: 1, pad: 'same' },
  { x: [1, 3, 3, 64], filter: [3, 3, 64, 512], strides: 1, pad: 'same' },
  { x: [2, 11, 11, 4], filter: [5, 5, 4, 12], strides: 3, pad: 2 },
  // A window wholly in the padding.
  {
    x: [2, 5, 6, 16],
    filter: [3, 3, 16, 8],
    strides: 1,
    pad: [
      [0, 0],
      [3, 4],
      [0, 5],
      [0, 0],
    ],
  },
];

function conv(c: Case, x: Float32Array, f: Float32Array): tf.Tensor {
  return tf.conv2d(tf.tensor4d(x, c.x), tf.tensor4d(f, c.filter), c.strides, c.pad);
}

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
});

describe('Conv2D (wasm, im2col + Gantry product) vs cpu', () => {
  it('replaces the stock wasm kernel', () => {
    registerWasmTrainingKernels();
    expect(tf.getKernel('Conv2D', 'wasm').kernelFunc).toBe(conv2DConfig.kernelFunc);
  });

  it.each(cases.map((c) => [label(c), c] as const))('%s', async (_name, c) => {
    const x = randomData(size(c.x), 11);
    const f = randomData(size(c.filter), 12);
    const cpu = await runOn('cpu', () => conv(c, x, f));
    expectClose(await runOn('wasm', () => conv(c, x, f)), cpu);
    // Forced onto Gantry's product whatever the size, and split into chunks of output rows, as for a
    // convolution larger than the patch budget.
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const xt = tf.tensor4d(x, c.x);
    const ft = tf.tensor4d(f, c.filter);
    const depth = c.filter[0] * c.filter[1] * c.filter[2];
    const out = conv2D(
      {
        inputs: { x: xt, filter: ft },
        backend,
        attrs: { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: 1 },
      },
      { maxPatchElements: depth * 5, always: true },
    );
    expectClose(backend.readSync(out.dataId) as Float32Array, cpu);
    backend.disposeData(out.dataId);
    tf.dispose([xt, ft]);
  });

  it('leaves dilated convolutions and machines without the product to XNNPACK, with the same results', async () => {
    const c: Case = { x: [2, 9, 9, 8], filter: [3, 3, 8, 16], strides: 1, pad: 'same' };
    const x = randomData(size(c.x), 13);
    const f = randomData(size(c.filter), 14);
    const dilated = () => tf.conv2d(tf.tensor4d(x, c.x), tf.tensor4d(f, c.filter), 1, 'same', 'NHWC', 2);
    expectClose(await runOn('wasm', dilated), await runOn('cpu', dilated));
    const cpu = await runOn('cpu', () => conv(c, x, f));
    setGemmEnabled(false);
    try {
      expectClose(await runOn('wasm', () => conv(c, x, f)), cpu);
    } finally {
      setGemmEnabled(true);
    }
  });

  it('does not leak tensors, whole or in chunks', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const c = cases[1] as Case;
    const xt = tf.tensor4d(randomData(size(c.x), 1), c.x);
    const ft = tf.tensor4d(randomData(size(c.filter), 2), c.filter);
    const before = backend.numDataIds();
    for (const limit of [undefined, 4096]) {
      const out = conv2D(
        {
          inputs: { x: xt, filter: ft },
          backend,
          attrs: { strides: 2, pad: 'same', dataFormat: 'NHWC', dilations: 1 },
        },
        { maxPatchElements: limit },
      );
      expect(backend.numDataIds()).toBe(before + 1);
      backend.disposeData(out.dataId);
    }
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([xt, ft]);
  });
});
