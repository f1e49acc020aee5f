import type { Dataset } from './datasets.ts';

/** A batch copied out of a dataset: images NHWC in [-1, 1] and one label per image. */
export interface Batch {
  images: Float32Array;
  labels: Int32Array;
}

/**
 * Copies the rows at `indices` (in that order, repeats allowed) into fresh arrays.
 * Throws a RangeError for an index that is not an integer in `0..ds.count-1`.
 */
export function sampleBatch(ds: Dataset, indices: Uint32Array | readonly number[]): Batch {
  const rowSize = ds.height * ds.width * ds.channels;
  const n = indices.length;
  const images = new Float32Array(n * rowSize);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const idx = indices[i]!;
    if (!Number.isInteger(idx) || idx < 0 || idx >= ds.count) {
      throw new RangeError(`batch index ${idx} (position ${i}) is outside ${ds.name} [0, ${ds.count})`);
    }
    images.set(ds.images.subarray(idx * rowSize, (idx + 1) * rowSize), i * rowSize);
    labels[i] = ds.labels[idx]!;
  }
  return { images, labels };
}
