import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileSweepSpec, createLogger, loadConfig, ObjectStore, type TrialMetrics } from '@gantry/shared';
import { afterAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../packages/coordinator/src/coordinator.ts';
import {
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { testEnv } from './support/infra.ts';
import { waitFor } from './support/wait-for.ts';

describe('a sweep end to end on real Redis, S3 and worker processes', () => {
  // Short job locks so a killed worker's trial is taken over within seconds.
  const env = testEnv({ GANTRY_LOCK_MS: '4000' });
  const coordinator = new Coordinator(loadConfig(env), createLogger('e2e', 'silent'), {
    schedulerIntervalMs: 250,
  });
  const workers: WorkerProcess[] = [];

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopWorker(w, 10_000)));
    await coordinator.close();
  });

  it('completes every trial after a worker is SIGKILLed mid-trial, resuming it from its last checkpoint', async () => {
    await coordinator.start();
    const logDir = await mkdtemp(join(tmpdir(), 'gantry-e2e-'));
    workers.push(await spawnWorker('w1', env, logDir), await spawnWorker('w2', env, logDir));
    const spec = compileSweepSpec({
      name: 'e2e-kill',
      model: 'dcgan',
      dataset: 'fashion-mnist',
      method: 'grid',
      seed: 3,
      budget: { trials: 4, parallel: 2, steps: 90 },
      checkpoint: { every_steps: 30 },
      parameters: {
        lr_g: { values: [2e-4, 4e-4] },
        lr_d: { values: [2e-4, 1e-4] },
        batch_size: { value: 16 },
        base_filters: { value: 8 },
        latent_dim: { value: 16 },
      },
      // DiffAugment with ADA: p and the Rng it draws from must survive the hand-over too (checked below).
      augment: { adaptive: { interval: 1, ramp_images: 1000 } },
    });
    const { id: sweepId, trialIds } = await coordinator.submit(spec);
    expect(trialIds).toHaveLength(4);

    // Kill w1 once a trial it runs has a committed checkpoint but has not finished.
    const victim = await waitFor(
      'a trial on w1 past its first checkpoint',
      async () => {
        for (const t of await coordinator.store.trials(trialIds)) {
          const ck = t.latestCheckpoint;
          if (t.state === 'running' && t.worker === 'w1' && ck && ck.step >= 30 && t.step < t.steps) return t;
        }
        return undefined;
      },
      240_000,
    );
    const killedAtCheckpoint = victim.latestCheckpoint!.step;
    workers[0]!.child.kill('SIGKILL');
    await workers[0]!.exited;

    const sweep = await waitFor(
      'the sweep to end',
      async () => {
        const s = await coordinator.store.get(sweepId);
        return s && ['completed', 'failed', 'cancelled'].includes(s.state) ? s : undefined;
      },
      300_000,
    );
    const trials = await coordinator.store.trials(trialIds);
    expect(sweep.state).toBe('completed');
    expect(trials.map((t) => t.state)).toEqual(['completed', 'completed', 'completed', 'completed']);
    for (const t of trials) {
      expect(t.step).toBe(90);
      expect(t.result).toBeTypeOf('number');
      expect((await coordinator.store.samples(t.id)).map((s) => s.step)).toEqual([30, 60, 90]);
    }

    // The killed trial resumed from its checkpoint on w2, not from step 0.
    const resumed = (await coordinator.store.trial(victim.id))!;
    expect(resumed.worker).toBe('w2');
    expect(resumed.attempts).toBeGreaterThanOrEqual(2);
    expect(resumed.resumedFrom).toBeGreaterThanOrEqual(killedAtCheckpoint);
    const history: TrialMetrics[] = await coordinator.store.history(victim.id);
    const byW1 = history.filter((p) => p.worker === 'w1');
    const byW2 = history.filter((p) => p.worker === 'w2');
    expect(byW1.length).toBeGreaterThan(0);
    expect(byW2.length).toBeGreaterThan(0);
    expect(Math.min(...byW2.map((p) => p.step))).toBeGreaterThan(resumed.resumedFrom!);
    expect(Math.min(...byW2.map((p) => p.step))).toBeLessThanOrEqual(resumed.resumedFrom! + 10);
    expect(Math.max(...byW1.map((p) => p.step))).toBeGreaterThanOrEqual(killedAtCheckpoint);
    // At most one checkpoint interval of work was lost.
    expect(Math.max(...byW1.map((p) => p.step)) - resumed.resumedFrom!).toBeLessThanOrEqual(30);
    // Every point shows DiffAugment's p; the checkpoint w2 resumed from holds w1's p at that step exactly,
    // and w2 went on from it (p moves at most 16 images / 1000 per step).
    for (const p of history) expect(p.augment_p).toBeGreaterThanOrEqual(0);
    const atCheckpoint = byW1.find((p) => p.step === resumed.resumedFrom)!.augment_p!;
    const ref = (await coordinator.store.checkpoints(victim.id)).find((c) => c.step === resumed.resumedFrom)!;
    const objects = new ObjectStore(loadConfig(env).s3);
    const manifest = await objects.getJson<{ augment?: { p: number } }>(ref.manifestKey);
    await objects.close();
    expect(manifest.augment?.p).toBe(atCheckpoint);
    const firstOnW2 = byW2.reduce((a, p) => (p.step < a.step ? p : a));
    const bound = ((firstOnW2.step - resumed.resumedFrom!) * 16) / 1000;
    expect(Math.abs(firstOnW2.augment_p! - atCheckpoint)).toBeLessThanOrEqual(bound + 1e-9);
    // Checkpoint pointers only moved forward.
    const steps = (await coordinator.store.checkpoints(victim.id)).map((c) => c.step);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(new Set(steps).size).toBe(steps.length);
  }, 600_000);
});
