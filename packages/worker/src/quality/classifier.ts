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

/** The images a classifier reads: `size` x `size` pixels of `channels` channels, NHWC in [-1, 1]. */
export interface ClassifierInput {
  size: number;
  channels: number;
}

/** What a manifest without `input` (every one written before inputs were recorded) was trained on. */
export const LEGACY_CLASSIFIER_INPUT: Readonly<ClassifierInput> = { size: 28, channels: 1 };

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
  /** The images the network reads; absent in older manifests, which mean {@link LEGACY_CLASSIFIER_INPUT}. */
  input?: ClassifierInput;
  /**
   * What it was trained to predict: the data set's classes (absent in older manifests), or rotation
   * prediction for a set without classes, whose predictions are no classes of the data.
   */
  labels?: 'classes' | 'rotation';
  tensors: { name: string; shape: number[] }[];
  /** Accuracy on the dataset's test split. */
  testAccuracy: number;
  /** Mean per-class recall on the test split (over the classes it holds); absent in older manifests. */
  testBalancedAccuracy?: number;
  /** FLD of real test images against `stats`: the floor a perfect generator would reach, by sample count. */
  fldFloor: { samples: number; fld: number }[];
  stats: RealDataStats;
  training: Record<string, unknown>;
}

/** How a classifier is built. */
export interface ClassifierOptions {
  /** The images it reads. @default LEGACY_CLASSIFIER_INPUT (28x28x1) */
  input?: ClassifierInput;
  /** Draws He-initialised weights; without it every weight is zero, to be loaded afterwards. */
  rng?: Rng;
  /**
   * Prefix of its variables' names (tfjs names are process-global): another name lets a second classifier
   * live beside the quality one (the augmentation protocol's). @default 'cls'
   */
  scope?: string;
}

/** One convolution of the stack: output channels and stride. */
type ConvLayer = { out: number; stride: number };

/**
 * The convolutions for `size`-pixel images: the v2 stack (32/2, 64, 64/2, 128/2), then 128-channel
 * stride-2 convolutions until the side is 4 or less ('same' padding: side -> ceil(side / 2)).
 */
function convStack(size: number): { layers: ConvLayer[]; side: number } {
  const layers: ConvLayer[] = [
    { out: 32, stride: 2 },
    { out: 64, stride: 1 },
    { out: 64, stride: 2 },
    { out: 128, stride: 2 },
  ];
  let side = Math.ceil(Math.ceil(Math.ceil(size / 2) / 2) / 2);
  while (side > 4) {
    layers.push({ out: 128, stride: 2 });
    side = Math.ceil(side / 2);
  }
  return { layers, side };
}

/**
 * The small CNN whose features and predictions score generated images (FLD, class coverage, KL,
 * diversity, cGAN accuracy). Input [N, size, size, channels] in [-1, 1]; at 28x28x1 (MNIST, Fashion-MNIST):
 *   conv 3x3/2 32 -> ReLU -> conv 3x3 64 -> ReLU -> conv 3x3/2 64 -> ReLU -> conv 3x3/2 128 -> ReLU
 *   -> flatten (4x4x128) -> dense 64 -> ReLU (the features) -> dense classes (logits)
 * 261k parameters (1 MB of float32); ~13 MFLOP per image forward. (v1 pooled globally before the dense
 * layer: half the size, but 83% on Fashion-MNIST after 2 epochs where it needs 90%.) Larger images get
 * one more conv 3x3/2 128 -> ReLU per halving until the side is 4: at 64x64x3 (emoji) c5 takes 8x8 to 4x4,
 * 409k parameters (1.6 MB), ~72 MFLOP per image. Parameter names and order at 28x28x1 are those of the
 * committed v2 weights.
 */
export class Classifier {
  readonly params: ParamStore;
  readonly input: Readonly<ClassifierInput>;
  private readonly layers: readonly ConvLayer[];
  private readonly flatDim: number;

