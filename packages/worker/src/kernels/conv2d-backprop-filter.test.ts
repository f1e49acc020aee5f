import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { conv2DBackpropFilter } from './conv2d-backprop-filter.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { expectClose, type ConvPad as Pad, randomData, runOn, type Shape4, size } from './test-support.ts';

interface Case {
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function outShape(c: Case): Shape4 {
  const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad, c.dimRoundingMode);
  return info.outShape;
}

function backpropFilter(c: Case, x: Float32Array, dy: Float32Array): tf.Tensor {
  return tf.engine().runKernel(
    'Conv2DBackpropFilter',
    { x: tf.tensor4d(x, c.x), dy: tf.tensor4d(dy, outShape(c)) },
    {
      strides: c.strides,
      pad: c.pad,
      dataFormat: 'NHWC',
      filterShape: c.filter,
      // Attribute maps cannot hold undefined; leave the key out when unset.
      ...(c.dimRoundingMode ? { dimRoundingMode: c.dimRoundingMode } : {}),
    },
  ) as tf.Tensor;
}

const label = (c: Case): string =>
  `x ${c.x.join('x')} f ${c.filter.join('x')} s ${String(c.strides)} pad ${JSON.stringify(c.pad)}` +
  (c.dimRoundingMode ? ` ${c.dimRoundingMode}` : '');

