import './gradients.ts';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.ts';
import { discriminatorLoss, generatorLoss } from './losses.ts';

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
