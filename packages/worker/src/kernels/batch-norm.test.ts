import '../gradients.ts';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { batchNorm } from '../models/layers.ts';
import { BATCH_NORM, BATCH_NORM_GRAD } from './batch-norm.ts';
import { expectClose, randomData, size } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toContain('fma gemm');
});

/** y and the gradients of sum(y * r) w.r.t. x, gamma, beta, on `backend`. */
async function run(backend: 'wasm' | 'cpu', shape: number[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const c = shape[shape.length - 1] as number;
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    // Channels with their own offset and scale, so that the statistics are not those of N(0, 1).
    const x = tf.add(tf.mul(tf.tensor(randomData(size(shape), 1), shape), 3), tf.linspace(-2, 2, c));
    const gamma = tf.tensor1d(randomData(c, 2));
    const beta = tf.tensor1d(randomData(c, 3));
    const r = tf.tensor(randomData(size(shape), 4), shape);
    const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(batchNorm(a, g as tf.Tensor1D, b as tf.Tensor1D), r));
    const grads = tf.grads(f)([x, gamma, beta]);
    return [batchNorm(x, gamma, beta), ...grads];
  });
  const values = out.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(out);
  expect(tf.memory().numTensors, 'tensors left').toBe(before);
  return values;
}

describe("Gantry's fused batch norm (wasm) vs the tfjs ops on cpu", () => {
  // DCGAN's G and D layers (batch reduced), pix2pix-like wide channels, and a small one.
  for (const shape of [
    [8, 7, 7, 128],
    [8, 14, 14, 64],
    [2, 4, 4, 256],
    [3, 5, 4],
  ]) {
    it(`matches y and the gradients of x, gamma, beta on ${shape.join('x')}`, async () => {
      const wasm = await run('wasm', shape);
      const cpu = await run('cpu', shape);
      for (let i = 0; i < wasm.length; i++)
        expectClose(wasm[i] as Float32Array, cpu[i] as Float32Array, 2e-5);
    });
  }

  it('runs as one kernel forward and one backward; C % 4 != 0 keeps the tfjs ops', async () => {
    await tf.setBackend('wasm');
    const names = async (c: number) => {
      const x = tf.ones([2, 3, 3, c]);
      const g = tf.ones([c]);
      const b = tf.zeros([c]);
      const p = await tf.profile(() =>
        tf.grads((a: tf.Tensor) => tf.sum(batchNorm(a, g as tf.Tensor1D, b as tf.Tensor1D)))([x]),
      );
      tf.dispose([x, g, b]);
      return p.kernels.map((k) => k.name);
    };
    const fused = await names(8);
    expect(fused.filter((n) => n === BATCH_NORM || n === BATCH_NORM_GRAD)).toEqual([
      BATCH_NORM,
      BATCH_NORM_GRAD,
    ]);
    expect(await names(3)).not.toContain(BATCH_NORM);
  });
});

describe('fused batch norm under a recording tape', () => {
  it('gives the same gradient of gamma when the backward pass is itself differentiated', async () => {
    const shape = [4, 3, 3, 8];
    const grad = async (backend: 'wasm' | 'cpu') => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor(randomData(size(shape), 5), shape);
        const beta = tf.zeros([8]) as tf.Tensor1D;
        // d/dgamma of sum((d/dx sum(bn(x)^3))^2): a second-order derivative through the backward pass.
        const outer = (gamma: tf.Tensor) => {
          const inner = tf.grad((a: tf.Tensor) =>
            tf.sum(tf.pow(batchNorm(a, gamma as tf.Tensor1D, beta), 3)),
          );
          return tf.sum(tf.square(inner(x)));
        };
        return Float32Array.from(
          tf
            .grad(outer)(tf.tensor1d(randomData(8, 6)))
            .dataSync(),
        );
      });
    };
    expectClose(await grad('wasm'), await grad('cpu'), 1e-4);
  });

  it('gives the same gradient of x when the backward pass is itself differentiated', async () => {
    const shape = [4, 3, 3, 8];
    const grad = async (backend: 'wasm' | 'cpu') => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const gamma = tf.tensor1d(randomData(8, 6));
        const beta = tf.zeros([8]) as tf.Tensor1D;
        // d/dx of sum((d/dx sum(bn(x)^3))^2): the path through xhat back to x, differentiated twice.
        const outer = (x: tf.Tensor) => {
          const inner = tf.grad((a: tf.Tensor) => tf.sum(tf.pow(batchNorm(a, gamma, beta), 3)));
          return tf.sum(tf.square(inner(x)));
        };
        return Float32Array.from(
          tf
            .grad(outer)(tf.tensor(randomData(size(shape), 5), shape))
            .dataSync(),
        );
      });
    };
    expectClose(await grad('wasm'), await grad('cpu'), 1e-4);
  });
});
