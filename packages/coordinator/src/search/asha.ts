/**
 * ASHA's rules (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning"), pure: the rung
 * cut-off of the stopping variant (Ray's AsyncHyperBand, Optuna's SuccessiveHalvingPruner), the promotion
 * variant's promotable set, and the Hyperband bracket of a trial. Values are losses: lower is better.
 */

/** Best (lowest) value among points with step <= `step`; undefined when none. */
export function bestSoFar(
  points: readonly { step: number; value: number }[],
  step: number,
): number | undefined {
  let best: number | undefined;
  for (const p of points) if (p.step <= step && (best === undefined || p.value < best)) best = p.value;
  return best;
}

/**
 * The cut-off at a rung: the value at quantile 1/eta of `values` (ascending, linear interpolation between
 * order statistics as numpy.percentile's default), i.e. a value v goes on when v <= cutoff. Undefined for
 * an empty list.
 */
export function ashaCutoff(values: readonly number[], eta: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  // numpy's 'linear' method: the order statistic at (n - 1) * q. Dividing by eta keeps whole positions exact.
  const pos = (sorted.length - 1) / eta;
  const lo = Math.floor(pos);
  const frac = pos - lo;
  const a = sorted[lo]!;
  if (frac === 0) return a;
  const b = sorted[lo + 1]!;
  return a + (b - a) * frac;
}

/**
 * Stop-mode decision of a trial arriving at a rung with `value`, given the values `recorded` there before it:
 * cut-off over recorded + [value]; 'stop' when value > cutoff (ties go on).
 */
export function ashaDecide(
  recorded: readonly number[],
  value: number,
  eta: number,
): { action: 'continue' | 'stop'; cutoff: number } {
  const cutoff = ashaCutoff([...recorded, value], eta)!;
  return { action: value > cutoff ? 'stop' : 'continue', cutoff };
}

/**
 * Promote mode: trials of a rung that may be promoted now: the best floor(n / eta) of the n recorded
 * (ties broken by trial id), minus those already promoted, best first.
 */
export function ashaPromotable(
  rung: readonly { trial: string; value: number }[],
  promoted: ReadonlySet<string>,
  eta: number,
): string[] {
  const k = Math.floor(rung.length / eta);
  return [...rung]
    .sort((a, b) => a.value - b.value || compareIds(a.trial, b.trial))
    .slice(0, k)
    .map((r) => r.trial)
    .filter((t) => !promoted.has(t));
}

/** Which bracket trial `index` runs in: index mod brackets. */
export function ashaBracket(index: number, brackets: number): number {
  if (!Number.isInteger(brackets) || brackets < 1)
    throw new RangeError(`brackets must be an integer >= 1, got ${brackets}`);
  if (!Number.isInteger(index) || index < 0)
    throw new RangeError(`trial index must be an integer >= 0, got ${index}`);
  return index % brackets;
}

/** Code-unit order of trial ids (locale-independent, so every coordinator breaks ties the same way). */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
