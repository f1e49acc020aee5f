import { ConflictError, type ParameterSpec, Rng } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { parameterImportance } from './importance.ts';

const logU = (min: number, max: number): ParameterSpec => ({
  kind: 'distribution',
  distribution: 'log_uniform',
  min,
  max,
});
const uni: ParameterSpec = { kind: 'distribution', distribution: 'uniform', min: 0, max: 1 };
const levels: ParameterSpec = { kind: 'values', values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] };

/** The full 10 x 10 grid of (x1, x2) with value 3 x1 + x2. */
function factorial(): { params: Record<string, number>; value: number }[] {
  const out = [];
  for (let i = 0; i < 10; i++)
    for (let j = 0; j < 10; j++) out.push({ params: { x1: i, x2: j }, value: 3 * i + j });
  return out;
}

const codeOf = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    return err instanceof ConflictError ? err.code : String(err);
  }
  return 'ok';
};

describe('parameterImportance', () => {
  it('gives almost everything to the one parameter the value depends on', () => {
    const rng = new Rng(11);
    const trials = Array.from({ length: 200 }, () => {
      const lr = Math.exp(Math.log(1e-5) + rng.uniform() * Math.log(100));
      return { params: { lr, beta: rng.uniform() }, value: 50 - 10 * Math.log10(lr) };
    });
    const [first, second] = parameterImportance(
      { lr: logU(1e-5, 1e-3), beta: uni, batch: { kind: 'value', value: 64 } },
      trials,
    );
    // 200 trials: 10 bins of 20. The value is monotone in lr, so lr's bins hold ranks 1-20, 21-40, ...:
    // eta^2 = 1 - (within-bin variance of 20 consecutive ranks) / (variance of 1..200)
    //       = 1 - ((20^2 - 1) / 12) / ((200^2 - 1) / 12) = 1 - 399 / 39999.
    expect(first).toMatchObject({ name: 'lr', bins: 10 });
    expect(first!.eta2).toBeCloseTo(1 - 399 / 39999, 12);
    expect(first!.importance).toBeGreaterThan(0.9);
    // beta has no effect: its eta^2 is near chance, 9 / 199.
    expect(second).toMatchObject({ name: 'beta', bins: 10, chance: 9 / 199 });
    expect(second!.eta2).toBeLessThan(0.15);
    expect(first!.importance + second!.importance).toBeCloseTo(1, 12);
  });

  it('splits two independent effects by their variance shares', () => {
    // Over the 10 x 10 grid, var(3 x1) = 9 * var(x1) and var(x2) = var(x1), var(x1) = (10^2 - 1) / 12 = 8.25:
    // x1 explains 74.25 / 82.5 = 0.9 of the value's variance and x2 the other 0.1, each value its own bin.
    const onValues = parameterImportance({ x1: levels, x2: levels }, factorial(), { on: 'values' });
    expect(onValues.map((r) => r.name)).toEqual(['x1', 'x2']);
    expect(onValues[0]!.eta2).toBeCloseTo(0.9, 12);
    expect(onValues[1]!.eta2).toBeCloseTo(0.1, 12);
    expect(onValues[0]!.importance).toBeCloseTo(0.9, 12);
    expect(onValues[0]).toMatchObject({ bins: 10, chance: 9 / 99 });
    // On ranks (the default) the shares move a little: the rank transform of 3 x1 + x2 is not linear.
    const onRanks = parameterImportance({ x1: levels, x2: levels }, factorial());
    expect(Math.abs(onRanks[0]!.importance - 0.9)).toBeLessThan(0.02);
    expect(onRanks[1]!.importance).toBeCloseTo(1 - onRanks[0]!.importance, 12);
  });

  it('on ranks, keeps the shares when one trial measured absurdly; on values the outlier takes them', () => {
    const trials = factorial();
    trials[99] = { ...trials[99]!, value: 1e9 };
    // The outlier is the largest value either way: the ranks, and so the shares, are the same.
    expect(parameterImportance({ x1: levels, x2: levels }, trials)).toEqual(
      parameterImportance({ x1: levels, x2: levels }, factorial()),
    );
    // On values, the outlier (x1 = x2 = 9) puts about 1/11 of the variance between the bins of each: close to 50/50.
    const onValues = parameterImportance({ x1: levels, x2: levels }, trials, { on: 'values' });
    expect(onValues[0]!.importance).toBeLessThan(0.51);
  });

  it('refuses fewer than 4 trials with results, no searched parameter, one that never varied, a constant metric', () => {
    const few = factorial().slice(0, 3);
    expect(codeOf(() => parameterImportance({ x1: levels }, few))).toBe('CONFLICT');
    expect(() => parameterImportance({ x1: levels }, few)).toThrow(
      /at least 4 trials with results; there are 3/,
    );
    // A fourth trial without a finite value does not count.
    expect(
      codeOf(() => parameterImportance({ x1: levels }, [...few, { params: { x1: 5 }, value: Number.NaN }])),
    ).toBe('CONFLICT');
    expect(() => parameterImportance({ x1: { kind: 'value', value: 1 } }, factorial())).toThrow(
      /no searched parameter/,
    );
    const sameX = factorial().map((t) => ({ ...t, params: { x1: 4 } }));
    expect(() => parameterImportance({ x1: levels }, sameX)).toThrow(/has one value across the 100 trials/);
    const flat = factorial().map((t) => ({ ...t, value: 7 }));
    expect(() => parameterImportance({ x1: levels, x2: levels }, flat)).toThrow(/all equal/);
    // One of two parameters never varied: it is reported with nothing explained.
    const oneVaried = factorial().map((t) => ({ ...t, params: { x1: t.params.x1!, x2: 0 } }));
    const rows = parameterImportance({ x1: levels, x2: levels }, oneVaried);
    expect(rows[1]).toEqual({ name: 'x2', importance: 0, eta2: 0, bins: 1, chance: 0 });
  });
});
