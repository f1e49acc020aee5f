import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import type { ImageShape, NetworkTensor } from '../families/family.ts';

/** Seeds the example images of an export (networks whose inputs are images). */
const EXAMPLE_SEED = 0x51ed270b;

/** `count` images in [-1, 1] at `shape`, the same for every export of that shape (the k-th of a call). */
export function exampleImages(count: number, shape: ImageShape, k = 0): Float32Array {
  const rng = new Rng(EXAMPLE_SEED + k);
  const out = new Float32Array(count * shape.height * shape.width * shape.channels);
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform() * 2 - 1;
  return out;
}

/** An NHWC image input or output of a network. */
export function imageTensor(name: string, shape: ImageShape, what: string): NetworkTensor {
  return {
    name,
    shape: [shape.height, shape.width, shape.channels],
    description: `${what}, NHWC in [-1, 1]`,
  };
}

/** Runs `f` on `inputs` (flat, `count` examples each at the shapes of `tensors`) and reads its output. */
export function runOn(
  f: (xs: tf.Tensor[]) => tf.Tensor,
  tensors: readonly NetworkTensor[],
  inputs: readonly Float32Array[],
  count: number,
): Float32Array {
  return tf.tidy(
    () => f(tensors.map((t, i) => tf.tensor(inputs[i]!, [count, ...t.shape]))).dataSync() as Float32Array,
  );
}
