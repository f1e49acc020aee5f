import '../gradients.ts';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { analyticGrads, expectFiniteDifferences } from '../testing/finite-differences.ts';
import { ParamStore } from './param-store.ts';
import {
  addBlock,
  fromWindows,
  gelu,
  layerNorm,
  softmax,
  toWindows,
  transformerBlock,
} from './transformer.ts';

/*
 * Float64 references: each layer's forward pass and its vector-Jacobian product (the first derivative) in
 * plain JS; second derivatives are central differences of the float64 first derivative, accurate to ~1e-9.
 */
const ROWS = 3;
const COLS = 5;

/** erf by its Taylor series: float64-exact for |x| <= 3. */
function erf64(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 80; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

type Vjp = (x: number[], dy: number[], gamma: number[]) => { dx: number[]; dgamma: number[] };

const rowsOf = (x: number[]) => Array.from({ length: ROWS }, (_, r) => x.slice(r * COLS, (r + 1) * COLS));

const softmaxVjp: Vjp = (x, dy) => ({
  dx: rowsOf(x).flatMap((row, r) => {
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    const y = e.map((v) => v / s);
    const dot = y.reduce((a, yi, i) => a + yi * dy[r * COLS + i]!, 0);
    return y.map((yi, i) => yi * (dy[r * COLS + i]! - dot));
  }),
  dgamma: [],
});

const geluVjp: Vjp = (x, dy) => ({
  dx: x.map((v, i) => {
    const cdf = 0.5 * (1 + erf64(v / Math.SQRT2));
    const pdf = Math.exp((-v * v) / 2) / Math.sqrt(2 * Math.PI);
    return dy[i]! * (cdf + v * pdf);
  }),
  dgamma: [],
});

/** Layer norm's VJP by its definition: y = gamma * (x - mu) / sqrt(var + eps) + beta per row. */
const layerNormVjp: Vjp = (x, dy, gamma) => {
  const dgamma = new Array<number>(COLS).fill(0);
  const dx = rowsOf(x).flatMap((row, r) => {
    const mu = row.reduce((a, b) => a + b, 0) / COLS;
    const variance = row.reduce((a, b) => a + (b - mu) ** 2, 0) / COLS;
    const rstd = 1 / Math.sqrt(variance + 1e-5);
    const h = row.map((v) => (v - mu) * rstd);
    const g = h.map((_, i) => dy[r * COLS + i]! * gamma[i]!);
    h.forEach((hi, i) => {
      dgamma[i] = dgamma[i]! + dy[r * COLS + i]! * hi;
    });
    const gMean = g.reduce((a, b) => a + b, 0) / COLS;
    const ghMean = g.reduce((a, gi, i) => a + gi * h[i]!, 0) / COLS;
    return h.map((hi, i) => rstd * (g[i]! - gMean - hi * ghMean));
  });
  return { dx, dgamma };
};

/** d/dx and d/dgamma of u . dx(x, gamma) by central differences of the float64 VJP. */
function secondOrder64(vjp: Vjp, x: number[], dy: number[], gamma: number[], u: number[]) {
  const h = 1e-5;
  const s = (xs: number[], gs: number[]) => vjp(xs, dy, gs).dx.reduce((a, v, i) => a + v * u[i]!, 0);
  const nudge = (v: number[], i: number, d: number) => v.map((e, j) => (j === i ? e + d : e));
  return {
    dx: x.map((_, i) => (s(nudge(x, i, h), gamma) - s(nudge(x, i, -h), gamma)) / (2 * h)),
    dgamma: gamma.map((_, i) => (s(x, nudge(gamma, i, h)) - s(x, nudge(gamma, i, -h))) / (2 * h)),
  };
}

function expectClose(
  actual: ArrayLike<number>,
  expected: readonly number[],
  what: string,
  rtol = 1e-3,
): void {
  const scale = Math.max(1e-3, ...expected.map(Math.abs));
  expect(actual.length, what).toBe(expected.length);
  for (let i = 0; i < expected.length; i++)
    expect(Math.abs(actual[i]! - expected[i]!), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`).toBeLessThan(
      rtol * scale,
    );
}

const rng = new Rng(3);
const X = Array.from({ length: ROWS * COLS }, () => 2.5 * (rng.uniform() * 2 - 1));
const DY = Array.from({ length: ROWS * COLS }, () => rng.normal());
const U = Array.from({ length: ROWS * COLS }, () => rng.normal());
const GAMMA = Array.from({ length: COLS }, () => 1 + 0.5 * rng.normal());
const BETA = Array.from({ length: COLS }, () => 0.3 * rng.normal());

const LAYERS: [string, Vjp, (x: tf.Tensor, g: tf.Tensor1D) => tf.Tensor][] = [
  ['softmax', softmaxVjp, (x) => softmax(x)],
  ['gelu', geluVjp, (x) => gelu(x)],
  ['layer norm', layerNormVjp, (x, g) => layerNorm(x, g, tf.tensor1d(BETA))],
];

beforeAll(async () => {
  await initBackend('wasm');
});

describe('transformer layers against float64', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    for (const [name, vjp, layer] of LAYERS) {
      it(`${backend}: ${name} has float64's first and second derivatives (through its input and gain)`, async () => {
        await tf.setBackend(backend);
        const ref1 = vjp(X, DY, GAMMA);
        const ref2 = secondOrder64(vjp, X, DY, GAMMA, U);
        const [first, second] = tf.tidy(() => {
          const dy = tf.tensor2d(DY, [ROWS, COLS]);
          const u = tf.tensor2d(U, [ROWS, COLS]);
          // L = sum(dy * f(x)): its gradient is the VJP; u . grad L differentiated again is the second order.
          // Softmax and GELU have no gain: they are differentiated w.r.t. x only.
          const withGain = name === 'layer norm';
          const gain = tf.tensor1d(GAMMA);
          const loss = (...a: tf.Tensor[]) => tf.sum(tf.mul(dy, layer(a[0]!, (a[1] ?? gain) as tf.Tensor1D)));
          const inner = (...a: tf.Tensor[]) => tf.sum(tf.mul(u, tf.grads(loss)(a)[0]!));
          const args = withGain ? [tf.tensor2d(X, [ROWS, COLS]), gain] : [tf.tensor2d(X, [ROWS, COLS])];
          return [tf.grads(loss)(args), tf.grads(inner)(args)].map((gs) => gs.map((g) => g.dataSync()));
        });
        expectClose(first![0]!, ref1.dx, `${name} dx`);
        expectClose(second![0]!, ref2.dx, `${name} d(u.dx)/dx`);
        if (name === 'layer norm') {
          expectClose(first![1]!, ref1.dgamma, `${name} dgamma`);
          expectClose(second![1]!, ref2.dgamma, `${name} d(u.dx)/dgamma`);
        }
      });
    }
  }

  it("tf.softmax's own gradient cannot be differentiated again (why softmax has a custom gradient)", async () => {
    await tf.setBackend('wasm');
    // Its gradient reads the saved output, a clone the tape does not connect back to x in time.
    const nested = () =>
      tf.tidy(() => {
        const dy = tf.tensor2d(DY, [ROWS, COLS]);
        const u = tf.tensor2d(U, [ROWS, COLS]);
        const loss = (x: tf.Tensor) => tf.sum(tf.mul(dy, tf.softmax(x)));
        return tf.grad((x: tf.Tensor) => tf.sum(tf.mul(u, tf.grad(loss)(x))))(tf.tensor2d(X, [ROWS, COLS]));
      });
    expect(nested).toThrow(/Cannot compute gradient/);
  });
});

