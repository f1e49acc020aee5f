import './gradients.ts';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.ts';
import {
  criticLoss,
  discriminatorLoss,
  generatorLoss,
  gradientPenalty,
  wassersteinGeneratorLoss,
} from './losses.ts';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
/** log(1 + e^x) in float64 without overflow. */
const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Closed forms of Goodfellow et al. (2014): -log σ(r) - log(1 - σ(f)) and -log σ(f), averaged per batch. */
const refD = (r: readonly number[], f: readonly number[]) =>
  mean(r.map((x) => -Math.log(sigmoid(x)))) + mean(f.map((x) => -Math.log(1 - sigmoid(x))));
const refG = (f: readonly number[]) => mean(f.map((x) => -Math.log(sigmoid(x))));

const REAL = [-3, -0.5, 0, 0.7, 2.5];
const FAKE = [1.5, -2, 0.2, -0.8, 3];

function dLoss(r: readonly number[], f: readonly number[]): number {
  return tf.tidy(() => discriminatorLoss(tf.tensor1d([...r]), tf.tensor1d([...f])).dataSync()[0]!);
}
function gLoss(f: readonly number[]): number {
  return tf.tidy(() => generatorLoss(tf.tensor1d([...f])).dataSync()[0]!);
}

function expectRel(actual: number, expected: number, rtol: number, what = ''): void {
  expect(Number.isFinite(actual), `${what} ${actual}`).toBe(true);
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(
    rtol * Math.max(Math.abs(expected), 1e-6),
  );
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('GAN losses', () => {
  it('discriminatorLoss equals -log σ(r) - log(1 - σ(f)), averaged', () => {
    expectRel(dLoss(REAL, FAKE), refD(REAL, FAKE), 1e-5);
    // At zero logits D is undecided: 2 log 2.
    expectRel(dLoss([0, 0], [0, 0]), 2 * Math.LN2, 1e-6);
  });

  it('generatorLoss equals -log σ(f), averaged', () => {
    expectRel(gLoss(FAKE), refG(FAKE), 1e-5);
    expectRel(gLoss([0]), Math.LN2, 1e-6);
  });

  it('stays finite and exact at logits of ±50', () => {
    // Naive log(sigmoid) gives log(0) = -Infinity in float32 here; softplus must not.
    const r = [-50, 50];
    const f = [50, -50];
    // -log σ(-50) = 50 + log1p(e^-50); -log σ(50) ≈ e^-50: mean over the batch.
    const expectedD = mean(r.map((x) => softplus(-x))) + mean(f.map((x) => softplus(x)));
    expectRel(dLoss(r, f), expectedD, 1e-6, 'D');
    expectRel(dLoss([-50], [50]), 100, 1e-6, 'D worst');
    expectRel(gLoss([-50]), 50, 1e-6, 'G worst');
    expect(gLoss([50])).toBeGreaterThanOrEqual(0);
    expect(gLoss([50])).toBeLessThan(1e-6);
  });

  it('stays finite at logits of ±200, where σ underflows in float32', () => {
    // -log σ(-200) = 200: computed as log of a sigmoid this would be -log(0) = Infinity.
    expectRel(gLoss([-200]), 200, 1e-6, 'G');
    expectRel(dLoss([-200], [200]), 400, 1e-6, 'D');
    expect(dLoss([200], [-200])).toBeLessThan(1e-6);
  });

  it('has gradients σ(r) - 1 and σ(f) (over N) w.r.t. the logits, including at ±50', () => {
    const r = [...REAL, -50, 50];
    const f = [...FAKE, 50, -50];
    const n = r.length;
    const [gr, gf] = tf.tidy(() => {
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        discriminatorLoss(a as tf.Tensor1D, b as tf.Tensor1D),
      );
      return grads([tf.tensor1d(r), tf.tensor1d(f)]).map((t) => Array.from(t.dataSync()));
    }) as unknown as [number[], number[]];
    r.forEach((x, i) => {
      expect(Math.abs(gr[i]! - (sigmoid(x) - 1) / n), `d/dr[${i}]`).toBeLessThan(1e-6);
    });
    f.forEach((x, i) => {
      expect(Math.abs(gf[i]! - sigmoid(x) / n), `d/df[${i}]`).toBeLessThan(1e-6);
    });

    const gg = tf.tidy(() => {
      const grad = tf.grad((a: tf.Tensor) => generatorLoss(a as tf.Tensor1D));
      return Array.from(grad(tf.tensor1d(f)).dataSync());
    });
    // d/df of -log σ(f) is σ(f) - 1.
    f.forEach((x, i) => {
      expect(Math.abs(gg[i]! - (sigmoid(x) - 1) / n), `dG/df[${i}]`).toBeLessThan(1e-6);
    });
  });

  it('has gradients that match central finite differences', () => {
    const h = 1e-2;
    const n = REAL.length;
    const [gr, gf] = tf.tidy(() => {
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        discriminatorLoss(a as tf.Tensor1D, b as tf.Tensor1D),
      );
      return grads([tf.tensor1d(REAL), tf.tensor1d(FAKE)]).map((t) => Array.from(t.dataSync()));
    }) as unknown as [number[], number[]];
    const gg = tf.tidy(() =>
      Array.from(
        tf
          .grad((a: tf.Tensor) => generatorLoss(a as tf.Tensor1D))(tf.tensor1d(FAKE))
          .dataSync(),
      ),
    );
    const bump = (xs: readonly number[], i: number, d: number) => xs.map((x, j) => (j === i ? x + d : x));
    for (let i = 0; i < n; i++) {
      const fdR = (dLoss(bump(REAL, i, h), FAKE) - dLoss(bump(REAL, i, -h), FAKE)) / (2 * h);
      const fdF = (dLoss(REAL, bump(FAKE, i, h)) - dLoss(REAL, bump(FAKE, i, -h))) / (2 * h);
      const fdG = (gLoss(bump(FAKE, i, h)) - gLoss(bump(FAKE, i, -h))) / (2 * h);
      // float32 losses of size ~1 over 2h = 0.02: absolute noise ~1e-5; truncation error h^2 |f'''| / 6 < 1e-5.
      expect(Math.abs(gr[i]! - fdR), `d/dr[${i}]`).toBeLessThan(5e-5);
      expect(Math.abs(gf[i]! - fdF), `d/df[${i}]`).toBeLessThan(5e-5);
      expect(Math.abs(gg[i]! - fdG), `dG/df[${i}]`).toBeLessThan(5e-5);
    }
  });
});

