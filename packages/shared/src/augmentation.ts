import { z } from 'zod';
import { BadRequestError, type FieldIssue, InvalidJobPayloadError } from './errors.ts';

/**
 * GAN data augmentation, measured (Shmelkov et al., 2018: "How good is my GAN?"): a classifier trained on
 * K real images per class, without and with M images per class drawn from a trial's conditional
 * generator, over S seeds; GAN-train (trained on generated images only, tested on real) and GAN-test
 * (trained on real, tested on generated). The job, its request and its record (README, "GAN data
 * augmentation"); the worker's augmentation/ runs it.
 */

/** Bounds of an augmentation's numbers. */
export const AUGMENTATION_LIMITS = {
  maxRealPerClass: 10_000,
  maxSyntheticPerClass: 5000,
  maxSeeds: 20,
  /** Adam steps of each classifier: the default, and the range a request may ask for. */
  classifierSteps: { default: 300, min: 1, max: 20_000 },
} as const;

const whole = (min: number, max: number) =>
  z.number().int('must be an integer').min(min, `must be >= ${min}`).max(max, `must be <= ${max}`);

/** What an augmentation measures, as a request gives it (`POST /v1/trials/:id/augment`, `gantry augment`). */
export const augmentationRequestSchema = z.strictObject({
  /** K: real images per class; must be the trial's `dataset.subset_per_class` (what its generator saw). */
  real_per_class: whole(1, AUGMENTATION_LIMITS.maxRealPerClass),
  /** M: generated images per class added to the K real ones. */
  synthetic_per_class: whole(1, AUGMENTATION_LIMITS.maxSyntheticPerClass),
  /** S: classifiers trained per arm, each from its own seed. */
  seeds: whole(1, AUGMENTATION_LIMITS.maxSeeds),
  /** The committed checkpoint of this step; the trial's latest when absent. */
  step: whole(0, 1e9).optional(),
  /**
   * Adam steps of each classifier (default: the protocol's recipe, 300); fewer are for tests and quick
   * looks only (accuracies are then not comparable with the README's).
   */
  classifier_steps: whole(
    AUGMENTATION_LIMITS.classifierSteps.min,
    AUGMENTATION_LIMITS.classifierSteps.max,
  ).optional(),
  /**
   * Test only on the first N images of each class of the test split (default: all of it, as the protocol
   * says). For tests and quick looks only.
   */
  test_per_class: whole(1, 100_000).optional(),
});
export type AugmentationRequest = z.infer<typeof augmentationRequestSchema>;

/** An augmentation's numbers with the defaults filled, as its job carries them and its record shows them. */
export type AugmentationParams = AugmentationRequest & { classifier_steps: number };

/** Field issues of a zod error, with unknown keys named one by one. */
function issuesOf(error: z.ZodError): FieldIssue[] {
  return error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys'
      ? i.keys.map((k) => ({ path: [...i.path, k].map(String).join('.'), message: 'unknown field' }))
      : [{ path: i.path.map(String).join('.'), message: i.message }],
  );
}

/**
 * The body of an augmentation request, checked, with the defaults filled.
 * @throws BadRequestError naming the first bad field
 */
export function parseAugmentationRequest(body: unknown): AugmentationParams {
  const parsed = augmentationRequestSchema.safeParse(body ?? {});
  if (!parsed.success) {
    const first = issuesOf(parsed.error)[0] ?? { path: '', message: 'invalid request' };
    throw new BadRequestError(first.path || 'body', first.message);
  }
  return {
    ...parsed.data,
    classifier_steps: parsed.data.classifier_steps ?? AUGMENTATION_LIMITS.classifierSteps.default,
  };
}

/** Mean, sample standard deviation (n - 1; null for one value) and the values, one per seed. */
export interface Spread {
  mean: number;
  sd: number | null;
  values: number[];
}

/** The spread of `values` (one per seed). */
export function spreadOf(values: readonly number[]): Spread {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n < 2 ? null : Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  return { mean, sd, values: [...values] };
}

/** One arm of real + M generated images per class. */
export interface AugmentedArm {
  synthetic_per_class: number;
  /** Test accuracy of the classifiers trained on K real + M generated images per class. */
  accuracy: Spread;
  /** mean(accuracy) - mean(real accuracy); `paired` is the spread of the per-seed differences. */
  gain: number;
  paired: Spread;
}

/** What an augmentation measured (accuracies are fractions of the test images classified right). */
export interface AugmentationResult {
  real_per_class: number;
  seeds: number;
  /** The classifier recipe every arm was trained with. */
  recipe: { steps: number; batch: number; lr: number; shift: number; flip: boolean };
  /** Test images each accuracy is over. */
  test_images: number;
  /** Trained on the K real images per class only. */
  real: Spread;
  /** One arm per M asked for (one for a job; the measurement script asks for several). */
  augmented: AugmentedArm[];
  /** Trained on the largest M generated images per class only, tested on the real test split. */
  gan_train: Spread & { synthetic_per_class: number };
  /** The real-only classifier of each seed, tested on that seed's generated images (largest M per class). */
  gan_test: Spread & { images: number };
  /** Wall time of the protocol. */
  seconds: number;
}

export const AUGMENTATION_STATES = ['queued', 'running', 'completed', 'failed'] as const;
export type AugmentationState = (typeof AUGMENTATION_STATES)[number];

/** Where a running augmentation is: seed `seed` (1-based) of `seeds`, training arm `arm`. */
export interface AugmentationProgress {
  seed: number;
  seeds: number;
  arm: string;
}

/** An augmentation job as kept in Redis and served by the API (`GET /v1/augmentations/:id`). */
export interface AugmentationRecord {
  id: string;
  trialId: string;
  sweepId: string;
  state: AugmentationState;
  params: AugmentationParams;
  /** The checkpoint whose generator is measured. */
  checkpoint: { step: number };
  progress?: AugmentationProgress;
  result?: AugmentationResult;
  error?: string;
  worker?: string;
  attempts: number;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
}

const idSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,127}$/, 'must be lowercase letters, digits and -');

/** What the coordinator queues for an augmentation and a worker runs (the trial's job is checked apart). */
const augmentationJobSchema = z.strictObject({
  v: z.literal(1),
  augmentationId: idSchema,
  /** The trial's job as the scheduler queues it (parseTrialJob checks it). */
  trial: z.record(z.string(), z.unknown()),
  checkpoint: z.strictObject({ step: z.number().int().min(0), manifestKey: z.string().min(1) }),
  params: augmentationRequestSchema.extend({
    classifier_steps: whole(AUGMENTATION_LIMITS.classifierSteps.min, AUGMENTATION_LIMITS.classifierSteps.max),
  }),
});
export type AugmentationJob = z.infer<typeof augmentationJobSchema>;

/**
 * An augmentation job's payload as a worker reads it.
 * @throws InvalidJobPayloadError naming the field
 */
export function parseAugmentationJob(data: unknown, jobId?: string): AugmentationJob {
  const parsed = augmentationJobSchema.safeParse(data);
  if (!parsed.success) throw new InvalidJobPayloadError(jobId, issuesOf(parsed.error));
  return parsed.data;
}
