/**
 * DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN Training") with ADA's
 * adaptive probability (Karras et al., 2020) as an option. How a family uses it:
 *
 * ```ts
 * const augment = createAugment(job.augment, rng);         // undefined without an `augment:` block
 * // D's loss: real and generated images through T before D, each call a fresh draw per sample.
 * const realScores = D(augment ? augment.apply(real) : real);
 * const fakeScores = D(augment ? augment.apply(fake) : fake);
 * augment?.observe(realScores);                            // ADA's r_t (a no-op for a fixed p)
 * // G's loss sees D(T(G(z))).
 * // After the step: {...readStepStats(out, step), ...augment?.stats()}  (augment_p, augment_rt)
 * // State: {...augmentState(augment)} into a TrainerState, augment?.importState(state.augment) on resume.
 * ```
 *
 * `apply` draws every parameter from the trainer's own Rng (whose state each checkpoint holds), so a
 * resumed run augments exactly as the uninterrupted one; it is differentiable with respect to the images,
 * twice (transforms.ts), and leaves a sample it does not select bit-for-bit unchanged. Call it inside a
 * tidy (or a gradient function). With a gradient penalty, the penalty is taken at interpolates of the
 * augmented real and generated images, D's gradient there: the Lipschitz constraint holds where D is
 * evaluated, and no second derivative passes through T.
 */
import { AUGMENT_TRANSFORMS, type AugmentConfig, type Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import type { StepStats } from '../families/family.ts';
import { AdaptiveP, type AdaptivePState } from './adaptive-p.ts';
import { color, cutout, cutoutSize, maxShift, translate } from './transforms.ts';

/** What a checkpoint keeps of the augmentation: the adaptive p and its interval under way. */
export type AugmentState = AdaptivePState;

export interface AugmentOptions {
  /**
   * Images stacked along the channels of what `apply` gets (pix2pix's D input: A and B, 2): each gets the
   * same translation, cutout and colour parameters. @default 1
   */
  groups?: number;
}

export class DiffAugment {
  private readonly transforms: ReadonlySet<string>;
  private readonly adaptive?: AdaptiveP;
  private readonly fixedP: number;
  private readonly groups: number;
  /** ADA: sums of sign(D(x)) not yet read back, with their image counts (read once per interval). */
  private pending: { signSum: tf.Scalar; images: number }[] = [];

  constructor(
    readonly config: AugmentConfig,
    private readonly rng: Rng,
    opts: AugmentOptions = {},
  ) {
    this.transforms = new Set(config.policy);
    this.fixedP = config.p;
    if (config.adaptive) this.adaptive = new AdaptiveP(config.adaptive, config.p);
    this.groups = opts.groups ?? 1;
  }

  /** The probability that each transform is applied to each image now. */
  get p(): number {
    return this.adaptive ? this.adaptive.p : this.fixedP;
  }

  /**
   * T(x): each transform of the policy, in the paper's order (color, translation, cutout), applied to each
   * sample with probability p, with parameters drawn per sample. x is NHWC on the [-1, 1] scale.
   */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    const [n, h, w] = x.shape;
    const p = this.p;
    let y = x;
    for (const t of AUGMENT_TRANSFORMS) {
      if (!this.transforms.has(t)) continue;
      const chosen = Array.from({ length: n }, () => this.rng.uniform() < p);
      const any = chosen.some((c) => c);
      if (t === 'color') {
        const brightness = new Float32Array(n);
        const saturation = new Float32Array(n).fill(1);
        const contrast = new Float32Array(n).fill(1);
        for (let b = 0; b < n; b++) {
          const [u0, u1, u2] = [this.rng.uniform(), this.rng.uniform(), this.rng.uniform()];
          if (!chosen[b]) continue;
          brightness[b] = u0 - 0.5;
          saturation[b] = u1 * 2;
          contrast[b] = u2 + 0.5;
        }
        if (any) y = color(y, { brightness, saturation, contrast }, this.groups);
      } else if (t === 'translation') {
        const [sy, sx] = [maxShift(h), maxShift(w)];
        const dy = new Int32Array(n);
        const dx = new Int32Array(n);
        for (let b = 0; b < n; b++) {
          const [ty, tx] = [this.rng.int(2 * sy + 1) - sy, this.rng.int(2 * sx + 1) - sx];
          if (chosen[b]) [dy[b], dx[b]] = [ty, tx];
        }
        if (any) y = translate(y, dy, dx);
      } else {
        // The centre's range as in the reference: [0, side - 1], or [0, side] for an even square.
        const cy = new Int32Array(n).fill(-1);
        const cx = new Int32Array(n).fill(-1);
        for (let b = 0; b < n; b++) {
          const [oy, ox] = [
            this.rng.int(h + 1 - (cutoutSize(h) % 2)),
            this.rng.int(w + 1 - (cutoutSize(w) % 2)),
          ];
          if (chosen[b]) [cy[b], cx[b]] = [oy, ox];
        }
        if (any) y = cutout(y, cy, cx);
      }
    }
    return y;
  }

  /**
   * ADA: records D's scores on this D update's (augmented) real images, [N] or a patch map [N, ...] (for a
   * non-saturating D its logits, for a critic its raw scores). A no-op for a fixed p. Reads the scores back
   * once per interval, when p is adjusted.
   */
  observe(realScores: tf.Tensor): void {
    if (!this.adaptive) return;
    const n = realScores.shape[0]!;
    this.pending.push({
      signSum: tf.tidy(() => tf.keep(tf.sum(tf.mean(tf.sign(tf.reshape(realScores, [n, -1])), 1)))),
      images: n,
    });
    if (this.pending.length >= this.adaptive.remaining) this.flush();
  }

  private flush(): void {
    for (const { signSum, images } of this.pending) {
      this.adaptive!.observe(signSum.dataSync()[0]!, images);
      signSum.dispose();
    }
    this.pending = [];
  }

  /** The step scalars it adds: p, and with ADA the last interval's r_t. */
  stats(): Pick<StepStats, 'augment_p' | 'augment_rt'> {
    const rt = this.adaptive?.rt;
    return { augment_p: this.p, ...(rt !== undefined ? { augment_rt: rt } : {}) };
  }

  /** ADA's state for a checkpoint; undefined for a fixed p (the job's config restores it). */
  exportState(): AugmentState | undefined {
    if (!this.adaptive) return undefined;
    this.flush();
    return this.adaptive.exportState();
  }

  /** Restores ADA's state; without one (a checkpoint from before ADA), p stays where the config starts it. */
  importState(state: AugmentState | undefined): void {
    if (!this.adaptive || !state) return;
    for (const { signSum } of this.pending) signSum.dispose();
    this.pending = [];
    this.adaptive.importState(state);
  }

  dispose(): void {
    for (const { signSum } of this.pending) signSum.dispose();
    this.pending = [];
  }
}

/** The `augment` field of a TrainerState: ADA's state, or nothing (no augmentation, or a fixed p). */
export function augmentState(augment: DiffAugment | undefined): { augment?: AugmentState } {
  const state = augment?.exportState();
  return state ? { augment: state } : {};
}

/** The augmentation of a job's `augment` block, drawing from `rng`; undefined without one. */
export function createAugment(
  config: AugmentConfig | undefined,
  rng: Rng,
  opts?: AugmentOptions,
): DiffAugment | undefined {
  return config ? new DiffAugment(config, rng, opts) : undefined;
}