const cases: Case[] = [
  { x: [1, 5, 5, 1], filter: [3, 3, 1, 1], strides: 1, pad: 'same' },
  { x: [1, 6, 6, 1], filter: [1, 1, 1, 2], strides: 1, pad: 'valid' },
  // ProGAN's fromRGB and toRGB 1x1s (batch reduced).
  { x: [2, 16, 16, 3], filter: [1, 1, 3, 8], strides: 1, pad: 'same' },
  { x: [2, 16, 16, 8], filter: [1, 1, 8, 3], strides: 1, pad: 'valid' },
  // 1x1s with 1-4 channels on one side, in registers (pointwiseOuter), both orientations; 4 x 16 does not fit.
  { x: [2, 16, 16, 1], filter: [1, 1, 1, 16], strides: 1, pad: 'same' },
  { x: [2, 8, 8, 16], filter: [1, 1, 16, 1], strides: 1, pad: 'same' },
  { x: [2, 8, 8, 4], filter: [1, 1, 4, 12], strides: 1, pad: 'same' },
  { x: [3, 5, 5, 2], filter: [1, 1, 2, 8], strides: 1, pad: 'valid' },
  { x: [2, 8, 8, 16], filter: [1, 1, 16, 4], strides: 1, pad: 'same' },
  { x: [2, 7, 7, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'valid' },
  { x: [3, 9, 9, 2], filter: [5, 5, 2, 3], strides: 2, pad: 'same' },
  { x: [2, 9, 9, 3], filter: [7, 7, 3, 2], strides: 2, pad: 'valid' },
  { x: [2, 9, 9, 3], filter: [7, 7, 3, 2], strides: 1, pad: 'same' },
  { x: [2, 8, 8, 4], filter: [4, 4, 4, 5], strides: 2, pad: 'same' },
  { x: [1, 7, 7, 8], filter: [4, 4, 8, 6], strides: 1, pad: 'same' },
  { x: [2, 7, 9, 3], filter: [3, 5, 3, 4], strides: [1, 2], pad: 'same' },
  { x: [4, 14, 14, 16], filter: [5, 5, 16, 32], strides: 2, pad: 'same' },
  { x: [2, 28, 28, 1], filter: [5, 5, 1, 8], strides: 2, pad: 'same' },
  { x: [2, 4, 4, 512], filter: [3, 3, 512, 8], strides: 1, pad: 'same' },
  { x: [1, 3, 3, 64], filter: [3, 3, 64, 512], strides: 1, pad: 'same' },
  { x: [2, 4, 4, 256], filter: [4, 4, 256, 128], strides: 2, pad: 'same' },
  {
    x: [2, 6, 7, 3],
    filter: [3, 3, 3, 2],
    strides: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
  { x: [2, 6, 6, 3], filter: [3, 3, 3, 2], strides: 2, pad: 1 },
  { x: [2, 7, 7, 2], filter: [4, 4, 2, 3], strides: 2, pad: 1, dimRoundingMode: 'ceil' },
  // Stride larger than the kernel; paddings of a kernel's size or more (windows wholly in the padding).
  { x: [2, 9, 9, 16], filter: [2, 2, 16, 3], strides: 4, pad: 'same' },
  {
    x: [2, 5, 6, 16],
    filter: [3, 3, 16, 2],
    strides: 1,
    pad: [
      [0, 0],
      [3, 4],
      [0, 5],
      [0, 0],
    ],
  },
  {
    x: [2, 5, 6, 2],
    filter: [3, 2, 2, 3],
    strides: 2,
    pad: [
      [0, 0],
      [5, 1],
      [2, 4],
      [0, 0],
    ],
  },
];

/**
 * tfjs-core alone registers no gradients (since tfjs 3 that is left to `@tensorflow/tfjs` and
 * tfjs-layers), and its ESM `register_all_gradients` does not load in plain Node. Register the four
 * these tests need from tfjs-core's ESM sources, which vitest transforms; they share the engine and
 * registries with the CommonJS build Node loads, through globalThis.
 */
async function registerTestGradients(): Promise<void> {
  const configs = [
    (await import('@tensorflow/tfjs-core/dist/gradients/Sum_grad.js')).sumGradConfig,
    (await import('@tensorflow/tfjs-core/dist/gradients/Multiply_grad.js')).multiplyGradConfig,
    (await import('@tensorflow/tfjs-core/dist/gradients/Conv2D_grad.js')).conv2DGradConfig,
    (await import('@tensorflow/tfjs-core/dist/gradients/Conv2DBackpropInput_grad.js'))
      .conv2DBackpropInputGradConfig,
  ];
  for (const config of configs) {
    // getGradient is typed as non-null but returns undefined for unknown kernels.
    if ((tf.getGradient(config.kernelName) as tf.GradConfig | undefined) === undefined) {
      tf.registerGradient(config);
    }
  }
}

beforeAll(async () => {
  await registerTestGradients();
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

describe('Conv2DBackpropFilter (wasm) vs cpu', () => {
  it('is registered, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
  });

  it.each(cases.map((c) => [label(c), c] as const))('%s', async (_name, c) => {
    const x = randomData(size(c.x), 1);
    const dy = randomData(size(outShape(c)), 2);
    const wasm = await runOn('wasm', () => backpropFilter(c, x, dy));
    const cpu = await runOn('cpu', () => backpropFilter(c, x, dy));
    expectClose(wasm, cpu);
  });

  // 6 output channels: BatchMatMul's chunks summed in JS; 12: Gantry's product adding into dW.
  it.each([6, 12])('accumulates chunks of patches, without leaking (%i output channels)', async (outC) => {
    const c: Case = { x: [3, 9, 9, 4], filter: [5, 5, 4, outC], strides: 2, pad: 'same' };
    const x = randomData(size(c.x), 3);
    const dy = randomData(size(outShape(c)), 4);
    const cpu = await runOn('cpu', () => backpropFilter(c, x, dy));
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const xt = tf.tensor4d(x, c.x);
    const dyt = tf.tensor4d(dy, outShape(c));
    const rows = 5 * 5 * 4;
    // 1 column per chunk, 7 (splits inside output rows), and exactly one chunk.
    for (const limit of [1, rows * 7, rows * size(outShape(c))]) {
      const before = backend.numDataIds();
      const out = conv2DBackpropFilter(
        {
          inputs: { x: xt, dy: dyt },
          backend,
          attrs: { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.filter },
        },
        limit,
      );
      expect(out.shape).toEqual(c.filter);
      expect(backend.numDataIds()).toBe(before + 1);
      expectClose(backend.readSync(out.dataId) as Float32Array, cpu);
      backend.disposeData(out.dataId);
      expect(backend.numDataIds()).toBe(before);
    }
    tf.dispose([xt, dyt]);
  });

  it('does not leak tensors through the engine', async () => {
    const c = cases[3] as Case;
    const x = randomData(size(c.x), 5);
    const dy = randomData(size(outShape(c)), 6);
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const dataIdsBefore = (tf.backend() as BackendWasm).numDataIds();
    tf.tidy(() => backpropFilter(c, x, dy)).dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect((tf.backend() as BackendWasm).numDataIds()).toBe(dataIdsBefore);
  });
});

describe('gradients on wasm vs cpu', () => {
  const convCases: Case[] = [
    { x: [4, 28, 28, 1], filter: [5, 5, 1, 16], strides: 2, pad: 'same' },
    { x: [2, 14, 14, 32], filter: [5, 5, 32, 64], strides: 2, pad: 'same' },
    { x: [2, 9, 9, 3], filter: [3, 3, 3, 5], strides: 1, pad: 'valid' },
    { x: [2, 4, 4, 512], filter: [4, 4, 512, 1], strides: 1, pad: 'valid' },
  ];
  it.each(convCases.map((c) => [label(c), c] as const))('conv2d, d/dx and d/dfilter: %s', async (_n, c) => {
    const x = randomData(size(c.x), 7);
    const w = randomData(size(c.filter), 8);
    const r = randomData(size(outShape(c)), 9);
    const grads = (which: 0 | 1) => () => {
      const rt = tf.tensor4d(r, outShape(c));
      const loss = (xt: tf.Tensor, wt: tf.Tensor) =>
        tf.sum(
          tf.mul(tf.conv2d(xt as tf.Tensor4D, wt as tf.Tensor4D, c.strides, c.pad as 'same' | 'valid'), rt),
        );
      const g = tf.grads(loss)([tf.tensor4d(x, c.x), tf.tensor4d(w, c.filter)]);
      return g[which] as tf.Tensor;
    };
    expectClose(await runOn('wasm', grads(1)), await runOn('cpu', grads(1)));
    expectClose(await runOn('wasm', grads(0)), await runOn('cpu', grads(0)));
  });

  const transposeCases: { x: Shape4; filter: Shape4; out: Shape4; strides: number; pad: 'same' | 'valid' }[] =
    [
      { x: [2, 7, 7, 64], filter: [5, 5, 32, 64], out: [2, 14, 14, 32], strides: 2, pad: 'same' },
      { x: [4, 14, 14, 16], filter: [5, 5, 1, 16], out: [4, 28, 28, 1], strides: 2, pad: 'same' },
      { x: [2, 1, 1, 64], filter: [4, 4, 128, 64], out: [2, 4, 4, 128], strides: 1, pad: 'valid' },
      { x: [2, 4, 4, 8], filter: [4, 4, 3, 8], out: [2, 8, 8, 3], strides: 2, pad: 'same' },
    ];
  it.each(
    transposeCases.map((c) => [`x ${c.x.join('x')} f ${c.filter.join('x')}`, c] as const),
  )('conv2dTranspose d/dfilter: %s', async (_n, c) => {
    const x = randomData(size(c.x), 10);
    const w = randomData(size(c.filter), 11);
    const r = randomData(size(c.out), 12);
    const grad = () => {
      const xt = tf.tensor4d(x, c.x);
      const rt = tf.tensor4d(r, c.out);
      const loss = (wt: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2dTranspose(xt, wt as tf.Tensor4D, c.out, c.strides, c.pad), rt));
      return tf.grad(loss)(tf.tensor4d(w, c.filter));
    };
    expectClose(await runOn('wasm', grad), await runOn('cpu', grad));
  });

  it('matches a finite-difference derivative of sum(conv2d(x, w) * r)', async () => {
    const c: Case = { x: [2, 5, 5, 2], filter: [3, 3, 2, 3], strides: 2, pad: 'same' };
    const x = randomData(size(c.x), 13);
    const w = randomData(size(c.filter), 14);
    const r = randomData(size(outShape(c)), 15);
    await tf.setBackend('wasm');
    const loss = (wt: tf.Tensor): tf.Scalar =>
      tf.sum(
        tf.mul(
          tf.conv2d(tf.tensor4d(x, c.x), wt as tf.Tensor4D, c.strides, 'same'),
          tf.tensor4d(r, outShape(c)),
        ),
      );
    const analytic = await runOn('wasm', () => tf.grad(loss)(tf.tensor4d(w, c.filter)));
    const eps = 1e-2;
    // Corners touch the padding; the others are interior taps of different channels.
    for (const i of [0, 5, 17, 26, 40, size(c.filter) - 1]) {
      const at = (delta: number): number => {
        const wp = Float32Array.from(w);
        wp[i] = (wp[i] as number) + delta;
        return tf.tidy(() => loss(tf.tensor4d(wp, c.filter)).dataSync()[0] as number);
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      expect(Math.abs(numeric - (analytic[i] as number))).toBeLessThan(2e-3 * (1 + Math.abs(numeric)));
    }
  });
});

describe('initBackend', () => {
  it('names the tfjs-node packages when the tensorflow backend is unavailable', async () => {
    try {
      const info = await initBackend('tensorflow');
      expect(info.backend).toBe('tensorflow');
    } catch (err) {
      expect(String(err)).toMatch(/@tensorflow\/tfjs-node-gpu or @tensorflow\/tfjs-node/);
    } finally {
      await tf.setBackend('wasm');
    }
  });
});
