/**
 * GAN data augmentation, measured: the protocol of Shmelkov et al. (2018, "How good is my GAN?") and of
 * DAGAN (Antoniou et al., 2017) at the project's scale. For each seed, the project's classifier
 * architecture (quality/classifier.ts) is trained from scratch, with one fixed recipe, on
 *   - `real`: the K real images per class the generator was trained on;
 *   - `real + M`: those and M generated images per class (one arm per M), shuffled together;
 *   - `generated`: the largest M generated images per class alone (GAN-train);
 * and each is tested on the whole real test split. GAN-test is the `real` classifier of the seed tested on
 * that seed's generated images. Every arm of a seed starts from the same initial weights; generated images
 * are drawn anew per seed.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import {
  AUGMENTATION_LIMITS,
  type AugmentationProgress,
  type AugmentationResult,
  type AugmentedArm,
  Rng,
  spreadOf,
} from '@gantry/shared';
import type { Dataset } from '../data/datasets.ts';
import type { DrawOptions, ImageShape } from '../families/family.ts';
import { Adam } from '../optim/adam.ts';
import { Classifier } from '../quality/classifier.ts';
import { augmented, BatchSampler } from '../quality/classifier-batches.ts';
import { classifierAccuracy, classifierStep } from '../quality/classifier-step.ts';
import { CLASSIFIER_RECIPES, firstUseRecipe } from '../quality/train-classifier.ts';
import { classCounts, concatSets } from './labelled-sets.ts';

/**
 * The classifier recipe of every arm: Adam (lr 1e-3, beta 0.9/0.999, 10x lower for the last third of the
 * steps), softmax cross-entropy, batches of 64 drawn by shuffling the arm's images each epoch, random
 * shifts (and flips) as the set's quality classifier is trained with (Fashion-MNIST: +-2 px, no flips);
 * 300 steps (AUGMENTATION_LIMITS.classifierSteps.default). A fixed number of steps whatever the arm's
 * size, so that every arm gets the same compute: 19,200 images seen, 192 epochs of K = 10 real images per
 * class of a 10-class set, under 2 of K = 100 plus M = 1000.
 */
export const AUGMENTATION_RECIPE = {
  steps: AUGMENTATION_LIMITS.classifierSteps.default,
  batch: 64,
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
} as const;

/** What the protocol needs of a trial's generator: seeded, class-conditional draws (Trainer.draw). */
export interface ConditionalGenerator {
  readonly sampleShape: ImageShape;
  draw(count: number, opts: DrawOptions): Float32Array;
}

export interface AugmentationProtocolOptions {
  generator: ConditionalGenerator;
  /** The K real images per class the generator was trained on (the trial's train split, its subset). */
  train: Dataset;
  /** The real test split, whole. */
  test: Dataset;
  /** K: checked against `train`, which must hold exactly K images of every class. */
  realPerClass: number;
  /** M of each `real + M` arm; GAN-train and GAN-test use the largest. */
  syntheticPerClass: readonly number[];
  /** S: seeds 0..S-1 after `seed`. */
  seeds: number;
  /** Adam steps of each classifier. @default AUGMENTATION_RECIPE.steps */
  steps?: number;
  /** @default AUGMENTATION_RECIPE.batch (at most the arm's image count) */
  batch?: number;
  /** Base of every seed the protocol derives. @default 1 */
  seed?: number;
  /** Told before each arm is trained. */
  onProgress?: (p: AugmentationProgress) => void | Promise<void>;
}

interface Compiled extends Required<Omit<AugmentationProtocolOptions, 'onProgress'>> {
  onProgress?: AugmentationProtocolOptions['onProgress'];
  shift: number;
  flip: boolean;
  background: number;
  maxSynthetic: number;
}

/**
 * Checks the options and fills the defaults.
 * @throws RangeError naming what does not fit: a class of `train` without exactly K images, shapes or
 * classes that differ between the splits and the generator, a count out of range
 */
