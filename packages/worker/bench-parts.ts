import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
await tf.setBackend('wasm');
await tf.ready();
const time = (name: string, flops: number, fn: () => tf.Tensor, reps = 10) => {
  fn().dispose();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn().dispose();
  const ms = (performance.now() - t0) / reps;
  console.log(`${name}: ${ms.toFixed(2)} ms, ${(flops / ms / 1e6).toFixed(2)} GFLOP/s`);
};
const a = tf.randomUniform([3136, 128]);
const b = tf.randomUniform([128, 1024]);
time('matmul 3136x128x1024', 2 * 3136 * 128 * 1024, () => tf.matMul(a, b));
const a2 = tf.randomUniform([1024, 3136]);
time('matmul 1024x3136 @ 3136x128', 2 * 3136 * 128 * 1024, () => tf.matMul(a2, a));
const x = tf.randomUniform([64, 14, 14, 64]);
const f = tf.randomUniform([4, 4, 64, 128]);
time('conv2d 14x14x64 -> 7x7x128 k4 s2', 2 * 3136 * 128 * 1024, () =>
  tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'same'),
);
// sub-pixel equivalent: 4 convs dy [64,7,7,128] (pad 1) with 2x2 kernels 128->64
const dy = tf.randomUniform([64, 7, 7, 128]);
const f2 = tf.randomUniform([2, 2, 128, 64]);
time('4x conv2d 7x7x128 k2 s1 ->64', 2 * 3136 * 128 * 1024, () =>
  tf.tidy(() => {
    let s = tf.conv2d(dy as tf.Tensor4D, f2 as tf.Tensor4D, 1, [
      [0, 0],
      [1, 0],
      [1, 0],
      [0, 0],
    ]);
    for (let i = 0; i < 3; i++)
      s = tf.conv2d(dy as tf.Tensor4D, f2 as tf.Tensor4D, 1, [
        [0, 0],
        [1, 0],
        [1, 0],
        [0, 0],
      ]);
    return s;
  }),
);
const f3 = tf.randomUniform([3, 3, 128, 64]);
time('1x conv2d 7x7x128 k3 s1 ->4*64 (9/4 flops)', 2 * 3136 * 128 * 1024, () =>
  tf.conv2d(dy as tf.Tensor4D, tf.randomUniform([3, 3, 128, 256]) as tf.Tensor4D, 1, 'same'),
);
void f3;
