import { z } from 'zod';
import type { FieldIssue } from './errors.ts';
import { FAMILIES, MODEL_PARAMS, type ModelName } from './families.ts';
import type { TrialQuality } from './trial-state.ts';

/**
 * Adaptive search (README, "Adaptive search"): the spec's `scheduler:` (which trials go on), `method: tpe`
 * (which configurations are tried) and `method: pbt-replay` (a recorded PBT schedule, trained again). Every
 * decision is made by the coordinator from what the workers reported and recorded in Redis with the sweep,
 * so a restarted coordinator carries on with the same decisions.
 */

const posInt = (max: number) =>
  z.number().int('must be an integer').min(1, 'must be >= 1').max(max, `must be <= ${max}`);
const fraction = z.number().min(0, 'must be >= 0').max(1, 'must be <= 1');

/**
 * ASHA (Li et al. 2020). Bracket b's rungs are at min_steps * eta^(b + k) steps, k = 0, 1, ... below
 * budget.steps. `stop` (the default, as Ray's AsyncHyperBand and Optuna's SuccessiveHalvingPruner run it):
 * a trial reaching a rung goes on only while its value is within the top 1/eta of the values recorded at
 * that rung so far (itself included). `promote` (the paper's variant): a trial pauses at each rung; a free
 * slot first promotes a paused trial in the top floor(n/eta) of its rung, highest rung first, and resumes it
 * from its checkpoint, else starts a new trial.
 */
export const ashaSchema = z.strictObject({
  type: z.literal('asha'),
  /** First rung (bracket 0): a multiple of health.eval_every_steps, below budget.steps. */
  min_steps: posInt(1_000_000),
  /** Reduction factor: the top 1/eta of a rung goes on. */
  eta: z.number().int('must be an integer').min(2, 'must be >= 2').max(10, 'must be <= 10').default(3),
  /** Hyperband brackets; trial i runs in bracket i mod brackets. */
  brackets: posInt(8).default(1),
  mode: z.enum(['stop', 'promote'], { message: 'must be stop or promote' }).default('stop'),
});

/**
 * Median stopping (Golovin et al. 2017, Vizier): after `grace_steps`, at each evaluation step s a trial
 * whose best value up to s is worse than the median of the other trials' running averages up to s stops,
 * once at least `min_trials` others have reported at s.
 */
export const medianSchema = z.strictObject({
  type: z.literal('median'),
  grace_steps: z.number().int('must be an integer').min(0, 'must be >= 0').max(1_000_000).default(0),
  min_trials: posInt(1000).default(3),
});

/**
 * Population-based training (Jaderberg et al. 2017), asynchronous as in the paper and Ray: every
 * `interval` steps a trial pauses (with a checkpoint and an evaluation at that step); if its value is in
 * the bottom `quantile` of the population's latest values it copies the checkpoint of a trial drawn from the
 * top `quantile` (that checkpoint object, at the step its value was measured) and explores: each of
 * `params` is resampled from its spec with `resample_probability`, else multiplied by one of `perturb`.
 */
export const pbtSchema = z.strictObject({
  type: z.literal('pbt'),
  /** Steps between ready points: a multiple of health.eval_every_steps, below budget.steps. */
  interval: posInt(1_000_000),
  quantile: z.number().gt(0, 'must be > 0').max(0.5, 'must be <= 0.5').default(0.25),
  resample_probability: fraction.default(0.25),
  perturb: z
    .tuple([z.number().positive('must be > 0'), z.number().positive('must be > 0')], {
      message: 'must be two factors, e.g. [0.8, 1.2]',
    })
    .default([0.8, 1.2]),
  /** Parameters explore changes; default: every searched parameter (all must leave the networks' shapes). */
  params: z.array(z.string(), { message: 'must be a list of parameter names' }).optional(),
});

export const schedulerSchema = z.discriminatedUnion('type', [ashaSchema, medianSchema, pbtSchema], {
  message: 'must have type asha, median or pbt',
});
export type SchedulerSpec = z.output<typeof schedulerSchema>;
export type AshaSpec = z.output<typeof ashaSchema>;
export type MedianSpec = z.output<typeof medianSchema>;
export type PbtSpec = z.output<typeof pbtSchema>;

/**
 * `method: tpe` (Bergstra et al. 2011), as Optuna's TPESampler (independent, univariate): the first
 * `startup_trials` are random; then the finished trials are split into the best gamma(n) = min(ceil(gamma *
 * n), 25) and the rest, each side becomes a Parzen estimator (a truncated Gaussian per observation plus a
 * prior of weight `prior_weight`), and of `n_ei_candidates` draws from the good side the one with the
 * largest l(x)/g(x) is tried. `constant_liar`: trials still queued or running count as the worst results,
 * so parallel suggestions spread out.
 */
