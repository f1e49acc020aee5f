import '../gradients.ts';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import {
  analyticGrads,
  expectBackendsAgree,
  expectFiniteDifferences,
} from '../testing/finite-differences.ts';
import { type ColorParams, color, cutout, cutoutSize, maxShift, translate } from './transforms.ts';

/** A batch of NHWC images as plain numbers (float32 values), for the float64 references. */
interface Images {
  n: number;
  h: number;
  w: number;
  c: number;
  data: Float64Array;
}

const at = (im: Images, b: number, i: number, j: number, k: number) => ((b * im.h + i) * im.w + j) * im.c + k;

function randomImages(rng: Rng, n: number, h: number, w: number, c: number): Images {
  return {
    n,
    h,
    w,
    c,
    data: Float64Array.from({ length: n * h * w * c }, () => Math.fround(rng.uniform() * 2 - 1)),
  };
}

/** out[b, i, j] = x[b, i - dy, j - dx], 0 outside: the paper's translation with zero padding. */
function refTranslate(x: Images, dy: Int32Array, dx: Int32Array): Float64Array {
  const out = new Float64Array(x.data.length);
  for (let b = 0; b < x.n; b++)
    for (let i = 0; i < x.h; i++)
      for (let j = 0; j < x.w; j++)
        for (let k = 0; k < x.c; k++) {
          const si = i - dy[b]!;
          const sj = j - dx[b]!;
          if (si >= 0 && si < x.h && sj >= 0 && sj < x.w)
            out[at(x, b, i, j, k)] = x.data[at(x, b, si, sj, k)]!;
        }
  return out;
}

/** Zeros where |row - cy| and |col - cx| fall in the half-side square the reference cuts out. */
function refCutout(x: Images, cy: Int32Array, cx: Int32Array): Float64Array {
  const out = Float64Array.from(x.data);
  const [sh, sw] = [cutoutSize(x.h), cutoutSize(x.w)];
  for (let b = 0; b < x.n; b++) {
    if (cy[b]! < 0) continue;
    for (let i = 0; i < x.h; i++)
      for (let j = 0; j < x.w; j++) {
        const inRows = i >= cy[b]! - Math.floor(sh / 2) && i < cy[b]! - Math.floor(sh / 2) + sh;
        const inCols = j >= cx[b]! - Math.floor(sw / 2) && j < cx[b]! - Math.floor(sw / 2) + sw;
        if (inRows && inCols) for (let k = 0; k < x.c; k++) out[at(x, b, i, j, k)] = 0;
      }
  }
  return out;
}

/** The reference's colour: x + b; (x - mean_c) * s + mean_c; (x - mean_chw) * c + mean_chw, per group. */
function refColor(x: Images, p: ColorParams, groups: number): Float64Array {
  const out = Float64Array.from(x.data);
  const cg = x.c / groups;
  for (let b = 0; b < x.n; b++)
    for (let g = 0; g < groups; g++) {
      const ks = Array.from({ length: cg }, (_, k) => g * cg + k);
      const idx = (i: number, j: number, k: number) => at(x, b, i, j, k);
      for (let i = 0; i < x.h; i++)
        for (let j = 0; j < x.w; j++) for (const k of ks) out[idx(i, j, k)]! += p.brightness[b]!;
      for (let i = 0; i < x.h; i++)
        for (let j = 0; j < x.w; j++) {
          const m = ks.reduce((a, k) => a + out[idx(i, j, k)]!, 0) / cg;
          for (const k of ks) out[idx(i, j, k)] = (out[idx(i, j, k)]! - m) * p.saturation[b]! + m;
        }
      let m = 0;
      for (let i = 0; i < x.h; i++) for (let j = 0; j < x.w; j++) for (const k of ks) m += out[idx(i, j, k)]!;
      m /= x.h * x.w * cg;
      for (let i = 0; i < x.h; i++)
        for (let j = 0; j < x.w; j++)
          for (const k of ks) out[idx(i, j, k)] = (out[idx(i, j, k)]! - m) * p.contrast[b]! + m;
    }
  return out;
}

const tensorOf = (x: Images) => tf.tensor4d(Float32Array.from(x.data), [x.n, x.h, x.w, x.c]);

function expectClose(actual: Float32Array, expected: Float64Array, tol: number, what: string): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst, what).toBeLessThanOrEqual(tol);
}

const ints = (xs: number[]) => Int32Array.from(xs);
const COLOR: ColorParams = {
  brightness: Float32Array.from([0.3, -0.45, 0.1, 0]),
  saturation: Float32Array.from([1.7, 0.2, 1, 0.9]),
  contrast: Float32Array.from([0.6, 1.4, 1.2, 1]),
};

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
});

