import {
  isQualityMetric,
  type MetricName,
  SWEEP_STATES,
  TRIAL_STATES,
  type TrialMetrics,
  type TrialQuality,
  type TrialRecord,
} from '@gantry/shared';
import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { SweepStore } from './sweep-store.ts';

/** A trial's value of `metric`: its result once completed, else the latest step or evaluation. */
function objectiveOf(t: TrialRecord, metric: MetricName): number | undefined {
  if (t.result !== undefined) return t.result;
  if (isQualityMetric(metric)) return t.quality?.[metric as keyof TrialQuality];
  return t.metrics?.[metric as keyof TrialMetrics] as number | undefined;
}

/** The coordinator's Prometheus registry: trials and sweeps by state, queue job counts, live workers. */
export function coordinatorMetrics(
  store: SweepStore,
  queue: Queue,
  liveWorkers: () => Promise<number>,
): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gantry_coordinator_' });
  new Gauge({
    name: 'gantry_trials',
    help: 'Trials of recent sweeps (the last 200) by state',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = Object.fromEntries(TRIAL_STATES.map((s) => [s, 0])) as Record<string, number>;
      const sweeps = await store.list(200);
      for (const sweep of sweeps) {
        for (const t of await store.trials(sweep.trialIds)) counts[t.state] = (counts[t.state] ?? 0) + 1;
      }
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
      for (const id of await store.activeIds()) {
        const sweep = await store.get(id);
        if (!sweep) continue;
        const metric = sweep.spec.metric.name;
        for (const t of await store.trials(sweep.trialIds)) {
          const value = objectiveOf(t, metric);
          if (value !== undefined && Number.isFinite(value))
            this.set({ sweep: id, trial: t.id, metric }, value);
        }
      }
    },
  });
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
