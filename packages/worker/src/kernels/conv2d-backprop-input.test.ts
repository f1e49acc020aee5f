import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import {
  type Conv2DBackpropInputOptions,
  conv2DBackpropInput,
  conv2DBackpropInputConfig,
} from './conv2d-backprop-input.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { expectClose, type ConvPad as Pad, randomData, runOn, type Shape4, size } from './test-support.ts';

/** A Conv2DBackpropInput call, described by the forward conv2d it differentiates: x * filter -> dy. */
interface Case {
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function dyShape(c: Case): Shape4 {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad, c.dimRoundingMode).outShape;
}

function attrsOf(c: Case): tf.NamedAttrMap {
  return {
    strides: c.strides,
    pad: c.pad,
    dataFormat: 'NHWC',
    inputShape: c.x,
    // Attribute maps cannot hold undefined; leave the key out when unset.
    ...(c.dimRoundingMode ? { dimRoundingMode: c.dimRoundingMode } : {}),
  };
}

/** Through the engine: whichever kernel is registered for the active backend. */
function backpropInput(c: Case, dy: Float32Array, filter: Float32Array): tf.Tensor {
  return tf
    .engine()
    .runKernel(
      'Conv2DBackpropInput',
      { dy: tf.tensor4d(dy, dyShape(c)), filter: tf.tensor4d(filter, c.filter) },
      attrsOf(c),
    ) as tf.Tensor;
}

/** Calls our wasm kernel directly with the given options; returns the values and frees everything. */
function direct(
  c: Case,
  dy: Float32Array,
  filter: Float32Array,
  options: Conv2DBackpropInputOptions,
): Float32Array {
  const backend = tf.backend() as BackendWasm;
  const dyt = tf.tensor4d(dy, dyShape(c));
  const ft = tf.tensor4d(filter, c.filter);
  const before = backend.numDataIds();
  const out = conv2DBackpropInput(
    { inputs: { dy: dyt, filter: ft }, backend, attrs: attrsOf(c) as never },
    options,
  );
  expect(out.shape).toEqual(c.x);
  expect(backend.numDataIds()).toBe(before + 1);
  const values = Float32Array.from(backend.readSync(out.dataId) as Float32Array);
  backend.disposeData(out.dataId);
  tf.dispose([dyt, ft]);
  return values;
}

const label = (c: Case): string =>
  `x ${c.x.join('x')} f ${c.filter.join('x')} s ${String(c.strides)} pad ${JSON.stringify(c.pad)}` +
  (c.dimRoundingMode ? ` ${c.dimRoundingMode}` : '');

