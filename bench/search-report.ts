/**
 * The search bench's summaries (bench/search.ts): per seed and method the best FLD within the budget, the
 * compute to reach random search's best and the trials started and stopped; their means over seeds; the
 * rank correlation of FLD at each evaluation step with final FLD over the random-search trials; the
 * issue's targets. Prints the tables and returns every number for the results file.
 */
import {
  bestWithin,
  ComputeCurve,
  type CostedEvaluation,
  computeToReach,
  costEvaluations,
  spearman,
  type TrialTrace,
  trainedIncrements,
} from './search-accounting.ts';

export const METHODS = ['random', 'asha', 'pbt', 'tpe'] as const;
export type Method = (typeof METHODS)[number];

/** The bench's sizes, every default filled (compileSearchBench). */
export interface BenchDesign {
  quick: boolean;
  seeds: number[];
  methods: Method[];
  /** N: random's and TPE's trials, PBT's population. */
  trials: number;
  /** S: a trial's steps. */
  steps: number;
  /** B = N x S: training steps over all trials of one sweep. */
  budget: number;
  evalEvery: number;
  evalSamples: number;
  workers: number;
  asha: { min_steps: number; eta: number; rungs: number[]; trials: number };
  pbt: { interval: number };
  tpe: { startup_trials: number };
  /** A history point further than this many steps from the previous one is not compute. */
  maxGap: number;
}

/** One trial of a bench sweep, as read from the API. */
export interface TrialRun extends TrialTrace {
  index: number;
  state: string;
  reason?: string;
  params: Record<string, number>;
  startedAt?: number;
  endedAt?: number;
  /** Where the evaluations came from: the API's qualityHistory, or the bench's polling of the sweep. */
  evaluationSource: 'qualityHistory' | 'polled';
}

/** One method's sweep at one seed. */
export interface MethodRun {
  method: Method;
  seed: number;
  sweepId: string;
  state: string;
  wall_s: number;
  /** ASHA: when the bench cancelled the sweep, its compute having reached B. */
  cancelled_after_s?: number;
  /** The sweep's search record as the API returned it (rungs, stops, PBT lineage), when it has one. */
  search?: unknown;
  trials: TrialRun[];
}

/** One method at one seed, summarised. */
export interface MethodSummary {
  method: Method;
  seed: number;
  best_fld: number | null;
  best: Omit<CostedEvaluation, 't'> | null;
  /** Compute at the first evaluation at or below random's best of the same seed; null: not within B. */
  reach_random_best: number | null;
  reach_fraction: number | null;
  compute_used: number;
  trials_started: number;
  trials_stopped: number;
  states: Record<string, number>;
  trials: { id: string; compute: number; evaluations: Omit<CostedEvaluation, 'trial'>[] }[];
}

/** Spearman's rho of FLD at `step` with final FLD, over `n` random-search trials. */
export interface RankRow {
  step: number;
  rung: boolean;
  /** FLD of the evaluation at the step; and the best FLD up to it (what ASHA's rungs decide on). */
  at_step: { rho: number | null; n: number };
  best_so_far: { rho: number | null; n: number };
}

const fmt = (x: number | null, digits = 1) => (x === null ? '-' : x.toFixed(digits));
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

function table(rows: string[][], say: (s: string) => void): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) say(`  ${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`.trimEnd());
}

function summarise(d: BenchDesign, run: MethodRun, target: number | null): MethodSummary {
  const curve = new ComputeCurve(run.trials.flatMap((t) => trainedIncrements(t, d.maxGap)));
  const costed = costEvaluations(run.trials, curve);
  const best = bestWithin(costed, d.budget);
  const reach = target === null ? null : computeToReach(costed, target, d.budget);
  const states: Record<string, number> = {};
  for (const t of run.trials) states[t.state] = (states[t.state] ?? 0) + 1;
  return {
    method: run.method,
    seed: run.seed,
    best_fld: best?.fld ?? null,
    best: best ? { trial: best.trial, step: best.step, fld: best.fld, compute: best.compute } : null,
    reach_random_best: reach,
    reach_fraction: reach === null ? null : reach / d.budget,
    compute_used: curve.total,
    trials_started: run.trials.filter((t) => t.history.length > 0).length,
    trials_stopped: states.stopped ?? 0,
    states,
    trials: run.trials.map((t) => ({
      id: t.id,
      compute: trainedIncrements(t, d.maxGap).reduce((n, i) => n + i.steps, 0),
      evaluations: costed
        .filter((e) => e.trial === t.id)
        .map(({ trial: _t, ...e }) => e)
        .sort((a, b) => a.t - b.t),
    })),
  };
}

/** Rank correlations at every evaluation step below S, over the random runs given. */
function rankRows(d: BenchDesign, runs: readonly MethodRun[]): RankRow[] {
  const rows: RankRow[] = [];
  const trials = runs.flatMap((r) => r.trials);
  for (let step = d.evalEvery; step < d.steps; step += d.evalEvery) {
    const at: [number, number][] = [];
    const sofar: [number, number][] = [];
    for (const t of trials) {
      const final = t.evaluations.find((e) => e.step === d.steps);
      if (t.state !== 'completed' || !final) continue;
      const here = t.evaluations.find((e) => e.step === step);
      const upTo = t.evaluations.filter((e) => e.step <= step).map((e) => e.fld);
      if (here) at.push([here.fld, final.fld]);
      if (upTo.length) sofar.push([Math.min(...upTo), final.fld]);
    }
    const rho = (pairs: [number, number][]) => ({
      rho: spearman(
        pairs.map((p) => p[0]),
        pairs.map((p) => p[1]),
      ),
      n: pairs.length,
    });
    rows.push({ step, rung: d.asha.rungs.includes(step), at_step: rho(at), best_so_far: rho(sofar) });
  }
  return rows;
}

