import type { StepMetrics } from '@gantry/shared';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** A worker's Prometheus registry. Per-trial series are removed when the trial leaves this worker. */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly info = new Gauge({
    name: 'gantry_worker_info',
    help: 'Always 1; labels describe the worker',
    labelNames: ['worker', 'backend', 'device'] as const,
    registers: [this.registry],
  });
  readonly busy = new Gauge({
    name: 'gantry_worker_busy_trials',
    help: 'Trials running on this worker',
    registers: [this.registry],
  });
  readonly capacity = new Gauge({
    name: 'gantry_worker_concurrency',
    help: 'Trials this worker runs at once',
    registers: [this.registry],
  });
  readonly outcomes = new Counter({
    name: 'gantry_worker_trial_attempts_total',
    help: 'Trial attempts ended on this worker, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly trialLabels = ['sweep', 'trial'] as const;
  readonly step = new Gauge({
    name: 'gantry_trial_step',
    help: 'Current training step',
    labelNames: this.trialLabels,
    registers: [this.registry],
  });
  readonly dLoss = new Gauge({
    name: 'gantry_trial_d_loss',
    help: 'Discriminator loss',
    labelNames: this.trialLabels,
    registers: [this.registry],
  });
  readonly gLoss = new Gauge({
    name: 'gantry_trial_g_loss',
    help: 'Generator loss',
    labelNames: this.trialLabels,
    registers: [this.registry],
  });
  readonly dReal = new Gauge({
    name: 'gantry_trial_d_real',
    help: 'Mean D(x) on real images',
    labelNames: this.trialLabels,
    registers: [this.registry],
  });
  readonly dFake = new Gauge({
    name: 'gantry_trial_d_fake',
    help: 'Mean D(G(z)) on generated images',
    labelNames: this.trialLabels,
    registers: [this.registry],
  });
  readonly imagesPerSec = new Gauge({
    name: 'gantry_trial_images_per_second',
    help: 'Training throughput (real images per second)',
    labelNames: this.trialLabels,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'gantry_worker_' });
  }

  observe(sweep: string, trial: string, m: StepMetrics): void {
    const l = { sweep, trial };
    this.step.set(l, m.step);
    this.dLoss.set(l, m.d_loss);
    this.gLoss.set(l, m.g_loss);
    this.dReal.set(l, m.d_real);
    this.dFake.set(l, m.d_fake);
    this.imagesPerSec.set(l, m.images_per_sec);
  }

  /** Drops every series of a trial (metric hygiene: finished trials do not linger). */
  forget(sweep: string, trial: string): void {
    for (const g of [this.step, this.dLoss, this.gLoss, this.dReal, this.dFake, this.imagesPerSec])
      g.remove({ sweep, trial });
  }
}
