import { z } from 'zod';
import { augGainSchema } from './aug-gain.ts';
import { pinnedDatasetSchema } from './dataset.ts';
import { augmentSchema } from './diff-augment.ts';
import { InvalidJobPayloadError } from './errors.ts';
import { FAMILIES, MODEL_NAMES, MODEL_PARAMS, type ModelName } from './families.ts';
import { type HealthConfig, healthSchema } from './health.ts';
import { jobInitFromSchema } from './init-from.ts';
import { trialId } from './keys.ts';
import { LIMITS } from './limits.ts';
import { checkParamValue, STAGE_PHASES, STAGE_RESOLUTIONS, type StageSpec } from './models.ts';

const idSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,127}$/, 'must be lowercase letters, digits and -');

const trialJobSchema = z.strictObject({
  /** 2: the data set is a pinned version in the object store (1 named a built-in set). */
  v: z.literal(2),
  sweepId: idSchema,
  trialId: idSchema,
  index: z.number().int().min(0),
  model: z.enum(MODEL_NAMES as [ModelName, ...ModelName[]]),
  dataset: pinnedDatasetSchema,
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1),
  steps: z.number().int().min(1).max(LIMITS.maxSteps),
  checkpointEvery: z.number().int().min(1).max(LIMITS.maxSteps),
  params: z.record(z.string(), z.number()),
  /** Health watching of the trial; absent in jobs from before it existed, which get the defaults. */
  health: healthSchema,
  /** Warm start (the spec's init_from, resolved): taken by a trial without a checkpoint of its own. */
  initFrom: jobInitFromSchema.optional(),
  /** DiffAugment in D's loss (README, "DiffAugment"); absent: none, as in jobs from before it existed. */
  augment: augmentSchema.optional(),
  /** The spec's aug_gain (aug-gain.ts): measured at the last evaluation; absent: not measured. */
  augGain: augGainSchema.optional(),
  /**
   * A segment of a trial trained in segments (README, "Adaptive search"): the job trains up to this global
   * step, checkpoints and evaluates there, and pauses the trial (state queued, `pausedAt`) for the
   * coordinator to decide what comes next. Absent: the job trains to `steps`.
   */
  until: z.number().int().min(1).max(LIMITS.maxSteps).optional(),
  /** The segment this job trains (its job id's `-k<segment>`): a superseded one trains nothing. */
  segment: z.number().int().min(0).max(100_000).optional(),
  /** Staged models: the one stage this job trains. */
  stage: z
    .strictObject({
      index: z.number().int().min(0),
      count: z.number().int().min(1),
      /** Progressive growing: the stage's resolution. */
      resolution: z
        .number()
        .refine((r) => (STAGE_RESOLUTIONS as readonly number[]).includes(r), {
          message: `must be one of ${STAGE_RESOLUTIONS.join(', ')}`,
        })
        .optional(),
      /** A family staged by phase: the stage's phase. */
      phase: z.enum(STAGE_PHASES).optional(),
      fade_steps: z.number().int().min(0),
      stable_steps: z.number().int().min(1),
      batch_size: z.number().int().min(1).max(1024),
      /** Global step at which the stage begins (steps count on across stages). */
      start_step: z.number().int().min(0),
    })
    .optional(),
});

/** The stage a staged job trains: its place in the trial, its resolution, steps and batch size. */
export type JobStage = NonNullable<z.infer<typeof trialJobSchema>['stage']>;

/** Last global step of a stage (exclusive). */
export function stageEnd(stage: JobStage): number {
  return stage.start_step + stage.fade_steps + stage.stable_steps;
}

/**
 * Fade-in factor at global step `step` (the number of steps already taken) of `stage`: rises linearly from
 * 0 to 1 over the fade steps, then stays 1; always 1 in a stage without fade.
 */
export function stageAlpha(stage: JobStage, step: number): number {
  if (stage.fade_steps === 0) return 1;
  return Math.min(1, Math.max(0, (step - stage.start_step) / stage.fade_steps));
}

