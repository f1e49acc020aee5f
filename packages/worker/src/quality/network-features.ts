import * as tf from '@tensorflow/tfjs-core';
import type { ImageShape } from '../families/family.ts';

/** A network that maps images to feature vectors (a DCGAN discriminator's `features`). */
export interface FeatureExtractor {
  features(x: tf.Tensor4D): tf.Tensor2D;
}

/**
 * The features of `count` NHWC images, row-major [count, dim], computed in fixed batches of `batch` (a
 * network with batch norm normalises by its batch, so the batching is part of what the features are),
 * yielding to the event loop between batches.
 */
export async function extractFeatures(
  net: FeatureExtractor,
  images: Float32Array,
  count: number,
  shape: ImageShape,
  batch = 500,
): Promise<{ features: Float32Array; dim: number }> {
  const px = shape.height * shape.width * shape.channels;
  let features: Float32Array | undefined;
  let dim = 0;
  for (let i0 = 0; i0 < count; i0 += batch) {
    const n = Math.min(batch, count - i0);
    const f = tf.tidy(() =>
      net.features(
        tf.tensor4d(images.subarray(i0 * px, (i0 + n) * px), [n, shape.height, shape.width, shape.channels]),
      ),
    );
    dim = f.shape[1];
    features ??= new Float32Array(count * dim);
    features.set(f.dataSync(), i0 * dim);
    f.dispose();
    await new Promise((r) => setImmediate(r));
  }
  return { features: features ?? new Float32Array(0), dim };
}
