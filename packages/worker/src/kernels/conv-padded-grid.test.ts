import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import '../gradients.ts';
import { initBackend } from '../backend.ts';
import { backwardConvGeometry } from './conv-geometry.ts';
import { suitsPaddedGrid } from './conv-padded-grid.ts';
import { expectClose, type ConvPad as Pad, randomData, runOn, type Shape4, size } from './test-support.ts';

/**
 * The stride-1 paths: the filter gradient on a padded grid (few output channels, conv-padded-grid.ts)
 * and the input gradient as a forward conv of the flipped filter (conv2d.ts, stride1InputGradient),
 * against the cpu backend on SRGAN's and ProGAN's shapes (batch cut to 2) and odd ones.
 */
interface Case {
  x: Shape4;
  filter: Shape4;
  pad: Pad;
}

const outShape = (c: Case): Shape4 => tf.backend_util.computeConv2DInfo(c.x, c.filter, 1, 1, c.pad).outShape;

const label = (c: Case): string => `x ${c.x.join('x')} f ${c.filter.join('x')} pad ${JSON.stringify(c.pad)}`;

const attrs = (c: Case) => ({ strides: 1, pad: c.pad, dataFormat: 'NHWC' });

const backpropFilter = (c: Case, x: Float32Array, dy: Float32Array) => (): tf.Tensor =>
  tf
    .engine()
    .runKernel(
      'Conv2DBackpropFilter',
      { x: tf.tensor4d(x, c.x), dy: tf.tensor4d(dy, outShape(c)) },
      { ...attrs(c), filterShape: c.filter },
    ) as tf.Tensor;

const backpropInput = (c: Case, dy: Float32Array, w: Float32Array) => (): tf.Tensor =>
  tf
    .engine()
    .runKernel(
      'Conv2DBackpropInput',
      { dy: tf.tensor4d(dy, outShape(c)), filter: tf.tensor4d(w, c.filter) },
      { ...attrs(c), inputShape: c.x },
    ) as tf.Tensor;

const explicit: Pad = [
  [0, 0],
  [2, 0],
  [1, 3],
  [0, 0],
];

/** Filter gradients that take the padded grid: fewer than 8 output channels, or large thin images. */
const filterCases: Case[] = [
  { x: [2, 20, 20, 32], filter: [9, 9, 32, 3], pad: 'same' }, // SRGAN G's last conv, on a smaller image
  { x: [2, 32, 32, 16], filter: [1, 1, 16, 3], pad: 'valid' }, // ProGAN's toRGB
  { x: [3, 13, 11, 5], filter: [3, 3, 5, 2], pad: 'valid' },
  { x: [2, 9, 7, 8], filter: [5, 3, 8, 7], pad: 'same' },
  { x: [2, 6, 7, 4], filter: [3, 3, 4, 1], pad: explicit },
  { x: [1, 4, 4, 16], filter: [4, 4, 16, 3], pad: 'same' },
  { x: [1, 32, 32, 8], filter: [3, 3, 8, 16], pad: 'same' }, // ProGAN's thin layers, the wide orientation
  { x: [1, 32, 32, 16], filter: [3, 3, 16, 16], pad: 'same' },
  { x: [1, 40, 37, 8], filter: [3, 3, 8, 12], pad: 'valid' },
  { x: [1, 34, 33, 9], filter: [3, 3, 9, 8], pad: explicit },
];

/** Input gradients that take the forward conv of the flipped filter (dy no wider than dx, dx >= 8). */
const inputCases: Case[] = [
  { x: [1, 64, 64, 32], filter: [9, 9, 32, 3], pad: 'same' }, // SRGAN G's last conv
  { x: [2, 16, 16, 32], filter: [3, 3, 32, 32], pad: 'same' }, // SRGAN's residual blocks
  { x: [1, 64, 64, 8], filter: [3, 3, 8, 8], pad: 'same' }, // ProGAN at 64 px
  { x: [2, 32, 32, 16], filter: [3, 3, 16, 16], pad: 'valid' },
  { x: [1, 11, 13, 9], filter: [5, 5, 9, 4], pad: 'same' },
  { x: [2, 7, 6, 12], filter: [3, 2, 12, 5], pad: explicit },
];

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/fma gemm/);
});

describe('stride-1 filter gradient on a padded grid vs cpu', () => {
  it('takes the cases below and leaves wide or strided ones alone', () => {
    const geometry = (c: Case, strides = 1) =>
      backwardConvGeometry(
        't',
        c.x,
        c.filter,
        { strides, pad: c.pad },
        tf.backend_util.computeConv2DInfo(c.x, c.filter, strides, 1, c.pad).outShape,
      );
    for (const c of filterCases) expect(suitsPaddedGrid(geometry(c)), label(c)).toBe(true);
    expect(suitsPaddedGrid(geometry({ x: [2, 16, 16, 32], filter: [3, 3, 32, 32], pad: 'same' }))).toBe(
      false,
    );
    expect(suitsPaddedGrid(geometry(filterCases[0] as Case, 2))).toBe(false);
  });

  it.each(filterCases.map((c) => [label(c), c] as const))('%s', async (_n, c) => {
    const x = randomData(size(c.x), 1);
    const dy = randomData(size(outShape(c)), 2);
    expectClose(await runOn('wasm', backpropFilter(c, x, dy)), await runOn('cpu', backpropFilter(c, x, dy)));
  });
});

describe('stride-1 input gradient as a forward conv vs cpu', () => {
  it.each(inputCases.map((c) => [label(c), c] as const))('%s', async (_n, c) => {
    const dy = randomData(size(outShape(c)), 3);
    const w = randomData(size(c.filter), 4);
    expectClose(await runOn('wasm', backpropInput(c, dy, w)), await runOn('cpu', backpropInput(c, dy, w)));
  });

  it('gradients of sum(conv2d(x, w) * r) through both paths match cpu, without leaking', async () => {
    const c: Case = { x: [2, 20, 20, 16], filter: [5, 5, 16, 3], pad: 'same' };
    const x = randomData(size(c.x), 5);
    const w = randomData(size(c.filter), 6);
    const r = randomData(size(outShape(c)), 7);
    const grads = (which: 0 | 1) => () => {
      const loss = (xt: tf.Tensor, wt: tf.Tensor) =>
        tf.sum(
          tf.mul(tf.conv2d(xt as tf.Tensor4D, wt as tf.Tensor4D, 1, 'same'), tf.tensor4d(r, outShape(c))),
        );
      return tf.grads(loss)([tf.tensor4d(x, c.x), tf.tensor4d(w, c.filter)])[which] as tf.Tensor;
    };
    for (const which of [0, 1] as const) {
      const cpu = await runOn('cpu', grads(which));
      await tf.setBackend('wasm');
      const backend = tf.backend() as BackendWasm;
      const tensors = tf.memory().numTensors;
      const dataIds = backend.numDataIds();
      const wasm = await runOn('wasm', grads(which));
      expect(tf.memory().numTensors).toBe(tensors);
      expect(backend.numDataIds()).toBe(dataIds);
      expectClose(wasm, cpu);
    }
  });
});