  /** @throws RangeError when `input` is not a whole size of at least 8 pixels and channel count of at least 1 */
  constructor(
    readonly numClasses: number,
    options: ClassifierOptions = {},
  ) {
    const input = options.input ?? LEGACY_CLASSIFIER_INPUT;
    if (
      !Number.isInteger(input.size) ||
      input.size < 8 ||
      !Number.isInteger(input.channels) ||
      input.channels < 1
    )
      throw new RangeError(`classifier input ${input.size}x${input.size}x${input.channels} is not supported`);
    this.input = { size: input.size, channels: input.channels };
    const { rng } = options;
    const { layers, side } = convStack(input.size);
    this.layers = layers;
    this.flatDim = side * side * 128;
    const p = new ParamStore(options.scope ?? 'cls');
    // He initialisation for the ReLU layers; zeros when weights are loaded afterwards.
    const he = (fanIn: number) => (rng ? init.normal(rng, Math.sqrt(2 / fanIn)) : init.zeros());
    let inC = input.channels;
    layers.forEach(({ out }, i) => {
      p.add(`c${i + 1}/w`, [3, 3, inC, out], he(9 * inC));
      p.add(`c${i + 1}/b`, [out], init.zeros());
      inC = out;
    });
    p.add('fc1/w', [this.flatDim, FEATURE_DIM], he(this.flatDim));
    p.add('fc1/b', [FEATURE_DIM], init.zeros());
    p.add('fc2/w', [FEATURE_DIM, numClasses], he(FEATURE_DIM));
    p.add('fc2/b', [numClasses], init.zeros());
    this.params = p;
  }

  /** Features [N, FEATURE_DIM] and logits [N, classes] of a batch of images. */
  forward(x: tf.Tensor4D): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const p = (n: string) => this.params.get(n) as tf.Tensor as never;
    let h = x;
    this.layers.forEach(({ stride }, i) => {
      h = tf.relu(conv(h, p(`c${i + 1}/w`), stride, p(`c${i + 1}/b`)));
    });
    const flat = tf.reshape(h, [h.shape[0], this.flatDim]) as tf.Tensor2D;
    const features = tf.relu(dense(flat, p('fc1/w'), p('fc1/b')));
    return { features, logits: dense(features, p('fc2/w'), p('fc2/b')) };
  }

  /**
   * Features and predicted classes of `count` images (NHWC floats in [-1, 1] at the classifier's input
   * size and channels), in batches. Returns plain arrays; no tensors are left behind.
   */
  describe(
    images: Float32Array,
    count: number,
    batch = 256,
  ): { features: Float32Array; predictions: Int32Array } {
    const { size, channels } = this.input;
    const px = size * size * channels;
    if (images.length < count * px)
      throw new RangeError(
        `${images.length} values are fewer than ${count} images of ${size}x${size}x${channels}`,
      );
    const features = new Float32Array(count * FEATURE_DIM);
    const predictions = new Int32Array(count);
    for (let i0 = 0; i0 < count; i0 += batch) {
      const n = Math.min(batch, count - i0);
      tf.tidy(() => {
        const x = tf.tensor4d(images.subarray(i0 * px, (i0 + n) * px), [n, size, size, channels]);
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
  manifest: Omit<ClassifierManifest, 'tensors' | 'architecture' | 'featureDim' | 'numClasses' | 'input'>,
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
    input: { ...classifier.input },
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
  const input = manifest.input ?? LEGACY_CLASSIFIER_INPUT;
  let classifier: Classifier;
  try {
    classifier = new Classifier(manifest.numClasses, { input });
  } catch (err) {
    throw new Error(`${manifestPath}: ${(err as Error).message}; ${retrain}`);
  }
  try {
    classifier.params.import(arrays);
  } catch (err) {
    classifier.dispose();
    throw new Error(`${manifestPath}: ${(err as Error).message}; ${retrain}`);
  }
  return { classifier, manifest };
}
