import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compileSweepSpec,
  createLogger,
  loadConfig,
  TERMINAL_TRIAL_STATES,
  type TrialRecord,
} from '@gantry/shared';
import { afterAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../packages/coordinator/src/coordinator.ts';
import {
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { testEnv } from './support/infra.ts';
import { waitFor, waitForSweepEnd } from './support/wait-for.ts';

/**
 * GAN health end to end: one sweep, three configurations of a small DCGAN on MNIST, on a real worker.
 * - healthy: lr_g 2e-4, lr_d 5e-5. Never flagged.
 * - blow-up: both learning rates 1 (the largest allowed). Divergence (loss explosion) within 20 steps; policy stop: `diverged`.
 * - strong D: lr_g 2e-5, lr_d 2e-3, D far ahead of G. Dominance within 150 steps (its 50-step window
 *   plus up to 100 steps for D to take over); policy restart with lr_g x10 and lr_d x0.025, which gives the
 *   healthy rates; the restarted run then trains to the end without another detection.
 * Mode collapse and non-convergence are off here: a tiny model's first evaluations cover few classes
 * whatever its health (their logic is tested in health/monitor.test.ts).
 */
const STEPS = 400;
const DIVERGENCE_WITHIN = 20;
const DOMINANCE_WITHIN = 150;

describe('GAN health detection and policies, end to end', () => {
  let coordinator: Coordinator | undefined;
  let worker: WorkerProcess | undefined;

  afterAll(async () => {
    if (worker) await stopWorker(worker, 10_000);
    await coordinator?.close();
  });

  it('stops the blow-up, restarts the dominated trial into health, and never flags the healthy one', async () => {
    const env = testEnv({ GANTRY_WORKER_CONCURRENCY: '3' });
    coordinator = new Coordinator(loadConfig(env), createLogger('e2e', 'silent'), {
      schedulerIntervalMs: 250,
    });
    await coordinator.start();
    worker = await spawnWorker('w1', env, await mkdtemp(join(tmpdir(), 'gantry-e2e-')));
    const c = coordinator;
    const spec = compileSweepSpec({
      name: 'e2e-health',
      model: 'dcgan',
      dataset: 'mnist',
      method: 'list',
      seed: 3,
      budget: { parallel: 3, steps: STEPS },
      checkpoint: { every_steps: 50 },
      parameters: { batch_size: { value: 16 }, base_filters: { value: 8 }, latent_dim: { value: 16 } },
      configurations: [
        { lr_g: 2e-4, lr_d: 5e-5 },
        { lr_g: 1, lr_d: 1 },
        { lr_g: 2e-5, lr_d: 2e-3 },
      ],
      metric: { name: 'fld', goal: 'minimize' },
      health: {
        eval_every_steps: 200,
        eval_samples: 128,
        warmup_steps: 0,
        max_restarts: 1,
        divergence: { policy: 'stop' },
        d_dominance: { policy: 'restart', window_steps: 50, lr_scale: { g: 10, d: 0.025 } },
        mode_collapse: { policy: 'off' },
        non_convergence: { policy: 'off' },
      },
    });
    const { id: sweepId, trialIds } = await c.submit(spec);
    const [healthyId, , strongId] = trialIds as [string, string, string];

    // While the restarted trial runs, the worker's metrics show both detections.
    await waitFor(
      'the dominated trial to be restarted',
      async () => ((await c.store.trial(strongId))?.health?.restarts ?? 0) >= 1 || undefined,
      180_000,
    );
    const [w] = await c.workers();
    const metrics = await (await fetch(w!.metricsUrl)).text();
    expect(metrics).toMatch(/gantry_worker_health_detections_total\{detector="divergence",action="stop"\} 1/);
    expect(metrics).toMatch(
      /gantry_worker_health_detections_total\{detector="d_dominance",action="restart"\} 1/,
    );
    expect(metrics).toMatch(
      new RegExp(`gantry_trial_restarts\\{sweep="${sweepId}",trial="${strongId}"\\} 1`),
    );

    // The sweep ends in the coordinator's pass after the one that records the last result: once it has
    // ended, every trial's result is there (reading trials as soon as they end raced that pass).
    await waitForSweepEnd(c, sweepId, 300_000);
    const done = (await c.store.trials(trialIds)) as TrialRecord[];
    expect(done.every((t) => TERMINAL_TRIAL_STATES.has(t.state))).toBe(true);
    const [healthy, blowup, strong] = done as [TrialRecord, TrialRecord, TrialRecord];

    expect(healthy.state).toBe('completed');
    expect(healthy.health?.detections ?? []).toEqual([]);
    expect(healthy.quality?.step).toBe(STEPS);
    expect(healthy.result).toBe(healthy.quality?.fld);

    expect(blowup.state).toBe('diverged');
    const [boom, ...noMore] = blowup.health!.detections;
    expect(noMore).toEqual([]);
    expect(boom).toMatchObject({ detector: 'divergence', action: 'stop' });
    expect(boom!.step).toBeLessThanOrEqual(DIVERGENCE_WITHIN);
    expect(blowup.reason).toBe(boom!.reason);

    expect(strong.state).toBe('completed');
    expect(strong.health!.restarts).toBe(1);
    const [dominated, ...after] = strong.health!.detections;
    expect(after).toEqual([]); // healthy after the restart
    expect(dominated).toMatchObject({ detector: 'd_dominance', action: 'restart' });
    expect(dominated!.step).toBeLessThanOrEqual(DOMINANCE_WITHIN);
    expect(dominated!.restartFrom).toBeLessThan(dominated!.step);
    expect(strong.step).toBe(STEPS);
    // Its last checkpoint is from the restarted run, and the D scores at the end are not dominated.
    expect(strong.latestCheckpoint).toMatchObject({ step: STEPS, restarts: 1 });
    expect(strong.summary!.d_real).toBeLessThan(0.95);
    expect(strong.summary!.d_fake).toBeGreaterThan(0.05);

    // The API serves the same, and the sweep ranks by FLD among completed trials.
    const res = await c.app.inject({ method: 'GET', url: `/v1/trials/${strongId}` });
    expect(res.json().health.detections[0].detector).toBe('d_dominance');
    const sweep = (await c.app.inject({ method: 'GET', url: `/v1/sweeps/${sweepId}` })).json();
    expect(sweep.best.metric).toBe('fld');
    expect([healthyId, strongId]).toContain(sweep.best.trialId);
  }, 480_000);
});
