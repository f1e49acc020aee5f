import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { convGeometry } from './conv-geometry.ts';
import { im2col } from './im2col.ts';
import { im2colWasm, im2colWasmReady } from './im2col-wasm.ts';
import { type ConvPad, randomData, type Shape4, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('wasm');
  await im2colWasmReady();
});

const cases: { x: Shape4; filter: Shape4; strides: number | [number, number]; pad: ConvPad }[] = [
  { x: [1, 24, 24, 8], filter: [3, 3, 8, 8], strides: 1, pad: 'same' }, // ProGAN's 8-channel layers
  { x: [1, 16, 16, 32], filter: [3, 3, 32, 32], strides: 1, pad: 'same' }, // SRGAN's blocks
  { x: [1, 12, 12, 3], filter: [9, 9, 3, 32], strides: 1, pad: 'same' }, // SRGAN G's first conv
  { x: [2, 9, 7, 3], filter: [4, 4, 3, 2], strides: 2, pad: 'same' },
  { x: [3, 5, 6, 2], filter: [3, 2, 2, 1], strides: [1, 2], pad: 'valid' },
  { x: [2, 9, 9, 16], filter: [2, 2, 16, 3], strides: 4, pad: 'same' },
  {
    x: [2, 5, 6, 4],
    filter: [3, 3, 4, 2],
    strides: 1,
    pad: [
      [0, 0],
      [3, 4],
      [0, 5],
      [0, 0],
    ],
  },
];

describe('im2col in WebAssembly', () => {
  it.each(
    cases.map((c) => [`x ${c.x.join('x')} f ${c.filter.join('x')} s ${c.strides}`, c] as const),
  )('writes the same patches as the JS version, whole and from an offset row: %s', (_n, c) => {
    const backend = tf.backend() as BackendWasm;
    const before = backend.numDataIds();
    const g = convGeometry(tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad));
    const x = tf.tensor4d(randomData(size(c.x), 1), c.x);
    const xi = { dataId: x.dataId, shape: x.shape, dtype: 'float32' as const };
    const rows = g.batch * g.outH * g.outW;
    const depth = g.kH * g.kW * g.inC;
    for (const [row0, count] of [
      [0, rows],
      [Math.floor(rows / 3) + 1, Math.floor(rows / 2)],
    ] as const) {
      const js = backend.makeOutput([count, depth], 'float32');
      const wasm = backend.makeOutput([count, depth], 'float32');
      backend.typedArrayFromHeap(wasm).fill(Number.NaN);
      im2col(backend, js, xi, g, row0, count);
      expect(im2colWasm(backend, wasm, xi, g, row0, count)).toBe(true);
      expect(backend.typedArrayFromHeap(wasm)).toEqual(backend.typedArrayFromHeap(js));
      backend.disposeData(js.dataId);
      backend.disposeData(wasm.dataId);
    }
    x.dispose();
    expect(backend.numDataIds()).toBe(before);
  });
});
