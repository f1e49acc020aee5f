import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileSweepSpec, createLogger, loadConfig, TERMINAL_TRIAL_STATES } from '@gantry/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../packages/coordinator/src/coordinator.ts';
import {
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { testEnv } from './support/infra.ts';
import { waitFor } from './support/wait-for.ts';

const tinyDcgan = (name: string, steps: number, every: number, extra: Record<string, unknown> = {}) =>
  compileSweepSpec({
    name,
    model: 'dcgan',
    dataset: 'fashion-mnist',
    method: 'grid',
    budget: { trials: 1, parallel: 1, steps },
    checkpoint: { every_steps: every },
    parameters: { batch_size: { value: 16 }, base_filters: { value: 8 }, latent_dim: { value: 16 } },
    ...extra,
  });

describe('trial lifecycle across real worker processes', () => {
  let coordinator: Coordinator | undefined;
  const workers: WorkerProcess[] = [];

  async function stack(extraEnv: NodeJS.ProcessEnv, nWorkers: number) {
    const env = testEnv({ GANTRY_LOCK_MS: '4000', ...extraEnv });
    coordinator = new Coordinator(loadConfig(env), createLogger('e2e', 'silent'), {
      schedulerIntervalMs: 250,
    });
    await coordinator.start();
    const logDir = await mkdtemp(join(tmpdir(), 'gantry-e2e-'));
    for (let i = 1; i <= nWorkers; i++) workers.push(await spawnWorker(`w${i}`, env, logDir));
    return coordinator;
  }

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => stopWorker(w, 10_000)));
    await coordinator?.close();
    coordinator = undefined;
  });

  it('SIGTERM checkpoints the running trial and another worker resumes it from that exact step', async () => {
    const c = await stack({}, 2);
    const { trialIds } = await c.submit(tinyDcgan('e2e-sigterm', 200, 100));
    const id = trialIds[0]!;
    const running = await waitFor(
      'the trial to pass step 20',
      async () => {
        const t = await c.store.trial(id);
        return t?.state === 'running' && t.step >= 20 && t.step < 90 ? t : undefined;
      },
      120_000,
    );
    const holder = workers.find((w) => w.id === running.worker)!;
    holder.child.kill('SIGTERM');
    expect(await holder.exited).toBe(0);
    const stoppedAt = (await c.store.trial(id))!.latestCheckpoint!.step;
    expect(stoppedAt % 100).not.toBe(0); // a shutdown checkpoint, not a scheduled one
    expect(stoppedAt).toBeGreaterThanOrEqual(running.step);

    const done = await waitFor(
      'the trial to complete',
      async () => {
        const t = await c.store.trial(id);
        return t && TERMINAL_TRIAL_STATES.has(t.state) ? t : undefined;
      },
      120_000,
    );
    expect(done.state).toBe('completed');
    expect(done.worker).not.toBe(holder.id);
    expect(done.resumedFrom).toBe(stoppedAt);
    // Shutdown gave the job back without counting an attempt: the only one counted is the completion.
    await waitFor(
      'the job to complete',
      async () => (await c.queue.getJobState(id)) === 'completed' || undefined,
      10_000,
    );
    const job = (await c.queue.getJob(id))!;
    expect(job.attemptsMade).toBe(1);
    expect(job.stacktrace).toEqual([]);
  }, 300_000);

  it('cancelling a sweep stops its running trial and frees the worker', async () => {
    const c = await stack({}, 1);
    const { id: sweepId, trialIds } = await c.submit(tinyDcgan('e2e-cancel', 5000, 1000));
    await waitFor(
      'the trial to run',
      async () => ((await c.store.trial(trialIds[0]!))?.step ?? 0) >= 10 || undefined,
      120_000,
    );
    // While it runs, the worker's /metrics has the trial's series and says which backend it uses.
    const [worker] = await c.workers();
    const during = await (await fetch(worker!.metricsUrl)).text();
    expect(during).toMatch(
      new RegExp(`gantry_trial_step\\{sweep="${sweepId}",trial="${trialIds[0]}"\\} \\d+`),
    );
    expect(during).toMatch(/gantry_trial_images_per_second\{/);
    expect(during).toMatch(/gantry_worker_info\{worker="w1",backend="wasm",device="cpu \(wasm/);
    await c.scheduler.cancel(sweepId);
    const freed = await waitFor(
      'the worker to be idle',
      async () => {
        const [w] = await c.workers();
        return w && w.busyTrials.length === 0 ? w : undefined;
      },
      30_000,
    );
    expect(freed.id).toBe('w1');
    const t = (await c.store.trial(trialIds[0]!))!;
    expect(t.state).toBe('cancelled');
    expect(t.step).toBeLessThan(5000);
    expect((await c.store.get(sweepId))!.state).toBe('cancelled');
    // A trial that left the worker leaves no series behind.
    const after = await (await fetch(worker!.metricsUrl)).text();
    expect(after).not.toMatch(/gantry_trial_step\{/);
    expect(after).toMatch(/gantry_worker_trial_attempts_total\{outcome="cancelled"\} 1/);
  }, 300_000);

  it('a NaN loss ends the trial as diverged, with its reason, without retries', async () => {
    const c = await stack({ GANTRY_FAULT_NAN_AT_STEP: '7' }, 1);
    const { id: sweepId, trialIds } = await c.submit(tinyDcgan('e2e-nan', 100, 50));
    const t = await waitFor(
      'the trial to end',
      async () => {
        const r = await c.store.trial(trialIds[0]!);
        return r && TERMINAL_TRIAL_STATES.has(r.state) ? r : undefined;
      },
      120_000,
    );
    expect(t.state).toBe('diverged');
    expect(t.reason).toMatch(/non-finite .* at step 7/);
    expect(t.attempts).toBe(1);
    const job = (await c.queue.getJob(trialIds[0]!))!;
    await waitFor(
      'the job to fail',
      async () => ((await job.getState()) === 'failed' ? true : undefined),
      10_000,
    );
    expect((await c.queue.getJob(trialIds[0]!))!.attemptsMade).toBe(1);
    await waitFor(
      'the sweep to end',
      async () => ((await c.store.get(sweepId))!.state === 'failed' ? true : undefined),
      10_000,
    );
  }, 300_000);

  it('a job with an invalid payload fails at once and never reaches a trainer', async () => {
    const c = await stack({}, 1);
    const job = await c.queue.add(
      'train',
      { v: 1, sweepId: 'x', trialId: 'x-t000', model: 'dcgan', params: { lr_g: -1 } },
      { jobId: 'x-t000', attempts: 3 },
    );
    const state = await waitFor(
      'the job to fail',
      async () => {
        const s = await job.getState();
        return s === 'failed' ? s : undefined;
      },
      60_000,
    );
    expect(state).toBe('failed');
    const failed = (await c.queue.getJob('x-t000'))!;
    expect(failed.attemptsMade).toBe(1);
    expect(failed.failedReason).toMatch(/invalid payload/);
    // A job the coordinator did not create leaves no trial record behind.
    expect(await c.redis.exists(c.store.keys.trial('x-t000'))).toBe(0);
  }, 120_000);
});