/** Prints the bench's tables and returns their numbers. */
export function reportSearch(d: BenchDesign, runs: readonly MethodRun[], say: (s: string) => void) {
  const B = d.budget;
  const perSeed = d.seeds.map((seed) => {
    const random = runs.find((r) => r.seed === seed && r.method === 'random');
    const randomBest = random ? summarise(d, random, null).best_fld : null;
    const summaries = d.methods.flatMap((m) => {
      const run = runs.find((r) => r.seed === seed && r.method === m);
      return run ? [summarise(d, run, randomBest)] : [];
    });
    say('');
    say(`seed ${seed}: B = ${B} steps; random's best FLD ${fmt(randomBest)}`);
    table(
      [
        [
          'method',
          'best FLD in B',
          'at (trial, step, compute)',
          "compute to random's best",
          'started',
          'stopped',
          'compute used',
        ],
        ...summaries.map((s) => [
          s.method,
          fmt(s.best_fld),
          s.best ? `${s.best.trial.replace(/^.*-t/, 't')} @${s.best.step}, ${s.best.compute}` : '-',
          s.reach_random_best === null
            ? 'not reached'
            : `${s.reach_random_best} (${fmt(s.reach_fraction, 2)} B)`,
          String(s.trials_started),
          String(s.trials_stopped),
          String(s.compute_used),
        ]),
      ],
      say,
    );
    return { seed, random_best: randomBest, methods: summaries };
  });

  const means = d.methods.map((m) => {
    const of = perSeed.flatMap((p) => p.methods.filter((s) => s.method === m));
    const reached = of.flatMap((s) => (s.reach_fraction === null ? [] : [s.reach_fraction]));
    return {
      method: m,
      best_fld: mean(of.flatMap((s) => (s.best_fld === null ? [] : [s.best_fld]))),
      reach_fraction_mean_where_reached: mean(reached),
      reached: reached.length,
      seeds: of.length,
    };
  });
  say('');
  say(`mean over ${d.seeds.length} seed(s) (best FLD: lowest of any evaluation made within B)`);
  table(
    [
      ['method', 'best FLD in B', "reached random's best", 'compute to reach (mean where reached)'],
      ...means.map((m) => [
        m.method,
        fmt(m.best_fld),
        `${m.reached}/${m.seeds} seeds`,
        m.reach_fraction_mean_where_reached === null
          ? '-'
          : `${fmt(m.reach_fraction_mean_where_reached, 2)} B`,
      ]),
    ],
    say,
  );

  const randomRuns = runs.filter((r) => r.method === 'random');
  const pooled = rankRows(d, randomRuns);
  const bySeed = d.seeds.map((seed) => ({
    seed,
    rows: rankRows(
      d,
      randomRuns.filter((r) => r.seed === seed),
    ),
  }));
  say('');
  say(
    `rank correlation (Spearman) with final FLD (step ${d.steps}), random-search trials completed; * = ASHA rung`,
  );
  table(
    [
      ['step', 'FLD at step: pooled (n)', 'per seed', 'best so far: pooled (n)', 'per seed'],
      ...pooled.map((row, i) => [
        `${row.step}${row.rung ? '*' : ''}`,
        `${fmt(row.at_step.rho, 2)} (${row.at_step.n})`,
        bySeed.map((s) => fmt(s.rows[i]!.at_step.rho, 2)).join(' '),
        `${fmt(row.best_so_far.rho, 2)} (${row.best_so_far.n})`,
        bySeed.map((s) => fmt(s.rows[i]!.best_so_far.rho, 2)).join(' '),
      ]),
    ],
    say,
  );

  const of = (m: Method) => perSeed.flatMap((p) => p.methods.filter((s) => s.method === m));
  const asha = of('asha').map((s) => s.reach_fraction !== null && s.reach_fraction <= 1 / 3);
  const pbt = perSeed.flatMap((p) => {
    const s = p.methods.find((x) => x.method === 'pbt');
    return s ? [s.best_fld !== null && p.random_best !== null && s.best_fld < p.random_best] : [];
  });
  const verdict = (oks: boolean[]) =>
    oks.length === 0
      ? 'not run'
      : `${oks.every(Boolean) ? 'MET' : 'NOT MET'} (${oks.filter(Boolean).length}/${oks.length} seeds)`;
  const targets = {
    asha_reaches_random_best_within_third: { per_seed: asha, verdict: verdict(asha) },
    pbt_beats_random_at_equal_compute: { per_seed: pbt, verdict: verdict(pbt) },
  };
  say('');
  say(`targets${d.quick ? ' (QUICK run: sizes too small to judge them)' : ''}, met when met at every seed:`);
  say(
    `  ASHA reaches random's best with at most B/3 of compute: ${targets.asha_reaches_random_best_within_third.verdict}`,
  );
  say(
    `  PBT's best beats random's at equal compute (B):        ${targets.pbt_beats_random_at_equal_compute.verdict}`,
  );
  return {
    per_seed: perSeed,
    mean: means,
    rank_correlation: { pooled, per_seed: bySeed },
    targets,
  };
}
