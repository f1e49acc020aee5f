import {
  BadRequestError,
  ConflictError,
  FaultInjector,
  LIMITS,
  type Logger,
  NotFoundError,
  type SweepState,
  sweepIdOfTrial,
  TERMINAL_TRIAL_STATES,
  type TrialRecord,
  trialIdOfJob,
} from '@gantry/shared';
import type { Queue, QueueEvents } from 'bullmq';
import type { LeaderLease } from './leader-lease.ts';
import type { SearchEngine } from './search/engine.ts';
import { hasSearch } from './search/views.ts';
import { LeaseLostError, type StoredSweep, type SweepStore, sweepMarker } from './sweep-store.ts';
import { placeOf, SweepView, type Trial } from './sweep-view.ts';
import { jobIdOf, trialJob } from './trial-jobs.ts';

/** What a pass found changed in one sweep. */
interface Changes {
  /** Trials as Redis holds them now (every trial of a sweep loaded whole). */
  trials: Trial[];
  /** Jobs of the sweep the queue's events said failed. */
  failedJobs: string[];
  /** Trials whose job the queue is asked about: every running one when loaded whole, else an audit's slice. */
  audit: Trial[];
}

/** How many times a trial job is tried before it fails for good (transient faults only). */
const JOB_ATTEMPTS = 3;

export interface SchedulerOptions {
  /** Passes run on every queue event and at least this often (they cost what changed). @default 1000 */
  intervalMs?: number;
  /**
   * The audit: at most this often a pass asks the queue about the running jobs among the next
   * `auditSlice` trials of each sweep (a job failed or gone while no coordinator listened to the queue's
   * events), going round the sweep slice by slice. @default 1000
   */
  auditIntervalMs?: number;
  /** Trials of a sweep each audit looks at. @default 200 */
  auditSlice?: number;
  /** Fault injection (tests): see GantryConfig.faultKillAt. */
  faults?: FaultInjector;
  /** Adaptive search: schedulers' decisions, TPE's suggestions (README, "Adaptive search"). */
  search?: SearchEngine;
  /** Only the lease's holder schedules (several coordinators); without one, this process always does. */
  lease?: LeaderLease;
  /** The trial queue's events: a job that completes or fails wakes a pass at once. */
  events?: QueueEvents;
}

/** What the scheduler has done, for /metrics (README, "Scale"). */
export interface SchedulerStats {
  passes: number;
  /** Trial records read from Redis by passes (a pass reads the trials that changed). */
  trialsRead: number;
  /** Passes that reloaded every active sweep (taking the lease, after an error). */
  fullPasses: number;
  /** Duration of the last pass in ms. */
  lastPassMs: number;
  /** Sum of pass durations in ms. */
  passMs: number;
  /** Jobs queued. */
  dispatched: number;
}

/**
 * Keeps every active sweep moving: at most `budget.parallel` of its trials queued or running, results
 * recorded from the workers' reports and the queue's final job states, sweeps closed when every trial has
 * ended. All state lives in Redis; the scheduling coordinator keeps a view of each active sweep (SweepView)
 * and a pass reads only what changed since the last: the trials in the dirty set that workers' fenced
 * writes fill, and the jobs the queue's events say failed. A job that completes or fails wakes a pass at
 * once, so a freed place is refilled in milliseconds; a timer runs one at least every `intervalMs`, and a
 * rolling audit asks the queue about a slice of each sweep's running jobs at most once a second (events
 * missed while no coordinator listened). A sweep is read whole only when this coordinator takes the lease
 * (or after an error), when it is new and was submitted elsewhere, and when its record changes (extend).
 * With a lease, only its holder schedules and its writes are fenced by it.
 */
