import { z } from 'zod';
import { AUGMENTATION_LIMITS } from './augmentation.ts';
import type { DatasetRef } from './dataset.ts';
import type { FieldIssue } from './errors.ts';
import { FAMILIES, type ModelName } from './families.ts';

/**
 * The sweep metric `aug_gain` (README, "GAN data augmentation"): at a trial's last evaluation, the gain in
 * test accuracy of the set's classifier trained on the trial's K real images per class plus M generated
 * per class over the K alone (mean over S seeds), so that a sweep can pick the generator that helps a
 * classifier most. Conditional families only; K is the trial's `dataset.subset_per_class`. Configured by
 * the spec's top-level `aug_gain:` block; it is computed whenever the block is there or the metric is
 * `aug_gain` (then with the defaults).
 */
export const AUG_GAIN_METRIC = 'aug_gain';

const whole = (min: number, max: number) =>
  z.number().int('must be an integer').min(min, `must be >= ${min}`).max(max, `must be <= ${max}`);

/** The spec's `aug_gain:` block. */
export const augGainSchema = z.strictObject({
  /** M: generated images per class added. @default 100 */
  synthetic_per_class: whole(1, AUGMENTATION_LIMITS.maxSyntheticPerClass).default(100),
  /** S: classifiers per arm. @default 3 */
  seeds: whole(1, AUGMENTATION_LIMITS.maxSeeds).default(3),
  /** Adam steps of each classifier. @default the protocol's recipe (300) */
  classifier_steps: whole(
    AUGMENTATION_LIMITS.classifierSteps.min,
    AUGMENTATION_LIMITS.classifierSteps.max,
  ).default(AUGMENTATION_LIMITS.classifierSteps.default),
  /** Test on the first N images of each class only (default: the whole test split). Tests and quick looks only. */
  test_per_class: whole(1, 100_000).optional(),
});
export type AugGainConfig = z.output<typeof augGainSchema>;

/** The block's defaults: what a sweep ranked by `aug_gain` without the block measures. */
export const DEFAULT_AUG_GAIN: AugGainConfig = augGainSchema.parse({});

/** Why `aug_gain` cannot be measured for this spec (empty when it can, or is not asked for). */
export function augGainIssues(spec: {
  model: ModelName;
  dataset: DatasetRef;
  metric: string;
  augGain?: AugGainConfig;
  evalEverySteps: number;
}): FieldIssue[] {
  const wanted = spec.metric === AUG_GAIN_METRIC || spec.augGain !== undefined;
  if (!wanted) return [];
  // A metric the family does not report is refused where metrics are checked (reportedMetrics).
  if (spec.augGain !== undefined && !FAMILIES[spec.model].conditional)
    return [
      {
        path: 'aug_gain',
        message: `aug_gain needs a conditional generator (one that draws a given class); ${spec.model} is not`,
      },
    ];
  if (spec.dataset.subset_per_class === undefined)
    return [
      {
        path: 'dataset.subset_per_class',
        message:
          'is required with aug_gain: the classifier gets the same K real images per class the generator was trained on (a generator trained on the whole set would make the gain leakage)',
      },
    ];
  // Ranked by aug_gain, the metric check asks for evaluations already.
  if (spec.evalEverySteps === 0 && spec.metric !== AUG_GAIN_METRIC)
    return [
      {
        path: 'health.eval_every_steps',
        message: 'must be > 0 with aug_gain (it is measured at the last quality evaluation)',
      },
    ];
  return [];
}
