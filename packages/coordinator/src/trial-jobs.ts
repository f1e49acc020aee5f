import {
  DEFAULT_HEALTH,
  jobInitFrom,
  jobStage,
  pinnedDatasetSchema,
  segmentJobId,
  type TrialJob,
  type TrialRecord,
  trialJobId,
} from '@gantry/shared';
import type { StoredSweep } from './sweep-store.ts';

/**
 * The job of trial `t` of `sweep` as the scheduler queues it, and as an inference process rebuilds the
 * trial's generator from: the stored spec and the trial, every parameter resolved; for a staged model the
 * job of stage `stage`.
 */
export function trialJob(sweep: StoredSweep, t: TrialRecord, stage = 0): TrialJob {
  const { stages } = sweep.spec;
  const job: TrialJob = {
    v: 2,
    sweepId: sweep.id,
    trialId: t.id,
    index: t.index,
    model: sweep.spec.model,
    // Pinned when the sweep was accepted (a sweep stored before data sets were versioned fails here).
    dataset: pinnedDatasetSchema.parse(sweep.spec.dataset),
    seed: t.seed,
    steps: sweep.spec.budget.steps,
    checkpointEvery: sweep.spec.checkpoint.every_steps,
    params: t.params,
    // Sweeps stored before health settings existed run with the defaults.
    health: sweep.spec.health ?? DEFAULT_HEALTH,
    ...(sweep.spec.augment ? { augment: sweep.spec.augment } : {}),
    ...(sweep.spec.aug_gain ? { augGain: sweep.spec.aug_gain } : {}),
  };
  const initFrom = jobInitFrom(sweep.spec.init_from);
  if (initFrom) job.initFrom = initFrom;
  if (stages) job.stage = jobStage(stages, stage, t.params);
  if (t.segment !== undefined) job.segment = t.segment;
  if (t.segment !== undefined && t.until !== undefined) job.until = t.until;
  return job;
}

/** The BullMQ job id of the job the coordinator queued last for `t`: its stage's, its segment's, or its own. */
export function jobIdOf(t: Pick<TrialRecord, 'id' | 'jobStage' | 'segment'>): string {
  return t.segment !== undefined ? segmentJobId(t.id, t.segment) : trialJobId(t.id, t.jobStage);
}
