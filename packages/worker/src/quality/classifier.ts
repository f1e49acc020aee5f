import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { conv, dense } from '../models/layers.ts';
import { init, type NamedArray, ParamStore } from '../models/param-store.ts';

/** Width of the feature vector the quality metrics use (the classifier's penultimate layer). */
export const FEATURE_DIM = 64;
export const CLASSIFIER_ARCHITECTURE = 'gantry-classifier-v2';

/** Where the project's trained classifiers live: `<dataset>.json` (manifest) and `<dataset>.bin` (weights). */
export const CLASSIFIER_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'assets',
  'classifiers',
);

/** Statistics of the real data's features and labels, against which generated images are scored. */
export interface RealDataStats {
  /** Images the statistics were computed on (the whole train split). */
  count: number;
  mean: number[];
  /** Row-major FEATURE_DIM x FEATURE_DIM, unbiased. */
  cov: number[];
  /** Share of each class in the train split. */
  classShare: number[];
  /** Mean L2 distance between the features of random pairs of real images. */
  diversity: number;
}

/** The manifest written next to the weights by train-classifier.ts. */
export interface ClassifierManifest {
  architecture: typeof CLASSIFIER_ARCHITECTURE;
  dataset: string;
  numClasses: number;
  featureDim: number;
  tensors: { name: string; shape: number[] }[];
  /** Accuracy on the dataset's test split. */
  testAccuracy: number;
  /** FLD of real test images against `stats`: the floor a perfect generator would reach, by sample count. */
  fldFloor: { samples: number; fld: number }[];
  stats: RealDataStats;
  training: Record<string, unknown>;
}

/**
 * The small CNN whose features and predictions score generated images (FLD, class coverage, KL,
 * diversity, cGAN accuracy). Input [N, 28, 28, 1] in [-1, 1]:
 *   conv 3x3/2 32 -> ReLU -> conv 3x3 64 -> ReLU -> conv 3x3/2 64 -> ReLU -> conv 3x3/2 128 -> ReLU
 *   -> flatten (4x4x128) -> dense 64 -> ReLU (the features) -> dense classes (logits)
 * 261k parameters (1 MB of float32); ~13 MFLOP per image forward. (v1 pooled globally before the dense
 * layer: half the size, but 83% on Fashion-MNIST after 2 epochs where it needs 90%.)
 */
export class Classifier {
  readonly params: ParamStore;

  constructor(
    readonly numClasses: number,
    rng?: Rng,
  ) {
    const p = new ParamStore('cls');
    // He initialisation for the ReLU layers; zeros when weights are loaded afterwards.
    const he = (fanIn: number) => (rng ? init.normal(rng, Math.sqrt(2 / fanIn)) : init.zeros());
    p.add('c1/w', [3, 3, 1, 32], he(9));
    p.add('c1/b', [32], init.zeros());
    p.add('c2/w', [3, 3, 32, 64], he(9 * 32));
    p.add('c2/b', [64], init.zeros());
    p.add('c3/w', [3, 3, 64, 64], he(9 * 64));
    p.add('c3/b', [64], init.zeros());
    p.add('c4/w', [3, 3, 64, 128], he(9 * 64));
    p.add('c4/b', [128], init.zeros());
    p.add('fc1/w', [4 * 4 * 128, FEATURE_DIM], he(4 * 4 * 128));
    p.add('fc1/b', [FEATURE_DIM], init.zeros());
    p.add('fc2/w', [FEATURE_DIM, numClasses], he(FEATURE_DIM));
    p.add('fc2/b', [numClasses], init.zeros());
    this.params = p;
  }

