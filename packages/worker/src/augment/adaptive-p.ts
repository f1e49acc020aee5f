/** ADA's settings, as in a compiled `augment.adaptive` block. */
export interface AdaptiveSettings {
  target: number;
  interval: number;
  ramp_images: number;
}

/** What a checkpoint keeps of an adaptive p: p itself and the interval under way. */
export interface AdaptivePState {
  p: number;
  /** Sum of sign(D(x)) and the real images it is over, since the last adjustment. */
  signSum: number;
  images: number;
  /** D updates observed since the last adjustment. */
  updates: number;
  /** r_t of the last completed interval (absent before the first). */
  rt?: number;
}

/**
 * ADA's adaptive augmentation probability (Karras et al., 2020, section 3, "Adaptive discriminator
 * augmentation"): the overfitting heuristic r_t = E[sign(D(x))] over the real images D saw in the last
 * `interval` updates; then p += sign(r_t - target) * images / ramp_images, clamped to [0, 1]. ADA's own
 * augmentations leak into G's output as p nears 1, as they act on D's input only; DiffAugment's act in G's
 * loss as well (its paper runs at p = 1), so p may reach 1 here.
 */
export class AdaptiveP {
  private s: AdaptivePState;

  constructor(
    readonly settings: AdaptiveSettings,
    p0: number,
  ) {
    this.s = { p: p0, signSum: 0, images: 0, updates: 0 };
  }

  get p(): number {
    return this.s.p;
  }

  /** r_t of the last completed interval, or undefined before the first. */
  get rt(): number | undefined {
    return this.s.rt;
  }

  /** D updates until the next adjustment of p. */
  get remaining(): number {
    return this.settings.interval - this.s.updates;
  }

  /**
   * Records one D update whose `images` real images had `signSum` as the sum of sign(D(x)) (each image's
   * mean over its outputs, for a patch discriminator); adjusts p when the interval is complete. A
   * non-finite sum (a diverged D) counts as an update but adds no images, so it leaves p as it is.
   */
  observe(signSum: number, images: number): void {
    const s = this.s;
    if (Number.isFinite(signSum)) {
      s.signSum += signSum;
      s.images += images;
    }
    s.updates += 1;
    if (s.updates < this.settings.interval) return;
    if (s.images === 0) {
      this.s = { ...s, signSum: 0, images: 0, updates: 0 };
      return;
    }
    const rt = s.signSum / s.images;
    const step = (Math.sign(rt - this.settings.target) * s.images) / this.settings.ramp_images;
    this.s = { p: Math.min(1, Math.max(0, s.p + step)), signSum: 0, images: 0, updates: 0, rt };
  }

  exportState(): AdaptivePState {
    return { ...this.s };
  }

  importState(state: AdaptivePState): void {
    this.s = { ...state };
  }
}
