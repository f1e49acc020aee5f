import {
  DEFAULT_HEALTH,
  type Logger,
  type ObjectStore,
  type RedisClient,
  type RedisKeys,
  type TrialJob,
} from '@gantry/shared';
import { UnrecoverableError } from 'bullmq';
import type { DatasetCache } from './data/dataset-cache.ts';
import { qualityTurn } from './quality/quality-lease.ts';
import type { TrialReporter } from './trial-reporter.ts';

/** What an attempt holds before its trainer starts: its data set version on this node, maybe a quality lease. */
export interface AttemptInputs {
  /** The version's folder in the node cache. */
  datasetDir: string;
  /** The trainer has built its evaluator (and stored any classifier it trained): others may go on. */
  trainerReady(): void;
  /** Gives everything back; idempotent. */
  release(): Promise<void>;
}

export interface AttemptInputsOptions {
  job: TrialJob;
  /** Names this attempt (the quality lease's holder). */
  attempt: string;
  redis: RedisClient;
  keys: RedisKeys;
  datasets: DatasetCache;
  objectStore: ObjectStore;
  reporter: TrialReporter;
  signal: AbortSignal;
  log: Logger;
}

/**
 * Fetches the job's data set version into the node cache (once per node), then, when the job evaluates
 * quality and no classifier for its images exists yet, waits for its turn to train one (qualityTurn).
 * A version gone from the store fails the trial for good; other faults leave it queued for a retry.
 */
export async function acquireAttemptInputs(o: AttemptInputsOptions): Promise<AttemptInputs> {
  const d = o.job.dataset;
  let lease: Awaited<ReturnType<DatasetCache['acquire']>>;
  try {
    lease = await o.datasets.acquire(d.name, d.version);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === 'CACHE_FULL') throw err; // the runner gives the job back (a fault of this node)
    if (e.code !== 'OBJECT_NOT_FOUND') {
      await o.reporter.update({ state: 'queued', reason: `data set: ${e.message}` });
      throw err;
    }
    // The version's manifest is gone from the store: no retry brings it back.
    const reason = `data set ${d.name}@${d.version} is not in the object store`;
    await o.reporter.update({ state: 'failed', reason, endedAt: Date.now() });
    throw new UnrecoverableError(reason);
  }
  try {
    // One attempt at a time trains a set's missing quality classifier; the others wait for it here.
    const quality =
      (o.job.health ?? DEFAULT_HEALTH).eval_every_steps > 0
        ? await qualityTurn({
            redis: o.redis,
            key: o.keys.qualityLease(
              `${d.name}@${d.version}`,
              `${d.image_size}x${d.image_size}x${d.channels}`,
            ),
            holder: o.attempt,
            store: o.objectStore,
            dataset: d,
            signal: o.signal,
          })
        : undefined;
    if (quality)
      o.log.info({ dataset: `${d.name}@${d.version}` }, 'this attempt trains the quality classifier');
    let released: Promise<void> | undefined;
    return {
      datasetDir: lease.dir,
      trainerReady: () => void quality?.release(),
      release: () => {
        released ??= (async () => {
          lease.release();
          await quality?.release();
        })();
        return released;
      },
    };
  } catch (err) {
    lease.release();
    throw err;
  }
}
