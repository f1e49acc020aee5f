import type { LrScale, TrainerHealthState } from '../families/family.ts';
import type { Adam } from '../optim/adam.ts';

/** A trainer's health restarts and the learning rates they scaled, applied to its two optimizers. */
export class HealthRates {
  private current: TrainerHealthState = { restarts: 0, lrScale: { g: 1, d: 1 } };

  constructor(
    private readonly optG: Adam,
    private readonly optD: Adam,
    private readonly lr: { g: number; d: number },
  ) {}

  get state(): TrainerHealthState {
    return { restarts: this.current.restarts, lrScale: { ...this.current.lrScale } };
  }

  /** Counts a restart and multiplies each network's rate by `scale`, on top of earlier restarts. */
  restart(scale: LrScale): void {
    const s = this.current.lrScale;
    this.set({ restarts: this.current.restarts + 1, lrScale: { g: s.g * scale.g, d: s.d * scale.d } });
  }

  /** Restores restarts and multipliers (none when a checkpoint predates health handling). */
  set(h: TrainerHealthState = { restarts: 0, lrScale: { g: 1, d: 1 } }): void {
    this.current = { restarts: h.restarts, lrScale: { ...h.lrScale } };
    this.optG.setLearningRate(this.lr.g * h.lrScale.g);
    this.optD.setLearningRate(this.lr.d * h.lrScale.d);
  }
}