export const tpeSchema = z.strictObject({
  startup_trials: z.number().int('must be an integer').min(0, 'must be >= 0').max(1000).default(10),
  gamma: z.number().gt(0, 'must be > 0').max(1, 'must be <= 1').default(0.1),
  n_ei_candidates: posInt(10_000).default(24),
  prior_weight: z.number().gt(0, 'must be > 0').max(100).default(1),
  constant_liar: z.boolean({ message: 'must be true or false' }).default(true),
});
export type TpeSpec = z.output<typeof tpeSchema>;

const sweepIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,127}$/, "must be a sweep id (lowercase letters, digits and '-')");

/** One step of a replayed schedule: from `step` on, the trial trains with `params`. */
export interface ReplayPoint {
  step: number;
  params: Record<string, number>;
}

/**
 * `method: pbt-replay`: trains the hyperparameter schedule a PBT trial ended with (its own explores and
 * those of every trial it copied weights from, up to each copy's step) from scratch, `budget.trials` times
 * with different seeds. The coordinator pins `schedule` when it accepts the sweep.
 */
export const replaySchema = z.strictObject({
  sweep: sweepIdSchema,
  trial: z.string().regex(/^[a-z0-9][a-z0-9-]{0,127}$/, 'must be a trial id'),
});
export type ReplaySpec = z.output<typeof replaySchema> & { schedule?: ReplayPoint[] };

/** `warm_start:` sweeps whose finished trials seed a TPE searcher (matching parameters only). */
export const warmStartSchema = z
  .array(sweepIdSchema, { message: 'must be a list of sweep ids' })
  .min(1, 'must name at least one sweep')
  .max(20, 'at most 20 sweeps');

/** The search methods: plan everything up front (grid, random, list), suggest as results come (tpe), replay. */
export const SEARCH_METHODS = ['grid', 'random', 'list', 'tpe', 'pbt-replay'] as const;
export type SearchMethod = (typeof SEARCH_METHODS)[number];

/** What the cross-field checks need of a spec (compiled fields, before the spec object is built). */
export interface SearchCheckInput {
  model: ModelName;
  method: SearchMethod;
  /** Searched parameters: name -> whether it is a constant (`value`). */
  parameters: Record<string, { kind: 'value' | 'values' | 'distribution' }>;
  metricIsQuality: boolean;
  metricName: string;
  evalEverySteps: number;
  steps: number;
  scheduler?: SchedulerSpec;
  tpe?: unknown;
  warmStart?: unknown;
  replay?: unknown;
  initFrom: boolean;
}

/** Rungs of ASHA bracket `bracket`: min_steps * eta^(bracket + k) below `steps`, ascending. */
export function ashaRungs(
  spec: Pick<AshaSpec, 'min_steps' | 'eta'>,
  bracket: number,
  steps: number,
): number[] {
  const out: number[] = [];
  for (let r = spec.min_steps * spec.eta ** bracket; r < steps; r *= spec.eta) out.push(r);
  return out;
}

/** The parameters PBT's explore changes: the spec's `params`, or every searched (non-constant) one. */
export function pbtParams(spec: PbtSpec, parameters: Record<string, { kind: string }>): string[] {
  return (
    spec.params ??
    Object.entries(parameters)
      .filter(([, p]) => p.kind !== 'value')
      .map(([n]) => n)
      .sort()
  );
}

