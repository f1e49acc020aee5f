import { describe, expect, it } from 'vitest';
import { medianDecide, runningAverage } from './median.ts';

const curve = (...values: number[]) => values.map((value, i) => ({ step: (i + 1) * 100, value }));

describe('runningAverage', () => {
  const points = curve(4, 2, 3); // steps 100, 200, 300
  it('is the mean of the values at or before the step', () => {
    expect(runningAverage(points, 100)).toBe(4);
    expect(runningAverage(points, 250)).toBe(3); // (4 + 2) / 2
    expect(runningAverage(points, 300)).toBe(3); // (4 + 2 + 3) / 3
  });
  it('is undefined before the first point', () => {
    expect(runningAverage(points, 50)).toBeUndefined();
  });
});

describe('medianDecide', () => {
  const spec = { grace_steps: 0, min_trials: 3 };
  // Running averages up to 200: a (1 + 3) / 2 = 2, b (2 + 4) / 2 = 3, c (6 + 4) / 2 = 5: median 3.
  const a = curve(1, 3);
  const b = curve(2, 4);
  const c = curve(6, 4);
  const behind = curve(0.5); // has only reported at 100: not counted at 200

  it('stops a trial whose best is worse than the median of the running averages', () => {
    // own best up to 200: min(5, 4) = 4 > 3.
    expect(medianDecide(curve(5, 4), [a, b, c, behind], 200, spec)).toEqual({
      stop: true,
      value: 4,
      median: 3,
      others: 3,
    });
  });
  it('keeps a trial whose best equals or beats the median', () => {
    // own best min(5, 3) = 3: not strictly worse than 3.
    expect(medianDecide(curve(5, 3), [a, b, c], 200, spec)).toMatchObject({
      stop: false,
      value: 3,
      median: 3,
    });
    // own best 2.5 < 3 (its own running average (5 + 2.5) / 2 = 3.75 would be worse: the rule uses the best).
    expect(medianDecide(curve(5, 2.5), [a, b, c], 200, spec)).toMatchObject({ stop: false, value: 2.5 });
  });
  it('takes the mean of the two middle averages for an even count', () => {
    // d: (8 + 8) / 2 = 8; averages [2, 3, 5, 8] -> median (3 + 5) / 2 = 4; own best 4.5 > 4.
    const d = curve(8, 8);
    expect(medianDecide(curve(4.5), [a, b, c, d], 200, { grace_steps: 0, min_trials: 4 })).toEqual({
      stop: true,
      value: 4.5,
      median: 4,
      others: 4,
    });
  });
  it('counts a trial that reported past the step, with its average up to the step', () => {
    // e reported at 100 and 300: it is past 200, its average up to 200 is 10. Averages [2, 3, 10]: median 3.
    const e = [
      { step: 100, value: 10 },
      { step: 300, value: 0 },
    ];
    expect(medianDecide(curve(5, 4), [a, b, e], 200, spec)).toEqual({
      stop: true,
      value: 4,
      median: 3,
      others: 3,
    });
  });
  it('makes no decision before grace_steps', () => {
    expect(medianDecide(curve(5, 4), [a, b, c], 200, { grace_steps: 201, min_trials: 3 })).toBeUndefined();
    // At grace_steps itself it decides.
    expect(medianDecide(curve(5, 4), [a, b, c], 200, { grace_steps: 200, min_trials: 3 })?.stop).toBe(true);
  });
  it('makes no decision with fewer than min_trials others at the step', () => {
    // behind has not reached 200: two others count.
    expect(medianDecide(curve(5, 4), [a, b, behind], 200, spec)).toBeUndefined();
    expect(medianDecide(curve(5, 4), [a, b], 200, { grace_steps: 0, min_trials: 2 })?.others).toBe(2);
  });
});
