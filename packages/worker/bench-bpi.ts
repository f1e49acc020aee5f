import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from './src/kernels/index.ts';

await tf.setBackend('wasm');
await tf.ready();
console.log('threads', getThreadsCount(), 'simd', await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
const stock = tf.getKernel('Conv2DBackpropInput', 'wasm');
registerWasmTrainingKernels();
const backend = tf.backend() as BackendWasm;

type S4 = [number, number, number, number];
const cases: { dy: S4; f: S4; x: S4; s: number }[] = [
  { dy: [64, 7, 7, 128], f: [4, 4, 64, 128], x: [64, 14, 14, 64], s: 2 },
  { dy: [64, 14, 14, 64], f: [4, 4, 1, 64], x: [64, 28, 28, 1], s: 2 },
];
for (const c of cases) {
  const dy = tf.randomUniform(c.dy, -1, 1);
  const f = tf.randomUniform(c.f, -1, 1);
  const attrs = { strides: c.s, pad: 'same', dataFormat: 'NHWC', inputShape: c.x };
  const flops = 2 * c.dy[0] * c.dy[1] * c.dy[2] * c.f[0] * c.f[1] * c.f[2] * c.f[3];
  const time = (name: string, fn: () => tf.TensorInfo, reps: number) => {
    backend.disposeData(fn().dataId);
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) backend.disposeData(fn().dataId);
    const ms = (performance.now() - t0) / reps;
    console.log(`${name} dy ${c.dy} f ${c.f}: ${ms.toFixed(2)} ms, ${(flops / ms / 1e6).toFixed(2)} GFLOP/s`);
  };
  const ours = () =>
    tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, attrs) as unknown as tf.TensorInfo;
  const old = () => stock.kernelFunc({ inputs: { dy, filter: f }, backend, attrs } as never) as tf.TensorInfo;
  const a = backend.readSync(old().dataId) as Float32Array;
  const t = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, attrs) as tf.Tensor;
  const b = t.dataSync();
  let err = 0,
    mx = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    mx = Math.max(mx, Math.abs(a[i]!));
  }
  console.log('max abs diff', err, 'max', mx);
  t.dispose();
  if (!process.argv.includes('--no-stock')) time('stock', old, 3);
  time('ours ', ours, 10);
}