export class Scheduler {
  private timer?: NodeJS.Timeout;
  private pass: Promise<void> = Promise.resolve();
  /** A pass queued behind the running one: wake-ups while a pass runs share it. */
  private pending?: Promise<void>;
  private readonly views = new Map<string, SweepView>();
  /** The lease token the views were loaded under; another token (or none) means a full reload. */
  private viewsToken?: string;
  private lastAudit = 0;
  /** Where each sweep's audit goes on from (an index into its trials). */
  private readonly auditAt = new Map<string, number>();
  /** Job ids the queue's events reported failed since the last pass. */
  private failedJobs = new Set<string>();
  /** Sweeps to read whole at the next pass (a pass failed for them, or refused their sweep state). */
  private readonly reloadNext = new Set<string>();
  private readonly intervalMs: number;
  private readonly auditIntervalMs: number;
  private readonly auditSlice: number;
  private readonly faults: FaultInjector;
  private readonly search?: SearchEngine;
  private readonly lease?: LeaderLease;
  readonly stats: SchedulerStats = {
    passes: 0,
    trialsRead: 0,
    fullPasses: 0,
    lastPassMs: 0,
    passMs: 0,
    dispatched: 0,
  };

  constructor(
    private readonly store: SweepStore,
    private readonly queue: Queue,
    private readonly log: Logger,
    opts: SchedulerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.auditIntervalMs = opts.auditIntervalMs ?? 1000;
    this.auditSlice = opts.auditSlice ?? 200;
    this.faults = opts.faults ?? new FaultInjector(undefined);
    this.search = opts.search;
    this.lease = opts.lease;
    opts.events?.on('completed', () => this.wake());
    opts.events?.on('failed', ({ jobId }) => {
      // A coordinator that takes the lease later asks the queue about every running job anyway.
      if (!this.leading) return;
      this.failedJobs.add(jobId);
      this.wake();
    });
  }

  /** The active sweeps this process holds views of, when it schedules (metrics read them, not Redis). */
  activeViews(): SweepView[] | undefined {
    return this.token() !== undefined && this.token() === this.viewsToken
      ? [...this.views.values()]
      : undefined;
  }

  /**
   * A sweep's trials for the API as this scheduling coordinator holds them, the ones neither waiting nor
   * ended read again (their progress moves without marking anything); undefined unless it schedules the
   * sweep. A 10,000-trial sweep on 1,000 workers costs 1,000 reads, not 10,000. The view is not changed.
   */
  async currentTrials(sweepId: string): Promise<TrialRecord[] | undefined> {
    const view = this.activeViews() ? this.views.get(sweepId) : undefined;
    if (!view) return undefined;
    const moving = view.trials.filter((t) => {
      const p = placeOf(t);
      return p !== 'waiting' && p !== 'ended';
    });
    const fresh = new Map((await this.store.trials(moving.map((t) => t.id))).map((t) => [t.id, t]));
    return view.trials.map((t) => fresh.get(t.id) ?? t);
  }