describe('DiffAugment transforms against float64 references', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    it(`translate, cutout and color match the references on ${backend} (1 and 3 channels, paired)`, () => {
      tf.setBackend(backend);
      const rng = new Rng(11);
      for (const [h, w, c, groups] of [
        [8, 12, 1, 1],
        [9, 8, 3, 1],
        [8, 8, 6, 2],
      ] as const) {
        const x = randomImages(rng, 4, h, w, c);
        const dy = ints([1, -1, 0, maxShift(h)]);
        const dx = ints([-maxShift(w), 0, 1, 2]);
        // Centres in the corners, the middle and one sample left whole (-1).
        const cy = ints([0, h - 1, 3, -1]);
        const cx = ints([w, 0, 4, 0]);
        tf.tidy(() => {
          const t = tensorOf(x);
          const shape = `${h}x${w}x${c}`;
          expectClose(
            translate(t, dy, dx).dataSync() as Float32Array,
            refTranslate(x, dy, dx),
            1e-6,
            `translate ${shape}`,
          );
          expectClose(
            cutout(t, cy, cx).dataSync() as Float32Array,
            refCutout(x, cy, cx),
            0,
            `cutout ${shape}`,
          );
          expectClose(
            color(t, COLOR, groups).dataSync() as Float32Array,
            refColor(x, COLOR, groups),
            1e-5,
            `color ${shape}`,
          );
        });
      }
      tf.setBackend('wasm');
    });
  }

  it("uses the paper's sizes: shifts of 1/8 and a cutout of 1/2 of the side, rounded", () => {
    expect([maxShift(4), maxShift(8), maxShift(28), maxShift(32), maxShift(64)]).toEqual([1, 1, 4, 4, 8]);
    expect([cutoutSize(4), cutoutSize(7), cutoutSize(28), cutoutSize(32)]).toEqual([2, 4, 14, 16]);
  });

  it('leaves samples with identity parameters bit-for-bit unchanged', () => {
    const x = randomImages(new Rng(3), 4, 8, 8, 3);
    tf.tidy(() => {
      const t = tensorOf(x);
      const before = t.dataSync();
      const zeros = new Int32Array(4);
      const identity: ColorParams = {
        brightness: new Float32Array(4),
        saturation: new Float32Array(4).fill(1),
        contrast: new Float32Array(4).fill(1),
      };
      for (const y of [
        translate(t, zeros, zeros),
        cutout(t, ints([-1, -1, -1, -1]), zeros),
        color(t, identity),
      ])
        expect(Array.from(y.dataSync())).toEqual(Array.from(before));
    });
  });

  it('saturation is a no-op on one channel', () => {
    const x = randomImages(new Rng(4), 4, 6, 6, 1);
    const onlySaturation = {
      ...COLOR,
      brightness: new Float32Array(4),
      contrast: new Float32Array(4).fill(1),
    };
    tf.tidy(() => {
      expect(Array.from(color(tensorOf(x), onlySaturation).dataSync())).toEqual(
        Array.from(tensorOf(x).dataSync()),
      );
    });
  });
});

describe('DiffAugment transforms differentiate once and twice', () => {
  const N = 4;
  const [H, W, C] = [8, 8, 3];
  const dy = ints([2, -1, 0, 1]);
  const dx = ints([-1, 1, 2, 0]);
  const cy = ints([2, 7, 4, -1]);
  const cx = ints([3, 0, 8, 0]);
  /** T: all three transforms, in the paper's order. */
  const T = (x: tf.Tensor4D) => cutout(translate(color(x, COLOR), dy, dx), cy, cx);
  const weights = () => tensorOf(randomImages(new Rng(21), N, H, W, C));
  /** A smooth, non-linear function of T(x), as a critic would be. */
  const g = (x: tf.Tensor4D) => {
    const y = T(x);
    return tf.sum(tf.mul(weights(), tf.mul(y, tf.mul(y, y)))) as tf.Scalar;
  };
  /** A gradient penalty's shape: the squared norm of grad_x g(T(x)), whose gradient is a second derivative. */
  const penalty = (x: tf.Variable) =>
    tf.tidy(() => tf.sum(tf.square(tf.grad((u: tf.Tensor) => g(u as tf.Tensor4D))(x))) as tf.Scalar);

  it('matches finite differences of the first and second derivatives (wasm), and cpu agrees', () => {
    const x = tf.variable(tensorOf(randomImages(new Rng(5), N, H, W, C)), true, 'augment-test/x');
    try {
      const first = () => tf.tidy(() => g(x as tf.Tensor4D));
      const second = () => penalty(x);
      const g1 = analyticGrads(first, [x]).get(x.name)!;
      expectFiniteDifferences(first, x, g1, 'd g(T(x)) / dx', { want: 4 });
      const g2 = analyticGrads(second, [x]).get(x.name)!;
      expectFiniteDifferences(second, x, g2, 'd |grad g(T(x))|^2 / dx', { want: 4 });
      expectBackendsAgree([
        [first, [x]],
        [second, [x]],
      ]);
    } finally {
      x.dispose();
    }
  });
});
