import { compileSweepSpec, type SearchEvent, type TrialRecord } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { hasSearch, searchedSpace, searchView, trialValue } from './views.ts';

const spec = (extra: Record<string, unknown> = {}) =>
  compileSweepSpec({
    name: 'seeing',
    model: 'dcgan',
    dataset: 'mnist',
    method: 'random',
    metric: { name: 'fld', goal: 'minimize' },
    budget: { trials: 9, parallel: 3, steps: 1000 },
    health: { eval_every_steps: 100 },
    parameters: {
      lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
      lr_d: { values: [1e-4, 2e-4] },
    },
    ...extra,
  });

const trial = (id: string, over: Partial<TrialRecord> = {}): TrialRecord => ({
  id,
  sweepId: 's',
  index: 0,
  state: 'running',
  params: {},
  seed: 1,
  step: 0,
  steps: 1000,
  attempts: 1,
  createdAt: 0,
  ...over,
});

const rung = (
  trial: string,
  r: number,
  value: number,
  action: 'continue' | 'stop' | 'pause',
  cutoff: number | null,
  recorded: number,
): SearchEvent => ({
  kind: 'rung',
  trial,
  bracket: 0,
  rung: r,
  step: [100, 300, 900][r]!,
  value,
  recorded,
  cutoff,
  action,
  t: 1,
});