/** Cross-field checks of scheduler, tpe, warm_start and replay; each issue names its field. */
export function searchIssues(s: SearchCheckInput): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const staged = FAMILIES[s.model].staged;
  if (s.tpe !== undefined && s.method !== 'tpe')
    issues.push({ path: 'tpe', message: "only with method 'tpe'" });
  if (s.warmStart !== undefined && s.method !== 'tpe')
    issues.push({ path: 'warm_start', message: "only with method 'tpe' (it seeds the TPE searcher)" });
  if (s.method === 'pbt-replay') {
    if (s.replay === undefined)
      issues.push({ path: 'replay', message: "is required with method 'pbt-replay': {sweep, trial}" });
    if (s.scheduler) issues.push({ path: 'scheduler', message: "not with method 'pbt-replay'" });
    for (const [name, p] of Object.entries(s.parameters))
      if (p.kind !== 'value')
        issues.push({
          path: `parameters.${name}`,
          message: 'pbt-replay takes its parameters from the recorded schedule: constants ({value}) only',
        });
    if (staged) issues.push({ path: 'method', message: `pbt-replay is not for staged models (${s.model})` });
  } else if (s.replay !== undefined)
    issues.push({ path: 'replay', message: "only with method 'pbt-replay'" });
  const sch = s.scheduler;
  if (!sch) return issues;
  if (!s.metricIsQuality) {
    issues.push({
      path: 'scheduler',
      message: `needs a metric of the quality evaluation (fld, ...), measured the same way for every trial; ${s.metricName} is not`,
    });
  }
  if (s.evalEverySteps <= 0) {
    issues.push({ path: 'health.eval_every_steps', message: 'must be > 0 with a scheduler' });
    return issues;
  }
  const aligned = (path: string, n: number) => {
    if (n % s.evalEverySteps !== 0)
      issues.push({
        path,
        message: `must be a multiple of health.eval_every_steps (${s.evalEverySteps}): decisions are made at evaluations`,
      });
    if (n >= s.steps) issues.push({ path, message: `must be below budget.steps (${s.steps})` });
  };
  if (sch.type === 'asha') {
    aligned('scheduler.min_steps', sch.min_steps);
    const last = sch.min_steps * sch.eta ** (sch.brackets - 1);
    if (sch.brackets > 1 && last >= s.steps)
      issues.push({
        path: 'scheduler.brackets',
        message: `bracket ${sch.brackets - 1} would start at step ${last}, past budget.steps (${s.steps})`,
      });
    if (sch.mode === 'promote' && staged)
      issues.push({ path: 'scheduler.mode', message: `promote is not for staged models (${s.model})` });
  } else if (sch.type === 'median') {
    if (sch.grace_steps >= s.steps)
      issues.push({ path: 'scheduler.grace_steps', message: `must be below budget.steps (${s.steps})` });
  } else {
    aligned('scheduler.interval', sch.interval);
    if (staged) issues.push({ path: 'scheduler', message: `pbt is not for staged models (${s.model})` });
    if (s.method !== 'random' && s.method !== 'grid' && s.method !== 'list')
      issues.push({ path: 'method', message: 'pbt starts its population with grid, random or list' });
    if (s.initFrom) issues.push({ path: 'init_from', message: 'not with pbt' });
    const defs = MODEL_PARAMS[s.model];
    // Exploit copies weights between trials: every parameter that shapes the networks must be shared.
    for (const [name, p] of Object.entries(s.parameters)) {
      if (p.kind !== 'value' && defs[name]?.shapesNetworks !== false)
        issues.push({
          path: `parameters.${name}`,
          message: `'${name}' shapes the networks; pbt copies weights between trials, so it must be a constant`,
        });
    }
    const mutated = pbtParams(sch, s.parameters);
    if (mutated.length === 0)
      issues.push({
        path: 'scheduler.params',
        message: 'pbt needs at least one searched parameter to explore',
      });
    (sch.params ?? []).forEach((name, i) => {
      const p = s.parameters[name];
      if (!p || p.kind === 'value')
        issues.push({
          path: `scheduler.params.${i}`,
          message: `'${name}' is not a searched parameter of this spec`,
        });
    });
    if (sch.perturb[0] >= 1 || sch.perturb[1] <= 1)
      issues.push({ path: 'scheduler.perturb', message: 'must be [down, up] with down < 1 < up' });
  }
  return issues;
}

/** The Redis record of one scheduler decision or PBT step (API: the sweep's `search.events`). */
export type SearchEvent =
  | {
      kind: 'rung';
      trial: string;
      bracket: number;
      rung: number;
      /** The rung's step. */
      step: number;
      /** The trial's best value up to the rung's step. */
      value: number;
      /** Values recorded at the rung before this one. */
      recorded: number;
      /** The value a trial must be at least as good as to go on (stop mode), or null when it always goes on. */
      cutoff: number | null;
      action: 'continue' | 'stop' | 'pause';
      t: number;
    }
  | { kind: 'promote'; trial: string; bracket: number; rung: number; step: number; value: number; t: number }
  | {
      kind: 'median';
      trial: string;
      step: number;
      value: number;
      median: number;
      others: number;
      action: 'stop';
      t: number;
    }
  | {
      /** PBT: the trial copied `source`'s checkpoint at `sourceStep` and explored (segment = its next job). */
      kind: 'exploit';
      trial: string;
      segment: number;
      /** The trial's own step and value when it was ready. */
      step: number;
      value: number;
      source: string;
      sourceStep: number;
      sourceValue: number;
      /** The source's checkpoint manifest, and the copy written into the trial's own folder. */
      sourceManifest: string;
      copiedManifest: string;
      from: Record<string, number>;
      to: Record<string, number>;
      /** What explore did to each changed parameter: 'x0.8', 'x1.2', 'resample', '+1', '-1'. */
      explored: Record<string, string>;
      t: number;
    }
  | {
      /** PBT: the trial was ready and not in the bottom quantile; pbt-replay: the schedule moved on. */
      kind: 'continue';
      trial: string;
      segment: number;
      step: number;
      value?: number;
      params?: Record<string, number>;
      /** PBT: the checkpoint the trial paused on (what a later exploit of it copies). */
      checkpoint?: string;
      /** Why an exploit recorded for this segment was replaced by this (its source could not be copied). */
      reason?: string;
      t: number;
    }
  | {
      /** Sweep end (ASHA promote): a paused trial never promoted. */
      kind: 'end';
      trial: string;
      step: number;
      reason: string;
      t: number;
    };

/** A quality evaluation as kept in a trial's evaluation history (Redis list, oldest first). */
export type QualityPoint = TrialQuality & { t: number };
