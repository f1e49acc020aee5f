/**
 * Trains the quality classifier of one data set and writes it, with the real data's feature statistics
 * and the FLD floor, to packages/worker/assets/classifiers/ (README: "Quality metrics"); run through
 * scripts/train-classifier.ts.
 *
 * Adam (lr 1e-3, decayed 10x over the last third of the epochs), softmax cross-entropy, random shifts
 * (and, where a set allows, horizontal flips), batches drawn as the set's recipe says. The recipes, as the
 * committed classifiers were trained: Fashion-MNIST 10 epochs of batch 64 (about 30 min on one core
 * here), MNIST (8,000 training images) 30 epochs of batch 32 (about 12 min), emoji (3,407 64x64 RGB
 * training images, 60% of them People & Body) 16 epochs of batch 32 drawn class-balanced, with flips
 * (about 9-14 min here): see CLASSIFIER_RECIPES.
 * Prints progress per epoch, the test accuracy (plain and balanced) and the FLD floor.
 */
import '../gradients.ts';
import { mkdir } from 'node:fs/promises';
import { Rng } from '@gantry/shared';
import { initBackend } from '../backend.ts';
import type { Dataset } from '../data/datasets.ts';
import { Adam } from '../optim/adam.ts';
import { Classifier, FEATURE_DIM, saveClassifier } from './classifier.ts';
import {
  augmented,
  BatchSampler,
  type ClassSampling,
  ROTATIONS,
  rotatedSplit,
  rotateQuarter,
} from './classifier-batches.ts';
import { classifierAccuracy, classifierStep } from './classifier-step.ts';
import { frechetDistance, gaussianStats } from './frechet.ts';
import { classShares, pairDiversity } from './scores.ts';

/** How one data set's classifier is trained. */
export interface ClassifierRecipe {
  epochs: number;
  batch: number;
  /** Largest random shift in pixels, along each axis. */
  shift: number;
  /** Random horizontal flips (not for digits or text). */
  flip: boolean;
  /** The value shifts move in: -1 on a black background (MNIST), 1 on white (emoji). */
  background: -1 | 1;
  sampling: ClassSampling;
}

/** The recipe each committed classifier was trained with; `npm run train-classifier` knows these sets. */
export const CLASSIFIER_RECIPES: Readonly<Record<string, Readonly<ClassifierRecipe>>> = {
  'fashion-mnist': { epochs: 10, batch: 64, shift: 2, flip: false, background: -1, sampling: 'natural' },
  // 8,000 training images: more and smaller batches for enough steps.
  mnist: { epochs: 30, batch: 32, shift: 2, flip: false, background: -1, sampling: 'natural' },
  // 3,407 training images, from 2,035 (People & Body, skin tones included) down to 4 (Component): classes
  // drawn uniformly, for the minority recall class coverage needs (sqrt sampling: 80.7% but 49.8% balanced).
  emoji: { epochs: 16, batch: 32, shift: 4, flip: true, background: 1, sampling: 'balanced' },
  // The same emoji in Twitter's drawings: the same recipe.
  'emoji-twitter': { epochs: 16, batch: 32, shift: 4, flip: true, background: 1, sampling: 'balanced' },
};

/**
 * The recipe of a classifier a worker trains on first use, for a pushed set or another image size: about
 * 1,500 steps of batch 32 at most (at least one epoch, at most 10), classes drawn uniformly (pushed sets are
 * often unbalanced), shifts of 1/14 of the side filled with the set's background (from its corners).
 */
export function firstUseRecipe(train: Dataset): ClassifierRecipe {
  const batch = Math.min(32, train.count);
  const epochs = Math.max(1, Math.min(10, Math.floor((1500 * batch) / train.count)));
  const px = train.height * train.width * train.channels;
  const corners = [0, train.width - 1, (train.height - 1) * train.width, train.height * train.width - 1];
  let sum = 0;
  for (let i = 0; i < train.count; i++)
    for (const p of corners) sum += train.images[i * px + p * train.channels]!;
  return {
    epochs,
    batch,
    shift: Math.max(1, Math.round(train.height / 14)),
    flip: false,
    background: sum >= 0 ? 1 : -1,
    sampling: 'balanced',
  };
}