describe('searchView', () => {
  it('counts what each ASHA rung decided, keeps its last cut-off and best, and lists the rungs not reached', () => {
    const asha = spec({ scheduler: { type: 'asha', min_steps: 100, eta: 3 } });
    const events: SearchEvent[] = [
      rung('s-t000', 0, 50, 'continue', 50, 0),
      rung('s-t001', 0, 40, 'continue', 43.33, 1),
      rung('s-t002', 0, 60, 'stop', 46.67, 2),
      rung('s-t001', 1, 30, 'continue', 30, 0),
      rung('s-t000', 1, 35, 'stop', 31.67, 1),
    ];
    const v = searchView(asha, events, []);
    expect(v.method).toBe('random');
    expect(v.scheduler).toMatchObject({ type: 'asha', min_steps: 100, eta: 3, brackets: 1, mode: 'stop' });
    expect(v.tpe).toBeNull();
    // min_steps 100, eta 3, 1000 steps: rungs at 100, 300, 900.
    expect(v.rungs).toEqual([
      {
        bracket: 0,
        rung: 0,
        step: 100,
        recorded: 3,
        continued: 2,
        stopped: 1,
        paused: 0,
        promoted: 0,
        cutoff: 46.67,
        best: 40,
        bestTrial: 's-t001',
      },
      {
        bracket: 0,
        rung: 1,
        step: 300,
        recorded: 2,
        continued: 1,
        stopped: 1,
        paused: 0,
        promoted: 0,
        cutoff: 31.67,
        best: 30,
        bestTrial: 's-t001',
      },
      {
        bracket: 0,
        rung: 2,
        step: 900,
        recorded: 0,
        continued: 0,
        stopped: 0,
        paused: 0,
        promoted: 0,
        cutoff: null,
        best: null,
        bestTrial: null,
      },
    ]);
    expect(v.stops.map((s) => [s.trial, s.step, s.kind])).toEqual([
      ['s-t002', 100, 'asha'],
      ['s-t000', 300, 'asha'],
    ]);
    expect(v.stops[0]!.reason).toBe(
      'asha rung 0 of bracket 0 (step 100): 60 is worse than the cut-off 46.67 of 3 values',
    );
    expect(v.events).toEqual(events);
  });

  it('counts an ASHA stop decided after its trial had completed at its rung, but does not list it as a stop', () => {
    const asha = spec({ scheduler: { type: 'asha', min_steps: 100, eta: 3 } });
    // t001 trained on to its end while the coordinator was down; its rung-0 value was read afterwards.
    const events: SearchEvent[] = [
      rung('s-t000', 0, 50, 'continue', 50, 0),
      rung('s-t001', 0, 60, 'stop', 50, 1),
      rung('s-t002', 0, 70, 'stop', 60, 2),
      rung('s-t003', 0, 80, 'stop', 65, 3),
    ];
    const v = searchView(asha, events, [
      trial('s-t000', { state: 'running', step: 400 }),
      trial('s-t001', { state: 'completed', step: 1000 }),
      trial('s-t002', { state: 'stopped', step: 120, reason: 'asha: rung 0 (step 100): ...' }),
      // Cancelled with its sweep after the decision: the decision still stopped it first.
      trial('s-t003', { state: 'cancelled', step: 130 }),
    ]);
    expect(v.rungs[0]).toMatchObject({ recorded: 4, continued: 1, stopped: 3 });
    expect(v.stops.map((x) => [x.trial, x.kind])).toEqual([
      ['s-t002', 'asha'],
      ['s-t003', 'asha'],
    ]);
  });

  it('takes the best of a maximised metric as the largest, and counts pauses and promotions per rung', () => {
    const promote = spec({
      metric: { name: 'class_coverage', goal: 'maximize' },
      scheduler: { type: 'asha', min_steps: 100, eta: 3, brackets: 2, mode: 'promote' },
    });
    const events: SearchEvent[] = [
      rung('s-t000', 0, 0.5, 'pause', null, 0),
      rung('s-t001', 0, 0.7, 'pause', null, 1),
      rung('s-t002', 0, 0.6, 'pause', null, 2),
      { kind: 'promote', trial: 's-t001', bracket: 0, rung: 0, step: 100, value: 0.7, t: 2 },
      { kind: 'end', trial: 's-t000', step: 100, reason: 'paused at rung 0 and never promoted', t: 3 },
    ];
    const v = searchView(promote, events, [trial('s-t000', { state: 'stopped', step: 100, reason: 'x' })]);
    // Bracket 0: 100, 300, 900; bracket 1 starts at 100 * 3 = 300: 300, 900.
    expect(v.rungs.map((r) => [r.bracket, r.rung, r.step])).toEqual([
      [0, 0, 100],
      [0, 1, 300],
      [0, 2, 900],
      [1, 0, 300],
      [1, 1, 900],
    ]);
    expect(v.rungs[0]).toMatchObject({
      recorded: 3,
      paused: 3,
      promoted: 1,
      cutoff: null,
      best: 0.7,
      bestTrial: 's-t001',
    });
    // The end event is t000's stop; its trial record (stopped) is not listed a second time.
    expect(v.stops).toEqual([
      { trial: 's-t000', step: 100, kind: 'end', reason: 'paused at rung 0 and never promoted' },
    ]);
  });

  it('lists median stops with their numbers, and trials stopped without a search decision last', () => {
    const median = spec({ scheduler: { type: 'median', grace_steps: 200 } });
    const events: SearchEvent[] = [
      {
        kind: 'median',
        trial: 's-t003',
        step: 300,
        value: 91.25,
        median: 80.5,
        others: 4,
        action: 'stop',
        t: 1,
      },
    ];
    const v = searchView(median, events, [
      trial('s-t001', { state: 'stopped', step: 250, reason: 'mode collapse' }),
      trial('s-t003', { state: 'stopped', step: 300 }),
      trial('s-t004', { state: 'completed', step: 1000 }),
    ]);
    expect(v.rungs).toEqual([]);
    expect(v.stops).toEqual([
      {
        trial: 's-t003',
        step: 300,
        kind: 'median',
        reason:
          "median rule at step 300: best 91.25 is worse than the median 80.5 of 4 other trials' running averages",
      },
      { trial: 's-t001', step: 250, kind: 'other', reason: 'mode collapse' },
    ]);
  });

  it('keeps PBT exploits as lineage in order and counts continues', () => {
    const pbt = spec({
      parameters: {
        lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
        lr_d: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
      },
      scheduler: { type: 'pbt', interval: 200 },
    });
    const exploit: SearchEvent = {
      kind: 'exploit',
      trial: 's-t003',
      segment: 2,
      step: 400,
      value: 120,
      source: 's-t001',
      sourceStep: 400,
      sourceValue: 80,
      sourceManifest: 'sweeps/s/trials/s-t001/checkpoints/400/w1/manifest.json',
      copiedManifest: 'sweeps/s/trials/s-t003/checkpoints/400/copy/manifest.json',
      from: { lr_g: 2e-4, lr_d: 1e-4 },
      to: { lr_g: 2.4e-4, lr_d: 3.1e-4 },
      explored: { lr_g: 'x1.2', lr_d: 'resample' },
      t: 5,
    };
    const events: SearchEvent[] = [
      { kind: 'continue', trial: 's-t001', segment: 1, step: 200, value: 90, t: 1 },
      { kind: 'continue', trial: 's-t003', segment: 1, step: 200, value: 100, t: 2 },
      exploit,
    ];
    const v = searchView(pbt, events, []);
    const { kind: _k, ...row } = exploit;
    expect(v.lineage).toEqual([row]);
    expect(v.continues).toBe(2);
    expect(v.stops).toEqual([]);
    expect(v.scheduler).toMatchObject({ type: 'pbt', interval: 200, quantile: 0.25, perturb: [0.8, 1.2] });
  });

  it('carries the tpe block, and says which specs have a search to show', () => {
    const tpe = spec({ method: 'tpe' });
    expect(searchView(tpe, [], []).tpe).toMatchObject({ startup_trials: 10, gamma: 0.1 });
    expect(hasSearch(tpe)).toBe(true);
    expect(hasSearch(spec({ scheduler: { type: 'median' } }))).toBe(true);
    expect(hasSearch(spec())).toBe(false);
    expect(searchView(spec(), [], []).replay).toBeNull();
  });
});

