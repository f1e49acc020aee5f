import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { initBackend } from './backend.ts';
import { profileKernels } from './kernel-profile.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

it('sums each kernel per run, and by shape when asked', async () => {
  const a = tf.ones([4, 4]);
  const b = tf.ones([2, 3]);
  const work = () => {
    tf.dispose([tf.add(a, a), tf.add(b, b), tf.matMul(a, a)]);
  };
  const { wallMs, kernels } = await profileKernels(work, 3);
  expect(wallMs).toBeGreaterThan(0);
  expect(kernels.find((k) => k.name === 'Add')?.calls).toBe(2);
  expect(kernels.find((k) => k.name === 'BatchMatMul')?.calls).toBe(1);
  const shaped = await profileKernels(work, 2, { byShape: true });
  expect(
    shaped.kernels
      .map((k) => k.name)
      .filter((n) => n.startsWith('Add'))
      .sort(),
  ).toEqual(['Add [2,3] [2,3] -> [2,3]', 'Add [4,4] [4,4] -> [4,4]']);
  tf.dispose([a, b]);
});
