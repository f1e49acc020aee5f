import { z } from 'zod';

/** What watches a trial's health (README, "GAN health"). */
export const DETECTORS = ['divergence', 'd_dominance', 'mode_collapse', 'non_convergence'] as const;
export type DetectorName = (typeof DETECTORS)[number];

/**
 * What a detection does: `stop` ends the trial (`diverged` for divergence, `stopped` otherwise);
 * `restart` rewinds it to its last checkpoint from before the problem, with learning rates scaled, at
 * most `max_restarts` times per trial (then it stops); `warn` records it and trains on; `off` disables
 * the detector.
 */
export const POLICIES = ['stop', 'restart', 'warn', 'off'] as const;
export type Policy = (typeof POLICIES)[number];

/** What a detection did (a `restart` past `max_restarts` becomes `stop`). */
export type HealthAction = Exclude<Policy, 'off'>;

const policy = (fallback: Policy) =>
  z.enum(POLICIES, { message: `must be one of ${POLICIES.join(', ')}` }).default(fallback);
const positive = z.number().positive('must be > 0');
const fraction = z.number().min(0, 'must be >= 0').max(1, 'must be <= 1');
const lrScale = (g: number, d: number) =>
  z
    .strictObject({
      g: positive.max(100, 'must be <= 100').default(g),
      d: positive.max(100, 'must be <= 100').default(d),
    })
    .prefault({});

/** The `health:` block of a sweep spec; every field has a documented default. */
export const healthSchema = z
  .strictObject({
    /** Steps between quality evaluations (FLD, classes, diversity), and at the last step; 0 = none. */
    eval_every_steps: z.number().int('must be an integer').min(0, 'must be >= 0').max(1_000_000).default(250),
    /** Generated images scored per evaluation. */
    eval_samples: z.number().int('must be an integer').min(64, 'must be >= 64').max(10_000).default(512),
    /**
     * Steps before d_dominance, mode_collapse and non_convergence may fire: early GAN training looks
     * unhealthy by their measures (D ahead, few classes). Divergence is checked from the first step.
     */
    warmup_steps: z.number().int('must be an integer').min(0, 'must be >= 0').max(1_000_000).default(500),
    /** Restarts a trial may take, across all detectors. */
    max_restarts: z.number().int('must be an integer').min(0).max(10, 'must be <= 10').default(2),
    divergence: z
      .strictObject({
        policy: policy('stop'),
        /** |D loss| or |G loss| above this is an explosion. */
        loss_max: positive.default(50),
        /** Global L2 norm of either network's gradient above this is an explosion. */
        grad_norm_max: positive.default(1000),
        lr_scale: lrScale(0.5, 0.5),
      })
      .prefault({}),
    d_dominance: z
      .strictObject({
        policy: policy('warn'),
        /** Mean D(x) at or above this ... */
        d_real_min: fraction.default(0.95),
        /** ... and mean D(G(z)) at or below this, on every step of the window. */
        d_fake_max: fraction.default(0.05),
        /** Or: mean D loss over the window at or below this while G loss climbs across it ... */
        d_loss_max: positive.default(0.05),
        /** ... by more than this fraction (second half of the window against the first). */
        g_loss_rise: z.number().min(0, 'must be >= 0').max(10).default(0.2),
        window_steps: z.number().int('must be an integer').min(2, 'must be >= 2').max(100_000).default(100),
        lr_scale: lrScale(1, 0.5),
      })
      .prefault({}),
    mode_collapse: z
      .strictObject({
        policy: policy('warn'),
        /** Fraction of the data's classes the samples must cover. */
        coverage_min: fraction.default(0.5),
        /** KL(generated class histogram || data's), nats. */
        kl_max: positive.default(1),
        /** Generated feature diversity over the real data's. */
        diversity_min: fraction.default(0.5),
        lr_scale: lrScale(0.5, 0.5),
      })
      .prefault({}),
    non_convergence: z
      .strictObject({
        policy: policy('warn'),
        /** Evaluations without the best FLD improving by min_improvement (relative). */
        patience_evals: z.number().int('must be an integer').min(1).max(1000).default(5),
        min_improvement: fraction.default(0.01),
        lr_scale: lrScale(0.5, 0.5),
      })
      .prefault({}),
  })
  .prefault({});

export type HealthConfig = z.output<typeof healthSchema>;

/** Every default, as a trial without a `health:` block runs. */
export const DEFAULT_HEALTH: HealthConfig = healthSchema.parse(undefined);

/** One detection, as stored on the trial and served by the API. */
export interface HealthDetection {
  detector: DetectorName;
  step: number;
  action: HealthAction;
  reason: string;
  /** For `restart`: the step training went back to. */
  restartFrom?: number;
  /** Unix milliseconds. */
  t: number;
}

/** A trial's health record: its restarts so far and its detections, oldest first (the last 50). */
export interface TrialHealth {
  restarts: number;
  detections: HealthDetection[];
}
