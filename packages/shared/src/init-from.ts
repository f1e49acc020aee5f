import { z } from 'zod';
import { LIMITS } from './limits.ts';

/** The networks a warm start can take from a checkpoint. */
export const WARM_NETS = ['g', 'd'] as const;
export type WarmNet = (typeof WARM_NETS)[number];

/**
 * A spec's `init_from`: every trial starts from a committed checkpoint of another trial (fine-tuning on a
 * new set, transfer between sets) instead of its random initialisation.
 */
export interface InitFrom {
  /** The trial whose checkpoint the weights come from. */
  trial: string;
  /** Its committed checkpoint's step; absent: the trial's latest (the coordinator pins it on submit). */
  step?: number;
  /** The networks taken from the checkpoint; the others keep their fresh initialisation. @default ['g', 'd'] */
  nets: WarmNet[];
  /**
   * Pinned by the coordinator when it accepts the sweep, never written in a spec: the checkpoint itself
   * (its tensors were checked against every trial's networks).
   */
  source?: { sweepId: string; manifestKey: string };
}

const trialIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,127}$/, "must be a trial id (lowercase letters, digits and '-')");

const netsSchema = z
  .array(z.enum(WARM_NETS, { message: `must be ${WARM_NETS.join(' or ')}` }), {
    message: `must be a list of networks: ${WARM_NETS.join(', ')}`,
  })
  .min(1, 'must name at least one network (g, d)')
  .superRefine((nets, ctx) => {
    nets.forEach((n, i) => {
      if (nets.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `'${n}' listed twice` });
    });
  });

/** `init_from` as written in a spec; the coordinator resolves and checks the checkpoint on submit. */
export const initFromSchema = z.strictObject({
  trial: trialIdSchema,
  step: z
    .number()
    .int('must be an integer')
    .min(0, 'must be >= 0')
    .max(LIMITS.maxSteps, `must be <= ${LIMITS.maxSteps}`)
    .optional(),
  nets: netsSchema.default([...WARM_NETS]),
});

/**
 * A trial job's warm start, resolved by the coordinator: the source trial's checkpoint and the networks to
 * take from it. A trial that has a checkpoint of its own resumes that one instead.
 */
export const jobInitFromSchema = z.strictObject({
  sweepId: trialIdSchema,
  trialId: trialIdSchema,
  step: z.number().int().min(0).max(LIMITS.maxSteps),
  manifestKey: z.string().min(1).max(1024),
  nets: netsSchema,
});
export type JobInitFrom = z.infer<typeof jobInitFromSchema>;

/** The job's warm start from a spec's pinned `init_from`, or undefined when it has none (or is unpinned). */
export function jobInitFrom(init: InitFrom | undefined): JobInitFrom | undefined {
  if (!init?.source || init.step === undefined) return undefined;
  return {
    sweepId: init.source.sweepId,
    trialId: init.trial,
    step: init.step,
    manifestKey: init.source.manifestKey,
    nets: init.nets,
  };
}