export function compileProtocolOptions(o: AugmentationProtocolOptions): Compiled {
  const whole = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min)
      throw new RangeError(`${name} must be an integer >= ${min}, not ${v}`);
  };
  const { train, test, generator } = o;
  whole('realPerClass', o.realPerClass, 1);
  whole('seeds', o.seeds, 1);
  if (o.syntheticPerClass.length === 0) throw new RangeError('syntheticPerClass names no M');
  for (const m of o.syntheticPerClass) whole('syntheticPerClass', m, 1);
  const steps = o.steps ?? AUGMENTATION_RECIPE.steps;
  const batch = o.batch ?? AUGMENTATION_RECIPE.batch;
  whole('steps', steps, 1);
  whole('batch', batch, 1);
  if (train.numClasses < 2) throw new RangeError(`${train.name} has no classes to classify`);
  const counts = classCounts(train);
  const off = counts.findIndex((n) => n !== o.realPerClass);
  if (off >= 0)
    throw new RangeError(
      `the train split holds ${counts[off]} images of class ${off} (${train.classNames[off]}), not K = ${o.realPerClass}`,
    );
  const shape = (d: ImageShape) => `${d.height}x${d.width}x${d.channels}`;
  if (shape(test) !== shape(train) || shape(generator.sampleShape) !== shape(train))
    throw new RangeError(
      `train ${shape(train)}, test ${shape(test)} and generated ${shape(generator.sampleShape)} images differ`,
    );
  if (train.height !== train.width) throw new RangeError('the classifier reads square images');
  if (test.numClasses !== train.numClasses) throw new RangeError('train and test splits differ in classes');
  const recipe = CLASSIFIER_RECIPES[train.name] ?? firstUseRecipe(train);
  return {
    ...o,
    steps,
    batch,
    seed: o.seed ?? 1,
    shift: recipe.shift,
    flip: recipe.flip,
    background: recipe.background,
    maxSynthetic: Math.max(...o.syntheticPerClass),
  };
}

/** Images per draw call: bounds the generator's activations. */
const DRAW_CHUNK = 250;

/**
 * `perClass` generated images of every class, class after class: the first M of each class are an arm's.
 * Seeded by the run's seed, the seed index and the class.
 */
function drawSynthetic(c: Compiled, seedIndex: number, perClass: number, like: Dataset): Dataset {
  const { height, width, channels } = like;
  const px = height * width * channels;
  const classes = like.numClasses;
  const images = new Float32Array(classes * perClass * px);
  const labels = new Uint8Array(classes * perClass);
  for (let label = 0; label < classes; label++) {
    for (let i0 = 0; i0 < perClass; i0 += DRAW_CHUNK) {
      const n = Math.min(DRAW_CHUNK, perClass - i0);
      const seed = (((c.seed * 1000 + seedIndex) * 1000 + label) * 1000 + i0 / DRAW_CHUNK) >>> 0;
      images.set(c.generator.draw(n, { seed, label }), (label * perClass + i0) * px);
    }
    labels.fill(label, label * perClass, (label + 1) * perClass);
  }
  return { ...like, images, labels, count: classes * perClass };
}

/** The first `m` of each class of a set drawn by {@link drawSynthetic} with `perClass` per class. */
function firstOfEachClass(set: Dataset, perClass: number, m: number): Dataset {
  if (m === perClass) return set;
  const px = set.height * set.width * set.channels;
  const classes = set.numClasses;
  const images = new Float32Array(classes * m * px);
  const labels = new Uint8Array(classes * m);
  for (let k = 0; k < classes; k++) {
    images.set(set.images.subarray(k * perClass * px, (k * perClass + m) * px), k * m * px);
    labels.fill(k, k * m, (k + 1) * m);
  }
  return { ...set, images, labels, count: classes * m };
}