const cases: Case[] = [
  // The DCGAN layers (batch reduced): D's input gradients and G's transposed convolutions.
  { x: [4, 14, 14, 64], filter: [4, 4, 64, 128], strides: 2, pad: 'same' },
  { x: [4, 28, 28, 1], filter: [4, 4, 1, 64], strides: 2, pad: 'same' },
  { x: [2, 28, 28, 3], filter: [5, 5, 3, 16], strides: 2, pad: 'same' },
  { x: [1, 7, 7, 16], filter: [3, 3, 16, 8], strides: 1, pad: 'same' },
  { x: [2, 7, 7, 2], filter: [4, 4, 2, 3], strides: 1, pad: 'same' },
  { x: [3, 9, 9, 17], filter: [3, 3, 17, 5], strides: 2, pad: 'valid' },
  { x: [2, 9, 9, 3], filter: [5, 5, 3, 4], strides: 1, pad: 'valid' },
  { x: [2, 14, 14, 32], filter: [5, 5, 32, 16], strides: 2, pad: 'same' },
  { x: [1, 9, 9, 1], filter: [5, 5, 1, 1], strides: 2, pad: 'same' },
  { x: [2, 7, 9, 3], filter: [3, 5, 3, 4], strides: [1, 2], pad: 'same' },
  { x: [2, 9, 9, 16], filter: [2, 2, 16, 3], strides: 3, pad: 'valid' },
  // Stride larger than the kernel: some output rows and columns get no taps at all.
  { x: [2, 9, 9, 16], filter: [2, 2, 16, 3], strides: 4, pad: 'same' },
  // 1x1s (ProGAN's fromRGB and toRGB), one product dy @ W^T; a bottom / right pad makes dy larger than dx.
  { x: [2, 16, 16, 3], filter: [1, 1, 3, 8], strides: 1, pad: 'same' },
  { x: [2, 8, 8, 16], filter: [1, 1, 16, 3], strides: 1, pad: 'valid' },
  { x: [3, 5, 7, 1], filter: [1, 1, 1, 16], strides: 1, pad: 'same' },
  {
    x: [2, 5, 5, 3],
    filter: [1, 1, 3, 8],
    strides: 1,
    pad: [
      [0, 0],
      [0, 2],
      [0, 1],
      [0, 0],
    ],
  },
  // Few input channels for many output ones (SRGAN D's first conv): the flipped conv on conv-shifted-output.
  { x: [2, 16, 16, 3], filter: [3, 3, 3, 32], strides: 1, pad: 'same' },
  { x: [1, 12, 10, 5], filter: [5, 5, 5, 16], strides: 1, pad: 'valid' },
  // Pads past K - 1 make the flipped conv's negative: they stay on GEMM + col2im (the grid would start early).
  { x: [1, 16, 16, 3], filter: [3, 3, 3, 32], strides: 1, pad: 3 },
  { x: [2, 16, 16, 3], filter: [3, 3, 3, 32], strides: 1, pad: 4 },
  {
    x: [2, 12, 12, 3],
    filter: [3, 3, 3, 16],
    strides: 1,
    pad: [
      [0, 0],
      [0, 4],
      [3, 0],
      [0, 0],
    ],
  },
  // Big channel counts at small spatial sizes.
  { x: [2, 4, 4, 512], filter: [3, 3, 512, 8], strides: 1, pad: 'same' },
  { x: [1, 3, 3, 64], filter: [3, 3, 64, 512], strides: 1, pad: 'same' },
  { x: [2, 4, 4, 256], filter: [4, 4, 256, 128], strides: 2, pad: 'same' },
  { x: [2, 3, 3, 1], filter: [4, 4, 1, 512], strides: 1, pad: 'same' },
  // Numeric and explicit paddings, including full (K - 1) and asymmetric ones.
  { x: [2, 6, 6, 3], filter: [3, 3, 3, 2], strides: 2, pad: 1 },
  { x: [2, 7, 7, 16], filter: [3, 3, 16, 2], strides: 1, pad: 2 },
  { x: [2, 7, 7, 2], filter: [4, 4, 2, 3], strides: 2, pad: 1, dimRoundingMode: 'ceil' },
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
  // Paddings of a kernel's size or more: whole dy rows and columns see only padding.
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
  {
    x: [2, 8, 8, 16],
    filter: [5, 5, 16, 3],
    strides: 3,
    pad: [
      [0, 0],
      [4, 3],
      [1, 4],
      [0, 0],
    ],
  },
];

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

describe('Conv2DBackpropInput (wasm) vs cpu', () => {
  it('replaces the stock wasm kernel, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    const kernel = tf.getKernel('Conv2DBackpropInput', 'wasm');
    expect(kernel.kernelFunc).toBe(conv2DBackpropInputConfig.kernelFunc);
  });

  it.each(cases.map((c) => [label(c), c] as const))('%s', async (_name, c) => {
    const dy = randomData(size(dyShape(c)), 1);
    const filter = randomData(size(c.filter), 2);
    const cpu = await runOn('cpu', () => backpropInput(c, dy, filter));
    expectClose(await runOn('wasm', () => backpropInput(c, dy, filter)), cpu);
    expectClose(direct(c, dy, filter, { algorithm: 'gemm' }), cpu);
    expectClose(direct(c, dy, filter, { algorithm: 'sub-pixel' }), cpu);
  });

  it('scatters chunk by chunk when the columns matrix exceeds the bound, without leaking', async () => {
    const c: Case = { x: [3, 9, 9, 4], filter: [5, 5, 4, 6], strides: 2, pad: 'same' };
    const dy = randomData(size(dyShape(c)), 3);
    const filter = randomData(size(c.filter), 4);
    const cpu = await runOn('cpu', () => backpropInput(c, dy, filter));
    await tf.setBackend('wasm');
    const taps = 5 * 5 * 4;
    // One dy position per chunk, 7 (chunks split image rows and images), and exactly one chunk.
    for (const limit of [1, taps * 7, taps * size(dyShape(c).slice(0, 3))]) {
      expectClose(direct(c, dy, filter, { algorithm: 'gemm', maxColumnElements: limit }), cpu);
    }
  });

  it('returns zeros for an empty batch', async () => {
    await tf.setBackend('wasm');
    const c: Case = { x: [0, 5, 5, 3], filter: [3, 3, 3, 2], strides: 1, pad: 'same' };
    expect(direct(c, new Float32Array(0), randomData(size(c.filter), 5), {})).toHaveLength(0);
  });

  it('does not leak tensors through the engine, with either algorithm', async () => {
    await tf.setBackend('wasm');
    // CI = 64 takes the sub-pixel path, CI = 3 the GEMM one.
    for (const c of [cases[0], cases[2]] as Case[]) {
      const dy = randomData(size(dyShape(c)), 6);
      const filter = randomData(size(c.filter), 7);
      const before = tf.memory().numTensors;
      const dataIdsBefore = (tf.backend() as BackendWasm).numDataIds();
      tf.tidy(() => backpropInput(c, dy, filter)).dispose();
      expect(tf.memory().numTensors).toBe(before);
      expect((tf.backend() as BackendWasm).numDataIds()).toBe(dataIdsBefore);
    }
  });
});

