import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { layerNorm } from '../models/transformer.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { LAYER_NORM, LAYER_NORM_GRAD, layerNormConfig } from './layer-norm.ts';
import { expectClose, randomData, runOn, size } from './test-support.ts';

/*
 * The fused layer norm (wasm) against the composite form on cpu (models/transformer.ts picks the fused
 * kernels where they are registered): forward, and the gradients w.r.t. x, gamma and beta.
 */

/** TransGAN's token shapes at its default size, batch reduced: D's 50 tokens of 64, G's three stages. */
const SHAPES: number[][] = [
  [3, 50, 64],
  [2, 49, 128],
  [2, 196, 32],
  [2, 784, 8],
  // Odd sizes: a row of one (variance 0), a short odd row, rank 2.
  [4, 1],
  [3, 7, 5],
  [11, 3],
];

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

/** Values, gain and bias of a case: gains around 1, some negative. */
function operands(shape: number[]) {
  const c = shape[shape.length - 1]!;
  return {
    x: randomData(size(shape), 1).map((v) => 3 * v + 0.5),
    gamma: randomData(c, 2).map((v) => 1 + v),
    beta: randomData(c, 3),
    dy: randomData(size(shape), 4),
  };
}

describe('fused layer norm (wasm) vs the composite form on cpu', () => {
  it('is registered for wasm only, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel(LAYER_NORM, 'wasm').kernelFunc).toBe(layerNormConfig.kernelFunc);
    expect(tf.getKernel(LAYER_NORM_GRAD, 'wasm')).toBeDefined();
    expect(tf.getKernel(LAYER_NORM, 'cpu')).toBeUndefined();
  });

  it.each(
    SHAPES.map((s) => [JSON.stringify(s), s] as const),
  )('%s: forward and gradients w.r.t. x, gamma and beta', async (_name, shape) => {
    const o = operands(shape);
    const c = shape[shape.length - 1]!;
    const forward = () => layerNorm(tf.tensor(o.x, shape), tf.tensor1d(o.gamma), tf.tensor1d(o.beta));
    expectClose(await runOn('wasm', forward), await runOn('cpu', forward), 1e-5);
    // L = sum(dy * LN(x)): its gradients are the layer's backward pass (no tape records them: fused).
    const grads = (i: number) => () => {
      const loss = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.tensor(o.dy, shape), layerNorm(x, g as tf.Tensor1D, b as tf.Tensor1D)));
      return tf.grads(loss)([tf.tensor(o.x, shape), tf.tensor1d(o.gamma), tf.tensor1d(o.beta)])[i]!;
    };
    for (const [i, what] of ['dx', 'dgamma', 'dbeta'].entries()) {
      const ours = await runOn('wasm', grads(i));
      expect(ours.length, what).toBe(i === 0 ? size(shape) : c);
      expectClose(ours, await runOn('cpu', grads(i)), 1e-4);
    }
  });

  it('leaves no tensors behind, forward or backward', async () => {
    await tf.setBackend('wasm');
    const shape = [2, 50, 64];
    const o = operands(shape);
    const [x, g, b, dy] = [
      tf.tensor(o.x, shape),
      tf.tensor1d(o.gamma),
      tf.tensor1d(o.beta),
      tf.tensor(o.dy, shape),
    ];
    // The kernels themselves: their outputs and nothing else.
    const backend = tf.backend() as BackendWasm;
    const before = [tf.memory().numTensors, backend.numDataIds()];
    const y = tf.engine().runKernel<tf.Tensor>(LAYER_NORM, { x, gamma: g, beta: b }, { eps: 1e-5 });
    const grads = tf.engine().runKernel<tf.Tensor[]>(LAYER_NORM_GRAD, { x, gamma: g, dy }, { eps: 1e-5 });
    expect(grads.map((t) => t.shape)).toEqual([shape, [64], [64]]);
    tf.dispose([y, ...grads]);
    expect([tf.memory().numTensors, backend.numDataIds()]).toEqual(before);
    // Through the op, forward and backward, in a tidy as training calls it.
    const inTidy = tf.memory().numTensors;
    tf.tidy(() => {
      layerNorm(x, g as tf.Tensor1D, b as tf.Tensor1D);
      tf.grads((a: tf.Tensor) => tf.sum(tf.mul(dy, layerNorm(a, g as tf.Tensor1D, b as tf.Tensor1D))))([x]);
    });
    expect(tf.memory().numTensors).toBe(inTidy);
    tf.dispose([x, g, b, dy]);
  });
});
