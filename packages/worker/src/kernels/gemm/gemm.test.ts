import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { randomData } from '../test-support.ts';
import { type Gemm, gemmFor, heapPtr, KC } from './index.ts';

let backend: BackendWasm;
let gemm: Gemm;

beforeAll(async () => {
  const info = await initBackend('wasm');
  backend = tf.backend() as BackendWasm;
  const bound = gemmFor(backend);
  // Node 20 on x86-64 and arm64 compiles relaxed SIMD once the V8 flag is set; the suite needs it.
  expect(bound, `Gantry's product is unavailable here (${info.device})`).toBeDefined();
  gemm = bound as Gemm;
  expect(info.device).toContain('fma gemm');
});

/** op(A) @ op(B) in float64 from the stored matrices, the reference. */
function reference(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  ta: boolean,
  tb: boolean,
) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++)
        s += (a[ta ? p * m + i : i * k + p] as number) * (b[tb ? j * k + p : p * n + j] as number);
      c[i * n + j] = s;
    }
  }
  return c;
}

/** Gantry's product on stored matrices, op(A) by strides; C gets a row stride of ldc >= n floats. */
function product(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  ta: boolean,
  tb: boolean,
  ldc = n,
) {
  const at = tf.tensor1d(a);
  const bt = tf.tensor1d(b);
  // Sentinels around and between C's rows: the product must write exactly the m x n elements.
  const ct = tf.fill([m * ldc + 8], 7);
  try {
    gemm.reserve(n);
    gemm.multiply(
      m,
      k,
      n,
      { ptr: heapPtr(backend, at), rowStride: ta ? 4 : 4 * k, colStride: ta ? 4 * m : 4 },
      { ptr: heapPtr(backend, bt), rowStride: tb ? 4 : 4 * n, colStride: tb ? 4 * k : 4 },
      { ptr: heapPtr(backend, ct), rowStride: 4 * ldc },
    );
    // A copy (the wasm backend reads by slicing the heap).
    return ct.dataSync() as Float32Array;
  } finally {
    tf.dispose([at, bt, ct]);
  }
}