describe('ops that use Conv2DBackpropInput, on wasm vs cpu', () => {
  const transposeCases: { x: Shape4; filter: Shape4; out: Shape4; strides: number; pad: 'same' | 'valid' }[] =
    [
      { x: [4, 7, 7, 128], filter: [4, 4, 64, 128], out: [4, 14, 14, 64], strides: 2, pad: 'same' },
      { x: [4, 14, 14, 64], filter: [4, 4, 1, 64], out: [4, 28, 28, 1], strides: 2, pad: 'same' },
      { x: [2, 1, 1, 64], filter: [4, 4, 128, 64], out: [2, 4, 4, 128], strides: 1, pad: 'valid' },
      { x: [2, 4, 4, 8], filter: [3, 3, 3, 8], out: [2, 9, 9, 3], strides: 2, pad: 'valid' },
    ];
  it.each(
    transposeCases.map((c) => [`x ${c.x.join('x')} f ${c.filter.join('x')}`, c] as const),
  )('conv2dTranspose forward: %s', async (_n, c) => {
    const x = randomData(size(c.x), 8);
    const w = randomData(size(c.filter), 9);
    const run = () =>
      tf.conv2dTranspose(tf.tensor4d(x, c.x), tf.tensor4d(w, c.filter), c.out, c.strides, c.pad);
    expectClose(await runOn('wasm', run), await runOn('cpu', run));
  });

  const convCases: Case[] = [
    { x: [4, 28, 28, 1], filter: [4, 4, 1, 64], strides: 2, pad: 'same' },
    { x: [2, 14, 14, 64], filter: [4, 4, 64, 128], strides: 2, pad: 'same' },
    { x: [2, 9, 9, 3], filter: [3, 3, 3, 5], strides: 1, pad: 'valid' },
  ];
  it.each(convCases.map((c) => [label(c), c] as const))('conv2d d/dx: %s', async (_n, c) => {
    const x = randomData(size(c.x), 10);
    const w = randomData(size(c.filter), 11);
    const r = randomData(size(dyShape(c)), 12);
    const grad = () => {
      const wt = tf.tensor4d(w, c.filter);
      const rt = tf.tensor4d(r, dyShape(c));
      const loss = (xt: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(xt as tf.Tensor4D, wt, c.strides, c.pad as 'same' | 'valid'), rt));
      return tf.grad(loss)(tf.tensor4d(x, c.x));
    };
    expectClose(await runOn('wasm', grad), await runOn('cpu', grad));
  });

  it('matches a finite-difference derivative of sum(conv2d(x, w) * r) w.r.t. x', async () => {
    const c: Case = { x: [2, 5, 5, 2], filter: [3, 3, 2, 3], strides: 2, pad: 'same' };
    const x = randomData(size(c.x), 13);
    const w = randomData(size(c.filter), 14);
    const r = randomData(size(dyShape(c)), 15);
    await tf.setBackend('wasm');
    const loss = (xt: tf.Tensor): tf.Scalar =>
      tf.sum(
        tf.mul(
          tf.conv2d(xt as tf.Tensor4D, tf.tensor4d(w, c.filter), c.strides, 'same'),
          tf.tensor4d(r, dyShape(c)),
        ),
      );
    const analytic = await runOn('wasm', () => tf.grad(loss)(tf.tensor4d(x, c.x)));
    const eps = 1e-2;
    // Corners and edges touch the padding; the others are interior pixels of either channel.
    for (const i of [0, 1, 9, 24, 31, 48, size(c.x) - 1]) {
      const at = (delta: number): number => {
        const xp = Float32Array.from(x);
        xp[i] = (xp[i] as number) + delta;
        return tf.tidy(() => loss(tf.tensor4d(xp, c.x)).dataSync()[0] as number);
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      expect(Math.abs(numeric - (analytic[i] as number))).toBeLessThan(2e-3 * (1 + Math.abs(numeric)));
    }
  });
});
