import * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from '../data/datasets.ts';
import type { Adam } from '../optim/adam.ts';
import type { Classifier } from './classifier.ts';

/**
 * One Adam step of `classifier` on the batch `xs` (NHWC at its input) with class indices `ys`: softmax
 * cross-entropy over `classes` outputs. Returns the batch's mean loss. How the quality classifiers
 * (train-classifier.ts) and the augmentation protocol's classifiers (augmentation/) are trained.
 */
export function classifierStep(
  classifier: Classifier,
  opt: Adam,
  batch: { xs: Float32Array; ys: Int32Array; count: number },
): number {
  const { size, channels } = classifier.input;
  return tf.tidy(() => {
    const x = tf.tensor4d(batch.xs.subarray(0, batch.count * size * size * channels), [
      batch.count,
      size,
      size,
      channels,
    ]);
    const y = tf.oneHot(tf.tensor1d(batch.ys.subarray(0, batch.count), 'int32'), classifier.numClasses);
    const { value, grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(y, classifier.forward(x).logits) as tf.Scalar,
      classifier.params.vars,
    );
    opt.apply(classifier.params.vars.map((v) => grads[v.name]!));
    return value.dataSync()[0]!;
  });
}

/** Accuracy, and mean recall over the classes present, of `classifier` on the labelled images of `data`. */
export function classifierAccuracy(
  classifier: Classifier,
  data: Pick<Dataset, 'images' | 'labels' | 'count' | 'numClasses'>,
): { plain: number; balanced: number; recall: number[] } {
  const { predictions } = classifier.describe(data.images, data.count);
  const hits = new Array<number>(data.numClasses).fill(0);
  const seen = new Array<number>(data.numClasses).fill(0);
  for (let i = 0; i < data.count; i++) {
    const label = data.labels[i]!;
    seen[label]! += 1;
    if (predictions[i] === label) hits[label]! += 1;
  }
  const recall = seen.map((n, k) => (n === 0 ? Number.NaN : hits[k]! / n));
  const present = recall.filter((r) => !Number.isNaN(r));
  return {
    plain: hits.reduce((a, b) => a + b, 0) / data.count,
    balanced: present.reduce((a, b) => a + b, 0) / present.length,
    recall,
  };
}
