import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { type ConvGeometry, convGeometry } from './conv-geometry.ts';
import { shiftedOutputConv, suitsShiftedOutput } from './conv-shifted-output.ts';
import { type Gemm, gemmFor } from './gemm/index.ts';
import { expectClose, type ConvPad as Pad, randomData, runOn, type Shape4, size } from './test-support.ts';

/**
 * The forward stride-1 convolution with the kernel columns on the product's output side
 * (conv-shifted-output.ts), called directly, against tfjs's cpu conv2d: SRGAN G's last conv (batch cut
 * to 2), odd sizes, 'valid', 'same' and explicit padding, 1, 3 and 7 output channels, chunks of output
 * rows that do and do not divide the height (with `always`: small kernels too, which it declines by
 * default).
 */
interface Case {
  x: Shape4;
  filter: Shape4;
  pad: Pad;
  chunkRows?: number;
}

const explicit: Pad = [
  [0, 0],
  [2, 0],
  [1, 3],
  [0, 0],
];

const cases: Case[] = [
  { x: [2, 64, 64, 32], filter: [9, 9, 32, 3], pad: 'same' }, // SRGAN G's last conv
  { x: [1, 20, 20, 64], filter: [9, 9, 64, 3], pad: 'same', chunkRows: 3 }, // the paper's 64 filters
  { x: [2, 13, 11, 8], filter: [3, 3, 8, 1], pad: 'valid' },
  { x: [1, 9, 7, 9], filter: [5, 3, 9, 7], pad: 'same', chunkRows: 2 },
  { x: [2, 6, 7, 12], filter: [3, 3, 12, 3], pad: explicit },
  {
    x: [2, 7, 9, 8],
    filter: [5, 5, 8, 4],
    pad: [
      [0, 0],
      [0, 3],
      [4, 1],
      [0, 0],
    ],
    chunkRows: 4,
  },
  { x: [1, 17, 5, 33], filter: [4, 2, 33, 5], pad: 'valid', chunkRows: 100 },
  { x: [3, 5, 6, 16], filter: [5, 5, 16, 2], pad: 'same', chunkRows: 1 },
  { x: [1, 3, 3, 8], filter: [1, 3, 8, 3], pad: 'same' },
  // Outputs of a pixel or two: the reduction's vector stores must not run past y.
  { x: [1, 5, 5, 8], filter: [5, 5, 8, 1], pad: 'valid' },
  { x: [1, 3, 4, 8], filter: [3, 3, 8, 2], pad: 'valid' },
  { x: [2, 2, 3, 8], filter: [2, 2, 8, 5], pad: 'valid' },
  { x: [1, 4, 4, 10], filter: [4, 3, 10, 7], pad: 'valid' },
  { x: [2, 6, 5, 3], filter: [3, 3, 3, 8], pad: 'same' }, // 8 channels: both vectors whole; CI < 4
];

const label = (c: Case): string =>
  `x ${c.x.join('x')} f ${c.filter.join('x')} pad ${JSON.stringify(c.pad)}${c.chunkRows ? ` chunk ${c.chunkRows}` : ''}`;

const geometry = (x: Shape4, filter: Shape4, pad: Pad, strides = 1): ConvGeometry =>
  convGeometry(tf.backend_util.computeConv2DInfo(x, filter, strides, 1, pad));

let gemm: Gemm;

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/fma gemm/);
  gemm = gemmFor(tf.backend() as BackendWasm) as Gemm;
});

/** shiftedOutputConv on wasm; checks that it frees everything but its result. */
async function shifted(c: Case, x: Float32Array, w: Float32Array): Promise<Float32Array> {
  await tf.setBackend('wasm');
  const backend = tf.backend() as BackendWasm;
  const xt = tf.tensor4d(x, c.x);
  const wt = tf.tensor4d(w, c.filter);
  try {
    const tensors = tf.memory().numTensors;
    const dataIds = backend.numDataIds();
    const g = geometry(c.x, c.filter, c.pad);
    const out = shiftedOutputConv(backend, gemm, xt, wt, g, { chunkRows: c.chunkRows, always: true });
    expect(out).toBeDefined();
    const y = out as tf.TensorInfo;
    expect(y.shape).toEqual(tf.backend_util.computeConv2DInfo(c.x, c.filter, 1, 1, c.pad).outShape);
    const values = Float32Array.from(backend.readSync(y.dataId) as Float32Array);
    backend.disposeData(y.dataId);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(dataIds);
    return values;
  } finally {
    tf.dispose([xt, wt]);
  }
}

describe('stride-1 conv with the kernel columns on the output side vs cpu', () => {
  it.each(cases.map((c) => [label(c), c] as const))('%s', async (_n, c) => {
    const x = randomData(size(c.x), 1);
    const w = randomData(size(c.filter), 2);
    const want = await runOn('cpu', () =>
      tf.conv2d(tf.tensor4d(x, c.x), tf.tensor4d(w, c.filter), 1, c.pad as 'same'),
    );
    expectClose(await shifted(c, x, w), want);
  });

  it("takes SRGAN G's last conv; declines strided convs, tiny images and shapes with little to gain", async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    expect(suitsShiftedOutput(geometry([16, 64, 64, 32], [9, 9, 32, 3], 'same'))).toBe(true);
    expect(suitsShiftedOutput(geometry([16, 64, 64, 64], [9, 9, 64, 3], 'same'))).toBe(true);
    expect(suitsShiftedOutput(geometry([16, 64, 64, 32], [9, 9, 32, 7], 'same'))).toBe(true);
    expect(suitsShiftedOutput(geometry([16, 32, 32, 32], [3, 3, 32, 3], 'same'))).toBe(true);
    const declined: [Shape4, Shape4, number][] = [
      [[1, 16, 16, 32], [9, 9, 32, 3], 2],
      [[1, 16, 16, 32], [5, 5, 32, 8], 1],
      [[1, 16, 16, 7], [5, 5, 7, 3], 1],
      [[1, 32, 32, 16], [1, 1, 16, 3], 1],
      [[1, 64, 64, 16], [3, 1, 16, 1], 1],
      [[1, 4, 4, 64], [3, 3, 64, 3], 1],
    ];
    for (const [xs, fs, strides] of declined) {
      const g = geometry(xs, fs, 'same', strides);
      expect(suitsShiftedOutput(g), `${xs} ${fs} /${strides}`).toBe(false);
      const dataIds = backend.numDataIds();
      const x = tf.zeros(xs);
      const w = tf.zeros(fs);
      expect(shiftedOutputConv(backend, gemm, x, w, g)).toBeUndefined();
      if (strides > 1) expect(shiftedOutputConv(backend, gemm, x, w, g, { always: true })).toBeUndefined();
      tf.dispose([x, w]);
      expect(backend.numDataIds()).toBe(dataIds);
    }
    // 9 output channels: more than the reduction's two vectors, even with `always`.
    const x = tf.zeros([1, 8, 8, 8]);
    const w = tf.zeros([3, 3, 8, 9]);
    const wide = geometry([1, 8, 8, 8], [3, 3, 8, 9], 'same');
    expect(shiftedOutputConv(backend, gemm, x, w, wide, { always: true })).toBeUndefined();
    tf.dispose([x, w]);
  });
});
