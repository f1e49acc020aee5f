import { DEFAULT_HEALTH, type HealthConfig } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import type { StepStats } from '../families/family.ts';
import type { QualityScores } from '../quality/scores.ts';
import { HealthMonitor } from './monitor.ts';

const healthy = (step: number, over: Partial<StepStats> = {}): StepStats => ({
  step,
  d_loss: 1.2,
  g_loss: 0.9,
  d_real: 0.6,
  d_fake: 0.4,
  g_grad_norm: 2,
  d_grad_norm: 3,
  ...over,
});

/** The defaults without the warm-up, so that short scripted runs reach every detector. */
const config = (over: Partial<HealthConfig> = {}): HealthConfig => ({
  ...DEFAULT_HEALTH,
  warmup_steps: 0,
  ...over,
});

const good: QualityScores = { fld: 10, class_coverage: 1, class_kl: 0.05, diversity_ratio: 0.95 };

describe('HealthMonitor', () => {
  it('stays silent over a long healthy run with noisy scalars and improving FLD', () => {
    const m = new HealthMonitor(config());
    for (let step = 1; step <= 5000; step++) {
      const wobble = Math.sin(step / 7) * 0.3;
      expect(
        m.observeStep(
          healthy(step, { d_real: 0.6 + wobble / 2, d_fake: 0.4 - wobble / 2, g_loss: 0.9 + wobble }),
        ),
      ).toEqual([]);
      if (step % 250 === 0) expect(m.observeEval(step, { ...good, fld: 100 / step })).toEqual([]);
    }
  });

  it('reports a non-finite value as fatal divergence at once, even with the detector off', () => {
    const m = new HealthMonitor(config({ divergence: { ...DEFAULT_HEALTH.divergence, policy: 'off' } }));
    const [f] = m.observeStep(healthy(7, { d_grad_norm: Number.NaN }));
    expect(f).toMatchObject({ detector: 'divergence', step: 7, since: 7, fatal: true });
    expect(f?.reason).toMatch(/non-finite d_grad_norm/);
  });

  it('reports loss and gradient-norm explosions past their bounds, once per episode', () => {
    const m = new HealthMonitor(config());
    expect(m.observeStep(healthy(1, { g_loss: 51 }))[0]?.reason).toMatch(/g_loss 51.000 exceeds 50/);
    expect(m.observeStep(healthy(2, { g_loss: 80 }))).toEqual([]);
    // A flicker back to health does not end the episode; 20 healthy steps do.
    expect(m.observeStep(healthy(3))).toEqual([]);
    expect(m.observeStep(healthy(4, { d_loss: -60 }))).toEqual([]);
    for (let step = 5; step < 25; step++) expect(m.observeStep(healthy(step))).toEqual([]);
    const [f] = m.observeStep(healthy(25, { d_grad_norm: 2000 }));
    expect(f?.reason).toMatch(/d gradient norm 2.00e\+3 exceeds 1000/);
    expect(f?.fatal).toBeUndefined();
  });

  it('reports discriminator dominance after exactly window_steps dominated steps, not before', () => {
    const window = 20;
    const m = new HealthMonitor(
      config({ d_dominance: { ...DEFAULT_HEALTH.d_dominance, window_steps: window } }),
    );
    for (let step = 1; step <= 30; step++) m.observeStep(healthy(step));
    for (let step = 31; step < 31 + window - 1; step++) {
      expect(m.observeStep(healthy(step, { d_real: 0.99, d_fake: 0.01 }))).toEqual([]);
    }
    const [f] = m.observeStep(healthy(31 + window - 1, { d_real: 0.99, d_fake: 0.01 }));
    expect(f).toMatchObject({ detector: 'd_dominance', step: 50, since: 31 });
    // One interruption ends the episode; a full window of dominance reports again.
    m.observeStep(healthy(51));
    let again = 0;
    for (let step = 52; step < 52 + window; step++)
      again += m.observeStep(healthy(step, { d_real: 0.99, d_fake: 0.01 })).length;
    expect(again).toBe(1);
  });

  it('reports dominance when D loss is near zero while G loss climbs', () => {
    const m = new HealthMonitor(config({ d_dominance: { ...DEFAULT_HEALTH.d_dominance, window_steps: 10 } }));
    const found = [];
    for (let step = 1; step <= 10; step++) {
      // D(x) 0.9 is short of the 0.95 bound: only the loss rule can fire.
      found.push(
        ...m.observeStep(healthy(step, { d_loss: 0.01, g_loss: 3 + step, d_real: 0.9, d_fake: 0.02 })),
      );
    }
    expect(found).toHaveLength(1);
    expect(found[0]?.reason).toMatch(/G loss climbs/);
  });

  it('reports mode collapse from coverage, KL or diversity at an evaluation', () => {
    const m = new HealthMonitor(config());
    expect(m.observeEval(250, good)).toEqual([]);
    const [f] = m.observeEval(500, { ...good, class_coverage: 0.2, diversity_ratio: 0.1 });
    expect(f).toMatchObject({ detector: 'mode_collapse', step: 500, since: 250 });
    expect(f?.reason).toMatch(/class coverage 0.200 < 0.5.*diversity 0.100/);
    expect(m.observeEval(750, { ...good, class_kl: 2 })).toEqual([]); // same episode
    expect(m.observeEval(1000, good)).toEqual([]);
    expect(m.observeEval(1250, { ...good, class_kl: 2 })[0]?.reason).toMatch(/class KL 2.000 > 1/);
  });

  it('reports non-convergence after patience_evals evaluations without relative improvement', () => {
    const m = new HealthMonitor(
      config({ non_convergence: { ...DEFAULT_HEALTH.non_convergence, patience_evals: 3 } }),
    );
    expect(m.observeEval(100, { ...good, fld: 50 })).toEqual([]);
    expect(m.observeEval(200, { ...good, fld: 40 })).toEqual([]);
    expect(m.observeEval(300, { ...good, fld: 39.9 })).toEqual([]); // < 1% better: not an improvement
    expect(m.observeEval(400, { ...good, fld: 45 })).toEqual([]);
    const [f] = m.observeEval(500, { ...good, fld: 41 });
    expect(f).toMatchObject({ detector: 'non_convergence', step: 500, since: 200 });
  });

  it('forgets its history on reset (after a restart)', () => {
    const m = new HealthMonitor(config({ d_dominance: { ...DEFAULT_HEALTH.d_dominance, window_steps: 5 } }));
    for (let step = 1; step <= 4; step++) m.observeStep(healthy(step, { d_real: 0.99, d_fake: 0.01 }));
    m.reset();
    for (let step = 1; step <= 4; step++)
      expect(m.observeStep(healthy(step, { d_real: 0.99, d_fake: 0.01 }))).toEqual([]);
    expect(m.observeStep(healthy(5, { d_real: 0.99, d_fake: 0.01 }))).toHaveLength(1);
  });

  it('checks only divergence during the warm-up', () => {
    const m = new HealthMonitor(
      config({ warmup_steps: 30, d_dominance: { ...DEFAULT_HEALTH.d_dominance, window_steps: 10 } }),
    );
    const dominated = (step: number) => m.observeStep(healthy(step, { d_real: 0.99, d_fake: 0.01 }));
    for (let step = 1; step <= 39; step++) expect(dominated(step)).toEqual([]);
    expect(dominated(40)).toMatchObject([{ detector: 'd_dominance', since: 31 }]);
    expect(m.observeEval(30, { ...good, class_coverage: 0 })).toEqual([]);
    expect(m.observeStep(healthy(41, { g_loss: 99 }))[0]?.detector).toBe('divergence');
    expect(m.observeEval(60, { ...good, class_coverage: 0 })[0]?.detector).toBe('mode_collapse');
    expect(DEFAULT_HEALTH.warmup_steps).toBe(500);
  });

  it('ignores a detector whose policy is off', () => {
    const m = new HealthMonitor(
      config({ mode_collapse: { ...DEFAULT_HEALTH.mode_collapse, policy: 'off' } }),
    );
    expect(m.observeEval(100, { ...good, class_coverage: 0 })).toEqual([]);
  });

  it('counts the warm-up from the start of a stage', () => {
    const m = new HealthMonitor(
      config({ warmup_steps: 30, d_dominance: { ...DEFAULT_HEALTH.d_dominance, window_steps: 10 } }),
      { warmupFrom: 1000 },
    );
    const dominated = (step: number) => m.observeStep(healthy(step, { d_real: 0.99, d_fake: 0.01 }));
    for (let step = 1001; step <= 1039; step++) expect(dominated(step)).toEqual([]);
    expect(dominated(1040)).toMatchObject([{ detector: 'd_dominance', since: 1031 }]);
    expect(m.observeEval(1030, { ...good, class_coverage: 0 })).toEqual([]);
    expect(m.observeEval(1031, { ...good, class_coverage: 0 })[0]?.detector).toBe('mode_collapse');
  });

  it('skips d_dominance for a Wasserstein critic but still watches divergence and quality', () => {
    const m = new HealthMonitor(config({ d_dominance: { ...DEFAULT_HEALTH.d_dominance, window_steps: 5 } }), {
      critic: true,
    });
    // Critic scores far outside [0, 1] and a negative D loss are normal for WGAN.
    for (let step = 1; step <= 50; step++)
      expect(m.observeStep(healthy(step, { d_real: 3.5, d_fake: -4, d_loss: -7.5, g_loss: 4 }))).toEqual([]);
    expect(m.observeStep(healthy(51, { d_loss: -80 }))[0]?.detector).toBe('divergence');
    expect(m.observeEval(100, { ...good, class_coverage: 0 })[0]?.detector).toBe('mode_collapse');
  });

  it("widens the divergence bound by a family's own loss terms, and skips d_dominance while no D trains", () => {
    const cfg = config({ d_dominance: { ...DEFAULT_HEALTH.d_dominance, window_steps: 5 } });
    // pix2pix at l1_weight 100: a G loss of 120 is its L1 term at work, not divergence; 300 is past both.
    const p2p = new HealthMonitor(cfg, { lossBound: 200 });
    expect(p2p.observeStep(healthy(1, { g_loss: 120 }))).toEqual([]);
    expect(p2p.observeStep(healthy(2, { g_loss: 300 }))[0]).toMatchObject({
      detector: 'divergence',
      reason: expect.stringMatching(/g_loss 300.* exceeds 250/),
    });
    expect(new HealthMonitor(cfg).observeStep(healthy(1, { g_loss: 120 }))[0]?.detector).toBe('divergence');
    // srgan's pretraining reports D scores of 0 (no D is trained): never a dominance.
    const pre = new HealthMonitor(cfg, { judgesD: false });
    for (let step = 1; step <= 40; step++)
      expect(pre.observeStep(healthy(step, { d_real: 0, d_fake: 0, d_loss: 0 }))).toEqual([]);
  });

  it('judges mode collapse against a reference: real images at a low-resolution stage', () => {
    // Real Fashion-MNIST box-filtered to 4x4 scores about like this against the full-resolution data.
    const reference: QualityScores = { fld: 305, class_coverage: 0.5, class_kl: 0.9, diversity_ratio: 0.48 };
    const m = new HealthMonitor(config(), { reference });
    // As collapsed-looking as the real images at this resolution: nothing to report.
    expect(
      m.observeEval(100, { fld: 320, class_coverage: 0.5, class_kl: 1.2, diversity_ratio: 0.4 }),
    ).toEqual([]);
    const [f] = m.observeEval(200, { fld: 320, class_coverage: 0.2, class_kl: 2.5, diversity_ratio: 0.2 });
    expect(f?.detector).toBe('mode_collapse');
    expect(f?.reason).toMatch(
      /class coverage 0\.400 of the coverage of real images at this resolution < 0\.5/,
    );
    expect(f?.reason).toMatch(/class KL 1\.600 above that of real images at this resolution > 1/);
    expect(f?.reason).toMatch(/diversity 0\.417 of the diversity of real images at this resolution < 0\.5/);
    // Without the reference the first evaluation would already have been a collapse.
    expect(
      new HealthMonitor(config()).observeEval(100, {
        fld: 320,
        class_coverage: 0.5,
        class_kl: 1.2,
        diversity_ratio: 0.4,
      })[0]?.detector,
    ).toBe('mode_collapse');
  });
});