describe("Gantry's matrix product (wasm, relaxed SIMD) vs float64", () => {
  const sizes: [number, number, number][] = [
    [1, 1, 1],
    [4, 1, 8],
    [3, 5, 7],
    [5, 9, 9],
    [4, 8, 16],
    [13, 37, 29],
    [8, KC, 8],
    [9, KC + 1, 17],
    [6, 2 * KC + 3, 11],
    [64, 100, 392],
    [130, 3 * KC, 24],
    // pix2pix's transposed convs at 1x1-2x2: few rows against a wide, transposed filter.
    [8, KC + 46, 1030],
    // The 5-row tile (TILE_ROWS) with small K, whole tiles and 1-4 rows left over, N past a panel.
    [5, 1, 8],
    [10, 3, 16],
    [12, 7, 24],
    [14, 2, 13],
    [16, KC + 5, 40],
  ];
  for (const [m, k, n] of sizes) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        it(`${m}x${k} @ ${k}x${n}${ta ? ' A^T' : ''}${tb ? ' B^T' : ''}`, () => {
          const a = randomData(m * k, m + k);
          const b = randomData(k * n, k + n);
          const ldc = n + 3;
          const got = product(a, b, m, k, n, ta, tb, ldc);
          const want = reference(a, b, m, k, n, ta, tb);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < ldc; j++) {
              const v = got[i * ldc + j] as number;
              if (j >= n) {
                expect(v, `padding at [${i}][${j}] was written`).toBe(7);
                continue;
              }
              const w = want[i * n + j] as number;
              // float32 accumulation of k products of magnitude <= 1.
              expect(Math.abs(v - w), `[${i}][${j}]: ${v} vs ${w}`).toBeLessThanOrEqual(2e-6 * k + 1e-6);
            }
          }
          for (let t = m * ldc; t < got.length; t++) expect(got[t]).toBe(7);
        });
      }
    }
  }

  it('adds into C with addToC: whole tiles, edge tiles and several K blocks, nothing past the m x n', () => {
    const cases: [number, number, number][] = [
      [1, 1, 1],
      [5, 32, 32],
      [13, 37, 29],
      [9, KC + 1, 17],
      [12, 2 * KC + 3, 27],
    ];
    for (const [m, k, n] of cases) {
      const a = randomData(m * k, m + k);
      const b = randomData(k * n, k + n);
      const ldc = n + 3;
      const base = randomData(m * ldc + 8, m * n);
      const at = tf.tensor1d(a);
      const bt = tf.tensor1d(b);
      const ct = tf.tensor1d(base);
      try {
        gemm.reserve(n);
        gemm.multiply(
          m,
          k,
          n,
          { ptr: heapPtr(backend, at), rowStride: 4 * k, colStride: 4 },
          { ptr: heapPtr(backend, bt), rowStride: 4 * n, colStride: 4 },
          { ptr: heapPtr(backend, ct), rowStride: 4 * ldc },
          true,
        );
        const got = ct.dataSync();
        const want = reference(a, b, m, k, n, false, false);
        for (let t = 0; t < got.length; t++) {
          const i = Math.floor(t / ldc);
          const j = t % ldc;
          if (i >= m || j >= n) {
            expect(got[t], `${m}x${k}x${n}: [${t}] outside C was written`).toBe(base[t]);
            continue;
          }
          const w = (base[t] as number) + (want[i * n + j] as number);
          expect(Math.abs((got[t] as number) - w), `${m}x${k}x${n} [${i}][${j}]`).toBeLessThanOrEqual(
            2e-6 * k + 1e-6,
          );
        }
      } finally {
        tf.dispose([at, bt, ct]);
      }
    }
  });

  it('leaves C alone for an empty sum with addToC', () => {
    const base = randomData(27, 5);
    const ct = tf.tensor1d(base);
    try {
      gemm.multiply(
        3,
        0,
        9,
        { ptr: 0, rowStride: 0, colStride: 4 },
        { ptr: 0, rowStride: 36, colStride: 4 },
        {
          ptr: heapPtr(backend, ct),
          rowStride: 36,
        },
        true,
      );
      expect(Array.from(ct.dataSync())).toEqual(Array.from(base));
    } finally {
      ct.dispose();
    }
  });

  it('writes zeros for an empty sum', () => {
    const got = product(new Float32Array(0), new Float32Array(0), 3, 0, 9, false, false);
    expect(Array.from(got.subarray(0, 27))).toEqual(new Array(27).fill(0));
  });

  it('keeps working when the heap grows between calls', () => {
    const a = randomData(20 * 30, 1);
    const b = randomData(30 * 12, 2);
    const first = Array.from(product(a, b, 20, 30, 12, false, false));
    // 256 MiB more tensors than before forces the emscripten heap to grow.
    const big = tf.zeros([64 * 1024 * 1024]);
    try {
      expect(Array.from(product(a, b, 20, 30, 12, false, false))).toEqual(first);
    } finally {
      big.dispose();
    }
  });
});

describe("Gantry's SIMD run adder (col2im's dst += src)", () => {
  it('adds exactly n floats, vector part and tail, and touches nothing past them', () => {
    for (const n of [0, 1, 3, 4, 17, 256, 259]) {
      const dst = randomData(n + 8, n);
      const src = randomData(n + 8, n + 1);
      const dt = tf.tensor1d(dst);
      const st = tf.tensor1d(src);
      try {
        // One float in: unaligned addresses, as col2im's runs are.
        gemm.addInto(heapPtr(backend, dt) + 4, heapPtr(backend, st) + 4, n);
        const got = dt.dataSync();
        for (let i = 0; i < n + 8; i++) {
          const want = i >= 1 && i <= n ? Math.fround((dst[i] as number) + (src[i] as number)) : dst[i];
          expect(got[i], `n ${n} [${i}]`).toBe(want);
        }
      } finally {
        tf.dispose([dt, st]);
      }
    }
  });
});
