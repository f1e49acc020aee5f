import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  type AugmentationJob,
  type AugmentationRecord,
  type AugmentationResult,
  type AugmentationStore,
  type Logger,
  type ObjectStoreConfig,
  parseAugmentationJob,
  parseTrialJob,
} from '@gantry/shared';
import { type Job, UnrecoverableError, WaitingError } from 'bullmq';
import type { BackendName } from '../backend.ts';
import type { DatasetCache } from '../data/dataset-cache.ts';
import { TRAINER_NODE_FLAGS } from '../trial-runner.ts';
import type { AugmentChildMessage, AugmentStartMessage } from './ipc.ts';

const AUGMENT_ENTRY = fileURLToPath(new URL('../../bin/gantry-augment.mjs', import.meta.url));

export interface AugmentationRunnerDeps {
  records: AugmentationStore;
  store: ObjectStoreConfig;
  /** How long the child's object-store reads retry through an outage. @default 600000 */
  storeRetryMs?: number;
  backend?: BackendName;
  wasmGemm?: boolean;
  datasets: DatasetCache;
  workerId: string;
  log: Logger;
}

/** The payload, checked, and the trial's job inside it; a bad one fails the record for good. */
async function checkedPayload(job: Job, deps: AugmentationRunnerDeps): Promise<AugmentationJob> {
  try {
    const payload = parseAugmentationJob(job.data, job.id);
    parseTrialJob(payload.trial, job.id);
    return payload;
  } catch (err) {
    const id = (job.data as { augmentationId?: unknown } | undefined)?.augmentationId;
    if (typeof id === 'string')
      await deps.records.update(id, { state: 'failed', error: (err as Error).message, endedAt: Date.now() });
    throw new UnrecoverableError((err as Error).message);
  }
}

/**
 * Runs one attempt of an augmentation job: checks the payload (a bad one never reaches a child), fetches
 * the trial's data set version to this node, runs the protocol in a child process (so this event loop
 * keeps renewing the job's lock) and keeps the record in Redis up to date: running with progress, then
 * completed with the result, or failed. Plain errors (a crashed child, S3 trouble) let BullMQ retry; on
 * shutdown (`signal`) the job goes back to the wait list.
 * @throws UnrecoverableError for a bad payload or a failure retrying cannot change
 */
export async function runAugmentationAttempt(
  job: Job,
  token: string,
  signal: AbortSignal,
  deps: AugmentationRunnerDeps,
): Promise<AugmentationResult> {
  const payload = await checkedPayload(job, deps);
  const id = payload.augmentationId;
  const log = deps.log.child({ augmentationId: id, jobId: job.id, attempt: job.attemptsMade + 1 });
  const update = (fields: Partial<AugmentationRecord>) => deps.records.update(id, fields);
  const started = await update({
    state: 'running',
    worker: deps.workerId,
    startedAt: Date.now(),
    attempts: job.attemptsMade + 1,
    error: undefined,
  });
  if (!started)
    throw new UnrecoverableError(`augmentation ${id} has no record (not queued by a coordinator?)`);
  /** Records a failed attempt: failed for good when retrying cannot help or none is left, else queued. */
  const failed = async (err: Error) => {
    const last = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    await update(
      last
        ? { state: 'failed', error: err.message, endedAt: Date.now() }
        : { state: 'queued', error: `attempt ${job.attemptsMade + 1} failed: ${err.message}` },
    );
    log.warn({ err: err.message, final: last }, 'augmentation attempt failed');
  };
  const { name, version } = payload.trial.dataset as { name: string; version: string };
  let lease: Awaited<ReturnType<DatasetCache['acquire']>>;
  try {
    lease = await deps.datasets.acquire(name, version);
  } catch (err) {
    // A version gone from the store does not come back; other faults (S3, a full cache) may pass.
    const gone = (err as { code?: string }).code === 'OBJECT_NOT_FOUND';
    const e = gone ? new UnrecoverableError(`data set ${name}@${version} is not in the object store`) : err;
    await failed(e as Error);
    throw e;
  }
  const child = fork(AUGMENT_ENTRY, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: TRAINER_NODE_FLAGS,
  });
  const onAbort = () => child.kill('SIGKILL');
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await new Promise<AugmentationResult>((resolve, reject) => {
      let chain = Promise.resolve();
      let outcome: { ok: AugmentationResult } | { err: Error } | undefined;
      child.on('message', (m: AugmentChildMessage) => {
        chain = chain.then(async () => {
          if (m.type === 'ready') log.info({ backend: m.backend, device: m.device }, 'augmentation started');
          else if (m.type === 'progress') await update({ progress: m.progress });
          else if (m.type === 'result') outcome = { ok: m.result };
          else outcome = { err: m.unrecoverable ? new UnrecoverableError(m.message) : new Error(m.message) };
        });
      });
      child.once('error', (err) => {
        outcome ??= { err };
      });
      child.once('exit', (code, sig) => {
        void chain.then(() => {
          if (outcome && 'ok' in outcome) resolve(outcome.ok);
          else if (outcome) reject(outcome.err);
          else reject(new Error(`augmentation process exited (${sig ?? `code ${code}`}) without a result`));
        });
      });
      const start: AugmentStartMessage = {
        type: 'start',
        job: payload,
        store: deps.store,
        storeRetryMs: deps.storeRetryMs ?? 600_000,
        backend: deps.backend,
        wasmGemm: deps.wasmGemm,
        datasetDir: lease.dir,
      };
      child.send(start);
    });
    await update({ state: 'completed', result, progress: undefined, endedAt: Date.now() });
    log.info({ seconds: result.seconds }, 'augmentation completed');
    return result;
  } catch (err) {
    if (signal.aborted) {
      // Shutdown: another worker (or this one, restarted) runs it from the start.
      await update({ state: 'queued', progress: undefined, error: 'worker shut down; queued again' });
      await job.moveToWait(token);
      throw new WaitingError();
    }
    await failed(err as Error);
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    lease.release();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
