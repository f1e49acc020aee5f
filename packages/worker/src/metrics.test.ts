import { describe, expect, it } from 'vitest';
import { WorkerMetrics } from './metrics.ts';

const step = {
  step: 10,
  d_loss: 1,
  g_loss: 2,
  d_real: 0.6,
  d_fake: 0.4,
  images_per_sec: 100,
  g_grad_norm: 3,
  d_grad_norm: 4,
};

describe('WorkerMetrics', () => {
  it("removes every series of a trial when it leaves, and keeps the worker's own", async () => {
    const m = new WorkerMetrics();
    m.startTrial('s1', 't1', 0);
    m.startTrial('s1', 't2', 0);
    m.startStage('s1', 't1', 1, 8, 0);
    m.observe('s1', 't1', { ...step, resolution: 8, alpha: 0.25, augment_p: 0.375, augment_rt: 0.5 });
    m.observe('s1', 't2', step);
    m.observeQuality('s1', 't1', {
      step: 10,
      fld: 12,
      class_coverage: 1,
      class_kl: 0.1,
      diversity_ratio: 0.9,
      cond_accuracy: 0.8,
    });
    m.observeDetection(
      's1',
      't1',
      { detector: 'd_dominance', step: 10, action: 'restart', reason: 'r', t: 0 },
      1,
    );
    const before = await m.registry.metrics();
    expect(before).toMatch(/gantry_trial_grad_norm\{sweep="s1",trial="t1",network="g"\} 3/);
    expect(before).toMatch(/gantry_trial_fld\{sweep="s1",trial="t1"\} 12/);
    // A staged trial's stage, resolution and fade-in; none for the unstaged one.
    expect(before).toMatch(/gantry_trial_stage\{sweep="s1",trial="t1"\} 1/);
    expect(before).toMatch(/gantry_trial_resolution\{sweep="s1",trial="t1"\} 8/);
    expect(before).toMatch(/gantry_trial_alpha\{sweep="s1",trial="t1"\} 0.25/);
    expect(before).not.toMatch(/gantry_trial_alpha\{sweep="s1",trial="t2"\}/);
    // DiffAugment's p and ADA's r_t, for the trial that reports them.
    expect(before).toMatch(/gantry_trial_augment_p\{sweep="s1",trial="t1"\} 0.375/);
    expect(before).toMatch(/gantry_trial_augment_rt\{sweep="s1",trial="t1"\} 0.5/);
    expect(before).not.toMatch(/gantry_trial_augment_p\{sweep="s1",trial="t2"\}/);
    expect(before).toMatch(
      /gantry_trial_detections_total\{sweep="s1",trial="t1",detector="d_dominance",action="restart"\} 1/,
    );
    expect(before).toMatch(
      /gantry_trial_detections_total\{sweep="s1",trial="t1",detector="divergence",action="stop"\} 0/,
    );
    expect(before).toMatch(/gantry_trial_restarts\{sweep="s1",trial="t1"\} 1/);
    expect(before).toMatch(/gantry_trial_detection_step\{sweep="s1",trial="t1",detector="d_dominance"\} 10/);

    m.forget('s1', 't1');
    const after = await m.registry.metrics();
    expect(after).not.toMatch(/trial="t1"/);
    expect(after).toMatch(/gantry_trial_step\{sweep="s1",trial="t2"\} 10/);
    // The worker-level counter keeps its count, and every detector/action pair exists from the start.
    expect(after).toMatch(
      /gantry_worker_health_detections_total\{detector="d_dominance",action="restart"\} 1/,
    );
    expect(after).toMatch(
      /gantry_worker_health_detections_total\{detector="mode_collapse",action="warn"\} 0/,
    );
  });
});
