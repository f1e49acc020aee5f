import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { type AugGainConfig, augGainIssues, augGainSchema, DEFAULT_AUG_GAIN } from './aug-gain.ts';
import { type DatasetRef, datasetRefSchema } from './dataset.ts';
import { type AugmentConfig, augmentSchema } from './diff-augment.ts';
import { type FieldIssue, PayloadTooLargeError, SpecValidationError } from './errors.ts';
import {
  FAMILIES,
  type FamilySpec,
  MODEL_NAMES,
  MODEL_PARAMS,
  type ModelName,
  reportedQualityMetrics,
} from './families.ts';
import { type HealthConfig, healthSchema } from './health.ts';
import { type InitFrom, initFromSchema } from './init-from.ts';
import { LIMITS } from './limits.ts';
import { checkParamValue, STAGE_PHASES, STAGE_RESOLUTIONS, type StageSpec } from './models.ts';
import {
  type ReplaySpec,
  replaySchema,
  type SchedulerSpec,
  SEARCH_METHODS,
  type SearchMethod,
  schedulerSchema,
  searchIssues,
  type TpeSpec,
  tpeSchema,
  warmStartSchema,
} from './search.ts';

/** Metrics every trial reports at its end: averages over the last tenth of the run, and throughput. */
const STEP_METRICS = ['g_loss', 'd_loss', 'd_real', 'd_fake', 'images_per_sec'] as const;

/**
 * Metrics a trial reports at its end and a sweep can rank by. The loss and D scores are averages over the
 * last tenth of the run; the others come from the quality evaluation at the last step (they need
 * `health.eval_every_steps` > 0), each reported by the families that list it (FAMILIES' qualityMetrics):
 * `fld`, `class_coverage`, `class_kl` for the generative families; `psnr`, `ssim` (and the bicubic
 * baseline's) for srgan; `l1`, `psnr`, `ssim`, `class_accuracy` (the set's classifier on G(A); on B as
 * `class_accuracy_real`) for pix2pix, all on the held-out split; `aug_gain` for the conditional families
 * (aug-gain.ts: measured at the last evaluation only, it is expensive).
 */
