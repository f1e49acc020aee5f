import type { SearchEvent } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { replaySchedule, scheduleAt } from './replay.ts';

type Exploit = Extract<SearchEvent, { kind: 'exploit' }>;

/** An exploit event: `trial` copied `source` at `sourceStep` (its segment `segment`) and now trains with `to`. */
function exploit(
  trial: string,
  segment: number,
  source: string,
  sourceStep: number,
  to: Record<string, number>,
): Exploit {
  return {
    kind: 'exploit',
    trial,
    segment,
    step: sourceStep,
    value: 1,
    source,
    sourceStep,
    sourceValue: 0.5,
    sourceManifest: `ckpt/${source}/${sourceStep}.json`,
    copiedManifest: `ckpt/${trial}/${sourceStep}.json`,
    from: {},
    to,
    explored: {},
    t: 0,
  };
}

const initialParams: Record<string, Record<string, number>> = {
  t0: { lr: 1 },
  t1: { lr: 2 },
  t2: { lr: 3 },
};
const initial = (t: string) => initialParams[t];

describe('replaySchedule', () => {
  // t1 copied t0 at 200 (lr 1 -> 0.8), then t0 at 600 (ignored below 600); t2 copied t1 at 400 (0.8 -> 0.96);
  // t0 copied t2 at 300 (after 200, so not part of t0's schedule up to 200).
  const exploits = [
    exploit('t2', 1, 't1', 400, { lr: 0.96 }),
    exploit('t1', 2, 't0', 600, { lr: 5 }),
    exploit('t1', 1, 't0', 200, { lr: 0.8 }),
    exploit('t0', 1, 't2', 300, { lr: 2.4 }),
  ];

  it('follows a two-level lineage back to its root', () => {
    // schedule(t2) = schedule(t1, 400) ++ [400: 0.96]; t1's last exploit with sourceStep <= 400 is the one at
    // 200: schedule(t1, 400) = schedule(t0, 200) ++ [200: 0.8]; t0 has no exploit at or before 200: [0: 1].
    expect(replaySchedule('t2', exploits, initial)).toEqual([
      { step: 0, params: { lr: 1 } },
      { step: 200, params: { lr: 0.8 } },
      { step: 400, params: { lr: 0.96 } },
    ]);
  });
  it('ends a schedule at upTo', () => {
    expect(replaySchedule('t1', exploits, initial, 400)).toEqual([
      { step: 0, params: { lr: 1 } },
      { step: 200, params: { lr: 0.8 } },
    ]);
    // Without upTo, t1's last exploit (600, from t0): schedule(t0, 600) = schedule(t2, 300) ++ [300: 2.4];
    // t2's only exploit is at 400 > 300: [0: 3].
    expect(replaySchedule('t1', exploits, initial)).toEqual([
      { step: 0, params: { lr: 3 } },
      { step: 300, params: { lr: 2.4 } },
      { step: 600, params: { lr: 5 } },
    ]);
    expect(replaySchedule('t0', exploits, initial, 299)).toEqual([{ step: 0, params: { lr: 1 } }]);
  });
  it('merges consecutive points with equal params', () => {
    // t1 copied t0 at 200 and explore left lr at 1: one point.
    const same = [exploit('t1', 1, 't0', 200, { lr: 1 })];
    expect(replaySchedule('t1', same, initial)).toEqual([{ step: 0, params: { lr: 1 } }]);
    // Equal params apart are not merged: 1, 2, 1.
    const back = [exploit('t2', 1, 't1', 400, { lr: 1 }), exploit('t1', 1, 't0', 200, { lr: 2 })];
    expect(replaySchedule('t2', back, initial).map((p) => p.params.lr)).toEqual([1, 2, 1]);
  });
  it('keeps points strictly increasing when two copies fall on one step', () => {
    // t1 copied t0 at 200 (-> 0.8) and t2 copied t1 at 200 (-> 0.6): the later copy's params hold from 200.
    const twice = [exploit('t1', 1, 't0', 200, { lr: 0.8 }), exploit('t2', 1, 't1', 200, { lr: 0.6 })];
    expect(replaySchedule('t2', twice, initial)).toEqual([
      { step: 0, params: { lr: 1 } },
      { step: 200, params: { lr: 0.6 } },
    ]);
  });
  it('names the trial for a cycle and for missing initial params', () => {
    const cycle = [exploit('t0', 1, 't1', 200, { lr: 1 }), exploit('t1', 1, 't0', 200, { lr: 2 })];
    expect(() => replaySchedule('t0', cycle, initial)).toThrow(/'t0'.*cycle/);
    expect(() => replaySchedule('t9', [], initial)).toThrow(/initial params for trial 't9'/);
    expect(() => replaySchedule('t1', [exploit('t1', 1, 't8', 100, { lr: 1 })], initial)).toThrow(/'t8'/);
  });
});

describe('scheduleAt', () => {
  const schedule = [
    { step: 0, params: { lr: 1 } },
    { step: 200, params: { lr: 0.8 } },
    { step: 400, params: { lr: 0.96 } },
  ];
  it('gives the params in force and the next change', () => {
    expect(scheduleAt(schedule, 0)).toEqual({ params: { lr: 1 }, next: 200 });
    expect(scheduleAt(schedule, 199)).toEqual({ params: { lr: 1 }, next: 200 });
    expect(scheduleAt(schedule, 200)).toEqual({ params: { lr: 0.8 }, next: 400 });
    expect(scheduleAt(schedule, 500)).toEqual({ params: { lr: 0.96 } });
  });
  it('rejects an empty schedule', () => {
    expect(() => scheduleAt([], 0)).toThrow(/no points/);
  });
});
