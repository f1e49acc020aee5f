import { describe, expect, it } from 'vitest';
import {
  bestWithin,
  ComputeCurve,
  computeToReach,
  costEvaluations,
  ranks,
  spearman,
  type TrialTrace,
  trainedIncrements,
} from '../bench/search-accounting.ts';

/** `npm run bench -- search`'s compute accounting (bench/search-accounting.ts), on hand-worked traces. */
const pts = (xs: [number, number][]) => xs.map(([step, t]) => ({ step, t }));
const sum = (xs: { steps: number }[]) => xs.reduce((a, b) => a + b.steps, 0);
const trace = (
  history: { step: number; t: number }[],
  starts: { step: number; t: number }[] = [],
  evaluations: { step: number; fld: number; t: number }[] = [],
) => ({ id: 'a', history, starts, evaluations }) as unknown as TrialTrace;

describe('the search bench accounting', () => {
  it('counts the steps trained, a resume retraining from its checkpoint, never a PBT jump', () => {
    expect(
      trainedIncrements(
        trace(
          pts([
            [10, 1],
            [20, 2],
            [30, 3],
          ]),
          pts([[0, 0]]),
        ),
        50,
      ).map((i) => i.steps),
    ).toEqual([10, 10, 10]);
    // A resume at step 20 (after the point at 30 was reached) retrains 20 -> 30: 10 + 10 + 10 + 10 + 10.
    expect(
      sum(
        trainedIncrements(
          trace(
            pts([
              [10, 1],
              [20, 2],
              [30, 3],
              [30, 4],
              [40, 5],
            ]),
            pts([
              [0, 0],
              [20, 3.5],
            ]),
          ),
          50,
        ),
      ),
    ).toBe(50);
    // Without the start event the repeated point adds nothing: 10 + 10 + 10 + 0 + 10.
    expect(
      sum(
        trainedIncrements(
          trace(
            pts([
              [10, 1],
              [20, 2],
              [30, 3],
              [30, 4],
              [40, 5],
            ]),
          ),
          50,
        ),
      ),
    ).toBe(40);
    // A PBT exploit jumps from 100 to the source's 200: not compute; the resumed 200 -> 210 is.
    const pbt = pts([
      [10, 1],
      [50, 5],
      [100, 10],
      [210, 11],
      [220, 12],
    ]);
    expect(sum(trainedIncrements(trace(pbt), 50))).toBe(10 + 40 + 50 + 10);
    expect(
      sum(
        trainedIncrements(
          trace(
            pbt,
            pts([
              [0, 0],
              [200, 10.5],
            ]),
          ),
          50,
        ),
      ),
    ).toBe(10 + 40 + 50 + 10 + 10);
  });

  it('puts every evaluation at the compute spent when it was made', () => {
    const curve = new ComputeCurve([
      { trial: 'a', t: 1, steps: 10 },
      { trial: 'a', t: 3, steps: 10 },
      { trial: 'b', t: 2, steps: 10 },
      { trial: 'b', t: 4, steps: 10 },
    ]);
    expect([0, 1, 2.5, 3, 10].map((t) => curve.computeAt(t))).toEqual([0, 10, 20, 30, 40]);
    expect(curve.total).toBe(40);
    const costed = costEvaluations(
      [
        trace(
          pts([
            [10, 1],
            [20, 3],
          ]),
          [],
          [
            { step: 20, fld: 5, t: 2.9 },
            { step: 15, fld: 1, t: 2.5 },
          ],
        ),
      ],
      curve,
    );
    expect(costed.map((e) => [e.step, e.compute])).toEqual([
      [15, 20],
      [20, 30],
    ]);
  });

  it('finds the best FLD within a budget and the compute to reach a target', () => {
    const evs = [
      { trial: 'a', step: 1, fld: 9, t: 0, compute: 10 },
      { trial: 'a', step: 2, fld: 5, t: 1, compute: 30 },
      { trial: 'a', step: 3, fld: 3, t: 2, compute: 50 },
    ];
    expect(bestWithin(evs, 40)!.fld).toBe(5);
    expect(bestWithin(evs, 5)).toBeNull();
    expect(computeToReach(evs, 5, 40)).toBe(30);
    expect(computeToReach(evs, 4, 40)).toBeNull();
    expect(computeToReach(evs, 9, 40)).toBe(10);
  });

  it('ranks with ties and computes Spearman correlations', () => {
    expect(ranks([5, 6, 7, 8, 7])).toEqual([1, 2, 3.5, 5, 3.5]);
    // Ranks [1..5] against [1, 2, 3.5, 5, 3.5]: covariance 4, variances 10 and 9.5: 4 / sqrt(95) x 2.
    expect(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])).toBeCloseTo(8 / Math.sqrt(95), 12);
    expect(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])).toBeCloseTo(0.8, 12);
    expect(spearman([1, 2, 3], [3, 2, 1])).toBe(-1);
    expect(spearman([1, 2], [1, 2])).toBeNull();
    expect(spearman([1, 2, 3], [4, 4, 4])).toBeNull();
  });
});
