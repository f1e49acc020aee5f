import { createRequire } from 'node:module';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from './backend.ts';
import { gemmFor } from './kernels/gemm/index.ts';

const require = createRequire(import.meta.url);
const installed = (pkg: string) => {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
};
const tfNodePackage = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].find(installed);
const skipReason = tfNodePackage
  ? ''
  : ' (skipped: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed; see README, GPU nodes)';

describe('backend selection', () => {
  it.runIf(!tfNodePackage)(
    'explains which packages the tensorflow backend needs when they are missing',
    async () => {
      await expect(initBackend('tensorflow')).rejects.toThrow(
        /@tensorflow\/tfjs-node-gpu or @tensorflow\/tfjs-node/,
      );
    },
  );

  it.runIf(!tfNodePackage)(
    'falls back to wasm when no backend is requested and tensorflow is unavailable',
    async () => {
      const info = await initBackend();
      expect(info.backend).toBe('wasm');
      expect(tf.getBackend()).toBe('wasm');
      expect(info.device).toMatch(/^cpu \(wasm/);
    },
  );

  it("uses Gantry's matrix product on wasm unless told not to", async () => {
    const backend = () => tf.backend() as BackendWasm;
    const off = await initBackend('wasm', { wasmGemm: false });
    expect(off.device).not.toContain('fma gemm');
    expect(gemmFor(backend())).toBeUndefined();
    const on = await initBackend('wasm');
    expect(on.device).toBe('cpu (wasm, simd, fma gemm)');
    expect(gemmFor(backend())?.fused).toBe(true);
  });

  it('selects the cpu and wasm backends on request', async () => {
    expect((await initBackend('cpu')).backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect((await initBackend('wasm')).backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it.skipIf(!tfNodePackage)(
    `computes a DCGAN-sized conv gradient on tensorflow equal to cpu${skipReason}`,
    async () => {
      const x = tf.randomNormal([4, 14, 14, 8], 0, 1, 'float32', 1);
      const w = tf.randomNormal([4, 4, 8, 16], 0, 0.1, 'float32', 2);
      const loss = (f: tf.Tensor) =>
        tf.sum(tf.square(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'same')));
      const info = await initBackend('tensorflow');
      expect(info.backend).toBe('tensorflow');
      const onTf = (tf.grad(loss)(w) as tf.Tensor).arraySync();
      await initBackend('cpu');
      const onCpu = (tf.grad(loss)(w) as tf.Tensor).arraySync();
      const a = (onTf as number[][][][]).flat(3);
      const b = (onCpu as number[][][][]).flat(3);
      for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 3);
    },
  );
});
