import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  type CheckpointRef,
  decodeTrial,
  type FaultInjector,
  type HealthDetection,
  type JobStage,
  type Logger,
  type ObjectStore,
  type ObjectStoreConfig,
  parseTrialJob,
  type RedisClient,
  type RedisKeys,
  type StageEvent,
  stageAlpha,
  TERMINAL_TRIAL_STATES,
  type TrialEvent,
  type TrialHealth,
  type TrialJob,
  type TrialMetrics,
  type TrialQuality,
  type TrialRecord,
  type TrialStage,
} from '@gantry/shared';
import { type Job, UnrecoverableError, WaitingError } from 'bullmq';
import { acquireAttemptInputs } from './attempt-inputs.ts';
import type { BackendName } from './backend.ts';
import type { DatasetCache } from './data/dataset-cache.ts';
import type { ChildMessage, ParentMessage, TrainerChild, TrainerLauncher } from './ipc.ts';
import type { WorkerMetrics } from './metrics.ts';
import { resumeCandidates } from './resume-candidates.ts';
import { type FenceResult, TrialReporter } from './trial-reporter.ts';

/**
 * V8 flags of trainer processes. A step makes ~550 tfjs kernel calls, each leaving short-lived JS objects;
 * a 64 MiB young generation (default 16) makes scavenges rarer. Measured on the 2-core dev machine, DCGAN
 * at batch 32 (base_filters 32), 100 steps, 4 alternating runs: 104.7-120.9 ms/step without, 95.7-107.0
 * with (about 10% faster), for ~100 MB more resident memory per trainer.
 */
export const TRAINER_NODE_FLAGS = ['--max-semi-space-size=64'];

const TRAINER_ENTRY = fileURLToPath(new URL('../bin/gantry-trainer.mjs', import.meta.url));

/**
 * A staged trial's stage record for this job's stage: its fade-in `alpha` and how many stages are `done`.
 * After a stage ends the record stays on it (done = index + 1) until the next stage's job starts and writes
 * its own: the queue side knows no stage but the one its job trains.
 */
function stageRecord(stage: JobStage, alpha: number, done: number): TrialStage {
  return {
    index: stage.index,
    count: stage.count,
    ...(stage.resolution !== undefined ? { resolution: stage.resolution } : {}),
    ...(stage.phase ? { phase: stage.phase } : {}),
    alpha,
    done,
  };
}

/** Why a running attempt is being stopped from outside. */
export type AbortReason = 'cancel' | 'shutdown';

/** Detections kept on a trial record (the newest). */
const MAX_DETECTIONS = 50;

export interface TrialRunnerDeps {
  redis: RedisClient;
  keys: RedisKeys;
  store: ObjectStoreConfig;
  workerId: string;
  backend?: BackendName;
  /** On `wasm`, whether the trainer uses Gantry's matrix product. @default true */
  wasmGemm?: boolean;
  /** The node's data set copies: a trial's version is fetched (once per node) before its trainer starts. */
  datasets: DatasetCache;
  /** This worker's client of the object store (quality classifiers kept beside data set versions). */
  objectStore: ObjectStore;
  metrics: WorkerMetrics;
  log: Logger;
  /** @default 10 */
  progressEvery?: number;
  /** Fault injection for tests (see GantryConfig.worker.faultNanAtStep). */
  faultNanAtStep?: number;
  /** GPU this attempt's trainer process may use (its CUDA_VISIBLE_DEVICES); none on CPU backends. */
  gpu?: string;
  /** How long a stopping child may take to checkpoint before it is killed. @default 120000 */
  stopTimeoutMs?: number;
  /** How long the trainer's object-store operations retry through an outage. @default 600000 */
  storeRetryMs?: number;
  /** Fault injection (tests): see GantryConfig.faultKillAt (`before-done`). */
  faults?: FaultInjector;
  /** Told when an attempt hit a fault of this node (a full data set cache) and gave its job back. */
  onNodeFault?: (reason: string) => void;
  /** Starts the attempt's trainer. @default forks `gantry-trainer` (the scale simulation fakes it) */
  launchTrainer?: TrainerLauncher;
}

