import { z } from 'zod';

/**
 * DiffAugment's transforms (Zhao et al., 2020): `translation` (by up to 1/8 of the side, zero padding),
 * `cutout` (a square of half the side set to 0), `color` (brightness, saturation, contrast). Whatever order
 * a spec lists them in, they apply in this order, the paper's.
 */
export const AUGMENT_TRANSFORMS = ['color', 'translation', 'cutout'] as const;
export type AugmentTransform = (typeof AUGMENT_TRANSFORMS)[number];

const transformList = AUGMENT_TRANSFORMS.join(', ');

const transformName = z
  .string({ message: `must be a transform name (${transformList})` })
  .superRefine((t, ctx) => {
    if (!(AUGMENT_TRANSFORMS as readonly string[]).includes(t))
      ctx.addIssue({ code: 'custom', message: `unknown transform '${t}' (${transformList})` });
  });

/**
 * ADA's adaptive probability (Karras et al., 2020, section 3): every `interval` D updates, p moves by
 * sign(r_t - target) * (real images D saw in them) / `ramp_images`, r_t = E[sign(D(x))] over them.
 */
const adaptiveSchema = z.strictObject({
  /** The r_t that p is steered to: above it D is taken to overfit and p rises. */
  target: z.number().gt(0, 'must be > 0').lt(1, 'must be < 1').default(0.6),
  /** D updates between adjustments of p. */
  interval: z
    .number()
    .int('must be an integer')
    .min(1, 'must be >= 1')
    .max(10_000, 'must be <= 10000')
    .default(4),
  /** Real images over which p can move from 0 to 1 (ADA: 500k; Gantry's runs are shorter). */
  ramp_images: z
    .number()
    .int('must be an integer')
    .min(1, 'must be >= 1')
    .max(1_000_000_000, 'must be <= 1000000000')
    .default(50_000),
});

/**
 * The `augment:` block of a sweep spec (README, "DiffAugment"), as written and as carried in a trial's job.
 * `p`: the probability that each transform is applied to each image; defaults to 1 (the paper's setting),
 * or with `adaptive` to 0, where ADA starts.
 */
export const augmentSchema = z
  .strictObject({
    policy: z
      .array(transformName, { message: `must be a list of transforms (${transformList})` })
      .min(1, 'must list at least one transform')
      .superRefine((names, ctx) => {
        names.forEach((n, i) => {
          if (names.indexOf(n) !== i)
            ctx.addIssue({ code: 'custom', path: [i], message: `lists '${n}' twice` });
        });
      })
      .default([...AUGMENT_TRANSFORMS]),
    p: z.number().min(0, 'must be >= 0').max(1, 'must be <= 1').optional(),
    adaptive: adaptiveSchema.optional(),
  })
  .transform((a) => ({
    policy: a.policy as AugmentTransform[],
    p: a.p ?? (a.adaptive ? 0 : 1),
    ...(a.adaptive ? { adaptive: a.adaptive } : {}),
  }));

/** A compiled `augment:` block: every default filled in. */
export type AugmentConfig = z.output<typeof augmentSchema>;