/** What to train on and how. */
export interface TrainClassifierOptions extends Partial<ClassifierRecipe> {
  /** Name the classifier is saved under (the data set's); names the recipe the other fields default to. */
  dataset: string;
  /**
   * `classes`: the set's classes (the default); `rotation`: which of four quarter turns an image was given
   * (Gidaris et al., 2018), a label-free task for sets without classes whose features still tell images
   * apart. Feature statistics and floors are of the upright images either way.
   */
  labels?: 'classes' | 'rotation';
  train: Dataset;
  test: Dataset;
  /** @default 1 */
  seed?: number;
  /** Folder to write `<dataset>.json` and `<dataset>.bin` to. */
  out: string;
  say: (line: string) => void;
}

type CompiledOptions = Required<TrainClassifierOptions>;

/**
 * Fills the fields `opts` leaves out from the recipe of its data set and checks them.
 * @throws RangeError when a field is out of range or a data set without a recipe leaves one out
 */
export function compileTrainClassifierOptions(opts: TrainClassifierOptions): CompiledOptions {
  const recipe: Partial<ClassifierRecipe> = CLASSIFIER_RECIPES[opts.dataset] ?? {};
  const pick = <K extends keyof ClassifierRecipe>(k: K): ClassifierRecipe[K] => {
    const v = opts[k] ?? recipe[k];
    if (v === undefined) throw new RangeError(`${opts.dataset} has no classifier recipe: set ${k}`);
    return v as ClassifierRecipe[K];
  };
  const c: CompiledOptions = {
    ...opts,
    epochs: pick('epochs'),
    batch: pick('batch'),
    shift: pick('shift'),
    flip: pick('flip'),
    background: pick('background'),
    sampling: pick('sampling'),
    seed: opts.seed ?? 1,
    labels: opts.labels ?? 'classes',
  };
  const whole = (k: 'epochs' | 'batch' | 'shift' | 'seed', min: number) => {
    if (!Number.isInteger(c[k]) || c[k] < min) throw new RangeError(`${k} must be an integer >= ${min}`);
  };
  whole('epochs', 1);
  whole('batch', 1);
  whole('shift', 0);
  whole('seed', 0);
  if (c.batch > c.train.count) throw new RangeError(`batch ${c.batch} is larger than the train split`);
  if (c.train.height !== c.train.width || c.test.height !== c.train.height)
    throw new RangeError('the classifier reads square images of one size in both splits');
  if (c.test.channels !== c.train.channels) throw new RangeError('train and test splits differ in channels');
  if (!['natural', 'sqrt', 'balanced'].includes(c.sampling))
    throw new RangeError(`sampling must be natural, sqrt or balanced, not ${c.sampling}`);
  return c;
}

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;

/**
 * Trains the quality classifier on `train` at its image size and channels, scores it on `test`, and
 * writes it with the real data's feature statistics and the FLD floor; prints progress per epoch through
 * `say`.
 */
