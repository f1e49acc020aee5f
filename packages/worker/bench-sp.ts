import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { conv2DBackpropInput } from './src/kernels/conv2d-backprop-input.ts';

await tf.setBackend('wasm');
await tf.ready();
const backend = tf.backend() as BackendWasm;
type S4 = [number, number, number, number];
const cases: { dy: S4; f: S4; x: S4; s: any; pad: any }[] = [
  { dy: [0, 0, 0, 0], f: [4, 4, 64, 128], x: [64, 14, 14, 64], s: 2, pad: 'same' },
  { dy: [0, 0, 0, 0], f: [4, 4, 1, 64], x: [64, 28, 28, 1], s: 2, pad: 'same' },
];
if (process.argv.includes('--check')) {
  cases.length = 0;
  for (const [x, f, s, pad] of [
    [[3, 9, 9, 2], [3, 3, 2, 5], 2, 'valid'],
    [[3, 9, 9, 2], [3, 5, 2, 5], [2, 3], 'same'],
    [[2, 7, 7, 2], [4, 4, 2, 3], 1, 'same'],
    [[2, 9, 9, 2], [2, 2, 2, 3], 3, 'valid'],
    [[2, 6, 6, 2], [3, 3, 2, 3], 2, 2],
    [[2, 7, 7, 2], [3, 3, 2, 3], 1, 2],
    [[2, 7, 7, 2], [3, 3, 2, 3], 2, 2],
    [
      [2, 8, 8, 2],
      [3, 3, 2, 3],
      2,
      [
        [0, 0],
        [2, 0],
        [0, 2],
        [0, 0],
      ],
    ],
    [
      [2, 8, 8, 2],
      [5, 5, 2, 3],
      3,
      [
        [0, 0],
        [4, 3],
        [1, 4],
        [0, 0],
      ],
    ],
    [[2, 9, 9, 2], [2, 2, 2, 3], 4, 'same'],
    [[2, 9, 9, 2], [2, 2, 2, 3], 4, 'valid'],
    [[1, 4, 4, 512], [4, 4, 512, 3], 2, 'same'],
    [[2, 3, 3, 1], [4, 4, 1, 512], 1, 'same'],
    [[2, 7, 7, 2], [3, 3, 2, 3], 1, 0],
    [[2, 7, 7, 2], [3, 3, 2, 3], 1, 'valid'],
    [
      [2, 5, 5, 2],
      [3, 3, 2, 3],
      1,
      [
        [0, 0],
        [2, 2],
        [2, 2],
        [0, 0],
      ],
    ],
    [[2, 5, 5, 2], [1, 1, 2, 3], 2, 'valid'],
    [[2, 5, 5, 2], [1, 1, 2, 3], 1, 'valid'],
  ] as any[])
    cases.push({ dy: [0, 0, 0, 0], f, x, s, pad });
}
const reps = process.argv.includes('--check') ? 0 : Number(process.argv[2] ?? 10);
let worst = 0;
for (const c of cases) {
  c.dy = tf.backend_util.computeConv2DInfo(c.x, c.f, c.s, 1, c.pad).outShape;
  const dy = tf.randomUniform(c.dy, -1, 1);
  const f = tf.randomUniform(c.f, -1, 1);
  const attrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x } as never;
  const flops = 2 * c.dy[0] * c.dy[1] * c.dy[2] * c.f[0] * c.f[1] * c.f[2] * c.f[3];
  const args = { inputs: { dy, filter: f }, backend, attrs };
  const a = backend.readSync(conv2DBackpropInput(args, { algorithm: 'gemm' }).dataId) as Float32Array;
  const b = backend.readSync(conv2DBackpropInput(args, { algorithm: 'sub-pixel' }).dataId) as Float32Array;
  let err = 0;
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i]! - b[i]!));
  worst = Math.max(worst, err);
  if (a.length !== b.length) throw new Error('len');
  if (reps > 0) console.log(JSON.stringify(c), 'diff', err);

  const fns = [
    ['gemm', (a: any) => conv2DBackpropInput(a, { algorithm: 'gemm' })],
    ['subpixel', (a: any) => conv2DBackpropInput(a, { algorithm: 'sub-pixel' })],
  ] as const;
  const ts: number[][] = [[], []];
  for (let i = 0; i < reps; i++)
    fns.forEach(([, fn], k) => {
      const t0 = performance.now();
      backend.disposeData(fn(args).dataId);
      ts[k]!.push(performance.now() - t0);
    });
  if (reps > 0)
    fns.forEach(([name], k) => {
      const t = ts[k]!.sort((a, b) => a - b);
      console.log(
        `  ${name}: min ${t[0]!.toFixed(1)} med ${t[t.length >> 1]!.toFixed(1)} ms, ${(flops / t[t.length >> 1]! / 1e6).toFixed(2)} GFLOP/s (median)`,
      );
    });
}

console.log('worst gemm vs subpixel diff', worst, 'dataIds', backend.numDataIds());
