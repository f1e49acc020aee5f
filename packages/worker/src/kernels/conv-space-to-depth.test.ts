import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { convGeometry } from './conv-geometry.ts';
import {
  fitsSpaceToDepth,
  spaceToDepthConv,
  spaceToDepthFilterGrad,
  spaceToDepthInputGradient,
  suitsSpaceToDepth,
} from './conv-space-to-depth.ts';
import { gemmFor } from './gemm/index.ts';
import { expectClose, type ConvPad as Pad, randomData, runOn, type Shape4, size } from './test-support.ts';

interface Case {
  x: Shape4;
  outC: number;
  pad: Pad;
}

const label = (c: Case): string => `x ${c.x.join('x')} 4x4/2 -> ${c.outC} pad ${JSON.stringify(c.pad)}`;

const cases: Case[] = [
  // The critics' 14 -> 7 layer (channels reduced; 16 images, so that the registered kernels take it too), a
  // 16 px output (F(4x4, 2x2) in whole tiles) and a 17 px one (F(3x3, 2x2)).
  { x: [16, 14, 14, 8], outC: 8, pad: 'same' },
  { x: [2, 14, 14, 16], outC: 32, pad: 'same' },
  { x: [2, 32, 32, 4], outC: 8, pad: 'same' },
  { x: [1, 34, 34, 4], outC: 8, pad: 'same' },
  // 'valid', an input row and column no window reaches, and uneven explicit padding.
  { x: [1, 9, 11, 8], outC: 8, pad: 'valid' },
  { x: [2, 15, 15, 4], outC: 12, pad: 'valid' },
  {
    x: [2, 10, 9, 4],
    outC: 8,
    pad: [
      [0, 0],
      [2, 1],
      [0, 3],
      [0, 0],
    ],
  },
];

const filterShape = (c: Case): Shape4 => [4, 4, c.x[3], c.outC];
const geometryOf = (c: Case) =>
  convGeometry(tf.backend_util.computeConv2DInfo(c.x, filterShape(c), 2, 1, c.pad));
const dyShape = (c: Case): Shape4 => {
  const g = geometryOf(c);
  return [c.x[0], g.outH, g.outW, c.outC];
};

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
});

describe('4x4 stride-2 convolutions by space-to-depth and 2x2 Winograd (wasm) vs cpu', () => {
  it.each(cases.map((c) => [label(c), c] as const))('%s', async (_name, c) => {
    const g = geometryOf(c);
    expect(fitsSpaceToDepth(g)).toBe(true);
    const x = randomData(size(c.x), 31);
    const f = randomData(size(filterShape(c)), 32);
    const dy = randomData(size(dyShape(c)), 33);
    const forward = () => tf.conv2d(tf.tensor4d(x, c.x), tf.tensor4d(f, filterShape(c)), 2, c.pad);
    const inputGrad = () =>
      tf.conv2dTranspose(tf.tensor4d(dy, dyShape(c)), tf.tensor4d(f, filterShape(c)), c.x, 2, c.pad);
    const filterGrad = () =>
      tf
        .engine()
        .runKernel(
          'Conv2DBackpropFilter',
          { x: tf.tensor4d(x, c.x), dy: tf.tensor4d(dy, dyShape(c)) },
          { strides: 2, pad: c.pad, dataFormat: 'NHWC', filterShape: filterShape(c) },
        ) as tf.Tensor;
    const expected = [
      await runOn('cpu', forward),
      await runOn('cpu', inputGrad),
      await runOn('cpu', filterGrad),
    ];
    // Through the registered kernels.
    expectClose(await runOn('wasm', forward), expected[0] as Float32Array);
    expectClose(await runOn('wasm', inputGrad), expected[1] as Float32Array);
    expectClose(await runOn('wasm', filterGrad), expected[2] as Float32Array);
    // Called directly: each returns one new tensor and leaves nothing else behind.
    const backend = tf.backend() as BackendWasm;
    const gemm = gemmFor(backend)!;
    const xt = tf.tensor4d(x, c.x);
    const ft = tf.tensor4d(f, filterShape(c));
    const dyt = tf.tensor4d(dy, dyShape(c));
    const before = backend.numDataIds();
    const outs = [
      spaceToDepthConv(backend, gemm, xt, ft, g),
      spaceToDepthInputGradient(backend, gemm, dyt, ft, g),
      spaceToDepthFilterGrad(backend, gemm, xt, dyt, g),
    ];
    expect(backend.numDataIds()).toBe(before + 3);
    outs.forEach((out, i) => {
      expect(out).toBeDefined();
      expectClose(backend.readSync(out!.dataId) as Float32Array, expected[i] as Float32Array);
      backend.disposeData(out!.dataId);
    });
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([xt, ft, dyt]);
  });

  it('is taken where its tiles pay for the filter transform, and not for other kernels, strides or channels', () => {
    const base = geometryOf(cases[0] as Case);
    expect(suitsSpaceToDepth(base)).toBe(true);
    expect(suitsSpaceToDepth({ ...base, batch: 2 })).toBe(false);
    expect(suitsSpaceToDepth({ ...base, inC: 256, outC: 512 })).toBe(false);
    expect(fitsSpaceToDepth({ ...base, kH: 3, kW: 3 })).toBe(false);
    expect(fitsSpaceToDepth({ ...base, strideH: 1, strideW: 1 })).toBe(false);
    expect(fitsSpaceToDepth({ ...base, inC: 1 })).toBe(false);
    expect(fitsSpaceToDepth({ ...base, outC: 3 })).toBe(false);
    expect(fitsSpaceToDepth({ ...base, outH: 2 })).toBe(false);
  });
});