export async function trainClassifier(options: TrainClassifierOptions): Promise<void> {
  const opts = compileTrainClassifierOptions(options);
  const { dataset, train, test, epochs, batch, seed, out, say } = opts;
  const backend = await initBackend('wasm');
  const size = train.height;
  const channels = train.channels;
  say(
    `train-classifier: ${dataset}, ${train.count} train / ${test.count} test images of ${size}x${size}x${channels}, ${backend.device}`,
  );
  const rotation = opts.labels === 'rotation';
  const classNames = rotation ? ROTATIONS : train.classNames;
  // Rotation prediction is scored on the test images each turned by i mod 4.
  const scoredOn = rotation ? rotatedSplit(test) : test;
  const rng = new Rng(seed);
  const classifier = new Classifier(classNames.length, { input: { size, channels }, rng });
  const lr = 1e-3;
  const opt = new Adam(classifier.params.vars, { lr, beta1: 0.9, beta2: 0.999 });
  const sampler = new BatchSampler(train, opts.sampling, rng);
  const px = size * size * channels;
  const xs = new Float32Array(batch * px);
  const ys = new Int32Array(batch);
  const batches = Math.floor(train.count / batch);
  const t0 = performance.now();
  for (let epoch = 1; epoch <= epochs; epoch++) {
    if (epoch > Math.ceil((2 * epochs) / 3)) opt.setLearningRate(lr / 10);
    sampler.startEpoch();
    let lossSum = 0;
    for (let b = 0; b < batches; b++) {
      for (let i = 0; i < batch; i++) {
        const j = sampler.pick(b, i, batch);
        const dy = rng.int(2 * opts.shift + 1) - opts.shift;
        const dx = rng.int(2 * opts.shift + 1) - opts.shift;
        const flip = opts.flip && rng.uniform() < 0.5;
        augmented(train, j, { dy, dx, flip }, opts.background, xs, i * px);
        if (rotation) {
          const k = rng.int(4);
          rotateQuarter(xs, i * px, size, channels, k);
          ys[i] = k;
        } else ys[i] = train.labels[j]!;
      }
      lossSum += classifierStep(classifier, opt, { xs, ys, count: batch });
    }
    const acc = classifierAccuracy(classifier, scoredOn);
    const s = (performance.now() - t0) / 1000;
    say(
      `epoch ${epoch}/${epochs}: loss ${(lossSum / batches).toFixed(4)}, test accuracy ${pct(acc.plain)} (balanced ${pct(acc.balanced)}), ${s.toFixed(0)} s`,
    );
  }
  const seconds = Math.round((performance.now() - t0) / 1000);

  const scored = classifierAccuracy(classifier, scoredOn);
  const real = classifier.describe(train.images, train.count);
  const g = gaussianStats(real.features, FEATURE_DIM);
  const stats = {
    count: train.count,
    mean: Array.from(g.mean),
    cov: Array.from(g.cov),
    // Real images are upright: all of them in rotation class 0.
    classShare: rotation ? [1, 0, 0, 0] : classShares(train.labels, train.numClasses),
    diversity: pairDiversity(real.features),
  };
  // The floor: real test images scored like generated ones, at the evaluation sizes a trial uses that the
  // test split holds, and at all of it (each the mean over up to 4 disjoint chunks).
  const testFeatures = classifier.describe(test.images, test.count).features;
  const sizes = [...new Set([256, 512, 1024, test.count])].filter((n) => n <= test.count);
  const fldFloor = sizes.map((samples) => {
    const runs: number[] = [];
    for (let o = 0; o + samples <= test.count && runs.length < 4; o += samples) {
      const chunk = testFeatures.subarray(o * FEATURE_DIM, (o + samples) * FEATURE_DIM);
      runs.push(frechetDistance(gaussianStats(chunk, FEATURE_DIM), g));
    }
    return { samples, fld: runs.reduce((a, b) => a + b, 0) / runs.length };
  });
  const shift = `shift +-${opts.shift} px`;
  await mkdir(out, { recursive: true });
  await saveClassifier(out, classifier, {
    dataset,
    labels: opts.labels,
    testAccuracy: scored.plain,
    testBalancedAccuracy: scored.balanced,
    fldFloor,
    stats,
    training: {
      epochs,
      batch,
      seed,
      lr,
      optimizer: 'adam',
      augmentation: opts.flip ? `${shift}, horizontal flips` : shift,
      background: opts.background,
      sampling: opts.sampling,
      trainImages: train.count,
      testImages: test.count,
      testRecall: Object.fromEntries(classNames.map((name, k) => [name, scored.recall[k]])),
      seconds,
    },
  });
  classifier.dispose();
  opt.dispose();
  say(
    `test accuracy: ${pct(scored.plain)}, balanced ${pct(scored.balanced)} (${test.count} test images); ${seconds} s of training`,
  );
  for (const [k, name] of classNames.entries())
    say(`  recall ${name}: ${Number.isNaN(scored.recall[k]) ? 'no test images' : pct(scored.recall[k]!)}`);
  for (const f of fldFloor)
    say(`FLD floor, ${f.samples} real test images vs train statistics: ${f.fld.toFixed(3)}`);
  say(`real feature diversity: ${stats.diversity.toFixed(4)}`);
  say(`wrote ${out}/${dataset}.json and ${dataset}.bin`);
}