describe('transformer block', () => {
  it('splits a grid into windows and back exactly, each window a contiguous s x s patch', () => {
    tf.tidy(() => {
      const x = tf.range(0, 2 * 4 * 4 * 3).reshape([2, 4, 4, 3]) as tf.Tensor4D;
      const w = toWindows(x, 2);
      expect(w.shape).toEqual([8, 4, 3]);
      // Window 1 of image 0 is rows 0-1, columns 2-3.
      const expected = [
        [0, 2],
        [0, 3],
        [1, 2],
        [1, 3],
      ].flatMap(([r, c]) => [0, 1, 2].map((ch) => (r! * 4 + c!) * 3 + ch));
      expect(Array.from(w.slice([1, 0, 0], [1, 4, 3]).dataSync())).toEqual(expected);
      expect(Array.from(fromWindows(w, [2, 4, 4, 3], 2).dataSync())).toEqual(Array.from(x.dataSync()));
    });
  });

  it('has the gradients of central finite differences for every weight kind, on wasm', async () => {
    await tf.setBackend('wasm');
    const store = new ParamStore('blk');
    const p = addBlock(store, 'b0', { dim: 8, mlpRatio: 2 }, new Rng(4));
    const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 9) as tf.Tensor3D;
    const c = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 10);
    const f = () => tf.sum(tf.mul(c, transformerBlock(x, p, 2))) as tf.Scalar;
    const grads = analyticGrads(f, store.vars);
    for (const name of ['q_w', 'k_w', 'proj_w', 'mlp1_w', 'ln1_gamma', 'ln2_beta']) {
      const v = store.get(`b0/${name}`);
      expectFiniteDifferences(f, v, grads.get(v.name)!, v.name, { h: 1e-2 });
    }
    store.dispose();
    tf.dispose([x, c]);
  });
});
