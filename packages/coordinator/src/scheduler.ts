import {
  BadRequestError,
  ConflictError,
  FaultInjector,
  LIMITS,
  type Logger,
  NotFoundError,
  TERMINAL_TRIAL_STATES,
  type TrialRecord,
} from '@gantry/shared';
import type { Queue } from 'bullmq';
import { isPaused, type SearchEngine } from './search/engine.ts';
import type { StoredSweep, SweepStore } from './sweep-store.ts';
import { jobIdOf, trialJob } from './trial-jobs.ts';

/** How many times a trial job is tried before it fails for good (transient faults only). */
const JOB_ATTEMPTS = 3;

type Trial = TrialRecord & { dispatched: boolean };

/**
 * Keeps every active sweep moving: at most `budget.parallel` of its trials queued or running, results
 * recorded from the workers' reports and the queue's final job states, sweeps closed when every trial has
 * ended. All state lives in Redis; each pass recomputes from it, so a restarted coordinator carries on.
 */
export class Scheduler {
  private timer?: NodeJS.Timeout;
  private pass: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: SweepStore,
    private readonly queue: Queue,
    private readonly log: Logger,
    private readonly intervalMs = 1000,
    /** Fault injection (tests): see GantryConfig.faultKillAt. */
    private readonly faults = new FaultInjector(undefined),
    /** Adaptive search: schedulers' decisions, TPE's suggestions (README, "Adaptive search"). */
    private readonly search?: SearchEngine,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), this.intervalMs);
  }

  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    return this.pass;
  }

  /** One reconciliation pass over all active sweeps; passes never overlap. */
  tick(): Promise<void> {
    this.pass = this.pass.then(async () => {
      try {
        // One sweep's failure (its store unreachable for a moment) does not hold up the others.
        for (const id of await this.store.activeIds()) {
          await this.reconcile(id).catch((err: unknown) =>
            this.log.error({ err, sweepId: id }, 'scheduler pass failed for a sweep'),
          );
        }
      } catch (err) {
        this.log.error({ err }, 'scheduler pass failed');
      }
    });
    return this.pass;
  }

  private async reconcile(sweepId: string): Promise<void> {
    const sweep = await this.store.get(sweepId);
    if (!sweep || sweep.state === 'cancelled') return;
    const trials = await this.store.trials(sweep.trialIds);
    for (const t of trials) if (t.dispatched) await this.settleFromQueue(sweep, t);
    for (const t of trials) {
      if (t.state === 'completed' && t.result === undefined && t.summary) {
        const value = t.summary[sweep.spec.metric.name];
        if (value !== undefined) {
          t.result = value;
          await this.store.updateTrial(t.id, { result: value });
          this.faults.point('result');
        }
      }
    }
    // A staged trial whose worker finished a stage goes on with the next stage's job, on any worker; it
    // already holds its place among the parallel trials.
    for (const t of trials) {
      if (t.dispatched && t.state === 'queued' && t.stage && t.stage.done > (t.jobStage ?? 0)) {
        if (t.stage.done < t.stage.count) await this.dispatch(sweep, t, t.stage.done);
      }
    }
    // A trial a worker has started was dispatched, even if the coordinator died before marking it.
    for (const t of trials) {
      if (!t.dispatched && t.state !== 'queued' && !TERMINAL_TRIAL_STATES.has(t.state)) {
        t.dispatched = true;
        // A staged trial's job is its running stage's (the one its stage record names).
        if (sweep.spec.stages) {
          t.jobStage = t.stage?.index ?? 0;
          await this.store.updateTrial(t.id, { dispatched: true, jobStage: t.jobStage });
        } else await this.store.updateTrial(t.id, { dispatched: true });
      }
    }
    await this.search?.decide(sweep, trials);
    // A trial paused at a segment's end waits for a decision or a promotion: it holds no place.
    const isLive = (t: Trial) => t.dispatched && !TERMINAL_TRIAL_STATES.has(t.state) && !isPaused(t);
    const room = Math.max(0, sweep.spec.budget.parallel - trials.filter(isLive).length);
    const promoted = new Set(await this.search?.promote(sweep, trials, room));
    // TPE suggests only for places nothing else waits for: each suggestion sees the latest results.
    const queued = trials.filter((t) => !t.dispatched && t.state === 'queued').length;
    trials.push(...((await this.search?.suggest(sweep, trials, Math.max(0, room - queued))) ?? []));
    // Promoted trials first (ASHA), then the least trained (a PBT population moves on together), then order.
    const waiting = trials
      .filter((t) => !t.dispatched && t.state === 'queued')
      .sort(
        (a, b) =>
          Number(promoted.has(b.id)) - Number(promoted.has(a.id)) || a.step - b.step || a.index - b.index,
      );
    for (const t of waiting.slice(0, room)) await this.dispatch(sweep, t);
    const exhausted = this.search?.exhausted(sweep) ?? true;
    if (exhausted && !trials.some((t) => isLive(t) || (!t.dispatched && t.state === 'queued')))
      await this.search?.finish(sweep, trials);
    if (exhausted && trials.every((t) => TERMINAL_TRIAL_STATES.has(t.state))) {
      const ok = trials.some((t) => t.state === 'completed');
      await this.store.setSweepState(sweepId, ok ? 'completed' : 'failed');
      this.log.info({ sweepId, state: ok ? 'completed' : 'failed' }, 'sweep ended');
    } else if (sweep.state === 'queued' && trials.some((t) => t.dispatched)) {
      await this.store.setSweepState(sweepId, 'running');
    }
  }

  /** Records the end of a trial whose job the queue has finished but whose worker could not report it. */
  private async settleFromQueue(sweep: StoredSweep, t: Trial): Promise<void> {
    if (TERMINAL_TRIAL_STATES.has(t.state)) return;
    // The job of a stage recorded as done has nothing left to say (and may have been cleaned away).
    if (t.stage && t.stage.done > (t.jobStage ?? 0)) return;
    const jobId = jobIdOf(t);
    const state = await this.queue.getJobState(jobId);
    if (state === 'failed') {
      const job = await this.queue.getJob(jobId);
      t.state = 'failed';
      t.reason = job?.failedReason || 'job failed';
      await this.store.updateTrial(t.id, { state: 'failed', reason: t.reason, endedAt: Date.now() });
      this.log.warn({ sweepId: sweep.id, trialId: t.id, reason: t.reason }, 'trial failed');
    } else if (state === 'unknown') {
      t.state = 'failed';
      t.reason = 'its queue job disappeared';
      await this.store.updateTrial(t.id, { state: 'failed', reason: t.reason, endedAt: Date.now() });
    }
  }

  /** Queues trial `t`'s job; for a staged model the job of stage `stage`. Adding a job twice is a no-op. */
  private async dispatch(sweep: StoredSweep, t: Trial, stage = 0): Promise<void> {
    const { stages } = sweep.spec;
    const payload = trialJob(sweep, t, stage);
    const jobId = jobIdOf({ ...t, jobStage: stages ? stage : undefined });
    // Queued before the trial is marked: a coordinator that dies in between queues it again on restart,
    // which adds nothing (the job id is the trial's, or its stage's or segment's).
    const name = stages ? `stage-${stage}` : t.segment !== undefined ? `segment-${t.segment}` : 'train';
    await this.queue.add(name, payload, {
      jobId,
      attempts: JOB_ATTEMPTS,
      backoff: { type: 'exponential', delay: 2000 },
    });
    this.faults.point('dispatch');
    t.dispatched = true;
    t.jobStage = stages ? stage : undefined;
    await this.store.updateTrial(t.id, stages ? { dispatched: true, jobStage: stage } : { dispatched: true });
    if (stages) {
      this.log.info(
        { sweepId: sweep.id, trialId: t.id, stage, resolution: payload.stage?.resolution, jobId },
        stage === 0 ? 'trial queued (stage 0)' : `stage ${stage} queued`,
      );
    } else if (t.segment) {
      this.log.info(
        { sweepId: sweep.id, trialId: t.id, segment: t.segment, from: t.step, until: t.until, jobId },
        `segment ${t.segment} queued`,
      );
    } else this.log.info({ sweepId: sweep.id, trialId: t.id, params: t.params }, 'trial queued');
  }

  /**
   * Adds `more` trials to a sweep, running or ended (`gantry extend`); an ended sweep runs again. Runs
   * between scheduler passes. @throws BadRequestError for a method whose trials are fixed
   */
  extend(sweepId: string, more: number): Promise<{ sweep: StoredSweep; trials: number }> {
    const done = this.pass.then(async () => {
      const sweep = await this.store.get(sweepId);
      if (!sweep) throw new NotFoundError('sweep', sweepId);
      if (sweep.state === 'cancelled')
        throw new ConflictError(`sweep ${sweepId} was cancelled; submit a new one`, { sweepId });
      const { method, scheduler } = sweep.spec;
      if (method === 'grid' || method === 'list')
        throw new BadRequestError(
          'trials',
          `a ${method} sweep's trials are its ${method === 'grid' ? "values' product" : 'configurations'}: submit another sweep instead`,
        );
      if (scheduler?.type === 'pbt')
        throw new BadRequestError('trials', 'a PBT population is fixed when the sweep starts');
      if (!this.search) throw new ConflictError('this coordinator has no search engine', { sweepId });
      if (sweep.spec.budget.trials + more > LIMITS.maxTrials)
        throw new BadRequestError(
          'trials',
          `the sweep would have ${sweep.spec.budget.trials + more} trials; the limit is ${LIMITS.maxTrials}`,
        );
      const trials = await this.search.extend(sweep, more);
      this.log.info({ sweepId, more, trials }, 'sweep extended');
      return { sweep, trials };
    });
    this.pass = done.then(
      () => undefined,
      () => undefined,
    );
    // The new trials are queued by a pass right away, not at the next interval.
    return done.then(async (r) => {
      await this.tick();
      return r;
    });
  }

  /**
   * Cancels a sweep: waiting jobs are removed, running ones are told to stop. Runs between scheduler
   * passes, so a pass never acts on the sweep's state from before the cancellation.
   */
  cancel(sweepId: string): Promise<StoredSweep> {
    const done = this.pass.then(() => this.cancelNow(sweepId));
    this.pass = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  }

  private async cancelNow(sweepId: string): Promise<StoredSweep> {
    const sweep = await this.store.get(sweepId);
    if (!sweep) throw new NotFoundError('sweep', sweepId);
    if (sweep.state === 'completed' || sweep.state === 'failed' || sweep.state === 'cancelled') {
      throw new ConflictError(`sweep ${sweepId} has already ended (${sweep.state})`, { sweepId });
    }
    await this.store.setSweepState(sweepId, 'cancelled');
    const trials = await this.store.trials(sweep.trialIds);
    const live = trials.filter((t) => !TERMINAL_TRIAL_STATES.has(t.state));
    for (const t of live) {
      await this.store.updateTrial(t.id, {
        state: 'cancelled',
        reason: 'sweep cancelled',
        endedAt: Date.now(),
      });
      if (t.dispatched) {
        const job = await this.queue.getJob(jobIdOf(t));
        const state = job ? await job.getState() : 'unknown';
        if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized'))
          await job.remove().catch(() => {});
      }
    }
    await this.store.redis.publish(
      this.store.keys.control,
      JSON.stringify({ type: 'cancel', trialIds: live.map((t) => t.id) }),
    );
    this.log.info({ sweepId, trials: live.length }, 'sweep cancelled');
    return { ...sweep, state: 'cancelled' };
  }
}
