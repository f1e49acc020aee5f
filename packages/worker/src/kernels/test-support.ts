/** Helpers shared by the kernel tests: deterministic data, cross-backend runs, tolerant comparison. */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

/** Deterministic uniform(-1, 1) data (mulberry32). */
export function randomData(size: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2147483648 - 1;
  }
  return out;
}

/** An NHWC or filter shape, and a conv2d padding, as the convolution kernel tests describe their cases. */
export type Shape4 = [number, number, number, number];
export type ConvPad =
  | 'same'
  | 'valid'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];

export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Runs `fn` on a backend and returns a copy of the resulting tensor's values. */
export async function runOn(backend: 'wasm' | 'cpu', fn: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend(backend);
  const t = tf.tidy(fn);
  const values = Float32Array.from(t.dataSync());
  t.dispose();
  return values;
}

/** |a - b| <= rtol * (|b| + max|b|) elementwise: relative tolerance scaled to the tensor's magnitude. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i] as number));
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    const a = actual[i] as number;
    // Written so that NaN in `actual` counts as a failure.
    const excess = Number.isFinite(a) ? Math.abs(a - e) - rtol * (Math.abs(e) + scale) : Infinity;
    if (excess > worst) {
      worst = excess;
      worstAt = i;
    }
  }
  expect(worstAt, `index ${worstAt}: ${actual[worstAt]} vs ${expected[worstAt]}`).toBe(-1);
}

/**
 * Runs `step` (which must dispose what it returns) once to warm up, then three times, and expects the
 * engine's tensors and the wasm backend's buffers to be as many after as before the three.
 */
export function expectNoLeaks(step: () => void): void {
  const buffers = () => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
  step();
  const tensors = tf.memory().numTensors;
  const ids = buffers();
  for (let i = 0; i < 3; i++) step();
  expect(tf.memory().numTensors).toBe(tensors);
  expect(buffers()).toBe(ids);
}
