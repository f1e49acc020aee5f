import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { Adam } from '../optim/adam.ts';
import { ADAM_UPDATE } from './adam-update.ts';
import { expectClose, randomData } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toContain('fma gemm');
});

/** Values of each variable after `steps` Adam steps of fixed pseudo-random gradients on `backend`. */
async function train(
  backend: 'wasm' | 'cpu',
  sizes: readonly number[],
  steps: number,
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const vars = sizes.map((n, i) => tf.variable(tf.tensor1d(randomData(n, 10 + i)), true, `${backend}/v${i}`));
  const opt = new Adam(vars, { lr: 2e-4, beta1: 0.5, beta2: 0.999 });
  for (let s = 0; s < steps; s++) {
    // Gradients of every magnitude, some near eps, so that where eps enters shows.
    const grads = tf.tidy(() =>
      sizes.map((n, i) => tf.mul(tf.tensor1d(randomData(n, 100 * s + i)), 10 ** ((s % 3) - 4))),
    );
    const before = tf.memory().numTensors;
    opt.apply(grads);
    expect(tf.memory().numTensors, 'tensors left by the update').toBe(before);
    tf.dispose(grads);
  }
  const out = vars.map((v) => Float32Array.from(v.dataSync()));
  tf.dispose(vars);
  opt.dispose();
  return out;
}

describe("Gantry's fused Adam step (wasm) vs the tfjs ops on cpu", () => {
  it('runs as one kernel per variable on wasm', async () => {
    await tf.setBackend('wasm');
    const x = tf.variable(tf.ones([5]));
    const opt = new Adam([x], { lr: 1e-3, beta1: 0.9, beta2: 0.999 });
    const g = tf.fill([5], 0.5);
    const profile = await tf.profile(() => opt.apply([g]));
    expect(profile.kernels.map((k) => k.name)).toEqual([ADAM_UPDATE]);
    tf.dispose([x, g]);
    opt.dispose();
  });

  it("matches on DCGAN's variable sizes and odd ones (vector part and tail)", async () => {
    // 1, 3, 7: tail only or both; 6272: the dense bias; 4*4*64*128: the big conv filter.
    const sizes = [1, 3, 7, 64, 6272, 4 * 4 * 64 * 128];
    const wasm = await train('wasm', sizes, 5);
    const cpu = await train('cpu', sizes, 5);
    for (let i = 0; i < sizes.length; i++) expectClose(wasm[i] as Float32Array, cpu[i] as Float32Array, 1e-6);
  });
});
