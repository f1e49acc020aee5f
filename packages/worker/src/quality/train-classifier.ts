/**
 * Trains the quality classifier of one data set and writes it, with the real data's feature statistics
 * and the FLD floor, to packages/worker/assets/classifiers/ (README: "Quality metrics"); run through
 * scripts/train-classifier.ts.
 *
 * Adam (lr 1e-3, decayed 10x over the last third of the epochs), softmax cross-entropy, random shifts of
 * up to 2 pixels. Defaults, as the committed classifiers were trained: Fashion-MNIST 10 epochs of batch
 * 64 (about 30 min on one core here), MNIST (8,000 training images) 30 epochs of batch 32 (about 12 min).
 * Prints progress per epoch, the test accuracy and the FLD floor.
 */
import '../gradients.ts';
import { mkdir } from 'node:fs/promises';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend.ts';
import type { Dataset } from '../data/datasets.ts';
import { Adam } from '../optim/adam.ts';
import { Classifier, FEATURE_DIM, saveClassifier } from './classifier.ts';
import { frechetDistance, gaussianStats } from './frechet.ts';
import { classShares, pairDiversity } from './scores.ts';

/** What to train on and how; defaults as the committed classifiers were trained. */
export interface TrainClassifierOptions {
  /** Name the classifier is saved under (the data set's). */
  dataset: string;
  train: Dataset;
  test: Dataset;
  epochs: number;
  batch: number;
  seed: number;
  /** Folder to write `<dataset>.json` and `<dataset>.bin` to. */
  out: string;
  say: (line: string) => void;
}

/** A copy of image `j` shifted by (dy, dx) pixels, background (-1) filling what moves in. */
function shifted(data: Dataset, j: number, dy: number, dx: number, out: Float32Array, o: number): void {
  const src = data.images;
  for (let y = 0; y < 28; y++) {
    const sy = y - dy;
    for (let x = 0; x < 28; x++) {
      const sx = x - dx;
      out[o + y * 28 + x] =
        sy >= 0 && sy < 28 && sx >= 0 && sx < 28 ? (src[j * 784 + sy * 28 + sx] as number) : -1;
    }
  }
}

function accuracy(classifier: Classifier, data: Dataset): number {
  const { predictions } = classifier.describe(data.images, data.count);
  let hits = 0;
  for (let i = 0; i < data.count; i++) if (predictions[i] === data.labels[i]) hits += 1;
  return hits / data.count;
}

/**
 * Trains the quality classifier on `train` (28x28 gray), scores it on `test`, and writes it with the real
 * data's feature statistics and the FLD floor; prints progress per epoch through `say`.
 */
export async function trainClassifier(opts: TrainClassifierOptions): Promise<void> {
  const { dataset, train, test, epochs, batch, seed, out, say } = opts;
  const backend = await initBackend('wasm');
  say(`train-classifier: ${dataset}, ${train.count} train / ${test.count} test images, ${backend.device}`);
  const rng = new Rng(seed);
  const classifier = new Classifier(train.numClasses, rng);
  const lr = 1e-3;
  const opt = new Adam(classifier.params.vars, { lr, beta1: 0.9, beta2: 0.999 });
  const order = Int32Array.from({ length: train.count }, (_, i) => i);
  const xs = new Float32Array(batch * 784);
  const ys = new Int32Array(batch);
  const t0 = performance.now();
  for (let epoch = 1; epoch <= epochs; epoch++) {
    if (epoch > Math.ceil((2 * epochs) / 3)) opt.setLearningRate(lr / 10);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let lossSum = 0;
    let batches = 0;
    for (let b0 = 0; b0 + batch <= order.length; b0 += batch) {
      for (let i = 0; i < batch; i++) {
        const j = order[b0 + i]!;
        shifted(train, j, rng.int(5) - 2, rng.int(5) - 2, xs, i * 784);
        ys[i] = train.labels[j]!;
      }
      const loss = tf.tidy(() => {
        const x = tf.tensor4d(xs, [batch, 28, 28, 1]);
        const y = tf.oneHot(tf.tensor1d(ys, 'int32'), train.numClasses);
        const { value, grads } = tf.variableGrads(
          () => tf.losses.softmaxCrossEntropy(y, classifier.forward(x).logits) as tf.Scalar,
          classifier.params.vars,
        );
        opt.apply(classifier.params.vars.map((v) => grads[v.name]!));
        return value.dataSync()[0]!;
      });
      lossSum += loss;
      batches += 1;
    }
    const acc = accuracy(classifier, test);
    const s = (performance.now() - t0) / 1000;
    say(
      `epoch ${epoch}/${epochs}: loss ${(lossSum / batches).toFixed(4)}, test accuracy ${(100 * acc).toFixed(2)}%, ${s.toFixed(0)} s`,
    );
  }

  const testAccuracy = accuracy(classifier, test);
  const real = classifier.describe(train.images, train.count);
  const g = gaussianStats(real.features, FEATURE_DIM);
  const stats = {
    count: train.count,
    mean: Array.from(g.mean),
    cov: Array.from(g.cov),
    classShare: classShares(train.labels, train.numClasses),
    diversity: pairDiversity(real.features),
  };
  // The floor: real test images scored like generated ones, at the evaluation sizes a trial uses.
  const testFeatures = classifier.describe(test.images, test.count).features;
  const fldFloor: { samples: number; fld: number }[] = [];
  for (const samples of [256, 512, 1024, test.count]) {
    const runs: number[] = [];
    for (let o = 0; o + samples <= test.count && runs.length < 4; o += samples) {
      runs.push(
        frechetDistance(
          gaussianStats(testFeatures.subarray(o * FEATURE_DIM, (o + samples) * FEATURE_DIM), FEATURE_DIM),
          g,
        ),
      );
    }
    fldFloor.push({ samples, fld: runs.reduce((a, b) => a + b, 0) / runs.length });
  }
  await mkdir(out, { recursive: true });
  await saveClassifier(out, classifier, {
    dataset,
    testAccuracy,
    fldFloor,
    stats,
    training: {
      epochs,
      batch,
      seed,
      lr,
      optimizer: 'adam',
      augmentation: 'shift +-2 px',
      trainImages: train.count,
      seconds: Math.round((performance.now() - t0) / 1000),
    },
  });
  say(`test accuracy: ${(100 * testAccuracy).toFixed(2)}% (${test.count} test images)`);
  for (const f of fldFloor)
    say(`FLD floor, ${f.samples} real test images vs train statistics: ${f.fld.toFixed(3)}`);
  say(`real feature diversity: ${stats.diversity.toFixed(4)}`);
  say(`wrote ${out}/${dataset}.json and ${dataset}.bin`);
}