/** The job stage `index` of a trial with `params`, from the spec's stages (a batch size of 0 = the trial's). */
export function jobStage(
  stages: readonly StageSpec[],
  index: number,
  params: Record<string, number>,
): JobStage {
  const s = stages[index];
  if (!s) throw new Error(`no stage ${index} (the spec has ${stages.length})`);
  let start = 0;
  for (const earlier of stages.slice(0, index)) start += earlier.fade_steps + earlier.stable_steps;
  return {
    index,
    count: stages.length,
    ...(s.resolution !== undefined ? { resolution: s.resolution } : {}),
    ...(s.phase !== undefined ? { phase: s.phase } : {}),
    fade_steps: s.fade_steps,
    stable_steps: s.stable_steps,
    batch_size: s.batch_size > 0 ? s.batch_size : (params.batch_size ?? 64),
    start_step: start,
  };
}

/**
 * The BullMQ job id of a trial's job: the trial id, or `<trialId>-s<stage>` for a stage of a staged trial,
 * so that each stage is a job of its own and adding one twice is a no-op.
 */
export function trialJobId(trialId: string, stage?: number): string {
  return stage === undefined ? trialId : `${trialId}-s${stage}`;
}

/** The BullMQ job id of segment `segment` of a trial trained in segments: `<trialId>-k<segment>`. */
export function segmentJobId(trialId: string, segment: number): string {
  return `${trialId}-k${segment}`;
}

/** What the coordinator puts in a BullMQ job and a worker trains: one trial, every parameter resolved. */
export type TrialJob = Omit<z.infer<typeof trialJobSchema>, 'health'> & {
  model: ModelName;
  /** Filled with the defaults by parseTrialJob when absent. */
  health?: HealthConfig;
};

/**
 * Validates a job payload as read by a worker, including each parameter against the model's definition.
 * @throws InvalidJobPayloadError naming the field.
 */
export function parseTrialJob(data: unknown, jobId?: string): TrialJob {
  const parsed = trialJobSchema.safeParse(data);
  if (!parsed.success) {
    throw new InvalidJobPayloadError(
      jobId,
      parsed.error.issues.flatMap((i) =>
        i.code === 'unrecognized_keys'
          ? i.keys.map((k) => ({ path: [...i.path, k].map(String).join('.'), message: 'unknown key' }))
          : [{ path: i.path.map(String).join('.'), message: i.message }],
      ),
    );
  }
  const job = parsed.data;
  const defs = MODEL_PARAMS[job.model];
  const issues = [];
  // The trial's id names its Redis keys and object-store folder: it must be one of this sweep's trials.
  if (job.trialId !== trialId(job.sweepId, job.index))
    issues.push({
      path: 'trialId',
      message: `must be ${trialId(job.sweepId, job.index)} (trial ${job.index} of ${job.sweepId})`,
    });
  for (const name of Object.keys(defs)) {
    if (!(name in job.params)) issues.push({ path: `params.${name}`, message: 'is required' });
  }
  // Keys the schema's copy cannot hold (`__proto__`) are checked on the payload as sent.
  const sent = (data as { params?: object }).params ?? {};
  for (const name of Object.keys(sent)) {
    if (!Object.hasOwn(job.params, name))
      issues.push({ path: `params.${name}`, message: 'not a parameter name' });
  }
  for (const [name, value] of Object.entries(job.params)) {
    const def = defs[name];
    const problem = def ? checkParamValue(def, value) : `unknown parameter for ${job.model}`;
    if (problem) issues.push({ path: `params.${name}`, message: problem });
  }
  const staged = FAMILIES[job.model].staged;
  if (staged && !job.stage) issues.push({ path: 'stage', message: `is required for model ${job.model}` });
  if (!staged && job.stage)
    issues.push({ path: 'stage', message: `only for staged models, not ${job.model}` });
  if (staged && job.stage) {
    const st = job.stage;
    if (st.index >= st.count)
      issues.push({ path: 'stage.index', message: `must be < stage.count (${st.count})` });
    if (st.index === 0 && st.fade_steps !== 0)
      issues.push({ path: 'stage.fade_steps', message: 'must be 0 in the first stage' });
    if (stageEnd(st) > job.steps)
      issues.push({ path: 'stage', message: `ends after the trial's ${job.steps} steps` });
  }
  if (job.until !== undefined && job.until >= job.steps)
    issues.push({ path: 'until', message: `must be below steps (${job.steps})` });
  if (job.until !== undefined && job.stage) issues.push({ path: 'until', message: 'not for staged jobs' });
  if (issues.length > 0) throw new InvalidJobPayloadError(jobId, issues);
  return job;
}
