import { describe, expect, it } from 'vitest';
import type { RungRow, SearchView } from '../search/views.ts';
import type { TrialRow } from './api-client.ts';
import { paramValue, searchSection, trialLine } from './render.ts';

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

describe('searchSection', () => {
  const base: SearchView = {
    method: 'random',
    scheduler: null,
    tpe: null,
    rungs: [],
    stops: [],
    lineage: [],
    continues: 0,
    replay: null,
    warmStart: null,
    events: [],
  };
  const rung = (over: Partial<RungRow>): RungRow => ({
    bracket: 0,
    rung: 0,
    step: 100,
    recorded: 0,
    continued: 0,
    stopped: 0,
    paused: 0,
    promoted: 0,
    cutoff: null,
    best: null,
    bestTrial: null,
    ...over,
  });

  it('renders nothing without a search block or adaptive search', () => {
    expect(searchSection(undefined)).toEqual([]);
    expect(searchSection(null)).toEqual([]);
    expect(searchSection(base)).toEqual([]);
  });

  it("shows ASHA's settings and one row per rung: decisions, cut-off and best", () => {
    const lines = searchSection({
      ...base,
      scheduler: { type: 'asha', min_steps: 100, eta: 3, brackets: 1, mode: 'stop' },
      rungs: [
        rung({ recorded: 9, continued: 3, stopped: 6, cutoff: 46.66667, best: 40.123, bestTrial: 's-t001' }),
        rung({ rung: 1, step: 300 }),
      ],
    });
    expect(lines[0]).toBe('search: asha (stop), eta 3, min_steps 100, 1 bracket');
    expect(lines[1]).toMatch(
      /^ {2}bracket {2}rung step {2}recorded {2}went on {2}stopped {2}paused\/promoted {2}cut-off {4}best$/,
    );
    expect(lines[2]!.trim().split(/\s+/)).toEqual([
      '0',
      '100',
      '9',
      '3',
      '6',
      '-',
      '46.67',
      '40.12',
      '(t001)',
    ]);
    expect(lines[3]!.trim().split(/\s+/)).toEqual(['0', '300', '0', '0', '0', '-', '-', '-']);
    expect(lines).toHaveLength(4);
  });

  it('shows paused/promoted in promote mode and the trials never promoted', () => {
    const lines = searchSection({
      ...base,
      scheduler: { type: 'asha', min_steps: 100, eta: 3, brackets: 2, mode: 'promote' },
      rungs: [rung({ recorded: 3, paused: 3, promoted: 1, best: 0.7, bestTrial: 's-t001' })],
      stops: [{ trial: 's-t000', step: 100, kind: 'end', reason: 'never promoted' }],
    });
    expect(lines[0]).toBe('search: asha (promote), eta 3, min_steps 100, 2 brackets');
    expect(lines[2]!.trim().split(/\s+/)).toEqual(['0', '100', '3', '0', '0', '3/1', '-', '0.7', '(t001)']);
    expect(lines[3]).toBe('never promoted: 1 (t000 @100)');
  });

  it('counts median stops with the trials and steps', () => {
    const lines = searchSection({
      ...base,
      scheduler: { type: 'median', grace_steps: 200, min_trials: 3 },
      stops: [
        { trial: 's-t003', step: 300, kind: 'median', reason: 'x' },
        { trial: 's-t005', step: 400, kind: 'median', reason: 'x' },
        { trial: 's-t006', step: 50, kind: 'other', reason: 'mode collapse' },
      ],
    });
    expect(lines).toEqual([
      'search: median stopping after 200 steps, once 3 other trials report',
      'median stops: 2 (t003 @300, t005 @400)',
    ]);
  });

  it('writes the PBT lineage one exploit a line: trial, source, checkpoint and each explored parameter', () => {
    const lines = searchSection({
      ...base,
      scheduler: {
        type: 'pbt',
        interval: 200,
        quantile: 0.25,
        resample_probability: 0.25,
        perturb: [0.8, 1.2],
      },
      continues: 5,
      lineage: [
        {
          trial: 's-t003',
          segment: 2,
          step: 400,
          value: 120,
          source: 's-t001',
          sourceStep: 400,
          sourceValue: 80,
          sourceManifest: 'sweeps/s/trials/s-t001/checkpoints/400/w1/manifest.json',
          copiedManifest: 'sweeps/s/trials/s-t003/checkpoints/400/copy/manifest.json',
          // beta1 is t001's, unexplored; n_critic is the same for both.
          from: { lr_g: 2e-4, lr_d: 1e-4, beta1: 0.5, n_critic: 5 },
          to: { lr_g: 2.4e-4, lr_d: 3.1e-4, beta1: 0.9, n_critic: 5 },
          explored: { lr_g: 'x1.2', lr_d: 'resample' },
          t: 5,
        },
      ],
    });
    expect(lines).toEqual([
      'search: pbt every 200 steps, quantile 0.25, resample 0.25, perturb x0.8/x1.2',
      'pbt lineage: 1 exploit, 5 continues',
      '  t003 @400 <- t001 @400 (ckpt .../checkpoints/400/w1/manifest.json) beta1 0.5 -> 0.9 (copied), lr_d 1.0e-4 -> 3.1e-4 (resample), lr_g 2.0e-4 -> 2.4e-4 (x1.2)',
    ]);
  });

  it("names TPE's settings and a replay's pinned schedule", () => {
    expect(
      searchSection({
        ...base,
        method: 'tpe',
        tpe: { startup_trials: 10, gamma: 0.1, n_ei_candidates: 24, prior_weight: 1, constant_liar: true },
        warmStart: ['old-1234'],
      }),
    ).toEqual([
      'search: tpe, 10 random startup trials, gamma 0.1, 24 candidates, constant liar, seeded from old-1234',
    ]);
    expect(
      searchSection({
        ...base,
        method: 'pbt-replay',
        replay: {
          sweep: 'pbt-1234',
          trial: 'pbt-1234-t003',
          schedule: [
            { step: 0, params: { lr_g: 2e-4, batch_size: 64 } },
            { step: 400, params: { lr_g: 2.4e-4, batch_size: 64 } },
          ],
        },
      }),
    ).toEqual([
      'search: pbt-replay of pbt-1234-t003 (sweep pbt-1234)',
      '  from step 0: lr_g=2.0e-4 batch_size=64',
      '  from step 400: lr_g=2.4e-4 batch_size=64',
    ]);
  });
});

describe('paramValue', () => {
  it('writes whole numbers as they are, rates in e-notation with one decimal, others to 3 digits', () => {
    expect([64, 2e-4, 0.5, 0.999, 1.23456].map(paramValue)).toEqual(['64', '2.0e-4', '0.5', '0.999', '1.23']);
  });
});
