import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import type { ImageShape } from '../families/family.ts';

/** Pixels of one image of `shape`. */
export function pixels(shape: ImageShape): number {
  return shape.height * shape.width * shape.channels;
}

/** `batch` example indices drawn uniformly from `count` with the trainer's Rng. */
export function drawIndices(rng: Rng, count: number, batch: number): Int32Array {
  if (count === 0) throw new Error('cannot train on a data set without examples');
  const idx = new Int32Array(batch);
  for (let i = 0; i < batch; i++) idx[i] = rng.int(count);
  return idx;
}

/** The images at `idx` of an NHWC array of `shape` images, as a tensor. */
export function gather(images: Float32Array, shape: ImageShape, idx: ArrayLike<number>): tf.Tensor4D {
  const px = pixels(shape);
  const out = new Float32Array(idx.length * px);
  for (let i = 0; i < idx.length; i++) {
    const j = idx[i]!;
    out.set(images.subarray(j * px, (j + 1) * px), i * px);
  }
  return tf.tensor4d(out, [idx.length, shape.height, shape.width, shape.channels]);
}

/**
 * `f` applied to `count` images of `inShape` in batches of `batch` (each in its own tidy), the results
 * (images of `outShape`) concatenated.
 */
export function mapBatches(
  inputs: Float32Array,
  count: number,
  inShape: ImageShape,
  outShape: ImageShape,
  f: (x: tf.Tensor4D) => tf.Tensor4D,
  batch = 16,
): Float32Array {
  const inPx = pixels(inShape);
  const outPx = pixels(outShape);
  if (inputs.length !== count * inPx)
    throw new RangeError(
      `expected ${count} images of ${inShape.height}x${inShape.width}x${inShape.channels}`,
    );
  const out = new Float32Array(count * outPx);
  for (let i0 = 0; i0 < count; i0 += batch) {
    const n = Math.min(batch, count - i0);
    tf.tidy(() => {
      const x = tf.tensor4d(inputs.subarray(i0 * inPx, (i0 + n) * inPx), [
        n,
        inShape.height,
        inShape.width,
        inShape.channels,
      ]);
      out.set(f(x).dataSync() as Float32Array, i0 * outPx);
    });
  }
  return out;
}

/** Nearest-neighbour upscaling by an integer factor (how an LR input is shown beside its SR output). */
export function upscaleNearest(
  images: Float32Array,
  count: number,
  shape: ImageShape,
  factor: number,
): Float32Array {
  const { height: h, width: w, channels: c } = shape;
  const out = new Float32Array(count * h * factor * w * factor * c);
  let o = 0;
  for (let n = 0; n < count; n++)
    for (let y = 0; y < h * factor; y++)
      for (let x = 0; x < w * factor; x++) {
        const from = ((n * h + Math.floor(y / factor)) * w + Math.floor(x / factor)) * c;
        for (let k = 0; k < c; k++) out[o++] = images[from + k]!;
      }
  return out;
}

/** Interleaves per-example columns into grid tiles: row-major, example by example, `columns` in order. */
export function interleave(columns: readonly Float32Array[], count: number, px: number): Float32Array {
  const out = new Float32Array(columns.length * count * px);
  let o = 0;
  for (let i = 0; i < count; i++)
    for (const col of columns) {
      out.set(col.subarray(i * px, (i + 1) * px), o);
      o += px;
    }
  return out;
}
