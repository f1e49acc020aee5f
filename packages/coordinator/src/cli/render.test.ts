import { describe, expect, it } from 'vitest';
import type { TrialRow } from './api-client.ts';
import { trialLine } from './render.ts';

const row = (over: Partial<TrialRow> = {}): TrialRow => ({
  id: 'sweep-1a2b3c4d-t002',
  index: 2,
  state: 'running',
  params: { lr_g: 2e-4 },
  step: 150,
  steps: 300,
  attempts: 1,
  metrics: { d_loss: 1.234, g_loss: 0.9, images_per_sec: 212.4, step: 150 },
  ...over,
});

describe('trialLine', () => {
  it('shows progress, losses, FLD and throughput', () => {
    const line = trialLine(row({ quality: { step: 100, fld: 41.237, class_coverage: 0.9 } }));
    expect(line).toMatch(
      /t002\s+running\s+\[#{12}\.{12}\]\s+150\/300\s+D 1\.234 G 0\.900 FLD 41\.24 212\.4 img\/s$/,
    );
  });

  it("flags the newest health detection and the trial's restarts", () => {
    const line = trialLine(
      row({
        health: {
          restarts: 1,
          last: { detector: 'd_dominance', step: 54, action: 'restart', reason: 'discriminator dominates' },
        },
      }),
    );
    expect(line).toMatch(/\[d_dominance at step 54: restart, 1 restart\(s\)\]$/);
  });

  it('shows the reason of a trial that ended early instead', () => {
    const line = trialLine(
      row({
        state: 'diverged',
        reason: 'g_loss 8.53e+3 exceeds 50',
        health: { restarts: 0, last: { detector: 'divergence', step: 2, action: 'stop', reason: 'x' } },
      }),
    );
    expect(line).toMatch(/\(g_loss 8\.53e\+3 exceeds 50\)$/);
  });

  it('shows the stage, its resolution and the fade-in of a staged trial', () => {
    const stage = { index: 1, count: 3, resolution: 8, alpha: 0.4242, done: 1 };
    expect(trialLine(row({ stage }))).toMatch(/150\/300\s+stage 2\/3 8x8 fade 0\.42 D 1\.234/);
    // Faded in: no alpha; waiting for the next stage's job: no fade either.
    expect(trialLine(row({ stage: { ...stage, alpha: 1 } }))).toMatch(/stage 2\/3 8x8 D /);
    expect(trialLine(row({ state: 'queued', stage: { ...stage, alpha: 0 } }))).toMatch(/stage 2\/3 8x8 D /);
    // Stage 2 finished, the trial waits for stage 3's job.
    expect(trialLine(row({ state: 'queued', stage: { ...stage, alpha: 1, done: 2 } }))).toMatch(
      /stage 2\/3 8x8 done D /,
    );
    expect(trialLine(row({ state: 'completed', stage: { ...stage, index: 2, done: 3 } }))).toMatch(
      /stages 3\/3 D /,
    );
    expect(trialLine(row())).not.toMatch(/stage/);
  });

  it("names an srgan trial's stage by its phase", () => {
    const stage = { index: 1, count: 2, phase: 'adversarial', alpha: 1, done: 1 };
    expect(trialLine(row({ stage }))).toMatch(/stage 2\/2 adversarial D /);
    expect(trialLine(row({ state: 'queued', stage: { ...stage, index: 0, phase: 'pretrain' } }))).toMatch(
      /stage 1\/2 pretrain done D /,
    );
  });
});
