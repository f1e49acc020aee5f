import { describe, expect, it } from 'vitest';
import { ashaBracket, ashaCutoff, ashaDecide, ashaPromotable, bestSoFar } from './asha.ts';

describe('bestSoFar', () => {
  const points = [
    { step: 100, value: 5 },
    { step: 200, value: 3 },
    { step: 300, value: 4 },
    { step: 400, value: 1 },
  ];
  it('is the lowest value at or before the step', () => {
    expect(bestSoFar(points, 100)).toBe(5);
    expect(bestSoFar(points, 299)).toBe(3); // min(5, 3)
    expect(bestSoFar(points, 300)).toBe(3); // min(5, 3, 4): a worse later value does not raise it
    expect(bestSoFar(points, 400)).toBe(1);
  });
  it('is undefined before the first point', () => {
    expect(bestSoFar(points, 99)).toBeUndefined();
    expect(bestSoFar([], 1000)).toBeUndefined();
  });
});

describe('ashaCutoff', () => {
  it('interpolates at quantile 1/eta as numpy.percentile does', () => {
    // n = 4, position (4 - 1) / 3 = 1: the second order statistic, 2.
    expect(ashaCutoff([4, 1, 3, 2], 3)).toBe(2);
    // n = 5, sorted [1, 2, 3, 4, 10], position 4 / 3: 2 + (3 - 2) * 1/3.
    expect(ashaCutoff([10, 3, 1, 4, 2], 3)).toBeCloseTo(7 / 3, 12);
    // eta 2 is the median: position 1.5 between 2 and 3 (np.percentile([1,2,3,4], 50) = 2.5).
    expect(ashaCutoff([1, 2, 3, 4], 2)).toBe(2.5);
    // n = 2, eta 4: position 0.25 between 8 and 12 -> 9.
    expect(ashaCutoff([12, 8], 4)).toBe(9);
  });
  it('is the value itself for one value and undefined for none', () => {
    expect(ashaCutoff([5], 3)).toBe(5);
    expect(ashaCutoff([], 3)).toBeUndefined();
  });
});

describe('ashaDecide', () => {
  it('lets the first arrival at a rung go on', () => {
    expect(ashaDecide([], 7, 3)).toEqual({ action: 'continue', cutoff: 7 });
  });
  it('stops a value worse than the cut-off over the recorded values and itself', () => {
    // [1, 2, 3] + 4 -> cut-off 2 (as above); 4 > 2.
    expect(ashaDecide([1, 2, 3], 4, 3)).toEqual({ action: 'stop', cutoff: 2 });
  });
  it('lets a value within the top 1/eta go on', () => {
    // [3, 4, 5] + 1 -> sorted [1, 3, 4, 5], position 1 -> 3; 1 <= 3.
    expect(ashaDecide([3, 4, 5], 1, 3)).toEqual({ action: 'continue', cutoff: 3 });
  });
  it('lets a value equal to the cut-off go on', () => {
    // [1, 3, 4] + 2 -> sorted [1, 2, 3, 4], cut-off 2 = the value.
    expect(ashaDecide([1, 3, 4], 2, 3)).toEqual({ action: 'continue', cutoff: 2 });
    // [2, 2, 5] + 2 -> sorted [2, 2, 2, 5], cut-off 2.
    expect(ashaDecide([2, 2, 5], 2, 3)).toEqual({ action: 'continue', cutoff: 2 });
  });
});

describe('ashaPromotable', () => {
  // Nine recorded, eta 3: floor(9 / 3) = 3 may be promoted: t3 (0.5), t7 (1.0), then t1 and t5 tie at 2.0
  // and the id breaks it: t1.
  const rung = [
    { trial: 't1', value: 2 },
    { trial: 't2', value: 6 },
    { trial: 't3', value: 0.5 },
    { trial: 't4', value: 9 },
    { trial: 't5', value: 2 },
    { trial: 't6', value: 4 },
    { trial: 't7', value: 1 },
    { trial: 't8', value: 3 },
    { trial: 't9', value: 7 },
  ];
  it('is the best floor(n / eta), best first, ties by trial id', () => {
    expect(ashaPromotable(rung, new Set(), 3)).toEqual(['t3', 't7', 't1']);
  });
  it('leaves out those already promoted and never reaches past the top floor(n / eta)', () => {
    expect(ashaPromotable(rung, new Set(['t3', 't1']), 3)).toEqual(['t7']);
    expect(ashaPromotable(rung, new Set(['t3', 't7', 't1']), 3)).toEqual([]);
  });
  it('promotes nobody while fewer than eta are recorded', () => {
    expect(ashaPromotable(rung.slice(0, 2), new Set(), 3)).toEqual([]); // floor(2 / 3) = 0
  });
});

describe('ashaBracket', () => {
  it('is the trial index mod brackets', () => {
    expect([0, 1, 2, 3, 4, 5, 7].map((i) => ashaBracket(i, 3))).toEqual([0, 1, 2, 0, 1, 2, 1]);
    expect(ashaBracket(5, 1)).toBe(0);
  });
  it('rejects a bracket count below 1 or a negative index', () => {
    expect(() => ashaBracket(1, 0)).toThrow(RangeError);
    expect(() => ashaBracket(-1, 2)).toThrow(RangeError);
  });
});
