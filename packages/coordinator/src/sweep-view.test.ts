import type { TrialState } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import type { StoredSweep } from './sweep-store.ts';
import { placeOf, SweepView, type Trial } from './sweep-view.ts';

const sweep = { id: 's', name: 's', state: 'running', createdAt: 0, trialIds: [] } as unknown as StoredSweep;

function trial(index: number, fields: Partial<Trial> = {}): Trial {
  return {
    id: `s-t${String(index).padStart(3, '0')}`,
    sweepId: 's',
    index,
    state: 'queued' as TrialState,
    params: {},
    seed: index,
    step: 0,
    steps: 100,
    attempts: 0,
    createdAt: 0,
    dispatched: false,
    ...fields,
  };
}

describe('placeOf', () => {
  it('tells waiting, live, paused, started and ended trials apart', () => {
    expect(placeOf(trial(0))).toBe('waiting');
    expect(placeOf(trial(0, { dispatched: true }))).toBe('live');
    expect(placeOf(trial(0, { dispatched: true, state: 'running' }))).toBe('live');
    // A failed attempt leaves the trial queued while BullMQ retries its job: it keeps its place.
    expect(placeOf(trial(0, { dispatched: true, state: 'queued', reason: 'attempt 1 failed' }))).toBe('live');
    expect(placeOf(trial(0, { dispatched: true, pausedAt: 100, until: 100 }))).toBe('paused');
    expect(placeOf(trial(0, { state: 'running' }))).toBe('started');
    for (const state of ['completed', 'failed', 'cancelled', 'stopped', 'diverged'] as TrialState[])
      expect(placeOf(trial(0, { state, dispatched: true }))).toBe('ended');
  });
});

describe('SweepView', () => {
  it('counts places and hands out waiting trials in (step, index) order, promoted ones first', () => {
    const v = new SweepView(sweep, [
      trial(0, { dispatched: true, state: 'running' }),
      trial(1),
      trial(2, { step: 50 }),
      trial(3),
      trial(4, { state: 'completed', dispatched: true }),
    ]);
    expect([v.count('live'), v.count('waiting'), v.count('ended'), v.size]).toEqual([1, 3, 1, 5]);
    expect(v.nextWaiting(2).map((t) => t.index)).toEqual([1, 3]);
    expect(v.nextWaiting(5).map((t) => t.index)).toEqual([1, 3, 2]);
    expect(v.nextWaiting(2, new Set(['s-t002'])).map((t) => t.index)).toEqual([2, 1]);
    expect(v.nextWaiting(0)).toEqual([]);
  });

  it('skips trials dispatched since, and follows trials as Redis holds them now', () => {
    const v = new SweepView(
      sweep,
      Array.from({ length: 6 }, (_, i) => trial(i)),
    );
    for (const t of v.nextWaiting(2)) {
      t.dispatched = true;
      v.place(t);
    }
    expect([v.count('live'), v.count('waiting')]).toEqual([2, 4]);
    expect(v.nextWaiting(2).map((t) => t.index)).toEqual([2, 3]);
    // A worker completed trial 0; trial 5 was cancelled by a user (fresh records replace the old objects).
    v.put(trial(0, { dispatched: true, state: 'completed' }));
    v.put(trial(5, { state: 'cancelled' }));
    expect([v.count('live'), v.count('waiting'), v.count('ended')]).toEqual([1, 3, 2]);
    expect(v.trial('s-t000')?.state).toBe('completed');
    expect(v.trials[0]?.state).toBe('completed');
    expect(v.nextWaiting(10).map((t) => t.index)).toEqual([2, 3, 4]);
    // A trial new to the view (a TPE suggestion) joins the order.
    v.put(trial(6));
    expect(v.size).toBe(7);
    expect(v.nextWaiting(10).map((t) => t.index)).toEqual([2, 3, 4, 6]);
  });

  it('re-reads every place after changes made in place (the search engine pausing and requeueing)', () => {
    const v = new SweepView(sweep, [trial(0, { dispatched: true, state: 'running' }), trial(1)]);
    const [t0] = v.trials as [Trial];
    Object.assign(t0, { state: 'queued', pausedAt: 100, until: 100 });
    v.replaceAll();
    expect([v.count('paused'), v.count('live'), v.count('waiting')]).toEqual([1, 0, 1]);
    // Promoted to its next segment: waiting again, at step 100, after the untrained trial 1.
    Object.assign(t0, { dispatched: false, pausedAt: undefined, until: 300, step: 100 });
    v.replaceAll();
    expect(v.nextWaiting(2).map((t) => t.index)).toEqual([1, 0]);
  });
});
