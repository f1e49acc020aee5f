/**
 * Compute accounting of the search bench (bench/search.ts): how many training steps a sweep had spent when
 * each evaluation was made, the best FLD within a budget, the compute a method needs to reach a target,
 * and Spearman's rank correlation. Pure functions of what the API returns for a sweep's trials.
 */

/** What the accounting needs of one trial (from `GET /v1/trials/:id`). */
export interface TrialTrace {
  id: string;
  /** Step history points (every few steps), oldest first; `t` in Unix milliseconds. */
  history: readonly { step: number; t: number }[];
  /** Attempt (or segment) starts: training carries on from `step` after `t`. Empty when unknown. */
  starts: readonly { step: number; t: number }[];
  /** Quality evaluations, oldest first. */
  evaluations: readonly { step: number; fld: number; t: number }[];
}

/** Steps one trial trained between its previous history point and this one, which it reported at `t`. */
export interface Increment {
  trial: string;
  t: number;
  steps: number;
}

/**
 * The steps `trace` actually trained, point by point. Within a trial, consecutive history points add
 * their step difference when it is positive and at most `maxGap`: a larger jump (a PBT exploit moving the
 * trial to its donor's step) or a step back (a resume from an older checkpoint) is not compute. An attempt
 * start resets the reference to the step it resumed from, so the steps retrained after a resume, and the
 * first steps after an exploit that starts the segment at the donor's step, do count.
 */
export function trainedIncrements(trace: TrialTrace, maxGap: number): Increment[] {
  type Mark = { kind: 'start' | 'point'; step: number; t: number };
  const marks: Mark[] = [
    ...trace.starts.map((s): Mark => ({ kind: 'start', step: s.step, t: s.t })),
    ...trace.history.map((p): Mark => ({ kind: 'point', step: p.step, t: p.t })),
  ];
  // Stable: at equal times a start goes before a point.
  marks.sort((a, b) => a.t - b.t || (a.kind === b.kind ? 0 : a.kind === 'start' ? -1 : 1));
  const out: Increment[] = [];
  let last = 0;
  for (const m of marks) {
    if (m.kind === 'point') {
      const d = m.step - last;
      if (d > 0 && d <= maxGap) out.push({ trial: trace.id, t: m.t, steps: d });
    }
    last = m.step;
  }
  return out;
}

/** Cumulative compute of a sweep against time: `computeAt(t)` = steps trained by all trials up to `t`. */
export class ComputeCurve {
  private readonly times: number[] = [];
  private readonly totals: number[] = [];

  constructor(increments: readonly Increment[]) {
    let total = 0;
    for (const inc of [...increments].sort((a, b) => a.t - b.t)) {
      total += inc.steps;
      this.times.push(inc.t);
      this.totals.push(total);
    }
  }

  /** Every step trained. */
  get total(): number {
    return this.totals.at(-1) ?? 0;
  }

  /** Steps trained by all trials at or before time `t`. */
  computeAt(t: number): number {
    // The last index with times[i] <= t.
    let lo = 0;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.times[mid]! <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : this.totals[lo - 1]!;
  }
}

/** One evaluation placed on the sweep's compute axis. */
export interface CostedEvaluation {
  trial: string;
  step: number;
  fld: number;
  t: number;
  /** Steps the whole sweep had trained when the evaluation was made, its own trial's included. */
  compute: number;
}

/**
 * Each evaluation of every trial with the sweep's compute when it was made. An evaluation is timed by its
 * trial's history point at the evaluated step nearest in time (the worker reports that point right after
 * the evaluation, and a polled evaluation's time is later than the point), so its own trial's steps up to
 * the evaluated step are counted; `t` is kept when the trial has no point at that step within `window` ms.
 */
export function costEvaluations(
  traces: readonly TrialTrace[],
  curve: ComputeCurve,
  window = 60_000,
): CostedEvaluation[] {
  const out: CostedEvaluation[] = [];
  for (const trace of traces) {
    for (const e of trace.evaluations) {
      let anchor = e.t;
      let nearest = window;
      for (const p of trace.history) {
        const d = Math.abs(p.t - e.t);
        if (p.step === e.step && d <= nearest) {
          nearest = d;
          anchor = p.t;
        }
      }
      out.push({ trial: trace.id, step: e.step, fld: e.fld, t: e.t, compute: curve.computeAt(anchor) });
    }
  }
  return out.sort((a, b) => a.compute - b.compute || a.t - b.t);
}

/** The evaluation with the lowest FLD among those made within `budget` steps of compute, or null. */
export function bestWithin(
  evaluations: readonly CostedEvaluation[],
  budget: number,
): CostedEvaluation | null {
  let best: CostedEvaluation | null = null;
  for (const e of evaluations) if (e.compute <= budget && (!best || e.fld < best.fld)) best = e;
  return best;
}

/**
 * The least compute at which an evaluation made within `budget` had FLD at or below `target`, or null
 * when none did.
 */
export function computeToReach(
  evaluations: readonly CostedEvaluation[],
  target: number,
  budget: number,
): number | null {
  let least: number | null = null;
  for (const e of evaluations)
    if (e.compute <= budget && e.fld <= target && (least === null || e.compute < least)) least = e.compute;
  return least;
}

/** 1-based ranks of `xs`, ties given the mean of the ranks they span. */
export function ranks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) out[order[k]![1]] = rank;
    i = j + 1;
  }
  return out;
}

/**
 * Spearman's rank correlation of paired samples: Pearson's correlation of their ranks (ties averaged).
 * Null with fewer than 3 pairs or when either side is constant.
 */
export function spearman(xs: readonly number[], ys: readonly number[]): number | null {
  if (xs.length !== ys.length) throw new Error(`spearman: ${xs.length} xs against ${ys.length} ys`);
  const n = xs.length;
  if (n < 3) return null;
  const rx = ranks(xs);
  const ry = ranks(ys);
  const mean = (n + 1) / 2;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = rx[i]! - mean;
    const dy = ry[i]! - mean;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 || syy === 0 ? null : sxy / Math.sqrt(sxx * syy);
}