describe('trialValue', () => {
  it("is a completed trial's result and a stopped trial's last evaluation; nothing for the others", () => {
    const quality = { step: 300, fld: 91.5, diversity_ratio: 1 };
    const metrics = { step: 300, d_loss: 1, g_loss: 2.5, d_real: 0.5, d_fake: 0.5, images_per_sec: 1, t: 0 };
    expect(trialValue('fld', { state: 'completed', result: 70, quality })).toEqual({
      value: 70,
      stopped: false,
    });
    expect(trialValue('fld', { state: 'stopped', quality })).toEqual({ value: 91.5, stopped: true });
    expect(trialValue('g_loss', { state: 'stopped', metrics })).toEqual({ value: 2.5, stopped: true });
    expect(trialValue('fld', { state: 'stopped' })).toBeUndefined();
    expect(trialValue('fld', { state: 'completed' })).toBeUndefined();
    expect(trialValue('fld', { state: 'running', quality })).toBeUndefined();
    expect(trialValue('fld', { state: 'failed', quality })).toBeUndefined();
  });
});

describe('searchedSpace', () => {
  it("keeps the spec's searched parameters and adds those the trials differ in, leaving shared ones out", () => {
    const s = spec();
    const trials = [
      { params: { lr_g: 1e-4, lr_d: 1e-4, beta1: 0.5, batch_size: 64 } },
      { params: { lr_g: 2e-4, lr_d: 2e-4, beta1: 0.5, batch_size: 32 } },
      { params: { lr_g: 3e-4, lr_d: 1e-4, beta1: 0.5, batch_size: 64 } },
    ];
    expect(searchedSpace(s, trials)).toEqual({
      // batch_size is a constant of no spec here, but a list's configurations would give it two values.
      batch_size: { kind: 'values', values: [32, 64] },
      lr_d: { kind: 'values', values: [1e-4, 2e-4] },
      lr_g: { kind: 'distribution', distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
    });
    expect(searchedSpace(s, [])).toEqual({ lr_d: s.parameters.lr_d, lr_g: s.parameters.lr_g });
  });
});
