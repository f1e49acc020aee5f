import type { DetectorName, HealthConfig } from '@gantry/shared';
import type { StepStats } from '../families/family.ts';
import type { QualityScores } from '../quality/scores.ts';

/** A detector's finding: what it saw, at which step, and from which step the problem has been going on. */
export interface Finding {
  detector: DetectorName;
  step: number;
  reason: string;
  /** First step of the evidence: a restart goes back to a checkpoint from before it. */
  since: number;
  /** Non-finite values: training cannot go on from the current weights whatever the policy. */
  fatal?: boolean;
}

/** Healthy steps that end a divergence episode (for `warn`, so that a run at its bound is not re-reported). */
const DIVERGENCE_HOLD_STEPS = 20;

const fmt = (x: number) =>
  Math.abs(x) >= 1000 || (Math.abs(x) < 0.01 && x !== 0) ? x.toExponential(2) : x.toFixed(3);

/**
 * Watches one trial's step scalars and quality evaluations and reports findings; the trainer process
 * applies each detector's policy. Pure bookkeeping, no tensors. A detector reports once per episode: it
 * reports again only after its condition has stayed clear for a while (a window for d_dominance, 20
 * steps for divergence, one evaluation for the others), so `warn` does not repeat.
 *
 * - divergence (every step): a non-finite loss, D score or gradient norm; |loss| > loss_max; a gradient
 *   norm > grad_norm_max.
 * - d_dominance (every step, over the last window_steps): D(x) >= d_real_min and D(G(z)) <= d_fake_max on
 *   every step of the window; or the window's mean D loss <= d_loss_max while G loss climbs (its mean
 *   over the second half of the window more than g_loss_rise above the first half's).
 * - mode_collapse (each evaluation): class coverage < coverage_min, class KL > kl_max, or diversity
 *   ratio < diversity_min.
 * - non_convergence (each evaluation): the best FLD has not improved by min_improvement (relative) for
 *   patience_evals evaluations.
 * Only divergence is checked during the first warmup_steps steps (of each stage, for staged models). Window
 * and FLD history start afresh after a restart and in a new process (a resumed attempt, a new stage).
 * Models with a Wasserstein critic (`critic`) skip d_dominance: their D scores are unbounded, not
 * probabilities, and their D loss is negative by design. With a `reference` (the scores of real images at
 * a progressive-growing stage's low resolution, which themselves look collapsed: at 4x4 real Fashion-MNIST
 * covers half the classes) mode_collapse judges coverage and diversity as fractions of the reference's and
 * class KL as the excess over it.
 */
export class HealthMonitor {
  private readonly window: { dominant: boolean; dLoss: number; gLoss: number }[] = [];
  private readonly active = new Set<DetectorName>();
  /** Consecutive checks without the condition, per active detector (an episode ends after `hold`). */
  private readonly quiet = new Map<DetectorName, number>();
  private bestFld = Number.POSITIVE_INFINITY;
  private bestStep = 0;
  private evalsSinceBest = 0;
  private lastEvalStep = 0;

  /**
   * @param opts.warmupFrom the step warm-up counts from (a stage's first step). @default 0
   * @param opts.critic the model's D is a Wasserstein critic. @default false
   * @param opts.reference scores of real images as the stage sees them; mode_collapse is relative to them.
   * @param opts.lossBound how far the family's losses go beyond the adversarial terms by design (pix2pix's
   *   weighted L1): added to loss_max. @default 0
   * @param opts.judgesD false while no discriminator is trained (srgan's pretraining): no d_dominance.
   *   @default true
   */
  constructor(
    private readonly cfg: HealthConfig,
    private readonly opts: {
      warmupFrom?: number;
      critic?: boolean;
      reference?: QualityScores;
      lossBound?: number;
      judgesD?: boolean;
    } = {},
  ) {}

  private get warmupEnd(): number {
    return (this.opts.warmupFrom ?? 0) + this.cfg.warmup_steps;
  }

  /** Forgets all history (after a restart rewound training). */
  reset(): void {
    this.window.length = 0;
    this.active.clear();
    this.quiet.clear();
    this.bestFld = Number.POSITIVE_INFINITY;
    this.bestStep = 0;
    this.evalsSinceBest = 0;
    this.lastEvalStep = 0;
  }

