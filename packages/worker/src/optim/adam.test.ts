import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { Adam, type AdamOptions } from './adam.ts';

/**
 * Reference: Kingma & Ba (2015), Algorithm 1 with the "more efficient" ordering of section 2:
 *   m_t = b1 m + (1 - b1) g,  v_t = b2 v + (1 - b2) g^2,
 *   alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t),  x_t = x - alpha_t m_t / (sqrt(v_t) + eps)
 * i.e. eps is added to the un-corrected sqrt(v_t). Computed in float64.
 */
function referenceAdam(
  x0: readonly number[],
  grads: readonly (readonly number[])[],
  o: Required<AdamOptions>,
): number[][] {
  const x = [...x0];
  const m = x0.map(() => 0);
  const v = x0.map(() => 0);
  const trajectory: number[][] = [];
  grads.forEach((g, step) => {
    const t = step + 1;
    const alpha = (o.lr * Math.sqrt(1 - o.beta2 ** t)) / (1 - o.beta1 ** t);
    for (let i = 0; i < x.length; i++) {
      const gi = g[i]!;
      m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi;
      v[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi;
      x[i] = x[i]! - (alpha * m[i]!) / (Math.sqrt(v[i]!) + o.epsilon);
    }
    trajectory.push([...x]);
  });
  return trajectory;
}

/** Textbook form with eps added to the bias-corrected sqrt(v_hat): used only to show the test can tell them apart. */
function textbookAdam(
  x0: readonly number[],
  grads: readonly (readonly number[])[],
  o: Required<AdamOptions>,
): number[] {
  const x = [...x0];
  const m = x0.map(() => 0);
  const v = x0.map(() => 0);
  grads.forEach((g, step) => {
    const t = step + 1;
    for (let i = 0; i < x.length; i++) {
      const gi = g[i]!;
      m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi;
      v[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi;
      const mHat = m[i]! / (1 - o.beta1 ** t);
      const vHat = v[i]! / (1 - o.beta2 ** t);
      x[i] = x[i]! - (o.lr * mHat) / (Math.sqrt(vHat) + o.epsilon);
    }
  });
  return x;
}

// Gradients of mixed sign and magnitude; some are comparable to eps so that where eps enters matters.
const X0 = [0.5, -1.25, 2, 0, 0.1, -0.3];
const GRADS = [
  [0.1, -0.2, 0.003, 1.5, -0.001, 0],
  [0.05, 0.4, -0.002, 1.2, 0.002, 0.01],
  [-0.3, 0.1, 0.001, 0.9, -0.003, -0.02],
  [0.2, -0.05, 0.004, 0.6, 0.001, 0.03],
  [0.0, 0.3, -0.001, 0.3, 0.002, -0.01],
];
const OPTS: Required<AdamOptions> = { lr: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-3 };

let created: tf.Variable[] = [];
let optimizers: Adam[] = [];

function makeVar(values: readonly number[], name = 'adam-test/x'): tf.Variable {
  const v = tf.variable(tf.tensor1d([...values]), true, name);
  created.push(v);
  return v;
}

function makeAdam(vars: tf.Variable[], opts: AdamOptions): Adam {
  const a = new Adam(vars, { ...opts });
  optimizers.push(a);
  return a;
}

function step(opt: Adam, g: readonly number[]): void {
  const t = tf.tensor1d([...g]);
  opt.apply([t]);
  t.dispose();
}

/** max |a - b| / max(|b|, 1e-3): float32 state against a float64 reference. */
function expectNear(actual: ArrayLike<number>, expected: readonly number[], rtol: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    expect(Math.abs(a - e), `index ${i}: ${a} vs ${e}`).toBeLessThanOrEqual(
      rtol * Math.max(Math.abs(e), 1e-3),
    );
  }
}

beforeAll(async () => {
  await initBackend('wasm');
});

afterEach(() => {
  for (const o of optimizers) o.dispose();
  for (const v of created) v.dispose();
  optimizers = [];
  created = [];
});

describe('Adam', () => {
  it('follows the float64 reference of Kingma & Ba (efficient form) step by step', () => {
    const x = makeVar(X0);
    const opt = makeAdam([x], OPTS);
    const expected = referenceAdam(X0, GRADS, OPTS);
    GRADS.forEach((g, i) => {
      step(opt, g);
      expect(opt.steps).toBe(i + 1);
      expectNear(x.dataSync(), expected[i]!, 1e-5);
    });
    // The reference is not the textbook variant: with eps comparable to |g| they differ measurably,
    // so this test would notice eps being moved inside the bias correction.
    const textbook = textbookAdam(X0, GRADS, OPTS);
    const final = expected[expected.length - 1]!;
    expect(Math.max(...final.map((v, i) => Math.abs(v - textbook[i]!)))).toBeGreaterThan(1e-4);
  });

  it('defaults epsilon to 1e-8', () => {
    const x = makeVar(X0);
    const opt = makeAdam([x], { lr: OPTS.lr, beta1: OPTS.beta1, beta2: OPTS.beta2 });
    for (const g of GRADS) step(opt, g);
    expectNear(x.dataSync(), referenceAdam(X0, GRADS, { ...OPTS, epsilon: 1e-8 })[GRADS.length - 1]!, 1e-5);
  });

  it('updates several variables independently, in the order given', () => {
    const a = makeVar([1, 2], 'adam-test/a');
    const b = makeVar([3], 'adam-test/b');
    const opt = makeAdam([a, b], OPTS);
    const ga = tf.tensor1d([0.5, -0.5]);
    const gb = tf.tensor1d([0.25]);
    opt.apply([ga, gb]);
    tf.dispose([ga, gb]);
    expectNear(a.dataSync(), referenceAdam([1, 2], [[0.5, -0.5]], OPTS)[0]!, 1e-6);
    expectNear(b.dataSync(), referenceAdam([3], [[0.25]], OPTS)[0]!, 1e-6);
    expect(() => opt.apply([tf.zeros([2])])).toThrow(/expected 2 gradients/);
  });

  it('after reset() behaves as a new optimizer from the current weights (ProGAN stage starts)', () => {
    const x = makeVar(X0);
    const opt = makeAdam([x], OPTS);
    for (const g of GRADS.slice(0, 2)) step(opt, g);
    const from = Array.from(x.dataSync());
    opt.reset();
    expect(opt.steps).toBe(0);
    const rest = GRADS.slice(2);
    for (const g of rest) step(opt, g);
    expectNear(x.dataSync(), referenceAdam(from, rest, OPTS)[rest.length - 1]!, 1e-5);
  });

  it('continues identically after exportState / importState into a fresh optimizer', () => {
    const x = makeVar(X0);
    const opt = makeAdam([x], OPTS);
    for (const g of GRADS.slice(0, 2)) step(opt, g);
    const state = opt.exportState();
    const weights = Float32Array.from(x.dataSync());
    expect(state.t).toBe(2);
    expect(state.arrays.map((a) => a.name)).toEqual(['adam-test/x/adam_m', 'adam-test/x/adam_v']);

    // The uninterrupted run.
    for (const g of GRADS.slice(2)) step(opt, g);
    const uninterrupted = Float32Array.from(x.dataSync());
    opt.dispose();
    x.dispose();
    optimizers = [];
    created = [];

    // A new process would create variables with the same names and restore weights and optimizer state.
    const y = makeVar(Array.from(weights));
    const resumed = makeAdam([y], OPTS);
    resumed.importState(state);
    expect(resumed.steps).toBe(2);
    for (const g of GRADS.slice(2)) step(resumed, g);
    expect(Array.from(y.dataSync())).toEqual(Array.from(uninterrupted));
  });

  it('rejects optimizer state that lacks or misshapes a slot', () => {
    const x = makeVar(X0);
    const opt = makeAdam([x], OPTS);
    const state = opt.exportState();
    expect(() => opt.importState({ t: 1, arrays: state.arrays.slice(1) })).toThrow(/adam_m/);
    const misshaped = state.arrays.map((a) => ({ ...a, shape: [2, 3] }));
    expect(() => opt.importState({ t: 1, arrays: misshaped })).toThrow(/misshapes/);
  });

  it('applies a new learning rate from the next step on', () => {
    const x = makeVar(X0);
    const opt = makeAdam([x], OPTS);
    step(opt, GRADS[0]!);
    const before = Array.from(x.dataSync());
    opt.setLearningRate(OPTS.lr / 10);
    step(opt, GRADS[1]!);

    // Expected second step: the same moments, one tenth of the step size.
    const [first, second] = [GRADS[0]!, GRADS[1]!];
    const m: number[] = [];
    const v: number[] = [];
    const expected = before.map((xi, i) => {
      const g0 = first[i]!;
      const g1 = second[i]!;
      m[i] = OPTS.beta1 * (1 - OPTS.beta1) * g0 + (1 - OPTS.beta1) * g1;
      v[i] = OPTS.beta2 * (1 - OPTS.beta2) * g0 * g0 + (1 - OPTS.beta2) * g1 * g1;
      const alpha = ((OPTS.lr / 10) * Math.sqrt(1 - OPTS.beta2 ** 2)) / (1 - OPTS.beta1 ** 2);
      return xi - (alpha * m[i]!) / (Math.sqrt(v[i]!) + OPTS.epsilon);
    });
    expectNear(x.dataSync(), expected, 1e-5);
  });
});
