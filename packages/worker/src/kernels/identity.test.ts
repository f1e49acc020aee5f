import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { castConfig, identityConfig } from './identity.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { randomData, runOn } from './test-support.ts';

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

const backend = () => tf.backend() as BackendWasm;

describe('Identity and Cast (wasm)', () => {
  it('replace the stock wasm kernels, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('Identity', 'wasm').kernelFunc).toBe(identityConfig.kernelFunc);
    expect(tf.getKernel('Cast', 'wasm').kernelFunc).toBe(castConfig.kernelFunc);
  });

  it('clones by sharing storage, which outlives the original', async () => {
    await tf.setBackend('wasm');
    const values = randomData(64 * 7 * 7, 1);
    const x = tf.tensor(values, [64, 7, 7]);
    const ids = backend().numDataIds();
    const copies = [
      tf.clone(x),
      tf.cast(x, 'float32'),
      tf.engine().runKernel('Identity', { x }) as tf.Tensor,
    ];
    expect(backend().numDataIds()).toBe(ids);
    x.dispose();
    for (const c of copies) {
      expect(c.shape).toEqual([64, 7, 7]);
      expect(c.dataSync()).toEqual(values);
    }
    tf.dispose(copies);
    expect(backend().numDataIds()).toBe(ids - 1);
  });

  it('keeps results apart from later ops on either tensor', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor([1, -2, 3, -4]);
    const y = tf.clone(x);
    const z = tf.relu(y);
    expect(Array.from(x.dataSync())).toEqual([1, -2, 3, -4]);
    expect(Array.from(z.dataSync())).toEqual([1, 0, 3, 0]);
    tf.dispose([x, y, z]);
  });

  it.each([
    ['float32', 'int32'],
    ['int32', 'float32'],
    ['bool', 'float32'],
    ['int32', 'int32'],
    ['bool', 'bool'],
  ] as const)('casts %s to %s as cpu does', async (from, to) => {
    const values = [0, 1, -3, 7, 2, 0];
    const run = () => tf.cast(tf.tensor(values, [2, 3], from), to);
    const cpu = await runOn('cpu', run);
    await tf.setBackend('wasm');
    const out = tf.tidy(run);
    expect(out.dtype).toBe(to);
    expect(Float32Array.from(out.dataSync())).toEqual(cpu);
    out.dispose();
  });

  it('clones strings with the stock kernel', async () => {
    await tf.setBackend('wasm');
    const s = tf.tensor(['a', 'bc']);
    const c = tf.clone(s);
    s.dispose();
    expect(c.dataSync()).toEqual(['a', 'bc']);
    c.dispose();
  });

  it('does not leak storage through the engine', async () => {
    await tf.setBackend('wasm');
    const tensors = tf.memory().numTensors;
    const ids = backend().numDataIds();
    tf.tidy(() => {
      const x = tf.tensor(randomData(100, 2), [10, 10]);
      return tf.add(tf.clone(tf.cast(x, 'float32')), tf.cast(x, 'int32'));
    }).dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend().numDataIds()).toBe(ids);
  });
});
