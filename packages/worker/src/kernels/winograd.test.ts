import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { convGeometry } from './conv-geometry.ts';
import { conv2D } from './conv2d.ts';
import { gemmFor } from './gemm/index.ts';
import { expectClose, type ConvPad as Pad, randomData, runOn, type Shape4, size } from './test-support.ts';
import { F2X3, F4X3, suitsWinograd, winogradConv, winogradFilterGrad } from './winograd.ts';

interface Case {
  x: Shape4;
  outC: number;
  pad: Pad;
}

const label = (c: Case): string => `x ${c.x.join('x')} -> ${c.outC} pad ${JSON.stringify(c.pad)}`;

const cases: Case[] = [
  // ProGAN's 3x3 layers at 32, 16, 8 and 4 px (batch reduced) and SRGAN's residual and upsampling convs.
  { x: [2, 32, 32, 16], outC: 32, pad: 'same' },
  { x: [2, 16, 16, 32], outC: 64, pad: 'same' },
  { x: [2, 8, 8, 64], outC: 64, pad: 'same' },
  { x: [2, 4, 4, 64], outC: 256, pad: 'same' },
  { x: [2, 16, 16, 32], outC: 128, pad: 'same' },
  // Odd sizes (a tile's right column and bottom row outside y), 'valid', padding on one side only.
  { x: [3, 7, 9, 8], outC: 12, pad: 'same' },
  { x: [1, 6, 7, 12], outC: 8, pad: 'valid' },
  {
    x: [2, 9, 6, 8],
    outC: 8,
    pad: [
      [0, 0],
      [2, 0],
      [0, 1],
      [0, 0],
    ],
  },
];

function conv(c: Case, x: Float32Array, f: Float32Array): tf.Tensor {
  return tf.conv2d(tf.tensor4d(x, c.x), tf.tensor4d(f, [3, 3, c.x[3], c.outC]), 1, c.pad);
}

function geometryOf(c: Case) {
  return convGeometry(tf.backend_util.computeConv2DInfo(c.x, [3, 3, c.x[3], c.outC], 1, 1, c.pad));
}

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
});

describe("Winograd F(4x4, 3x3) and F(2x2, 3x3) (wasm) vs cpu's direct convolution", () => {
  it.each(cases.map((c) => [label(c), c] as const))('%s', async (_name, c) => {
    const x = randomData(size(c.x), 21);
    const f = randomData(9 * c.x[3] * c.outC, 22);
    const g = geometryOf(c);
    expect(suitsWinograd(g)).toBe(true);
    const cpu = await runOn('cpu', () => conv(c, x, f));
    // Through the registered kernel, and called directly with each algorithm in passes of a few tiles.
    expectClose(await runOn('wasm', () => conv(c, x, f)), cpu);
    const backend = tf.backend() as BackendWasm;
    const xt = tf.tensor4d(x, c.x);
    const ft = tf.tensor4d(f, [3, 3, c.x[3], c.outC]);
    for (const variant of [F2X3, F4X3]) {
      const tileBytes = 4 * variant.alpha ** 2 * (c.x[3] + c.outC) * 3;
      const y = winogradConv(backend, gemmFor(backend)!, xt, ft, g, { tileBytes, variant });
      expect(y).toBeDefined();
      expectClose(backend.readSync(y!.dataId) as Float32Array, cpu);
      backend.disposeData(y!.dataId);
    }
    tf.dispose([xt, ft]);
  });

  it('gives the input gradient through it too', async () => {
    const c = cases[0] as Case;
    const f = randomData(9 * c.x[3] * c.outC, 24);
    const dy = randomData((size(c.x) / c.x[3]) * c.outC, 25);
    // conv2dTranspose is the Conv2DBackpropInput kernel that tf.grad calls for conv2d's input.
    const dx = () =>
      tf.conv2dTranspose(
        tf.tensor4d(dy, [c.x[0], c.x[1], c.x[2], c.outC]),
        tf.tensor4d(f, [3, 3, c.x[3], c.outC]),
        c.x,
        1,
        'same',
      );
    expectClose(await runOn('wasm', dx), await runOn('cpu', dx));
  });

  it.each(cases.map((c) => [label(c), c] as const))('filter gradient, %s', async (_name, c) => {
    const g = geometryOf(c);
    const dyShape: Shape4 = [c.x[0], g.outH, g.outW, c.outC];
    const x = randomData(size(c.x), 28);
    const dy = randomData(size(dyShape), 29);
    const filterShape: Shape4 = [3, 3, c.x[3], c.outC];
    const dw = () =>
      tf
        .engine()
        .runKernel(
          'Conv2DBackpropFilter',
          { x: tf.tensor4d(x, c.x), dy: tf.tensor4d(dy, dyShape) },
          { strides: 1, pad: c.pad, dataFormat: 'NHWC', filterShape },
        ) as tf.Tensor;
    const cpu = await runOn('cpu', dw);
    expectClose(await runOn('wasm', dw), cpu);
    // Called directly with each algorithm, in passes of a few tiles summed into the result.
    const backend = tf.backend() as BackendWasm;
    const xt = tf.tensor4d(x, c.x);
    const dyt = tf.tensor4d(dy, dyShape);
    for (const variant of [F2X3, F4X3]) {
      const tileBytes = 4 * variant.alpha ** 2 * (c.x[3] + c.outC) * 5;
      const before = backend.numDataIds();
      const out = winogradFilterGrad(backend, gemmFor(backend)!, xt, dyt, g, { tileBytes, variant });
      expect(backend.numDataIds()).toBe(before + 1);
      expectClose(backend.readSync(out!.dataId) as Float32Array, cpu);
      backend.disposeData(out!.dataId);
    }
    tf.dispose([xt, dyt]);
  });

  it('is not taken for other kernels, strides or channel counts', () => {
    const base = geometryOf(cases[5] as Case);
    expect(suitsWinograd({ ...base, strideH: 2 })).toBe(false);
    expect(suitsWinograd({ ...base, kH: 5, kW: 5 })).toBe(false);
    expect(suitsWinograd({ ...base, inC: 65 })).toBe(false);
    expect(suitsWinograd({ ...base, outC: 3 })).toBe(false);
  });

  it('matches the im2col path and does not leak', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const c = cases[1] as Case;
    const xt = tf.tensor4d(randomData(size(c.x), 26), c.x);
    const ft = tf.tensor4d(randomData(9 * c.x[3] * c.outC, 27), [3, 3, c.x[3], c.outC]);
    const before = backend.numDataIds();
    const outs = [true, false].map((winograd) =>
      conv2D(
        {
          inputs: { x: xt, filter: ft },
          backend,
          attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 },
        },
        { winograd },
      ),
    );
    expect(backend.numDataIds()).toBe(before + 2);
    const [wino, im2col] = outs.map((o) => Float32Array.from(backend.readSync(o.dataId) as Float32Array));
    expectClose(wino as Float32Array, im2col as Float32Array);
    for (const o of outs) backend.disposeData(o.dataId);
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([xt, ft]);
  });
});