  observeStep(s: StepStats): Finding[] {
    const out: Finding[] = [];
    const div = this.cfg.divergence;
    const values = {
      d_loss: s.d_loss,
      g_loss: s.g_loss,
      d_real: s.d_real,
      d_fake: s.d_fake,
      g_grad_norm: s.g_grad_norm,
      d_grad_norm: s.d_grad_norm,
    };
    const nonFinite = Object.entries(values).find(([, v]) => !Number.isFinite(v));
    if (nonFinite) {
      // Reported whatever the episode and policy: the weights are unusable.
      out.push({
        detector: 'divergence',
        step: s.step,
        since: s.step,
        fatal: true,
        reason: `non-finite ${nonFinite[0]} (${nonFinite[1]}) at step ${s.step}`,
      });
      return out;
    }
    if (div.policy !== 'off') {
      let reason: string | undefined;
      const loss =
        Math.abs(s.d_loss) >= Math.abs(s.g_loss)
          ? (['d_loss', s.d_loss] as const)
          : (['g_loss', s.g_loss] as const);
      const lossMax = div.loss_max + (this.opts.lossBound ?? 0);
      if (Math.abs(loss[1]) > lossMax) reason = `${loss[0]} ${fmt(loss[1])} exceeds ${fmt(lossMax)}`;
      const norm =
        s.g_grad_norm >= s.d_grad_norm ? (['g', s.g_grad_norm] as const) : (['d', s.d_grad_norm] as const);
      if (!reason && norm[1] > div.grad_norm_max)
        reason = `${norm[0]} gradient norm ${fmt(norm[1])} exceeds ${div.grad_norm_max}`;
      this.episode(out, 'divergence', reason, s.step, s.step, DIVERGENCE_HOLD_STEPS);
    }
    const dom = this.cfg.d_dominance;
    if (dom.policy !== 'off' && !this.opts.critic && this.opts.judgesD !== false && s.step > this.warmupEnd) {
      this.window.push({
        dominant: s.d_real >= dom.d_real_min && s.d_fake <= dom.d_fake_max,
        dLoss: s.d_loss,
        gLoss: s.g_loss,
      });
      if (this.window.length > dom.window_steps) this.window.shift();
      let reason: string | undefined;
      if (this.window.length === dom.window_steps) {
        if (this.window.every((w) => w.dominant)) {
          reason = `discriminator dominates: D(x) >= ${dom.d_real_min} and D(G(z)) <= ${dom.d_fake_max} on each of the last ${dom.window_steps} steps (now ${fmt(s.d_real)} / ${fmt(s.d_fake)})`;
        } else {
          const half = Math.floor(dom.window_steps / 2);
          const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
          const dLoss = mean(this.window.map((w) => w.dLoss));
          const g1 = mean(this.window.slice(0, half).map((w) => w.gLoss));
          const g2 = mean(this.window.slice(half).map((w) => w.gLoss));
          if (dLoss <= dom.d_loss_max && g2 > g1 * (1 + dom.g_loss_rise)) {
            reason = `discriminator dominates: mean D loss ${fmt(dLoss)} <= ${dom.d_loss_max} over the last ${dom.window_steps} steps while G loss climbs from ${fmt(g1)} to ${fmt(g2)}`;
          }
        }
      }
      this.episode(out, 'd_dominance', reason, s.step, s.step - dom.window_steps + 1, dom.window_steps);
    }
    return out;
  }

  observeEval(step: number, q: QualityScores): Finding[] {
    const out: Finding[] = [];
    const previous = this.lastEvalStep;
    this.lastEvalStep = step;
    if (step <= this.warmupEnd) return out;
    const mc = this.cfg.mode_collapse;
    if (mc.policy !== 'off') {
      const problems: string[] = [];
      const ref = this.opts.reference;
      const of = ref ? ' of real images at this resolution' : '';
      // Class scores exist only where the features come from a classifier of the data's classes.
      const coverage =
        q.class_coverage === undefined
          ? Number.POSITIVE_INFINITY
          : ref
            ? q.class_coverage / Math.max(ref.class_coverage ?? 1, 1e-9)
            : q.class_coverage;
      const kl =
        q.class_kl === undefined
          ? Number.NEGATIVE_INFINITY
          : ref
            ? q.class_kl - (ref.class_kl ?? 0)
            : q.class_kl;
      const diversity = ref ? q.diversity_ratio / Math.max(ref.diversity_ratio, 1e-9) : q.diversity_ratio;
      if (coverage < mc.coverage_min)
        problems.push(
          `class coverage ${fmt(coverage)}${ref ? ' of the coverage' : ''}${of} < ${mc.coverage_min}`,
        );
      if (kl > mc.kl_max) problems.push(`class KL ${fmt(kl)}${ref ? ' above that' : ''}${of} > ${mc.kl_max}`);
      if (diversity < mc.diversity_min)
        problems.push(
          `diversity ${fmt(diversity)} of the ${ref ? `diversity${of}` : "data's"} < ${mc.diversity_min}`,
        );
      this.episode(
        out,
        'mode_collapse',
        problems.length ? `mode collapse: ${problems.join(', ')}` : undefined,
        step,
        previous,
      );
    }
    const nc = this.cfg.non_convergence;
    if (nc.policy !== 'off' && Number.isFinite(q.fld)) {
      let reason: string | undefined;
      if (q.fld < this.bestFld * (1 - nc.min_improvement)) {
        this.bestFld = q.fld;
        this.bestStep = step;
        this.evalsSinceBest = 0;
      } else {
        this.evalsSinceBest += 1;
        if (this.evalsSinceBest >= nc.patience_evals) {
          reason = `no convergence: FLD has not improved on ${fmt(this.bestFld)} (step ${this.bestStep}) by ${100 * nc.min_improvement}% in ${this.evalsSinceBest} evaluations (now ${fmt(q.fld)})`;
        }
      }
      this.episode(out, 'non_convergence', reason, step, this.bestStep);
    }
    return out;
  }

  /**
   * Reports `reason` if the detector's episode is new. An episode ends after `hold` consecutive checks
   * without a reason, so a condition that flickers at its bound is reported once.
   */
  private episode(
    out: Finding[],
    detector: DetectorName,
    reason: string | undefined,
    step: number,
    since: number,
    hold = 1,
  ): void {
    if (reason === undefined) {
      if (!this.active.has(detector)) return;
      const quiet = (this.quiet.get(detector) ?? 0) + 1;
      this.quiet.set(detector, quiet);
      if (quiet >= hold) {
        this.active.delete(detector);
        this.quiet.delete(detector);
      }
      return;
    }
    this.quiet.delete(detector);
    if (this.active.has(detector)) return;
    this.active.add(detector);
    out.push({ detector, step, reason, since: Math.max(0, since) });
  }
}
