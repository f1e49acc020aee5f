import { SWEEP_STATES, TRIAL_STATES } from '@gantry/shared';
import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { SweepStore } from './sweep-store.ts';

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
    name: 'gantry_workers',
    help: 'Workers with a heartbeat in the last 30 s',
    registers: [registry],
    async collect() {
      this.set(await liveWorkers());
    },
  });
  return registry;
}