export const METRIC_NAMES = [
  ...STEP_METRICS,
  'fld',
  'class_coverage',
  'class_kl',
  'psnr',
  'ssim',
  'psnr_bicubic',
  'ssim_bicubic',
  'l1',
  'class_accuracy',
  'class_accuracy_real',
  'aug_gain',
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** True for a metric of the quality evaluation (a trial's `quality`), false for a step metric. */
export function isQualityMetric(name: MetricName): boolean {
  return !(STEP_METRICS as readonly string[]).includes(name);
}

/** How one parameter is searched: a constant, a list (grid or random choice) or a distribution (random). */
export type ParameterSpec =
  | { kind: 'value'; value: number }
  | { kind: 'values'; values: number[] }
  | {
      kind: 'distribution';
      distribution: 'uniform' | 'log_uniform' | 'int_uniform';
      min: number;
      max: number;
    };

/** A validated sweep spec with every default filled in. */
export interface SweepSpec {
  name: string;
  model: ModelName;
  /** As written; the coordinator pins `version` (and the image size and channels) when it accepts the sweep. */
  dataset: DatasetRef;
  /**
   * `list`: one trial per entry of `configurations`, in order; `tpe`: suggested one by one from the results
   * so far; `pbt-replay`: a recorded PBT schedule (`replay`).
   */
  method: SearchMethod;
  metric: { name: MetricName; goal: 'minimize' | 'maximize' };
  seed: number;
  /** `steps`: a trial's training steps; for staged models the sum over its stages. */
  budget: { trials: number; parallel: number; steps: number };
  checkpoint: { every_steps: number };
  parameters: Record<string, ParameterSpec>;
  /** `method: list` only: each trial's parameters (over `parameters` constants and model defaults). */
  configurations: Record<string, number>[];
  health: HealthConfig;
  /** Warm start: every trial starts from another trial's checkpoint (README, "Warm start"). */
  init_from?: InitFrom;
  /** DiffAugment in D's loss (README, "DiffAugment"); absent: none. */
  augment?: AugmentConfig;
  /**
   * The `aug_gain` metric's M, S and classifier steps (aug-gain.ts), measured at each trial's last
   * evaluation; present when the spec gives the block or ranks by aug_gain.
   */
  aug_gain?: AugGainConfig;
  /** Staged models only (progan by resolution, srgan by phase): the stages in order, each its own queue job. */
  stages?: StageSpec[];
  /** Early stopping or population-based training (README, "Adaptive search"); absent: every trial runs to the end. */
  scheduler?: SchedulerSpec;
  /** `method: tpe` only, every default filled. */
  tpe?: TpeSpec;
  /** `method: tpe`: sweeps whose finished trials seed the searcher. */
  warm_start?: string[];
  /** `method: pbt-replay`: the PBT trial whose schedule is replayed (the coordinator pins `schedule`). */
  replay?: ReplaySpec;
}

const posInt = (max: number) =>
  z.number().int('must be an integer').min(1, 'must be >= 1').max(max, `must be <= ${max}`);

const rawSpecSchema = z.strictObject({
  name: z
    .string()
    .min(1, 'must not be empty')
    .max(LIMITS.maxNameLength, `must be at most ${LIMITS.maxNameLength} characters`)
    .regex(
      /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
      "lowercase letters, digits and '-' only, not starting or ending with '-'",
    ),
  model: z.string().superRefine((m, ctx) => {
    if ((MODEL_NAMES as readonly string[]).includes(m)) return;
    ctx.addIssue({ code: 'custom', message: `unknown model '${m}'; available: ${MODEL_NAMES.join(', ')}` });
  }),
  dataset: datasetRefSchema,
  method: z
    .enum(SEARCH_METHODS, { message: `must be one of ${SEARCH_METHODS.join(', ')}` })
    .default('random'),
  metric: z
    .strictObject({
      name: z.string().superRefine((m, ctx) => {
        if ((METRIC_NAMES as readonly string[]).includes(m)) return;
        ctx.addIssue({
          code: 'custom',
          message: `unknown metric '${m}'; available: ${METRIC_NAMES.join(', ')}`,
        });
      }),
      goal: z.enum(['minimize', 'maximize'], { message: 'must be minimize or maximize' }),
    })
    .default({ name: 'g_loss', goal: 'minimize' }),
  seed: z
    .number()
    .int('must be an integer')
    .min(0, 'must be >= 0')
    .max(2 ** 31 - 1)
    .default(0),
  budget: z.strictObject({
    trials: posInt(LIMITS.maxTrials).default(1),
    parallel: posInt(LIMITS.maxParallel).default(1),
    /** Required except for staged models, where it defaults to the stages' sum. */
    steps: posInt(LIMITS.maxSteps).optional(),
  }),
  checkpoint: z.strictObject({ every_steps: posInt(LIMITS.maxSteps) }).default({ every_steps: 100 }),
  parameters: z.record(z.string(), z.unknown()).default({}),
  configurations: z
    .array(z.record(z.string(), z.unknown()), { message: 'must be a list of parameter mappings' })
    .max(LIMITS.maxTrials, `at most ${LIMITS.maxTrials} configurations`)
    .optional(),
  health: healthSchema,
  init_from: initFromSchema.optional(),
  augment: augmentSchema.optional(),
  aug_gain: augGainSchema.optional(),
  scheduler: schedulerSchema.optional(),
  tpe: tpeSchema.optional(),
  warm_start: warmStartSchema.optional(),
  replay: replaySchema.optional(),
  // Progressive stages are {resolution, fade_steps, stable_steps, batch_size}, phase stages {phase, steps,
  // batch_size}: which keys a model takes is checked against it in checkStages.
  stages: z
    .array(
      z.strictObject({
        resolution: z
          .number()
          .refine((r) => (STAGE_RESOLUTIONS as readonly number[]).includes(r), {
            message: `must be one of ${STAGE_RESOLUTIONS.join(', ')}`,
          })
          .optional(),
        fade_steps: z
          .number()
          .int('must be an integer')
          .min(0, 'must be >= 0')
          .max(LIMITS.maxSteps, `must be <= ${LIMITS.maxSteps}`)
          .optional(),
        stable_steps: posInt(LIMITS.maxSteps).optional(),
        phase: z.enum(STAGE_PHASES, { message: `must be ${STAGE_PHASES.join(' or ')}` }).optional(),
        steps: posInt(LIMITS.maxSteps).optional(),
        batch_size: posInt(1024).optional(),
      }),
      { message: 'must be a list of stages' },
    )
    .min(1, 'must list at least one stage')
    .max(STAGE_RESOLUTIONS.length, `at most ${STAGE_RESOLUTIONS.length} stages`)
    .optional(),
});

function zodPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/** The value at `path` in `input`, or undefined when any step is missing. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function issuesFromZod(error: z.ZodError, input: unknown): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: zodPath([...issue.path, key]), message: 'unknown key' });
    } else if (issue.path.length > 0 && valueAt(input, issue.path) === undefined) {
      out.push({ path: zodPath(issue.path), message: 'is required' });
    } else {
      out.push({ path: zodPath(issue.path), message: issue.message });
    }
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates one entry of `parameters` against the model's definition; pushes issues, returns the spec if valid. */
function parseParameter(
  model: ModelName,
  method: SearchMethod,
  name: string,
  raw: unknown,
  issues: FieldIssue[],
): ParameterSpec | undefined {
  const path = `parameters.${name}`;
  const def = MODEL_PARAMS[model][name];
  if (!def) {
    const known = Object.keys(MODEL_PARAMS[model]).join(', ');
    issues.push({ path, message: `unknown parameter for model '${model}'; known: ${known}` });
    return undefined;
  }
  if (!isRecord(raw)) {
    issues.push({ path, message: 'must be an object: {value}, {values: [...]} or {distribution, min, max}' });
    return undefined;
  }
  const keys = Object.keys(raw);
  const shape =
    'value' in raw ? 'value' : 'values' in raw ? 'values' : 'distribution' in raw ? 'distribution' : '';
  const allowed: Record<string, string[]> = {
    value: ['value'],
    values: ['values'],
    distribution: ['distribution', 'min', 'max'],
  };
  if (!shape) {
    issues.push({ path, message: 'needs one of value, values or distribution' });
    return undefined;
  }
  const extra = keys.filter((k) => !allowed[shape]?.includes(k));
  if (extra.length > 0) {
    for (const k of extra) issues.push({ path: `${path}.${k}`, message: `unknown key (with '${shape}')` });
    return undefined;
  }
  const before = issues.length;
  if (shape === 'value') {
    const problem = checkParamValue(def, raw.value);
    if (problem) issues.push({ path: `${path}.value`, message: problem });
    return issues.length === before ? { kind: 'value', value: raw.value as number } : undefined;
  }
  if (shape === 'values') {
    const values = raw.values;
    if (!Array.isArray(values) || values.length === 0) {
      issues.push({ path: `${path}.values`, message: 'must be a non-empty list' });
      return undefined;
    }
    if (values.length > LIMITS.maxValuesPerParameter) {
      issues.push({ path: `${path}.values`, message: `at most ${LIMITS.maxValuesPerParameter} values` });
      return undefined;
    }
    values.forEach((v, i) => {
      const problem = checkParamValue(def, v);
      if (problem) issues.push({ path: `${path}.values.${i}`, message: problem });
    });
    return issues.length === before ? { kind: 'values', values: values as number[] } : undefined;
  }
  const distribution = raw.distribution;
  if (distribution !== 'uniform' && distribution !== 'log_uniform' && distribution !== 'int_uniform') {
    issues.push({ path: `${path}.distribution`, message: 'must be uniform, log_uniform or int_uniform' });
    return undefined;
  }
  if (method === 'grid' || method === 'list' || method === 'pbt-replay') {
    issues.push({
      path: `${path}.distribution`,
      message: `${method} search needs 'value' or 'values', not a distribution`,
    });
    return undefined;
  }
  if (def.oneOf) {
    issues.push({
      path: `${path}.distribution`,
      message: `'${name}' is one of ${def.oneOf.join(', ')}: use value or values`,
    });
    return undefined;
  }
  for (const bound of ['min', 'max'] as const) {
    if (!(bound in raw)) issues.push({ path: `${path}.${bound}`, message: 'is required' });
    else {
      const problem = checkParamValue(def, raw[bound]);
      if (problem) issues.push({ path: `${path}.${bound}`, message: problem });
    }
  }
  if (issues.length > before) return undefined;
  const min = raw.min as number;
  const max = raw.max as number;
  if (distribution === 'int_uniform') {
    if (!Number.isInteger(min))
      issues.push({ path: `${path}.min`, message: 'must be an integer for int_uniform' });
    if (!Number.isInteger(max))
      issues.push({ path: `${path}.max`, message: 'must be an integer for int_uniform' });
    if (min > max) issues.push({ path: `${path}.max`, message: 'empty range: max must be >= min' });
  } else {
    if (def.kind === 'int') {
      issues.push({
        path: `${path}.distribution`,
        message: `'${name}' is an integer: use int_uniform or values`,
      });
    }
    if (min >= max) issues.push({ path: `${path}.max`, message: 'empty range: max must be > min' });
    if (distribution === 'log_uniform' && min <= 0) {
      issues.push({ path: `${path}.min`, message: 'must be > 0 for log_uniform' });
    }
  }
  return issues.length === before ? { kind: 'distribution', distribution, min, max } : undefined;
}

/** Number of trials a grid spec expands to (product of the `values` lengths). */
export function gridSize(parameters: Record<string, ParameterSpec>): number {
  let n = 1;
  for (const p of Object.values(parameters)) if (p.kind === 'values') n *= p.values.length;
  return n;
}

/**
 * Validates a sweep spec given as an object (already parsed JSON/YAML) and fills defaults.
 * @throws SpecValidationError listing every problem with its field path.
 */
export function compileSweepSpec(input: unknown): SweepSpec {
  if (!isRecord(input))
    throw new SpecValidationError([{ path: '', message: 'spec must be a mapping (object)' }]);
  const parsed = rawSpecSchema.safeParse(input);
  if (!parsed.success) {
    // Report parameter problems too when the model and method they depend on are themselves valid.
    const issues = issuesFromZod(parsed.error, input);
    const staged =
      (MODEL_NAMES as unknown[]).includes(input.model) && FAMILIES[input.model as ModelName].staged;
    if (!staged && isRecord(input.budget) && input.budget.steps === undefined)
      issues.push({ path: 'budget.steps', message: 'is required' });
    const method = input.method ?? 'random';
    if (
      (MODEL_NAMES as readonly unknown[]).includes(input.model) &&
      (SEARCH_METHODS as readonly unknown[]).includes(method) &&
      isRecord(input.parameters)
    ) {
      for (const [name, value] of Object.entries(input.parameters)) {
        parseParameter(input.model as ModelName, method as SearchMethod, name, value, issues);
      }
    }
    throw new SpecValidationError(issues);
  }
  const raw = parsed.data;
  const model = raw.model as ModelName;
  const issues: FieldIssue[] = [];
  const parameters: Record<string, ParameterSpec> = {};
  for (const [name, value] of Object.entries(raw.parameters)) {
    const p = parseParameter(model, raw.method, name, value, issues);
    if (p) parameters[name] = p;
  }
  const configurations = checkConfigurations(model, raw.method, raw.configurations, parameters, issues);
  const stages = checkStages(model, raw.stages, issues);
  const stageSteps = stages?.reduce((n, s) => n + s.fade_steps + s.stable_steps, 0);
  if (stageSteps !== undefined && stageSteps > LIMITS.maxSteps) {
    issues.push({
      path: 'stages',
      message: `the stages add up to ${stageSteps} steps; the limit is ${LIMITS.maxSteps}`,
    });
  }
  if (raw.budget.steps === undefined && !FAMILIES[model].staged) {
    issues.push({ path: 'budget.steps', message: 'is required' });
  } else if (raw.budget.steps !== undefined && stageSteps !== undefined && raw.budget.steps !== stageSteps) {
    issues.push({
      path: 'budget.steps',
      message: `must equal the stages' total of fade_steps + stable_steps (${stageSteps}), or be left out`,
    });
  }
  const quality = reportedQualityMetrics(model);
  if (!(STEP_METRICS as readonly string[]).includes(raw.metric.name) && !quality.includes(raw.metric.name)) {
    issues.push({
      path: 'metric.name',
      message: `model ${model} does not report ${raw.metric.name}; it reports ${[...STEP_METRICS, ...quality].join(', ')}`,
    });
  } else if (quality.includes(raw.metric.name)) {
    if (raw.health.eval_every_steps === 0) {
      issues.push({
        path: 'health.eval_every_steps',
        message: `must be > 0 when the sweep's metric is ${raw.metric.name} (it comes from the quality evaluation)`,
      });
    }
  }
  issues.push(
    ...augGainIssues({
      model,
      dataset: raw.dataset,
      metric: raw.metric.name,
      augGain: raw.aug_gain,
      evalEverySteps: raw.health.eval_every_steps,
    }),
  );
  const steps = raw.budget.steps ?? stageSteps ?? 0;
  if (!issues.some((i) => i.path.startsWith('parameters')))
    issues.push(
      ...searchIssues({
        model,
        method: raw.method,
        parameters,
        metricIsQuality: quality.includes(raw.metric.name),
        metricName: raw.metric.name,
        evalEverySteps: raw.health.eval_every_steps,
        steps,
        scheduler: raw.scheduler,
        tpe: raw.tpe,
        warmStart: raw.warm_start,
        replay: raw.replay,
        initFrom: raw.init_from !== undefined,
      }),
    );
  const augGain = raw.aug_gain ?? (raw.metric.name === 'aug_gain' ? DEFAULT_AUG_GAIN : undefined);
  if (issues.length === 0 && raw.method === 'grid') {
    const size = gridSize(parameters);
    if (size > LIMITS.maxTrials) {
      issues.push({
        path: 'parameters',
        message: `grid expands to ${size} trials; the limit is ${LIMITS.maxTrials}`,
      });
    }
  }
  if (issues.length > 0) throw new SpecValidationError(issues);
  return {
    name: raw.name,
    model,
    dataset: raw.dataset,
    method: raw.method,
    metric: { name: raw.metric.name as MetricName, goal: raw.metric.goal },
    seed: raw.seed,
    budget: { ...raw.budget, steps: raw.budget.steps ?? stageSteps! },
    checkpoint: raw.checkpoint,
    parameters,
    configurations,
    health: raw.health,
    ...(raw.init_from ? { init_from: raw.init_from } : {}),
    ...(raw.augment ? { augment: raw.augment } : {}),
    ...(augGain ? { aug_gain: augGain } : {}),
    ...(stages ? { stages } : {}),
    ...(raw.scheduler ? { scheduler: raw.scheduler } : {}),
    ...(raw.method === 'tpe' ? { tpe: raw.tpe ?? tpeSchema.parse({}) } : {}),
    ...(raw.warm_start ? { warm_start: raw.warm_start } : {}),
    ...(raw.replay ? { replay: raw.replay } : {}),
  };
}

/** A stage as written in the spec, before it is checked against the model. */
interface RawStage {
  resolution?: number;
  fade_steps?: number;
  stable_steps?: number;
  phase?: (typeof STAGE_PHASES)[number];
  steps?: number;
  batch_size?: number;
}

/**
 * Checks `stages` against the model: required for staged models, refused for the others. A stage without
 * batch_size takes the trial's `batch_size` parameter, marked 0 here and resolved per trial by
 * {@link jobStage}. Progressive growing's stages start at 4x4 and double in resolution; each after the
 * first fades in (fade_steps defaults to stable_steps), the first has nothing to fade from. A family staged
 * by phase lists its phases in order ({phase, steps}), the first at least (srgan: pretraining alone is
 * SRResNet; the adversarial phase needs a pretrained generator).
 */
function checkStages(
  model: ModelName,
  raw: RawStage[] | undefined,
  issues: FieldIssue[],
): StageSpec[] | undefined {
  const family = FAMILIES[model] as FamilySpec;
  if (!family.staged) {
    if (raw !== undefined)
      issues.push({
        path: 'stages',
        message: `only for staged models (${MODEL_NAMES.filter((m) => FAMILIES[m].staged).join(', ')})`,
      });
    return undefined;
  }
  const phases = family.phases;
  if (raw === undefined) {
    issues.push({
      path: 'stages',
      message: phases
        ? `is required for model '${model}': a list of {phase, steps, batch_size} in the order ${phases.join(', ')}`
        : `is required for model '${model}': a list of {resolution, fade_steps, stable_steps, batch_size} from 4x4 up`,
    });
    return undefined;
  }
  const refuse = (path: string, keys: (keyof RawStage)[], s: RawStage, why: string) => {
    for (const k of keys) if (s[k] !== undefined) issues.push({ path: `${path}.${k}`, message: why });
  };
  if (phases) {
    if (raw.length > phases.length)
      issues.push({ path: 'stages', message: `at most ${phases.length} stages: ${phases.join(', ')}` });
    return raw.map((s, i) => {
      const path = `stages.${i}`;
      const expected = phases[i];
      refuse(
        path,
        ['resolution', 'fade_steps', 'stable_steps'],
        s,
        `not a key of ${model}'s stages (phase, steps, batch_size)`,
      );
      if (s.phase !== expected)
        issues.push({
          path: `${path}.phase`,
          message: `must be ${expected ?? 'absent'}: ${model}'s stages are ${phases.join(', then ')}`,
        });
      if (s.steps === undefined) issues.push({ path: `${path}.steps`, message: 'is required' });
      return { phase: expected, fade_steps: 0, stable_steps: s.steps ?? 1, batch_size: s.batch_size ?? 0 };
    });
  }
  return raw.map((s, i) => {
    const path = `stages.${i}`;
    refuse(
      path,
      ['phase', 'steps'],
      s,
      `not a key of ${model}'s stages (resolution, fade_steps, stable_steps, batch_size)`,
    );
    const expected = 4 * 2 ** i;
    if (s.resolution !== expected) {
      issues.push({
        path: `${path}.resolution`,
        message: `must be ${expected}: stages start at 4x4 and double in resolution`,
      });
    }
    if (s.stable_steps === undefined) issues.push({ path: `${path}.stable_steps`, message: 'is required' });
    if (i === 0 && (s.fade_steps ?? 0) !== 0)
      issues.push({
        path: `${path}.fade_steps`,
        message: 'must be 0: the first stage has nothing to fade from',
      });
    const stable = s.stable_steps ?? 1;
    return {
      resolution: expected,
      fade_steps: i === 0 ? 0 : (s.fade_steps ?? stable),
      stable_steps: stable,
      batch_size: s.batch_size ?? 0,
    };
  });
}

/** Validates `configurations` against `method` and the model; returns the parsed list (empty unless list). */
function checkConfigurations(
  model: ModelName,
  method: SearchMethod,
  raw: Record<string, unknown>[] | undefined,
  parameters: Record<string, ParameterSpec>,
  issues: FieldIssue[],
): Record<string, number>[] {
  if (method !== 'list') {
    if (raw !== undefined) issues.push({ path: 'configurations', message: "only with method 'list'" });
    return [];
  }
  if (raw === undefined || raw.length === 0) {
    issues.push({ path: 'configurations', message: "is required with method 'list': a non-empty list" });
    return [];
  }
  for (const [name, p] of Object.entries(parameters)) {
    if (p.kind !== 'value') {
      issues.push({
        path: `parameters.${name}`,
        message: "with method 'list', parameters hold constants only ({value})",
      });
    }
  }
  const defs = MODEL_PARAMS[model];
  return raw.map((config, i) => {
    const out: Record<string, number> = {};
    for (const [name, value] of Object.entries(config)) {
      const def = defs[name];
      const path = `configurations.${i}.${name}`;
      if (!def) {
        issues.push({
          path,
          message: `unknown parameter for model '${model}'; known: ${Object.keys(defs).join(', ')}`,
        });
        continue;
      }
      const problem = checkParamValue(def, value);
      if (problem) issues.push({ path, message: problem });
      else out[name] = value as number;
    }
    return out;
  });
}

/**
 * Parses a spec from YAML or JSON text (JSON is YAML) and validates it.
 * @throws PayloadTooLargeError past LIMITS.specBytes; SpecValidationError on syntax or content errors.
 */
export function parseSweepSpec(text: string): SweepSpec {
  if (Buffer.byteLength(text, 'utf8') > LIMITS.specBytes)
    throw new PayloadTooLargeError('sweep spec', LIMITS.specBytes);
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100, uniqueKeys: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
    throw new SpecValidationError([
      { path: '', message: `not valid YAML/JSON${where}: ${(err as Error).message}` },
    ]);
  }
  return compileSweepSpec(doc);
}
