import '../gradients.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import {
  type BatchMatMulOptions,
  batchMatMul,
  batchMatMulConfig,
  MIN_SLICE_MACS,
  suitsMatrixVector,
} from './batch-mat-mul.ts';
import { registerWasmTrainingKernels } from './index.ts';
import { expectClose, randomData, runOn, size } from './test-support.ts';

/** One BatchMatMul call: stored operand shapes and transpose flags. */
interface Case {
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

const label = (c: Case): string =>
  `[${c.a}]${c.transposeA ? '^T' : ''} @ [${c.b}]${c.transposeB ? '^T' : ''}`;

/** Through the engine: whichever kernel is registered for the active backend. */
function matMul(c: Case, a: Float32Array, b: Float32Array): tf.Tensor {
  return tf.matMul(tf.tensor(a, c.a), tf.tensor(b, c.b), c.transposeA, c.transposeB);
}

/** Calls our wasm kernel directly; checks it leaves exactly its result behind, returns its values. */
function direct(c: Case, a: Float32Array, b: Float32Array, options: BatchMatMulOptions): Float32Array {
  const backend = tf.backend() as BackendWasm;
  const at = tf.tensor(a, c.a);
  const bt = tf.tensor(b, c.b);
  const before = backend.numDataIds();
  const out = batchMatMul(
    { inputs: { a: at, b: bt }, backend, attrs: { transposeA: c.transposeA, transposeB: c.transposeB } },
    options,
  );
  expect(backend.numDataIds()).toBe(before + 1);
  const values = Float32Array.from(backend.readSync(out.dataId) as Float32Array);
  backend.disposeData(out.dataId);
  tf.dispose([at, bt]);
  return values;
}

/** All four transpose combinations of op(A) [m, k] @ op(B) [k, n] with the given batch shapes. */
function combos(batchA: number[], batchB: number[], m: number, k: number, n: number): Case[] {
  const out: Case[] = [];
  for (const transposeA of [false, true]) {
    for (const transposeB of [false, true]) {
      out.push({
        a: [...batchA, ...(transposeA ? [k, m] : [m, k])],
        b: [...batchB, ...(transposeB ? [n, k] : [k, n])],
        transposeA,
        transposeB,
      });
    }
  }
  return out;
}

const cases: Case[] = [
  // The DCGAN dense layers (batch reduced) and their gradients.
  ...combos([], [], 100, 16, 392),
  ...combos([], [], 16, 392, 1),
  ...combos([], [], 392, 16, 1),
  ...combos([], [], 1, 16, 392),
  // D's dense layer at full size: matrix-vector products by Gantry's product (suitsMatrixVector).
  ...combos([], [], 64, 6272, 1),
  ...combos([], [], 6272, 64, 1),
  // Odd sizes, vectors, a single element.
  ...combos([], [], 7, 9, 5),
  ...combos([], [], 33, 1, 17),
  ...combos([], [], 1, 1, 1),
  ...combos([], [], 65, 127, 3),
  // Batches: equal, broadcast either way, several batch dimensions, unequal ranks.
  ...combos([3], [3], 5, 6, 7),
  ...combos([4], [1], 9, 8, 11),
  ...combos([1], [4], 9, 8, 11),
  ...combos([2, 3], [2, 3], 4, 5, 6),
  ...combos([3], [], 6, 5, 4),
  ...combos([], [2, 2], 6, 5, 4),
  // Batches large enough (M*N*K >= MIN_SLICE_MACS) to run matrix by matrix.
  ...combos([3], [3], 41, 37, 29),
  ...combos([1], [4], 41, 37, 29),
  ...combos([2, 2], [1], 41, 37, 29),
  // Attention's per-head products at TransGAN's sizes (batch reduced), small matrices on both sides: its
  // G's windows of 49 tokens with 2 and 8 channels a head, its critic's 50 tokens with 16; an odd one.
  ...combos([6], [6], 49, 2, 49),
  ...combos([6], [6], 49, 49, 2),
  ...combos([5], [5], 49, 8, 49),
  ...combos([5], [5], 49, 49, 8),
  ...combos([4], [4], 50, 16, 50),
  ...combos([4], [4], 50, 50, 16),
  ...combos([3], [3], 5, 3, 2),
];

beforeAll(async () => {
  await initBackend('cpu');
  const info = await initBackend('wasm');
  expect(info.device).toMatch(/^cpu \(wasm/);
});

describe('BatchMatMul (wasm) vs cpu', () => {
  it('replaces the stock wasm kernel, idempotently', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(tf.getKernel('BatchMatMul', 'wasm').kernelFunc).toBe(batchMatMulConfig.kernelFunc);
  });

  it('has a case that runs matrix by matrix', () => {
    expect(41 * 37 * 29).toBeGreaterThanOrEqual(MIN_SLICE_MACS);
  });

  it("sends D's dense products, and no smaller vector products, to Gantry's product", () => {
    expect(suitsMatrixVector(64, 6272, 1)).toBe(true);
    expect(suitsMatrixVector(6272, 64, 1)).toBe(true);
    expect(suitsMatrixVector(16, 392, 1)).toBe(false);
    expect(suitsMatrixVector(1, 6272, 1)).toBe(false);
    expect(suitsMatrixVector(64, 6272, 2)).toBe(false);
  });

  it.each(cases.map((c) => [label(c), c] as const))('%s', async (_name, c) => {
    const a = randomData(size(c.a), 1);
    const b = randomData(size(c.b), 2);
    const cpu = await runOn('cpu', () => matMul(c, a, b));
    expectClose(await runOn('wasm', () => matMul(c, a, b)), cpu);
    for (const plan of ['direct', 'swapped', 'gemm'] as const) expectClose(direct(c, a, b, { plan }), cpu);
  });

  it('returns zeros for an empty shared dimension and nothing for an empty batch', async () => {
    const empty: Case = { a: [3, 0], b: [0, 4], transposeA: false, transposeB: false };
    expect(
      Array.from(await runOn('wasm', () => matMul(empty, new Float32Array(0), new Float32Array(0)))),
    ).toEqual(new Array(12).fill(0));
    const noBatch: Case = { a: [0, 3, 2], b: [0, 4, 3], transposeA: true, transposeB: true };
    await tf.setBackend('wasm');
    const out = tf.tidy(() =>
      tf.matMul(tf.zeros(noBatch.a), tf.zeros(noBatch.b), noBatch.transposeA, noBatch.transposeB),
    );
    expect(out.shape).toEqual([0, 2, 4]);
    out.dispose();
  });

  it('multiplies by storage it already multiplied by in another shape (XNNPACK operator cache)', async () => {
    // The stock kernel caches B packed per storage id; reshapes and clones share storage.
    const w = randomData(24, 8);
    const x = randomData(12, 9);
    const y = randomData(18, 10);
    const run = () => {
      const wt = tf.tensor2d(w, [6, 4]);
      const first = tf.matMul(tf.tensor2d(x, [2, 6]), wt);
      const reshaped = tf.matMul(tf.tensor2d(y, [3, 6]), tf.reshape(wt, [6, 4]).reshape([4, 6]), false, true);
      const vector = tf.matMul(tf.tensor2d(x.subarray(0, 2), [2, 1]), tf.reshape(wt, [24, 1]), false, true);
      return tf.concat([
        first.flatten(),
        reshaped.flatten(),
        vector.flatten(),
        tf.matMul(tf.tensor2d(x, [2, 6]), wt).flatten(),
      ]);
    };
    expectClose(await runOn('wasm', run), await runOn('cpu', run));
  });

  it('keeps tfjs errors for mismatched inner dimensions', async () => {
    await tf.setBackend('wasm');
    expect(() => tf.tidy(() => tf.matMul(tf.zeros([3, 4]), tf.zeros([3, 4]), true, true))).toThrow(
      /inner shapes/,
    );
  });

  it('does not leak tensors through the engine, on any path', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    // Direct, swapped (a vector result), a tall batched product and one matrix by matrix.
    for (const c of [
      { a: [16, 100], b: [16, 392], transposeA: true, transposeB: false },
      { a: [16, 392], b: [16, 1], transposeA: true, transposeB: false },
      { a: [64, 6272], b: [6272, 1], transposeA: false, transposeB: false },
      { a: [64, 6272], b: [64, 1], transposeA: true, transposeB: false },
      { a: [4, 9, 8], b: [11, 8], transposeA: false, transposeB: true },
      { a: [3, 37, 41], b: [3, 29, 37], transposeA: true, transposeB: true },
    ]) {
      const a = randomData(size(c.a), 3);
      const b = randomData(size(c.b), 4);
      const tensors = tf.memory().numTensors;
      const dataIds = backend.numDataIds();
      tf.tidy(() => matMul(c, a, b)).dispose();
      expect(tf.memory().numTensors).toBe(tensors);
      expect(backend.numDataIds()).toBe(dataIds);
    }
  });
});

describe('gradients of matMul, on wasm vs cpu', () => {
  it('matches d/dx and d/dw of sum(x @ w * r) for the dense layers', async () => {
    for (const [n, i, o] of [
      [16, 100, 392],
      [16, 392, 1],
      [64, 6272, 1],
    ] as const) {
      const x = randomData(n * i, 5);
      const w = randomData(i * o, 6);
      const r = randomData(n * o, 7);
      const grads = (which: 0 | 1) => () => {
        const loss = (xt: tf.Tensor, wt: tf.Tensor) =>
          tf.sum(tf.mul(tf.matMul(xt, wt), tf.tensor2d(r, [n, o])));
        return tf.grads(loss)([tf.tensor2d(x, [n, i]), tf.tensor2d(w, [i, o])])[which] as tf.Tensor;
      };
      for (const which of [0, 1] as const) {
        expectClose(await runOn('wasm', grads(which)), await runOn('cpu', grads(which)));
      }
    }
  });
});
