/**
 * The median stopping rule (Golovin et al. 2017, "Google Vizier: A Service for Black-Box Optimization",
 * section 3.2.2), pure. Values are losses: lower is better.
 */
import { bestSoFar } from './asha.ts';

/** Mean of the values of points with step <= `step`; undefined when none. */
export function runningAverage(
  points: readonly { step: number; value: number }[],
  step: number,
): number | undefined {
  let sum = 0;
  let n = 0;
  for (const p of points) {
    if (p.step > step) continue;
    sum += p.value;
    n++;
  }
  return n === 0 ? undefined : sum / n;
}

/**
 * Vizier's median stopping rule at evaluation step `step` (>= grace_steps): the trial's best value up to
 * `step` against the median of the running averages up to `step` of `others` that have reported at or past
 * `step`; undefined (no decision) before grace_steps or with fewer than min_trials such others.
 * `stop` when the trial's best is strictly worse (higher) than that median, as Vizier and Ray's
 * MedianStoppingRule. Also undefined while the trial itself has no value up to `step`.
 */
export function medianDecide(
  own: readonly { step: number; value: number }[],
  others: readonly (readonly { step: number; value: number }[])[],
  step: number,
  spec: { grace_steps: number; min_trials: number },
): { stop: boolean; value: number; median: number; others: number } | undefined {
  if (step < spec.grace_steps) return undefined;
  const value = bestSoFar(own, step);
  if (value === undefined) return undefined;
  const averages: number[] = [];
  for (const o of others) {
    if (!o.some((p) => p.step >= step)) continue;
    const avg = runningAverage(o, step);
    if (avg !== undefined) averages.push(avg);
  }
  if (averages.length < spec.min_trials || averages.length === 0) return undefined;
  const median = medianOf(averages);
  return { stop: value > median, value, median, others: averages.length };
}

/** The median of a non-empty list: the middle value, or the mean of the two middle ones (numpy.median). */
function medianOf(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
