import { ConflictError, type ParameterSpec } from '@gantry/shared';

/** Trials with a result that an importance estimate needs at least. */
export const IMPORTANCE_MIN_TRIALS = 4;

/** How much of the metric's spread one searched parameter accounts for. */
export interface ParameterImportance {
  name: string;
  /** `eta2` over the sum of every searched parameter's `eta2`: the shares add up to 1 (all 0 when every eta2 is). */
  importance: number;
  /** Share of the variance of the trials' metric ranks (or values) explained by the parameter's bins, 0 to 1. */
  eta2: number;
  /** Groups the parameter's values fell into (1: the parameter had one value across the trials). */
  bins: number;
  /** What eta2 is on average for a parameter without any effect: (bins - 1) / (trials - 1). */
  chance: number;
}

export interface ImportanceOptions {
  /**
   * What is explained: the metric's ranks (average ranks for ties), so one outlying trial cannot take the
   * whole variance, or the values as measured.
   * @default 'ranks'
   */
  on?: 'ranks' | 'values';
  /** Most bins per parameter. @default clamp(floor(sqrt(trials)), 2, 10) */
  bins?: number;
}

/** Average ranks, 1-based: tied values share the mean of the ranks they span. */
function ranks(values: readonly number[]): number[] {
  const order = values.map((v, i) => ({ v, i })).sort((a, b) => a.v - b.v);
  const out = new Array<number>(values.length);
  for (let lo = 0; lo < order.length; ) {
    let hi = lo;
    while (hi + 1 < order.length && order[hi + 1]!.v === order[lo]!.v) hi++;
    for (let k = lo; k <= hi; k++) out[order[k]!.i] = (lo + hi) / 2 + 1;
    lo = hi + 1;
  }
  return out;
}

/**
 * The bin of each trial by one parameter's values: each distinct value its own bin when there are at most
 * `maxBins`, else `maxBins` bins of (about) equal counts by the values' order, equal values always in the
 * same bin. Equal-count bins depend on the order only, so a log_uniform parameter's log scale gives the
 * same bins as its linear one.
 */
function binsOf(xs: readonly number[], maxBins: number): { bin: number[]; count: number } {
  const order = xs.map((x, i) => ({ x, i })).sort((a, b) => a.x - b.x);
  const distinct = new Set(xs).size;
  const bin = new Array<number>(xs.length);
  let current = -1;
  let count = 0;
  for (let k = 0; k < order.length; k++) {
    const { x, i } = order[k]!;
    if (k === 0 || x !== order[k - 1]!.x) {
      const next = distinct <= maxBins ? current + 1 : Math.floor((k * maxBins) / order.length);
      if (next !== current) count++;
      current = next;
    }
    bin[i] = current;
  }
  return { bin, count };
}

/** eta^2 of a one-way ANOVA: between-group sum of squares over the total. */
function eta2(ys: readonly number[], bin: readonly number[]): number {
  const n = ys.length;
  const mean = ys.reduce((s, y) => s + y, 0) / n;
  const groups = new Map<number, { sum: number; n: number }>();
  let total = 0;
  ys.forEach((y, i) => {
    total += (y - mean) ** 2;
    const g = groups.get(bin[i]!) ?? { sum: 0, n: 0 };
    g.sum += y;
    g.n += 1;
    groups.set(bin[i]!, g);
  });
  let between = 0;
  for (const g of groups.values()) between += g.n * (g.sum / g.n - mean) ** 2;
  return total > 0 ? Math.min(1, between / total) : 0;
}

/**
 * Parameter importance of a finished sweep, a simpler estimate than fANOVA (Hutter et al. 2014). For each
 * searched parameter (every one that is not a constant `value`): the trials are grouped into bins of that
 * parameter's values (each distinct value its own bin when there are at most B, else B bins of equal counts
 * by value order, B = clamp(floor(sqrt(n)), 2, 10) for n trials), and eta^2 is the share of the variance of
 * the trials' metric ranks that the bins' means explain: the R^2 of a piecewise-constant fit, i.e. a one-way
 * ANOVA's eta^2. Each parameter is fitted alone (main effects only: interactions and correlated draws are
 * not separated), and eta^2 of a parameter without any effect is about (bins - 1) / (n - 1) by chance
 * (`chance`). `importance` is eta^2 normalised so the shares add up to 1. Ranks make the direction of the
 * metric irrelevant. Trials count when their value is finite and every searched parameter is a number.
 * Sorted by importance, highest first (ties by name).
 * @throws ConflictError with fewer than IMPORTANCE_MIN_TRIALS such trials, without a searched parameter,
 *   when every searched parameter has one value across the trials, or when the values are all equal
 */
export function parameterImportance(
  space: Readonly<Record<string, ParameterSpec>>,
  trials: readonly { params: Readonly<Record<string, number>>; value: number }[],
  options: ImportanceOptions = {},
): ParameterImportance[] {
  const names = Object.keys(space)
    .filter((n) => space[n]!.kind !== 'value')
    .sort();
  if (names.length === 0)
    throw new ConflictError('no searched parameter: every parameter of the spec is a constant (value)');
  const used = trials.filter(
    (t) => Number.isFinite(t.value) && names.every((n) => Number.isFinite(t.params[n])),
  );
  const n = used.length;
  if (n < IMPORTANCE_MIN_TRIALS)
    throw new ConflictError(
      `parameter importance needs at least ${IMPORTANCE_MIN_TRIALS} trials with results; there are ${n}`,
      { trials: n, needed: IMPORTANCE_MIN_TRIALS },
    );
  const values = used.map((t) => t.value);
  if (values.every((v) => v === values[0]))
    throw new ConflictError(
      `the ${n} trials' metric values are all equal (${values[0]}): nothing to explain`,
    );
  const ys = (options.on ?? 'ranks') === 'ranks' ? ranks(values) : values;
  const maxBins = options.bins ?? Math.min(10, Math.max(2, Math.floor(Math.sqrt(n))));
  const rows = names.map((name) => {
    const { bin, count } = binsOf(
      used.map((t) => t.params[name]!),
      maxBins,
    );
    return { name, eta2: count > 1 ? eta2(ys, bin) : 0, bins: count, chance: (count - 1) / (n - 1) };
  });
  if (rows.every((r) => r.bins === 1))
    throw new ConflictError(
      `every searched parameter (${names.join(', ')}) has one value across the ${n} trials: nothing to attribute the metric to`,
    );
  const sum = rows.reduce((s, r) => s + r.eta2, 0);
  return rows
    .map((r) => ({
      name: r.name,
      importance: sum > 0 ? r.eta2 / sum : 0,
      eta2: r.eta2,
      bins: r.bins,
      chance: r.chance,
    }))
    .sort((a, b) => b.importance - a.importance || a.name.localeCompare(b.name));
}