/** A classifier trained from `seed`'s initial weights on `data` with the recipe. Dispose it after use. */
async function trainOn(data: Dataset, c: Compiled, seed: number): Promise<Classifier> {
  const rng = new Rng(seed);
  const { height: size, channels } = data;
  // Its own variable names: a trial's quality classifier may be loaded beside it (aug_gain).
  const classifier = new Classifier(data.numClasses, { input: { size, channels }, rng, scope: 'aug-cls' });
  const opt = new Adam(classifier.params.vars, {
    lr: AUGMENTATION_RECIPE.lr,
    beta1: AUGMENTATION_RECIPE.beta1,
    beta2: AUGMENTATION_RECIPE.beta2,
  });
  try {
    const batch = Math.min(c.batch, data.count);
    const sampler = new BatchSampler(data, 'natural', rng);
    const perEpoch = Math.floor(data.count / batch);
    const px = size * size * channels;
    const xs = new Float32Array(batch * px);
    const ys = new Int32Array(batch);
    const decayAt = Math.ceil((2 * c.steps) / 3);
    for (let step = 0; step < c.steps; step++) {
      if (step === decayAt) opt.setLearningRate(AUGMENTATION_RECIPE.lr / 10);
      const b = step % perEpoch;
      if (b === 0) sampler.startEpoch();
      for (let i = 0; i < batch; i++) {
        const j = sampler.pick(b, i, batch);
        const dy = rng.int(2 * c.shift + 1) - c.shift;
        const dx = rng.int(2 * c.shift + 1) - c.shift;
        const flip = c.flip && rng.uniform() < 0.5;
        augmented(data, j, { dy, dx, flip }, c.background, xs, i * px);
        ys[i] = data.labels[j]!;
      }
      classifierStep(classifier, opt, { xs, ys, count: batch });
      if (step % 10 === 9) await yieldToEventLoop();
    }
  } catch (err) {
    classifier.dispose();
    throw err;
  } finally {
    opt.dispose();
  }
  return classifier;
}

/** Test accuracy of a classifier trained on `data`, and what `also` asks of it before it is disposed. */
async function armAccuracy(
  data: Dataset,
  c: Compiled,
  seed: number,
  also?: (classifier: Classifier) => void,
): Promise<number> {
  const classifier = await trainOn(data, c, seed);
  try {
    also?.(classifier);
    return classifierAccuracy(classifier, c.test).plain;
  } finally {
    classifier.dispose();
  }
}

/**
 * Runs the protocol: S seeds of the real, real + M and generated-only arms, and GAN-test.
 * @throws RangeError from {@link compileProtocolOptions}
 */
export async function runAugmentationProtocol(o: AugmentationProtocolOptions): Promise<AugmentationResult> {
  const c = compileProtocolOptions(o);
  const t0 = performance.now();
  const real: number[] = [];
  const withSynthetic = c.syntheticPerClass.map(() => [] as number[]);
  const ganTrain: number[] = [];
  const ganTest: number[] = [];
  let ganTestImages = 0;
  for (let s = 0; s < c.seeds; s++) {
    const progress = (arm: string) => c.onProgress?.({ seed: s + 1, seeds: c.seeds, arm });
    // Every arm of a seed starts from the same weights; the generated images are the seed's own.
    const seed = c.seed * 1000 + s;
    const synthetic = drawSynthetic(c, s, c.maxSynthetic, c.train);
    ganTestImages = synthetic.count;
    await progress('real');
    real.push(
      await armAccuracy(c.train, c, seed, (classifier) => {
        ganTest.push(classifierAccuracy(classifier, synthetic).plain);
      }),
    );
    for (const [i, m] of c.syntheticPerClass.entries()) {
      await progress(`real+${m}`);
      const arm = concatSets(c.train, firstOfEachClass(synthetic, c.maxSynthetic, m));
      withSynthetic[i]!.push(await armAccuracy(arm, c, seed));
    }
    await progress('generated');
    ganTrain.push(await armAccuracy(synthetic, c, seed));
  }
  const realSpread = spreadOf(real);
  const augmentedArms: AugmentedArm[] = c.syntheticPerClass.map((m, i) => {
    const accuracy = spreadOf(withSynthetic[i]!);
    return {
      synthetic_per_class: m,
      accuracy,
      gain: accuracy.mean - realSpread.mean,
      paired: spreadOf(accuracy.values.map((v, s) => v - real[s]!)),
    };
  });
  return {
    real_per_class: c.realPerClass,
    seeds: c.seeds,
    recipe: {
      steps: c.steps,
      batch: c.batch,
      lr: AUGMENTATION_RECIPE.lr,
      shift: c.shift,
      flip: c.flip,
    },
    test_images: c.test.count,
    real: realSpread,
    augmented: augmentedArms,
    gan_train: { ...spreadOf(ganTrain), synthetic_per_class: c.maxSynthetic },
    gan_test: { ...spreadOf(ganTest), images: ganTestImages },
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
}
