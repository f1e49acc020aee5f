/**
 * Names shared by coordinator and workers: the BullMQ queue, Redis keys and object-store keys.
 * Every Redis key starts with the deployment prefix, so tests and deployments can share one Redis.
 */
export const TRIAL_QUEUE = 'trials';
/** Augmentation jobs (README, "GAN data augmentation"): one classifier protocol per job. */
export const AUGMENTATION_QUEUE = 'augmentations';

export function redisKeys(prefix: string) {
  return {
    sweeps: `${prefix}:sweeps`,
    sweep: (id: string) => `${prefix}:sweep:${id}`,
    trial: (id: string) => `${prefix}:trial:${id}`,
    trialHistory: (id: string) => `${prefix}:trial:${id}:history`,
    trialCheckpoints: (id: string) => `${prefix}:trial:${id}:checkpoints`,
    trialSamples: (id: string) => `${prefix}:trial:${id}:samples`,
    /** Staged trials: StageEvent JSON, oldest first. */
    trialStages: (id: string) => `${prefix}:trial:${id}:stages`,
    /** TrialEvent JSON, oldest first. */
    trialEvents: (id: string) => `${prefix}:trial:${id}:events`,
    /** A trial's quality evaluations (QualityPoint JSON), oldest first: what schedulers decide on. */
    trialQuality: (id: string) => `${prefix}:trial:${id}:quality`,
    /** A sweep's search decisions (SearchEvent JSON), in the order they were made. */
    sweepSearch: (id: string) => `${prefix}:sweep:${id}:search`,
    /** An augmentation's record (AugmentationRecord JSON). */
    augmentation: (id: string) => `${prefix}:augmentation:${id}`,
    /** A trial's augmentation ids, oldest first. */
    trialAugmentations: (id: string) => `${prefix}:trial:${id}:augmentations`,
    workers: `${prefix}:workers`,
    /**
     * Trials whose state changed since the scheduler last looked (ids), and `sweep:<id>` for a sweep whose
     * record or trial list changed: what a scheduler pass reads instead of every trial (README, "Scale").
     */
    dirty: `${prefix}:scheduler:dirty`,
    /** The scheduling coordinator's lease: `<epoch>:<coordinator id>`, with a TTL (README, "Scale"). */
    leader: `${prefix}:coordinator:leader`,
    /** Incremented by each coordinator that takes the lease: the epoch that fences its writes. */
    leaderEpoch: `${prefix}:coordinator:epoch`,
    /** Held by the one attempt that trains a data set version's quality classifier for one image shape. */
    qualityLease: (dataset: string, shape: string) => `${prefix}:quality:${dataset}:${shape}`,
    /** Pub/sub channel on which the coordinator announces cancelled trials. */
    control: `${prefix}:control`,
    /** BullMQ's lock key for a job: `<bullPrefix>:<queue>:<jobId>:lock`. */
    jobLock: (jobId: string) => `${prefix}:${TRIAL_QUEUE}:${jobId}:lock`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;

/** Object-store layout of DESIGN.md: `sweeps/<sweepId>/trials/<trialId>/...`. */
export const objectKeys = {
  trialRoot: (sweepId: string, trialId: string) => `sweeps/${sweepId}/trials/${trialId}/`,
  /** Immutable objects of one checkpoint attempt; `writer` keeps two lock holders from colliding. */
  checkpointDir: (sweepId: string, trialId: string, step: number, writer: string) =>
    `sweeps/${sweepId}/trials/${trialId}/checkpoints/${step}/${writer}/`,
  sample: (sweepId: string, trialId: string, step: number) =>
    `sweeps/${sweepId}/trials/${trialId}/samples/${step}.png`,
};

/** The sweep id a trial id starts with (`<sweepId>-t<index>`). */
export function sweepIdOfTrial(trialId: string): string {
  return trialId.replace(/-t\d+$/, '');
}

/** The trial a BullMQ job id names: the id itself, or without its stage (`-s<n>`) or segment (`-k<n>`). */
export function trialIdOfJob(jobId: string): string {
  return jobId.replace(/(-t\d+)-[sk]\d+$/, '$1');
}

/** The id of trial `index` of a sweep: `<sweepId>-t<index, 3 digits>`; safe as a BullMQ job id and in S3 keys. */
export function trialId(sweepId: string, index: number): string {
  return `${sweepId}-t${String(index).padStart(3, '0')}`;
}
