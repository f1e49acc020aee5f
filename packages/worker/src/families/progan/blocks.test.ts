import '../../gradients.ts';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { gradientPenalty } from '../../losses.ts';
import { downsample2x, equalizedScale, fadeIn, minibatchStd, pixelNorm, upsample2x } from './blocks.ts';

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
});

const values = (t: tf.Tensor) => Array.from(t.dataSync());

describe('ProGAN layers', () => {
  it('wasm: 2x down/upsampling and their first and second derivatives match cpu at ProGAN shapes, no leaks', async () => {
    // A critic-like chain through both (D's downsample, whose gradient is the upsample, and back): its input
    // gradient, and the gradient of that gradient's square, as the WGAN-GP penalty takes them.
    const run = (x: tf.Tensor4D, w: tf.Tensor4D) =>
      tf.tidy(() => {
        const f = (t: tf.Tensor) => tf.sum(tf.mul(upsample2x(tf.square(downsample2x(t as tf.Tensor4D))), w));
        const gx = tf.grad(f);
        const gg = tf.grad((t: tf.Tensor) => tf.sum(tf.square(gx(t))))(x);
        return [downsample2x(x), upsample2x(x), gx(x), gg].map(values);
      });
    const shape: [number, number, number, number] = [2, 16, 16, 8];
    const data = (k: number) =>
      Float32Array.from({ length: 2 * 16 * 16 * 8 }, (_, i) => Math.sin(i * 0.37 + k) * (1 + (i % 3)));
    const outs: number[][][] = [];
    for (const backend of ['cpu', 'wasm'] as const) {
      await tf.setBackend(backend);
      const x = tf.tensor4d(data(1), shape);
      const w = tf.tensor4d(data(2), shape);
      const before = tf.memory().numTensors;
      outs.push(run(x, w));
      expect(tf.memory().numTensors, backend).toBe(before);
      tf.dispose([x, w]);
    }
    for (const [k, cpu] of outs[0]!.entries()) {
      const wasm = outs[1]![k]!;
      expect(wasm.length).toBe(cpu.length);
      const scale = Math.max(...cpu.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      for (const [i, v] of cpu.entries())
        expect(Math.abs(wasm[i]! - v), `${k}[${i}]`).toBeLessThan(1e-5 * scale);
    }
  });

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: pixel norm, minibatch std, 2x down/upsampling and fade-in match their closed forms`, async () => {
      await tf.setBackend(backend);
      tf.tidy(() => {
        // One pixel with channels (3, 4): mean square 12.5.
        const p = pixelNorm(tf.tensor4d([3, 4], [1, 1, 1, 2]));
        for (const [i, v] of values(p).entries()) expect(v).toBeCloseTo([3, 4][i]! / Math.sqrt(12.5), 5);
        // Two samples of one 1x1x2 feature map: per-feature std over the batch |a - b| / 2, averaged.
        const m = minibatchStd(tf.tensor4d([1, 10, 3, 4], [2, 1, 1, 2]));
        expect(m.shape).toEqual([2, 1, 1, 3]);
        const stat = (Math.abs(1 - 3) / 2 + Math.abs(10 - 4) / 2) / 2;
        expect(values(m)[2]).toBeCloseTo(stat, 4);
        expect(values(m)[5]).toBeCloseTo(stat, 4);
        const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [1, 4, 4, 1]);
        expect(values(downsample2x(x))).toEqual([3.5, 5.5, 11.5, 13.5]);
        expect(values(upsample2x(tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1])))).toEqual([
          1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4,
        ]);
        expect(values(fadeIn(tf.scalar(2), tf.scalar(10), 0.25))).toEqual([4]);
        // The generator trains through upsampling: d/dx sum(up(x) * w) sums w over each 2x2 block.
        const wUp = tf.tensor4d(
          Array.from({ length: 2 * 4 * 4 * 2 }, (_, i) => i),
          [2, 4, 4, 2],
        );
        const gUp = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(upsample2x(t as tf.Tensor4D), wUp)))(
          tf.zeros([2, 2, 2, 2]),
        );
        const wv = values(wUp);
        const at = (n: number, y: number, x: number, c: number) => wv[((n * 4 + y) * 4 + x) * 2 + c]!;
        const expected: number[] = [];
        for (let n = 0; n < 2; n++)
          for (let y = 0; y < 2; y++)
            for (let x = 0; x < 2; x++)
              for (let c = 0; c < 2; c++)
                expected.push(
                  at(n, 2 * y, 2 * x, c) +
                    at(n, 2 * y, 2 * x + 1, c) +
                    at(n, 2 * y + 1, 2 * x, c) +
                    at(n, 2 * y + 1, 2 * x + 1, c),
                );
        expect(values(gUp)).toEqual(expected);
      });
      expect(() => fadeIn(tf.scalar(0), tf.scalar(1), 1.5)).toThrow(/alpha/);
      expect(equalizedScale(8)).toBeCloseTo(0.5, 10);
    });

    it(`${backend}: the gradient penalty through a ProGAN-style critic has the right second derivatives`, async () => {
      await tf.setBackend(backend);
      const N = 4;
      const shape: [number, number, number, number] = [N, 8, 8, 1];
      const w1 = values(tf.randomNormal([3, 3, 1, 4], 0, 1, 'float32', 31));
      const w2 = values(tf.randomNormal([3, 3, 5, 4], 0, 1, 'float32', 32));
      const w3 = values(tf.randomNormal([4 * 4 * 4, 1], 0, 1, 'float32', 33));
      const penalty = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
        const critic = (x: tf.Tensor4D) => {
          let h = tf.leakyRelu(tf.conv2d(x, tf.mul(a, equalizedScale(9)) as tf.Tensor4D, 1, 'same'), 0.2);
          h = minibatchStd(h as tf.Tensor4D);
          h = tf.leakyRelu(
            tf.conv2d(h as tf.Tensor4D, tf.mul(b, equalizedScale(45)) as tf.Tensor4D, 1, 'same'),
            0.2,
          );
          h = downsample2x(h as tf.Tensor4D);
          return tf.reshape(tf.matMul(tf.reshape(h, [N, 64]), c as tf.Tensor2D), [N]) as tf.Tensor1D;
        };
        return gradientPenalty(
          critic,
          tf.randomUniform(shape, -1, 1, 'float32', 41) as tf.Tensor4D,
          tf.randomUniform(shape, -1, 1, 'float32', 42) as tf.Tensor4D,
          tf.tensor1d([0.1, 0.4, 0.6, 0.95]),
        );
      };
      const params = [w1, w2, w3];
      const shapes = [
        [3, 3, 1, 4],
        [3, 3, 5, 4],
        [64, 1],
      ];
      const at = (ps: number[][]) =>
        tf.tidy(
          () =>
            penalty(
              ...(ps.map((p, i) => tf.tensor(p, shapes[i])) as [tf.Tensor, tf.Tensor, tf.Tensor]),
            ).dataSync()[0]!,
        );
      const analytic = tf.tidy(() =>
        tf
          .grads(penalty)(params.map((p, i) => tf.tensor(p, shapes[i])))
          .map((g) => values(g)),
      );
      const central = (k: number, i: number, h: number) => {
        const plus = params.map((p) => [...p]);
        const minus = params.map((p) => [...p]);
        plus[k]![i]! += h;
        minus[k]![i]! -= h;
        return (at(plus) - at(minus)) / (2 * h);
      };
      let checked = 0;
      params.forEach((p, k) => {
        for (let i = 0; i < p.length; i += 5) {
          const coarse = central(k, i, 4e-3);
          const fine = central(k, i, 2e-3);
          if (Math.abs(coarse - fine) > 2e-3 * Math.max(1, Math.abs(fine))) continue; // a kink in between
          const a = analytic[k]![i]!;
          expect(Math.abs(a - fine), `w${k + 1}[${i}]: ${a} vs ${fine}`).toBeLessThan(
            5e-3 * Math.max(1, Math.abs(fine)),
          );
          checked += 1;
        }
      });
      expect(checked).toBeGreaterThan(20);
    }, 60_000);
  }
});