  /** Whether this process schedules now (holds the lease, or has none to hold). */
  get leading(): boolean {
    return this.lease ? this.lease.held : true;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), this.intervalMs);
  }

  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    return this.pass;
  }

  private wake(): void {
    if (this.timer && this.leading) void this.tick();
  }

  /** Runs a pass after the current one (wake-ups meanwhile share it); passes never overlap. */
  tick(): Promise<void> {
    if (this.pending) return this.pending;
    const next = this.pass.then(() => {
      this.pending = undefined;
      return this.runPass();
    });
    this.pending = next;
    this.pass = next.catch(() => undefined);
    return next;
  }

  /** This pass's fencing token: the lease's, '' without a lease, undefined when another coordinator leads. */
  private token(): string | undefined {
    return this.lease ? this.lease.token : '';
  }

  private async runPass(): Promise<void> {
    const token = this.token();
    if (token === undefined) {
      this.views.clear();
      this.viewsToken = undefined;
      return;
    }
    const began = performance.now();
    try {
      const full = token !== this.viewsToken;
      const changes = full ? await this.loadAll() : await this.refresh();
      if (full) {
        this.viewsToken = token;
        this.stats.fullPasses += 1;
        this.lastAudit = Date.now(); // the load read everything: the audit goes on from here
      } else if (Date.now() - this.lastAudit >= this.auditIntervalMs) {
        this.lastAudit = Date.now();
        await this.audit(changes);
      }
      for (const view of [...this.views.values()]) {
        const changed = changes.get(view.sweep.id);
        if (!changed && !this.hasRoomToFill(view)) continue;
        // One sweep's failure (its store unreachable for a moment) does not hold up the others.
        await this.reconcile(view, changed ?? { trials: [], failedJobs: [], audit: [] }).catch((err) => {
          if (err instanceof LeaseLostError) throw err;
          this.log.error({ err, sweepId: view.sweep.id }, 'scheduler pass failed for a sweep');
          // What the pass took from the dirty set for it is covered by reading the sweep again next time.
          this.reloadNext.add(view.sweep.id);
        });
      }
    } catch (err) {
      this.viewsToken = undefined;
      if (err instanceof LeaseLostError) {
        this.log.warn('scheduler: lease lost during a pass; another coordinator schedules');
        this.lease?.lost();
        this.views.clear();
      } else this.log.error({ err }, 'scheduler pass failed');
    } finally {
      const ms = performance.now() - began;
      this.stats.passes += 1;
      this.stats.lastPassMs = ms;
      this.stats.passMs += ms;
    }
  }

  /**
   * Takes a sweep this process has just created, with the records it wrote, into its views (the pass that
   * follows need not read 10,000 trials back). Runs between passes; ignored unless this process schedules.
   */
  adopt(sweep: StoredSweep, trials: readonly TrialRecord[]): Promise<void> {
    const done = this.pass.then(() => {
      if (this.token() === undefined || this.token() !== this.viewsToken || this.views.has(sweep.id)) return;
      this.views.set(
        sweep.id,
        new SweepView(
          sweep,
          trials.map((t) => ({ ...t, dispatched: false })),
        ),
      );
    });
    this.pass = done.catch(() => undefined);
    return done;
  }

  /** A sweep with no change this pass still needs one when it has places to fill and something to fill them with. */
  private hasRoomToFill(view: SweepView): boolean {
    const { spec } = view.sweep;
    if (spec.budget.parallel - view.count('live') <= 0) return false;
    return (
      view.count('waiting') > 0 || view.count('paused') > 0 || !(this.search?.exhausted(view.sweep) ?? true)
    );
  }

  /**
   * The rolling audit: the next `auditSlice` trials of each sweep that have not ended are read again (what
   * a write that marked nothing - a coordinator that lost its lease mid-pass, say - left unseen heals
   * within one round), and the queue is asked about the jobs of those running.
   */
  private async audit(changes: Map<string, Changes>): Promise<void> {
    for (const view of this.views.values()) {
      const n = view.size;
      if (n === 0) continue;
      const from = (this.auditAt.get(view.sweep.id) ?? 0) % n;
      const take = Math.min(this.auditSlice, n);
      this.auditAt.set(view.sweep.id, (from + take) % n);
      const ids: string[] = [];
      for (let i = 0; i < take; i++) {
        const t = view.trials[(from + i) % n]!;
        if (placeOf(t) !== 'ended') ids.push(t.id);
      }
      if (ids.length === 0) continue;
      const fresh = await this.store.trials(ids);
      this.stats.trialsRead += fresh.length;
      const c = changes.get(view.sweep.id) ?? { trials: [], failedJobs: [], audit: [] };
      for (const t of fresh) {
        view.put(t);
        c.trials.push(t);
        if (placeOf(t) === 'live') c.audit.push(t);
      }
      changes.set(view.sweep.id, c);
    }
  }

  /** Loads every active sweep whole: every trial counts as changed, every running job is asked about. */
  private async loadAll(): Promise<Map<string, Changes>> {
    // Entries of the dirty set are covered by the full load (what changes after this read stays there).
    await this.store.takeDirty(this.token());
    this.failedJobs.clear();
    this.reloadNext.clear();
    this.views.clear();
    const out = new Map<string, Changes>();
    for (const id of await this.store.activeIds()) {
      const view = await this.loadSweep(id);
      if (view) out.set(id, { trials: [...view.trials], failedJobs: [], audit: view.inPlace('live') });
    }
    return out;
  }

  private async loadSweep(id: string): Promise<SweepView | undefined> {
    const sweep = await this.store.get(id);
    this.views.delete(id);
    if (!sweep || sweep.state === 'cancelled') return undefined;
    const trials = await this.store.trials(sweep.trialIds);
    this.stats.trialsRead += trials.length;
    const view = new SweepView(sweep, trials);
    this.views.set(id, view);
    return view;
  }

  /** What changed since the last pass: the dirty set's trials and sweeps, new and ended sweeps, failed jobs. */
  private async refresh(): Promise<Map<string, Changes>> {
    const dirty = await this.store.takeDirty(this.token());
    const failed = [...this.failedJobs];
    this.failedJobs.clear();
    const active = new Set(await this.store.activeIds());
    for (const id of this.views.keys()) if (!active.has(id)) this.views.delete(id);
    const out = new Map<string, Changes>();
    const changesOf = (id: string): Changes => {
      const c = out.get(id) ?? { trials: [], failedJobs: [], audit: [] };
      out.set(id, c);
      return c;
    };
    // New sweeps, and sweeps whose record or trial list changed (extend, TPE elsewhere): loaded whole.
    const reload = new Set([...active].filter((id) => !this.views.has(id) || this.reloadNext.has(id)));
    this.reloadNext.clear();
    const trialIds: string[] = [];
    for (const e of dirty) {
      if (e.startsWith('sweep:')) reload.add(e.slice('sweep:'.length));
      else trialIds.push(e);
    }
    for (const id of reload) {
      if (!active.has(id)) continue;
      const view = await this.loadSweep(id);
      if (view) changesOf(id).trials.push(...view.trials);
    }
    const wanted = trialIds.filter((id) => {
      const sweepId = sweepIdOfTrial(id);
      return this.views.has(sweepId) && !reload.has(sweepId);
    });
    const fresh = await this.store.trials(wanted);
    this.stats.trialsRead += fresh.length;
    for (const t of fresh) {
      this.views.get(t.sweepId)?.put(t);
      changesOf(t.sweepId).trials.push(t);
    }
    for (const jobId of failed) {
      const sweepId = sweepIdOfTrial(trialIdOfJob(jobId));
      if (this.views.has(sweepId)) changesOf(sweepId).failedJobs.push(jobId);
    }
    return out;
  }

  private async reconcile(view: SweepView, found: Changes): Promise<void> {
    const { sweep } = view;
    // A trial read twice this pass (dirty, then audited) counts once, as the view holds it now.
    const latest = (ts: readonly Trial[]) =>
      [...new Set(ts.map((t) => t.id))]
        .map((id) => view.trial(id))
        .filter((t): t is Trial => t !== undefined);
    const changes: Changes = { ...found, trials: latest(found.trials), audit: latest(found.audit) };
    const sweepId = sweep.id;
    // The queue's final word on jobs whose workers could not report it: those its events said failed, and
    // the audit's.
    const failed = changes.failedJobs
      .map((jobId) => ({ jobId, t: view.trial(trialIdOfJob(jobId)) }))
      .filter(({ jobId, t }) => t && jobIdOf(t) === jobId)
      .map(({ t }) => t!);
    await Promise.all([...new Set([...failed, ...changes.audit])].map((t) => this.settleFromQueue(view, t)));
    const results: { id: string; fields: Partial<Trial> }[] = [];
    for (const t of changes.trials) {
      if (t.state === 'completed' && t.result === undefined && t.summary) {
        const value = t.summary[sweep.spec.metric.name];
        if (value !== undefined) {
          t.result = value;
          results.push({ id: t.id, fields: { result: value } });
        }
      }
    }
    if (results.length > 0) {
      await this.write(results);
      for (const _ of results) this.faults.point('result');
    }
    // A staged trial whose worker finished a stage goes on with the next stage's job, on any worker; it
    // already holds its place among the parallel trials.
    const nextStages = changes.trials
      .filter((t) => t.dispatched && t.state === 'queued' && t.stage && t.stage.done > (t.jobStage ?? 0))
      .filter((t) => t.stage!.done < t.stage!.count)
      .map((t) => ({ t, stage: t.stage!.done }));
    await this.dispatch(view, nextStages);
    // A trial a worker has started was dispatched, even if the coordinator died before marking it.
    const started = changes.trials.filter((t) => view.trial(t.id) === t && placeOf(t) === 'started');
    for (const t of started) {
      t.dispatched = true;
      // A staged trial's job is its running stage's (the one its stage record names).
      if (sweep.spec.stages) t.jobStage = t.stage?.index ?? 0;
    }
    await this.write(
      started.map((t) => ({
        id: t.id,
        fields: sweep.spec.stages ? { dispatched: true, jobStage: t.jobStage } : { dispatched: true },
      })),
    );
    for (const t of changes.trials) view.place(t);
    const search = hasSearch(sweep.spec) ? this.search : undefined;
    if (search) {
      await search.decide(sweep, view.trials);
      view.replaceAll();
    }
    // A trial paused at a segment's end waits for a decision or a promotion: it holds no place.
    const room = Math.max(0, sweep.spec.budget.parallel - view.count('live'));
    const promoted = new Set(search ? await search.promote(sweep, view.trials, room) : []);
    if (search) {
      view.replaceAll();
      // TPE suggests only for places nothing else waits for: each suggestion sees the latest results.
      const free = Math.max(0, room - view.count('waiting'));
      for (const t of await search.suggest(sweep, view.trials, free)) view.put(t);
    }
    // Promoted trials first (ASHA), then the least trained (a PBT population moves on together), then order.
    await this.dispatch(
      view,
      view.nextWaiting(room, promoted).map((t) => ({ t, stage: 0 })),
    );
    const exhausted = this.search?.exhausted(sweep) ?? true;
    const moving = view.count('live') + view.count('waiting') + view.count('started');
    if (search && exhausted && moving === 0) {
      await search.finish(sweep, view.trials);
      view.replaceAll();
    }
    if (exhausted && view.count('ended') === view.size) {
      const ok = view.trials.some((t) => t.state === 'completed');
      if (await this.writeSweepState(view, ok ? 'completed' : 'failed')) {
        this.views.delete(sweepId);
        this.log.info({ sweepId, state: ok ? 'completed' : 'failed' }, 'sweep ended');
      }
    } else if (sweep.state === 'queued' && view.count('live') + view.count('paused') > 0) {
      if (await this.writeSweepState(view, 'running')) sweep.state = 'running';
    }
  }

  /** Trial fields, fenced by the lease. @throws LeaseLostError */
  private async write(updates: { id: string; fields: Partial<Trial> }[]): Promise<void> {
    const token = this.token();
    if (token === undefined) throw new LeaseLostError();
    await this.store.updateTrialsFenced(token, updates);
  }

  /** The sweep's state, fenced by the lease; false (and read again next pass) when the sweep changed meanwhile. */
  private async writeSweepState(view: SweepView, state: SweepState): Promise<boolean> {
    const token = this.token();
    if (token === undefined) throw new LeaseLostError();
    const id = view.sweep.id;
    if (await this.store.setSweepStateFenced(token, id, state, view.sweep.version ?? 0)) return true;
    this.log.info(
      { sweepId: id, state },
      'sweep changed meanwhile (extended or cancelled); reading it again',
    );
    this.reloadNext.add(id);
    return false;
  }

  /** Records the end of a trial whose job the queue has finished but whose worker could not report it. */
  private async settleFromQueue(view: SweepView, t: Trial): Promise<void> {
    if (TERMINAL_TRIAL_STATES.has(t.state)) return;
    // The job of a stage recorded as done has nothing left to say (and may have been cleaned away).
    if (t.stage && t.stage.done > (t.jobStage ?? 0)) return;
    const jobId = jobIdOf(t);
    const state = await this.queue.getJobState(jobId);
    if (state !== 'failed' && state !== 'unknown') return;
    const reason =
      state === 'failed'
        ? (await this.queue.getJob(jobId))?.failedReason || 'job failed'
        : 'its queue job disappeared';
    const endedAt = Date.now();
    await this.write([{ id: t.id, fields: { state: 'failed', reason, endedAt } }]);
    Object.assign(t, { state: 'failed', reason, endedAt });
    view.place(t);
    if (state === 'failed') this.log.warn({ sweepId: view.sweep.id, trialId: t.id, reason }, 'trial failed');
  }

  /**
   * Queues each trial's job (for a staged model the job of stage `stage`) in one round trip, then marks them
   * dispatched. Adding a job twice is a no-op, so a coordinator that dies in between queues them again on
   * restart to no effect (the job id is the trial's, or its stage's or segment's). Never queues without
   * the lease.
   */
  private async dispatch(view: SweepView, items: readonly { t: Trial; stage: number }[]): Promise<void> {
    if (items.length === 0) return;
    if (this.token() === undefined) throw new LeaseLostError();
    const { sweep } = view;
    const { stages } = sweep.spec;
    const jobs = items.map(({ t, stage }) => {
      const payload = trialJob(sweep, t, stage);
      const jobId = jobIdOf({ ...t, jobStage: stages ? stage : undefined });
      const name = stages ? `stage-${stage}` : t.segment !== undefined ? `segment-${t.segment}` : 'train';
      return {
        name,
        data: payload,
        opts: { jobId, attempts: JOB_ATTEMPTS, backoff: { type: 'exponential', delay: 2000 } },
      };
    });
    await this.queue.addBulk(jobs);
    for (const _ of items) this.faults.point('dispatch');
    await this.write(
      items.map(({ t, stage }) => ({
        id: t.id,
        fields: stages ? { dispatched: true, jobStage: stage } : { dispatched: true },
      })),
    );
    this.stats.dispatched += items.length;
    items.forEach(({ t, stage }, i) => {
      t.dispatched = true;
      t.jobStage = stages ? stage : undefined;
      view.place(t);
      const jobId = jobs[i]!.opts.jobId;
      if (stages) {
        this.log.info(
          { sweepId: sweep.id, trialId: t.id, stage, resolution: jobs[i]!.data.stage?.resolution, jobId },
          stage === 0 ? 'trial queued (stage 0)' : `stage ${stage} queued`,
        );
      } else if (t.segment) {
        this.log.info(
          { sweepId: sweep.id, trialId: t.id, segment: t.segment, from: t.step, until: t.until, jobId },
          `segment ${t.segment} queued`,
        );
      } else this.log.info({ sweepId: sweep.id, trialId: t.id, params: t.params }, 'trial queued');
    });
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
    // The scheduling coordinator (maybe another process) drops the sweep from its views.
    this.views.delete(sweepId);
    await this.store.markDirty([sweepMarker(sweepId)]);
    await this.store.redis.publish(
      this.store.keys.control,
      JSON.stringify({ type: 'cancel', trialIds: live.map((t) => t.id) }),
    );
    this.log.info({ sweepId, trials: live.length }, 'sweep cancelled');
    return { ...sweep, state: 'cancelled' };
  }
}