/** The real trainer: a child process of its own, so that a synchronous step never blocks lock renewal. */
export const forkTrainer: TrainerLauncher = (env) =>
  fork(TRAINER_ENTRY, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: TRAINER_NODE_FLAGS,
    env,
  });

export interface TrialOutcome {
  /**
   * `stage-completed`: a stage of a staged trial that is not its last; the coordinator queues the next.
   * `paused`: a segment's job (`until`) ended at its step; the coordinator decides what comes next.
   * `stopped`: by a health rule, or by the coordinator (a scheduler) while the attempt ran.
   */
  state: 'completed' | 'stage-completed' | 'paused' | 'cancelled' | 'stopped';
  step: number;
  summary?: Record<string, number>;
}

/**
 * Runs one attempt of a trial job: validates the payload, resumes from the trial's latest committed
 * checkpoint, trains in a child process, and relays progress and checkpoints to Redis through fenced
 * writes. Throws UnrecoverableError for invalid payloads, divergence and corrupt checkpoints (no retry);
 * plain errors (crashed child, S3 or Redis trouble) let BullMQ retry with backoff; on shutdown the job
 * goes back to the wait list after a checkpoint.
 */
export async function runTrialAttempt(
  job: Job,
  token: string,
  signal: AbortSignal,
  deps: TrialRunnerDeps,
): Promise<TrialOutcome> {
  const jobId = job.id ?? '';
  const trialIdGuess = typeof job.data?.trialId === 'string' ? job.data.trialId : jobId;
  const early = new TrialReporter(deps.redis, deps.keys, jobId, token, trialIdGuess);
  let payload: TrialJob;
  try {
    payload = parseTrialJob(job.data, jobId);
  } catch (err) {
    await early.update({ state: 'failed', reason: (err as Error).message, endedAt: Date.now() });
    throw new UnrecoverableError((err as Error).message);
  }
  const { sweepId, trialId } = payload;
  const log = deps.log.child({ sweepId, trialId, jobId, attempt: job.attemptsMade + 1 });
  const reporter = new TrialReporter(deps.redis, deps.keys, jobId, token, trialId);
  const trial = decodeTrial(await deps.redis.hgetall(deps.keys.trial(trialId)));
  // Ended from outside (cancelled by a user, stopped by a scheduler): nothing to train, nothing to write.
  if (trial?.state === 'cancelled' || trial?.state === 'stopped')
    return { state: trial.state, step: trial.step };
  // A segment job the coordinator has moved past (a stalled attempt BullMQ gave out again after the pause was
  // written and the next segment queued), or of a trial that has ended: it must not write over the trial.
  if (
    payload.segment !== undefined &&
    trial &&
    (trial.segment !== payload.segment || TERMINAL_TRIAL_STATES.has(trial.state))
  ) {
    log.info(
      { segment: payload.segment, current: trial.segment, state: trial.state },
      'segment superseded; nothing to train',
    );
    return { state: 'paused', step: trial.step };
  }
  const { stage } = payload;
  if (stage && trial?.stage && trial.stage.done > stage.index) {
    // Finished before (its end was recorded, then the attempt died before the job completed): never retrain.
    log.info({ stage: stage.index }, 'stage already finished; nothing to train');
    return { state: 'stage-completed', step: trial.step };
  }
  // The coordinator ended the trial while this attempt ran (its writes were refused, or it was told to
  // stop): a scheduler stops a trial the way a user cancels one, and the trial's state says which it was.
  const endedFromOutside = async (step: number): Promise<TrialOutcome> => {
    const state = await deps.redis.hget(deps.keys.trial(trialId), 'state');
    return { state: state === 'stopped' ? 'stopped' : 'cancelled', step };
  };
  const resume = trial?.latestCheckpoint;
  const resumeStep = resume?.step ?? 0;
  if (payload.until !== undefined && resume && resumeStep >= payload.until) {
    // The segment was trained and checkpointed before (the attempt died before the job completed, maybe
    // before the pause was written): never retrain, pause again.
    log.info({ until: payload.until, step: resumeStep }, 'segment already trained; pausing again');
    const res = await reporter.update(pauseFields(resumeStep));
    if (res === 'lock-lost') throw new Error(`trial ${trialId}: lock lost before the pause`);
    return res === 'ok' ? { state: 'paused', step: resumeStep } : endedFromOutside(resumeStep);
  }
  const attempt = job.attemptsMade + 1;
  const attemptEvent = (
    event: TrialEvent['event'],
    step: number,
    extra: Partial<TrialEvent> = {},
  ): TrialEvent => ({
    event,
    attempt,
    worker: deps.workerId,
    step,
    t: Date.now(),
    ...extra,
  });
  const stageEvent = (event: StageEvent['event'], step: number): StageEvent | undefined =>
    stage && {
      stage: stage.index,
      ...(stage.resolution !== undefined ? { resolution: stage.resolution } : {}),
      ...(stage.phase ? { phase: stage.phase } : {}),
      event,
      step,
      worker: deps.workerId,
      attempt: job.attemptsMade + 1,
      t: Date.now(),
    };

  const started = await reporter.update(
    {
      state: 'running',
      worker: deps.workerId,
      startedAt: Date.now(),
      resumedFrom: resumeStep,
      reason: '',
      ...(stage ? { stage: stageRecord(stage, stageAlpha(stage, resumeStep), stage.index) } : {}),
    },
    {
      increment: 'attempts',
      stageEvent: stageEvent('start', resumeStep),
      event: attemptEvent('start', resumeStep),
    },
  );
  if (started === 'cancelled') return endedFromOutside(trial?.step ?? 0);
  if (started === 'missing')
    throw new UnrecoverableError(`trial ${trialId} does not exist (job not created by a coordinator?)`);
  if (started !== 'ok') throw new Error(`trial ${trialId}: lock lost before start`);
  log.info(
    {
      resumeFrom: resumeStep,
      ...(stage ? { stage: stage.index, resolution: stage.resolution, phase: stage.phase } : {}),
    },
    resume ? 'resuming trial from checkpoint' : 'starting trial',
  );

  let inputs: Awaited<ReturnType<typeof acquireAttemptInputs>>;
  try {
    inputs = await acquireAttemptInputs({
      job: payload,
      attempt: `${deps.workerId}:${jobId}:${attempt}`,
      redis: deps.redis,
      keys: deps.keys,
      datasets: deps.datasets,
      objectStore: deps.objectStore,
      reporter,
      signal,
      log,
    });
  } catch (err) {
    if ((err as { code?: string }).code !== 'CACHE_FULL') throw err;
    // A fault of this node, not of the trial: the job goes back to the queue without using an attempt, and
    // this worker stops taking jobs for a while (another worker takes it).
    const reason = `worker ${deps.workerId}: ${(err as Error).message}`;
    log.error({ err: (err as Error).message }, 'node fault: giving the trial back to the queue');
    await reporter.update(
      { state: 'queued', reason: `${reason}; given back to the queue` },
      { event: attemptEvent('gave-back', resumeStep, { reason }) },
    );
    deps.onNodeFault?.(reason);
    await job.moveToWait(token);
    throw new WaitingError();
  }
  const env = deps.gpu === undefined ? process.env : { ...process.env, CUDA_VISIBLE_DEVICES: deps.gpu };
  const child = (deps.launchTrainer ?? forkTrainer)(env);
  const send = (m: ParentMessage) => {
    if (child.connected) child.send(m);
  };
  // The trainer is ready once its evaluator is built, any classifier it trained stored.
  child.on('message', (m: ChildMessage) => {
    if (m.type === 'ready') inputs.trainerReady();
  });
  let stopReason: AbortReason | 'lock-lost' | undefined;
  const stop = (reason: AbortReason | 'lock-lost') => {
    if (stopReason) return;
    stopReason = reason;
    log.info({ reason }, 'stopping trainer');
    send({ type: 'stop', checkpoint: reason === 'shutdown' });
    if (child.exitCode !== null || child.signalCode !== null) return; // it ended meanwhile
    const timer = setTimeout(() => child.kill('SIGKILL'), deps.stopTimeoutMs ?? 120_000);
    child.once('exit', () => clearTimeout(timer));
  };
  const onAbort = () => stop((signal.reason as AbortReason) ?? 'shutdown');
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });

  // The step this attempt's trainer last reported (its `failed` event says how far it got).
  const reached = { step: resumeStep };
  const committed = (await deps.redis.lrange(deps.keys.trialCheckpoints(trialId), 0, -1)).map(
    (s) => JSON.parse(s) as CheckpointRef,
  );
  try {
    const outcome = await superviseChild({
      child,
      job: payload,
      resume: resumeCandidates(resume, committed, trial?.health, stage?.start_step ?? 0),
      health: trial?.health ?? { restarts: 0, detections: [] },
      deps,
      reporter,
      log,
      stop,
      send,
      stageEvent,
      attemptEvent,
      datasetDir: inputs.datasetDir,
      reached,
    });
    // A trial that finished before the stop reached its trainer is done, whatever the reason for stopping.
    if (outcome.state !== 'cancelled') return outcome;
    if (stopReason === 'shutdown') {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    if (stopReason === 'cancel') return await endedFromOutside(outcome.step);
    if (stopReason === 'lock-lost')
      throw new Error(`trial ${trialId}: lost the job lock; another worker holds it`);
    return outcome;
  } catch (err) {
    if (err instanceof UnrecoverableError || err instanceof WaitingError || stopReason === 'lock-lost')
      throw err;
    const reason = (err as Error).message;
    await reporter.update(
      { state: 'queued', reason: `attempt ${attempt} failed: ${reason}` },
      { event: attemptEvent('failed', reached.step, { reason }) },
    );
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await inputs.release();
    deps.metrics.forget(sweepId, trialId);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** The fields of a trial paused at `step` by its segment's job (it waits for the coordinator's next job). */
function pauseFields(step: number): Partial<TrialRecord> {
  return { state: 'queued', step, pausedAt: step, reason: `paused at step ${step}` };
}

/**
 * The outcome of an attempt whose last write returned `res`: `outcome`, unless the coordinator had ended
 * the trial (cancelled or stopped) and refused the write; runTrialAttempt then says which it was.
 */
function unlessEnded(res: FenceResult, outcome: TrialOutcome): TrialOutcome {
  return res === 'cancelled' ? { state: 'cancelled', step: outcome.step } : outcome;
}

/** One attempt's trainer child and what relaying its messages needs. */
interface Supervised {
  child: TrainerChild;
  job: TrialJob;
  /** Checkpoints to resume from, best first. */
  resume: CheckpointRef[];
  health: TrialHealth;
  deps: TrialRunnerDeps;
  reporter: TrialReporter;
  log: Logger;
  stop: (reason: 'lock-lost' | 'cancel') => void;
  send: (m: ParentMessage) => void;
  stageEvent: (event: StageEvent['event'], step: number) => StageEvent | undefined;
  attemptEvent: (event: TrialEvent['event'], step: number, extra?: Partial<TrialEvent>) => TrialEvent;
  datasetDir: string;
  /** Updated with each progress report. */
  reached: { step: number };
}

function superviseChild(a: Supervised): Promise<TrialOutcome> {
  const {
    child,
    job,
    resume,
    health,
    deps,
    reporter,
    log,
    stop,
    send,
    stageEvent,
    attemptEvent,
    datasetDir,
  } = a;
  let lastQuality: TrialQuality | undefined;
  const doneEvent = (step: number): StageEvent | undefined => {
    const e = stageEvent('done', step);
    return e && lastQuality?.step === step ? { ...e, quality: lastQuality } : e;
  };
  deps.metrics.startTrial(job.sweepId, job.trialId, health.restarts);
  const { stage } = job;
  if (stage) deps.metrics.startStage(job.sweepId, job.trialId, stage.index, stage.resolution, 0);
  const lastStage = !stage || stage.index === stage.count - 1;
  const stageFields = (alpha: number, done: number): Partial<TrialRecord> =>
    stage ? { stage: stageRecord(stage, alpha, done) } : {};
  return new Promise<TrialOutcome>((resolve, reject) => {
    let settled: { ok: TrialOutcome } | { err: Error } | undefined;
    let failure: string | undefined;
    // Messages are handled strictly in order, so a 'done' can't overtake the last checkpoint commit.
    let chain = Promise.resolve();
    const fenced = (res: string) => {
      if (res === 'cancelled') stop('cancel');
      else if (res === 'lock-lost') stop('lock-lost');
    };

    const handle = async (m: ChildMessage): Promise<void> => {
      switch (m.type) {
        case 'ready':
          log.info(
            {
              backend: m.backend,
              device: m.device,
              startStep: m.startStep,
              // Process start to ready, ms, and how it loaded (bench/startup.ts decomposes it).
              ...(m.startup
                ? { startupMs: Math.round(m.startup.marks.ready ?? 0), entry: m.startup.entry }
                : {}),
            },
            'trainer ready',
          );
          return;
        case 'progress': {
          deps.metrics.observe(job.sweepId, job.trialId, m);
          a.reached.step = m.step;
          const point: TrialMetrics = { ...m, t: Date.now(), worker: deps.workerId };
          delete (point as Partial<{ type: string }>).type;
          const fields: Partial<TrialRecord> = { step: m.step, metrics: point };
          if (stage) Object.assign(fields, stageFields(m.alpha ?? 1, stage.index));
          fenced(await reporter.update(fields, { history: point }));
          return;
        }
        case 'checkpoint': {
          const res = await reporter.commitCheckpoint(
            {
              step: m.step,
              manifestKey: m.manifestKey,
              worker: deps.workerId,
              t: Date.now(),
              restarts: m.restarts,
            },
            m.sampleKey,
            m.resolution,
          );
          log.info({ step: m.step, result: res }, 'checkpoint commit');
          send({ type: 'commit-result', step: m.step, ok: res === 'ok' });
          fenced(res);
          return;
        }
        case 'done': {
          if (!lastStage && stage) {
            // The trial waits in the queue for its next stage's job, which the coordinator adds.
            const res = await reporter.update(
              {
                state: 'queued',
                step: m.step,
                reason: '',
                ...stageFields(1, stage.index + 1),
              },
              { stageEvent: doneEvent(m.step) },
            );
            fenced(res);
            log.info({ stage: stage.index, step: m.step }, 'stage finished');
            settled = {
              ok: unlessEnded(res, { state: 'stage-completed', step: m.step, summary: m.summary }),
            };
            return;
          }
          deps.faults?.point('before-done');
          const res = await reporter.update(
            {
              state: 'completed',
              step: m.step,
              summary: m.summary,
              endedAt: Date.now(),
              reason: '',
              ...(stage ? stageFields(1, stage.count) : {}),
            },
            { stageEvent: doneEvent(m.step), event: attemptEvent('done', m.step) },
          );
          fenced(res);
          settled = { ok: unlessEnded(res, { state: 'completed', step: m.step, summary: m.summary }) };
          return;
        }
        case 'paused': {
          // After the checkpoint's commit and the evaluation's report (messages are handled in order).
          const res = await reporter.update(pauseFields(m.step));
          fenced(res);
          log.info({ step: m.step, result: res }, 'segment finished; trial paused');
          settled = { ok: unlessEnded(res, { state: 'paused', step: m.step }) };
          return;
        }
        case 'eval':
          lastQuality = m.quality;
          deps.metrics.observeQuality(job.sweepId, job.trialId, m.quality);
          fenced(await reporter.update({ quality: m.quality }, { quality: { ...m.quality, t: Date.now() } }));
          return;
        case 'health': {
          const detection: HealthDetection = { ...m.detection, t: Date.now() };
          if (detection.action === 'restart') health.restarts += 1;
          health.detections = [...health.detections, detection].slice(-MAX_DETECTIONS);
          deps.metrics.observeDetection(job.sweepId, job.trialId, detection, health.restarts);
          const fields: Partial<TrialRecord> = { health };
          if (detection.action === 'restart') fields.step = detection.restartFrom;
          log.warn(
            {
              detector: detection.detector,
              step: detection.step,
              action: detection.action,
              restartFrom: detection.restartFrom,
            },
            `health: ${detection.reason}`,
          );
          fenced(await reporter.update(fields));
          return;
        }
        case 'halted':
          fenced(
            await reporter.update({ state: 'stopped', step: m.step, reason: m.reason, endedAt: Date.now() }),
          );
          settled = { ok: { state: 'stopped', step: m.step } };
          return;
        case 'diverged':
          await reporter.update({ state: 'diverged', step: m.step, reason: m.reason, endedAt: Date.now() });
          settled = { err: new UnrecoverableError(m.reason) };
          return;
        case 'stopped':
          settled = { ok: { state: 'cancelled', step: m.step } };
          return;
        case 'note':
          log.info({ note: m.message }, 'trainer');
          return;
        case 'fallback': {
          const to = m.to?.step ?? 0;
          log.warn(
            { from: m.from.step, to, reason: m.reason },
            'checkpoint unusable; resuming from an older one',
          );
          fenced(
            await reporter.rewindCheckpoint(
              m.from,
              m.to,
              attemptEvent('fallback', to, { from: m.from.step, reason: m.reason }),
            ),
          );
          return;
        }
        case 'warm-start':
          log.info({ initFrom: m.from }, "warm start: networks from another trial's checkpoint");
          fenced(await reporter.update({}, { event: attemptEvent('init', 0, { initFrom: m.from }) }));
          return;
        case 'failed':
          failure = m.message;
          if (m.unrecoverable) {
            await reporter.update({ state: 'failed', reason: m.message.split('\n')[0], endedAt: Date.now() });
            settled = { err: new UnrecoverableError(m.message.split('\n')[0] ?? 'trainer failed') };
          }
          return;
      }
    };

    child.on('message', (m: ChildMessage) => {
      chain = chain
        .then(() => handle(m))
        .catch((err: unknown) => {
          log.error({ err }, 'handling trainer message failed');
          settled ??= { err: err as Error };
          stop('lock-lost');
        });
    });
    child.once('error', (err) => {
      settled ??= { err };
    });
    child.once('exit', (code, sig) => {
      void chain.then(() => {
        if (settled && 'ok' in settled) resolve(settled.ok);
        else if (settled) reject(settled.err);
        else if (sig === 'SIGKILL' && !failure)
          reject(new Error('trainer process was killed (SIGKILL: out of memory, or killed by hand)'));
        else reject(new Error(`trainer exited (${sig ?? `code ${code}`})${failure ? `: ${failure}` : ''}`));
      });
    });
    child.send({
      type: 'start',
      job,
      resume,
      writer: `${deps.workerId}-${Date.now().toString(36)}`,
      store: deps.store,
      storeRetryMs: deps.storeRetryMs ?? 600_000,
      backend: deps.backend,
      wasmGemm: deps.wasmGemm,
      datasetDir,
      progressEvery: deps.progressEvery ?? 10,
      faultNanAtStep: deps.faultNanAtStep,
    } satisfies ParentMessage);
  });
}
