import type { TrialQuality } from '@gantry/shared';
import type { Dataset } from '../data/datasets.ts';
import type { Trainer } from '../families/family.ts';
import type { QualityEvaluator } from './evaluator.ts';
import { imagePairScores } from './image-metrics.ts';
import { scoreSamples } from './scores.ts';

/** A trainer of an image-conditioned family: its task and its generator. */
export type ImageTaskTrainer = Required<Pick<Trainer, 'imageTask' | 'translate' | 'sampleShape'>>;

/** True when `t` is judged on an image task (srgan, pix2pix). */
export function hasImageTask(t: Trainer): t is Trainer & ImageTaskTrainer {
  return t.imageTask !== undefined && t.translate !== undefined;
}

/**
 * The scores of an image-conditioned trainer on the first `count` examples of the held-out split `test`:
 * PSNR, SSIM and L1 of G's outputs against the targets (and of the task's baseline, srgan's bicubic
 * upsampling, as `psnr_bicubic` / `ssim_bicubic`); FLD and diversity of the outputs in the features of the
 * set's classifier, against the real images' statistics; and on a set with classes the classifier's
 * accuracy on the outputs (`class_accuracy`) next to its accuracy on the targets (`class_accuracy_real`,
 * the FCN-score idea of the pix2pix paper).
 */
export function scoreImageTask(
  trainer: ImageTaskTrainer,
  test: Dataset,
  evaluator: QualityEvaluator,
  count: number,
): Omit<TrialQuality, 'step'> {
  const task = trainer.imageTask;
  const { inputs, targets, count: n } = task.pairs(test, count);
  if (n === 0) throw new Error(`the held-out split of ${test.name} is empty: nothing to score the model on`);
  const shape = { count: n, ...trainer.sampleShape };
  // SSIM's window is 11 px: a border that would leave less is cropped only as far as it can be.
  const side = Math.min(trainer.sampleShape.height, trainer.sampleShape.width);
  const options = {
    cropBorder: Math.min(task.cropBorder, Math.floor((side - 11) / 2)),
    yChannel: task.yChannel,
  };
  const outputs = trainer.translate(inputs, n);
  const pair = imagePairScores(outputs, targets, shape, options);
  const out: Omit<TrialQuality, 'step'> = { fld: 0, diversity_ratio: 0, ...pair };
  if (task.baseline) {
    const base = imagePairScores(task.baseline(inputs, n), targets, shape, options);
    out.psnr_bicubic = base.psnr;
    out.ssim_bicubic = base.ssim;
  }
  const described = evaluator.describe(outputs, n);
  const generated = scoreSamples(
    described.features,
    described.predictions,
    evaluator.manifest.stats,
    undefined,
    false,
  );
  out.fld = generated.fld;
  out.diversity_ratio = generated.diversity_ratio;
  if (evaluator.knowsClasses && test.numClasses >= 2 && evaluator.manifest.numClasses === test.numClasses) {
    const real = realPredictions(evaluator, test, targets, n);
    let hits = 0;
    let realHits = 0;
    for (let i = 0; i < n; i++) {
      if (described.predictions[i] === test.labels[i]) hits += 1;
      if (real[i] === test.labels[i]) realHits += 1;
    }
    out.class_accuracy = hits / n;
    out.class_accuracy_real = realHits / n;
  }
  return out;
}

/**
 * The classifier's predictions of a split's first n targets: they never change, so they are computed once
 * per evaluator and split rather than at every evaluation.
 */
const realCache = new WeakMap<QualityEvaluator, WeakMap<Dataset, Int32Array>>();

function realPredictions(
  evaluator: QualityEvaluator,
  split: Dataset,
  targets: Float32Array,
  n: number,
): Int32Array {
  const bySplit = realCache.get(evaluator) ?? new WeakMap<Dataset, Int32Array>();
  realCache.set(evaluator, bySplit);
  let hit = bySplit.get(split);
  if (!hit || hit.length !== n) {
    hit = evaluator.describe(targets, n).predictions;
    bySplit.set(split, hit);
  }
  return hit;
}