describe('Wasserstein losses', () => {
  it('critic loss is mean D(fake) - mean D(real) + penalty + drift * mean D(real)^2, with that gradient', () => {
    const penalty = 0.75;
    const drift = 0.001;
    const expected = mean(FAKE) - mean(REAL) + penalty + drift * mean(REAL.map((r) => r * r));
    const [value, gr, gf] = tf.tidy(() => {
      const f = (a: tf.Tensor, b: tf.Tensor) =>
        criticLoss(a as tf.Tensor1D, b as tf.Tensor1D, tf.scalar(penalty), drift);
      const v = f(tf.tensor1d(REAL), tf.tensor1d(FAKE)).dataSync()[0]!;
      const [a, b] = tf.grads(f)([tf.tensor1d(REAL), tf.tensor1d(FAKE)]);
      return [v, Array.from(a!.dataSync()), Array.from(b!.dataSync())];
    }) as [number, number[], number[]];
    expectRel(value, expected, 1e-5, 'critic loss');
    const n = REAL.length;
    for (const [i, r] of REAL.entries()) expect(gr[i]).toBeCloseTo((-1 + 2 * drift * r) / n, 6);
    for (const g of gf) expect(g).toBeCloseTo(1 / n, 6);
    // Without drift the critic loss is exactly the negated Wasserstein estimate plus the penalty.
    const plain = tf.tidy(
      () => criticLoss(tf.tensor1d(REAL), tf.tensor1d(FAKE), tf.scalar(0)).dataSync()[0]!,
    );
    expectRel(plain, mean(FAKE) - mean(REAL), 1e-5, 'no drift');
    const g = tf.tidy(() => wassersteinGeneratorLoss(tf.tensor1d(FAKE)).dataSync()[0]!);
    expectRel(g, -mean(FAKE), 1e-6, 'generator');
  });
});