  /** Features [N, FEATURE_DIM] and logits [N, classes] of a batch of images. */
  forward(x: tf.Tensor4D): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const p = (n: string) => this.params.get(n) as tf.Tensor as never;
    let h = tf.relu(conv(x, p('c1/w'), 2, p('c1/b')));
    h = tf.relu(conv(h, p('c2/w'), 1, p('c2/b')));
    h = tf.relu(conv(h, p('c3/w'), 2, p('c3/b')));
    h = tf.relu(conv(h, p('c4/w'), 2, p('c4/b')));
    const flat = tf.reshape(h, [h.shape[0], 4 * 4 * 128]) as tf.Tensor2D;
    const features = tf.relu(dense(flat, p('fc1/w'), p('fc1/b')));
    return { features, logits: dense(features, p('fc2/w'), p('fc2/b')) };
  }

  /**
   * Features and predicted classes of `count` images (NHWC floats in [-1, 1]), in batches.
   * Returns plain arrays; no tensors are left behind.
   */
  describe(
    images: Float32Array,
    count: number,
    batch = 256,
  ): { features: Float32Array; predictions: Int32Array } {
    const px = 28 * 28;
    const features = new Float32Array(count * FEATURE_DIM);
    const predictions = new Int32Array(count);
    for (let i0 = 0; i0 < count; i0 += batch) {
      const n = Math.min(batch, count - i0);
      tf.tidy(() => {
        const x = tf.tensor4d(images.subarray(i0 * px, (i0 + n) * px), [n, 28, 28, 1]);
        const out = this.forward(x);
        features.set(out.features.dataSync(), i0 * FEATURE_DIM);
        predictions.set(tf.argMax(out.logits, 1).dataSync(), i0);
      });
    }
    return { features, predictions };
  }

  dispose(): void {
    for (const v of this.params.vars) v.dispose();
  }
}

/** Writes `<dir>/<dataset>.json` and `<dataset>.bin` (float32 little-endian, in manifest order). */
export async function saveClassifier(
  dir: string,
  classifier: Classifier,
  manifest: Omit<ClassifierManifest, 'tensors' | 'architecture' | 'featureDim' | 'numClasses'>,
): Promise<void> {
  const arrays = classifier.params.export();
  const total = arrays.reduce((n, a) => n + a.data.length, 0);
  const bin = new Float32Array(total);
  let o = 0;
  for (const a of arrays) {
    bin.set(a.data, o);
    o += a.data.length;
  }
  const full: ClassifierManifest = {
    architecture: CLASSIFIER_ARCHITECTURE,
    numClasses: classifier.numClasses,
    featureDim: FEATURE_DIM,
    tensors: arrays.map((a) => ({ name: a.name, shape: a.shape })),
    ...manifest,
  };
  await writeFile(join(dir, `${manifest.dataset}.bin`), Buffer.from(bin.buffer));
  await writeFile(join(dir, `${manifest.dataset}.json`), `${JSON.stringify(full, null, 1)}\n`);
}

/**
 * Loads the project's classifier for `dataset`.
 * @throws Error naming the file and the training command when it is missing or does not match.
 */
export async function loadClassifier(
  dataset: string,
  dir: string = CLASSIFIER_DIR,
): Promise<{ classifier: Classifier; manifest: ClassifierManifest }> {
  const manifestPath = join(dir, `${dataset}.json`);
  const retrain = `train it with: npm run train-classifier -- --dataset ${dataset}`;
  let manifest: ClassifierManifest;
  let bin: Buffer;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as ClassifierManifest;
    bin = await readFile(join(dir, `${dataset}.bin`));
  } catch (err) {
    throw new Error(`no quality classifier for ${dataset} in ${dir} (${(err as Error).message}); ${retrain}`);
  }
  if (manifest.architecture !== CLASSIFIER_ARCHITECTURE || manifest.featureDim !== FEATURE_DIM) {
    throw new Error(
      `${manifestPath}: architecture ${manifest.architecture} is not ${CLASSIFIER_ARCHITECTURE}; ${retrain}`,
    );
  }
  const floats = new Float32Array(bin.buffer, bin.byteOffset, Math.floor(bin.byteLength / 4));
  const arrays: NamedArray[] = [];
  let o = 0;
  for (const t of manifest.tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (o + size > floats.length)
      throw new Error(`${dataset}.bin is shorter than its manifest says; ${retrain}`);
    arrays.push({ name: t.name, shape: t.shape, data: floats.slice(o, o + size) });
    o += size;
  }
  const classifier = new Classifier(manifest.numClasses);
  classifier.params.import(arrays);
  return { classifier, manifest };
}
