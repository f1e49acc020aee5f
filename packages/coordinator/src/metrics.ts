import {
  isQualityMetric,
  type MetricName,
  SWEEP_STATES,
  TERMINAL_TRIAL_STATES,
  TRIAL_STATES,
  type TrialMetrics,
  type TrialQuality,
  type TrialRecord,
} from '@gantry/shared';
import type { Queue } from 'bullmq';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { SchedulerStats } from './scheduler.ts';
import type { StoredSweep, SweepStore } from './sweep-store.ts';
import type { Trial } from './sweep-view.ts';

/** What the coordinator's metrics read of its scheduler (README, "Scale"). */
export interface SchedulerSource {
  readonly stats: SchedulerStats;
  /** Whether this coordinator schedules (holds the leader lease). */
  readonly leading: boolean;
  /** The active sweeps as the scheduling coordinator holds them (no Redis reads); undefined unless leading. */
  activeViews(): readonly { sweep: StoredSweep; trials: readonly Trial[] }[] | undefined;
  /** A held sweep's trials with the running ones read again (Scheduler.currentTrials). */
  currentTrials(sweepId: string): Promise<TrialRecord[] | undefined>;
}

/** A trial's value of `metric`: its result once completed, else the latest step or evaluation. */
function objectiveOf(t: TrialRecord, metric: MetricName): number | undefined {
  if (t.result !== undefined) return t.result;
  if (isQualityMetric(metric)) return t.quality?.[metric as keyof TrialQuality];
  return t.metrics?.[metric as keyof TrialMetrics] as number | undefined;
}

/**
 * The coordinator's Prometheus registry: trials and sweeps by state, queue job counts, live workers, the
 * scheduler's work. With a scheduler (several coordinators), the per-trial and per-state series come from
 * the leading coordinator only, out of its views of the active sweeps (a 10,000-trial sweep is not read
 * from Redis at every scrape, and a sum over coordinators counts each trial once); trials of ended sweeps
 * are read once and their counts kept (an ended sweep's trials no longer change).
 */
export function coordinatorMetrics(
  store: SweepStore,
  queue: Queue,
  liveWorkers: () => Promise<number>,
  scheduler?: SchedulerSource,
): Registry {
  const registry = new Registry();
  /** Trial counts by state of ended sweeps, read once; entries of sweeps no longer listed are dropped. */
  const endedCounts = new Map<string, Map<string, number>>();
  collectDefaultMetrics({ register: registry, prefix: 'gantry_coordinator_' });
  new Gauge({
    name: 'gantry_trials',
    help: 'Trials of recent sweeps (the last 200) by state',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const views = scheduler ? scheduler.activeViews() : undefined;
      if (scheduler && !views) return; // the leader exports them
      const counts = Object.fromEntries(TRIAL_STATES.map((s) => [s, 0])) as Record<string, number>;
      const add = (state: string, n: number) => {
        counts[state] = (counts[state] ?? 0) + n;
      };
      const held = new Map((views ?? []).map((v) => [v.sweep.id, v.trials]));
      const sweeps = await store.list(200);
      for (const sweep of sweeps) {
        const live = held.get(sweep.id);
        if (live) {
          for (const t of live) add(t.state, 1);
          continue;
        }
        // An ended sweep's counts are kept once all its trials have ended (a cancel ends them after the
        // sweep); keyed by its end, since an extended sweep runs and ends again.
        const ended = ['completed', 'failed', 'cancelled'].includes(sweep.state);
        const key = `${sweep.id}@${sweep.endedAt ?? ''}`;
        let c = ended ? endedCounts.get(key) : undefined;
        if (!c) {
          const trials = await store.trials(sweep.trialIds);
          c = new Map<string, number>();
          for (const t of trials) c.set(t.state, (c.get(t.state) ?? 0) + 1);
          if (ended && trials.every((t) => TERMINAL_TRIAL_STATES.has(t.state))) endedCounts.set(key, c);
        }
        for (const [state, n] of c) add(state, n);
      }
      const listed = new Set(sweeps.map((x) => `${x.id}@${x.endedAt ?? ''}`));
      for (const key of endedCounts.keys()) if (!listed.has(key)) endedCounts.delete(key);
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'gantry_sweeps',
    help: 'Recent sweeps (the last 200) by state',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = Object.fromEntries(SWEEP_STATES.map((s) => [s, 0])) as Record<string, number>;
      for (const s of await store.list(200)) counts[s.state] = (counts[s.state] ?? 0) + 1;
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'gantry_queue_jobs',
    help: 'Trial jobs in the queue by state',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = await queue.getJobCounts(
        'waiting',
        'active',
        'delayed',
        'completed',
        'failed',
        'prioritized',
      );
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'gantry_trial_objective',
    help: "Each trial's current value of its sweep's metric (final when completed), for sweeps not yet ended",
    labelNames: ['sweep', 'trial', 'metric'] as const,
    registers: [registry],
    async collect() {
      // Series of sweeps that ended disappear: label values stay bounded by the active sweeps.
      this.reset();
      const views = scheduler ? scheduler.activeViews() : undefined;
      if (scheduler && !views) return; // the leader exports them
      const active =
        views ??
        (
          await Promise.all(
            (
              await store.activeIds()
            ).map(async (id) => {
              const sweep = await store.get(id);
              return sweep ? { sweep, trials: await store.trials(sweep.trialIds) } : undefined;
            }),
          )
        ).filter((x) => x !== undefined);
      for (const { sweep, trials: held } of active) {
        const { id } = sweep;
        const metric = sweep.spec.metric.name;
        // A view knows each trial's state, not its latest progress (progress marks nothing dirty): the
        // running trials are read again; the others' values are final or none.
        const trials = (views && (await scheduler?.currentTrials(id))) || held;
        for (const t of trials) {
          const value = objectiveOf(t, metric);
          if (value !== undefined && Number.isFinite(value))
            this.set({ sweep: id, trial: t.id, metric }, value);
        }
      }
    },
  });
  if (scheduler) {
    new Gauge({
      name: 'gantry_coordinator_leader',
      help: 'Whether this coordinator holds the leader lease and schedules (1) or only serves the API (0)',
      registers: [registry],
      collect() {
        this.set(scheduler.leading ? 1 : 0);
      },
    });
    // Counters that follow the scheduler's own tallies.
    const follow = (name: string, help: string, read: (s: SchedulerStats) => number) => {
      let last = 0;
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          const now = read(scheduler.stats);
          if (now > last) this.inc(now - last);
          last = now;
        },
      });
    };
    follow('gantry_scheduler_passes_total', 'Scheduler passes run', (s) => s.passes);
    follow('gantry_scheduler_pass_seconds_total', 'Time spent in scheduler passes', (s) => s.passMs / 1000);
    follow(
      'gantry_scheduler_trials_read_total',
      'Trial records scheduler passes read from Redis (the trials that changed, whole sweeps when loaded)',
      (s) => s.trialsRead,
    );
    follow(
      'gantry_scheduler_full_loads_total',
      'Passes that loaded every active sweep whole',
      (s) => s.fullPasses,
    );
    follow('gantry_scheduler_dispatched_total', 'Trial jobs queued by the scheduler', (s) => s.dispatched);
  }
  new Gauge({
    name: 'gantry_workers',
    help: 'Workers with a heartbeat in the last 30 s',
    registers: [registry],
    async collect() {
      this.set(await liveWorkers());
    },
  });
  return registry;
}