describe('WGAN-GP gradient penalty and its second derivatives', () => {
  const N = 3;
  const shape: [number, number, number, number] = [N, 6, 6, 2];
  const real = () => tf.randomUniform(shape, -1, 1, 'float32', 11) as tf.Tensor4D;
  const fake = () => tf.randomUniform(shape, -1, 1, 'float32', 12) as tf.Tensor4D;
  const eps = () => tf.tensor1d([0.2, 0.5, 0.9]);

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: a linear critic <w, x> has the closed form 10 (|w| - 1)^2 and gradient 20 (|w| - 1) w / |w|`, async () => {
      await tf.setBackend(backend);
      const wValues = Array.from({ length: 72 }, (_, i) => Math.sin(i) * 0.3);
      const norm = Math.hypot(...wValues);
      const { value, grad } = tf.tidy(() => {
        const w = tf.tensor4d(wValues, [1, 6, 6, 2]);
        const critic = (wt: tf.Tensor) => (x: tf.Tensor4D) => tf.sum(tf.mul(x, wt), [1, 2, 3]) as tf.Tensor1D;
        const f = (wt: tf.Tensor) => gradientPenalty(critic(wt), real(), fake(), eps());
        return { value: f(w).dataSync()[0]!, grad: Array.from(tf.grad(f)(w).dataSync()) };
      });
      expectRel(value, 10 * (norm - 1) ** 2, 1e-4, 'penalty');
      grad.forEach((g, i) => {
        expect(Math.abs(g - (20 * (norm - 1) * wValues[i]!) / norm), `dGP/dw[${i}]`).toBeLessThan(1e-4);
      });
    });

    it(`${backend}: a conv + LeakyReLU + dense critic matches central differences where it is smooth`, async () => {
      await tf.setBackend(backend);
      const w1 = Array.from(tf.randomNormal([3, 3, 2, 4], 0, 0.4, 'float32', 21).dataSync());
      const w2 = Array.from(tf.randomNormal([3 * 3 * 4, 1], 0, 0.4, 'float32', 22).dataSync());
      const penalty = (a: tf.Tensor, b: tf.Tensor) => {
        const critic = (x: tf.Tensor4D) => {
          const h = tf.leakyRelu(tf.conv2d(x, a as tf.Tensor4D, 2, 'same'), 0.2);
          return tf.reshape(tf.matMul(tf.reshape(h, [N, 36]), b as tf.Tensor2D), [N]) as tf.Tensor1D;
        };
        return gradientPenalty(critic, real(), fake(), eps());
      };
      const at = (v1: number[], v2: number[]) =>
        tf.tidy(() => penalty(tf.tensor4d(v1, [3, 3, 2, 4]), tf.tensor2d(v2, [36, 1])).dataSync()[0]!);
      const [g1, g2] = tf.tidy(() =>
        tf
          .grads(penalty)([tf.tensor4d(w1, [3, 3, 2, 4]), tf.tensor2d(w2, [36, 1])])
          .map((g) => Array.from(g.dataSync())),
      );
      // Central differences at two step sizes; where they agree no kink of the LeakyReLU was crossed,
      // and the analytic second derivative must match them.
      const central = (which: 1 | 2, i: number, h: number) => {
        const plus = [[...w1], [...w2]] as [number[], number[]];
        const minus = [[...w1], [...w2]] as [number[], number[]];
        plus[which - 1]![i]! += h;
        minus[which - 1]![i]! -= h;
        return (at(...plus) - at(...minus)) / (2 * h);
      };
      let checked = 0;
      for (const [which, grads, count] of [
        [1, g1!, w1.length],
        [2, g2!, w2.length],
      ] as const) {
        for (let i = 0; i < count; i += 7) {
          const coarse = central(which, i, 4e-3);
          const fine = central(which, i, 2e-3);
          if (Math.abs(coarse - fine) > 2e-3 * Math.max(1, Math.abs(fine))) continue;
          expect(Math.abs(grads[i]! - fine), `w${which}[${i}]: ${grads[i]} vs ${fine}`).toBeLessThan(
            3e-3 * Math.max(1, Math.abs(fine)),
          );
          checked += 1;
        }
      }
      expect(checked).toBeGreaterThan(8);
    });
  }
});
