import { z } from 'zod';
import { InvalidJobPayloadError } from './errors.ts';
import { type HealthConfig, healthSchema } from './health.ts';
import { LIMITS } from './limits.ts';
import { checkParamValue, DATASET_NAMES, MODEL_NAMES, MODEL_PARAMS, type ModelName } from './models.ts';

const idSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,127}$/, 'must be lowercase letters, digits and -');

const trialJobSchema = z.strictObject({
  v: z.literal(1),
  sweepId: idSchema,
  trialId: idSchema,
  index: z.number().int().min(0),
  model: z.enum(MODEL_NAMES),
  dataset: z.enum(DATASET_NAMES),
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
});

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
  for (const name of Object.keys(defs)) {
    if (!(name in job.params)) issues.push({ path: `params.${name}`, message: 'is required' });
  }
  for (const [name, value] of Object.entries(job.params)) {
    const def = defs[name];
    const problem = def ? checkParamValue(def, value) : `unknown parameter for ${job.model}`;
    if (problem) issues.push({ path: `params.${name}`, message: problem });
  }
  if (issues.length > 0) throw new InvalidJobPayloadError(jobId, issues);
  return job;
}
