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

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe('progressive growing as staged queue jobs, end to end', () => {
  const env = testEnv({ GANTRY_LOCK_MS: '4000' });
  const config = loadConfig(env);
  const coordinator = new Coordinator(config, createLogger('e2e', 'silent'), { schedulerIntervalMs: 250 });
  const workers: WorkerProcess[] = [];

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopWorker(w, 10_000)));
    await coordinator.close();
  });

  it('trains 4x4 -> 8x8 -> 16x16 across two workers, one SIGKILLed in stage 2, each stage once and in order', async () => {
    await coordinator.start();
    const logDir = await mkdtemp(join(tmpdir(), 'gantry-e2e-progan-'));
    workers.push(await spawnWorker('w1', env, logDir), await spawnWorker('w2', env, logDir));
    const spec = compileSweepSpec({
      name: 'e2e-progan',
      model: 'progan',
      dataset: 'fashion-mnist',
      seed: 11,
      budget: { trials: 1, parallel: 1 },
      checkpoint: { every_steps: 20 },
      metric: { name: 'fld', goal: 'minimize' },
      parameters: { base_filters: { value: 8 }, latent_dim: { value: 16 } },
      stages: [
        { resolution: 4, stable_steps: 40, batch_size: 16 },
        { resolution: 8, fade_steps: 40, stable_steps: 60, batch_size: 16 },
        { resolution: 16, fade_steps: 20, stable_steps: 20, batch_size: 8 },
      ],
      // One evaluation at the end of each stage.
      health: { eval_every_steps: 1000, eval_samples: 64 },
    });
    expect(spec.budget.steps).toBe(180);
    const { id: sweepId, trialIds } = await coordinator.submit(spec);
    const trialId = trialIds[0]!;

    // Kill the worker training stage 2 (8x8) once it has committed a checkpoint inside the stage.
    const victim = await waitFor(
      'stage 2 running past a checkpoint of its own',
      async () => {
        const t = await coordinator.store.trial(trialId);
        const ck = t?.latestCheckpoint;
        if (t?.state === 'running' && t.stage?.index === 1 && ck && ck.step > 40 && t.step < 140) return t;
        return undefined;
      },
      240_000,
    );
    const killedAt = victim.latestCheckpoint!.step;
    const killed = workers.find((w) => w.id === victim.worker)!;
    const survivor = workers.find((w) => w !== killed)!;
    killed.child.kill('SIGKILL');
    await killed.exited;

    const sweep = await waitFor(
      'the sweep to end',
      async () => {
        const s = await coordinator.store.get(sweepId);
        return s && ['completed', 'failed', 'cancelled'].includes(s.state) ? s : undefined;
      },
      300_000,
    );
    const trial = (await coordinator.store.trial(trialId))!;
    expect(sweep.state, trial.reason).toBe('completed');
    expect(trial.state).toBe('completed');
    expect(trial.step).toBe(180);
    expect(trial.stage).toEqual({ index: 2, count: 3, resolution: 16, alpha: 1, done: 3 });
    expect(trial.result).toBeTypeOf('number');
    expect(trial.quality?.step).toBe(180);

    // Stages ended in order, each exactly once; no stage started again after it ended.
    const events = await coordinator.store.stageEvents(trialId);
    const done = events.filter((e) => e.event === 'done');
    expect(done.map((e) => [e.stage, e.resolution, e.step])).toEqual([
      [0, 4, 40],
      [1, 8, 140],
      [2, 16, 180],
    ]);
    events.forEach((e, i) => {
      const finishedBefore = events.slice(0, i).some((p) => p.event === 'done' && p.stage >= e.stage);
      expect(finishedBefore, `event ${i}: ${JSON.stringify(e)}`).toBe(false);
    });
    // Stage 2 started twice: fresh from stage 1's end, then resumed from the checkpoint before the kill.
    const starts2 = events.filter((e) => e.event === 'start' && e.stage === 1);
    expect(starts2.map((e) => e.step)).toEqual([40, killedAt]);
    expect(starts2[1]!.worker).toBe(survivor.id);
    expect(events.filter((e) => e.event === 'start' && e.stage !== 1).map((e) => [e.stage, e.step])).toEqual([
      [0, 0],
      [2, 140],
    ]);

    // Sample grids at every resolution, at strictly increasing steps: no step was trained twice.
    const samples = await coordinator.store.samples(trialId);
    const steps = samples.map((s) => s.step);
    expect(steps).toEqual([...new Set(steps)].sort((a, b) => a - b));
    expect(steps.at(-1)).toBe(180);
    for (const s of samples) {
      const expected = s.step <= 40 ? 4 : s.step <= 140 ? 8 : 16;
      expect(s.resolution, `sample at step ${s.step}`).toBe(expected);
    }
    expect(new Set(samples.map((s) => s.resolution))).toEqual(new Set([4, 8, 16]));
    const objects = new ObjectStore(config.s3);
    for (const s of samples) {
      const size = pngSize(await objects.get(s.key));
      expect(size.width).toBeGreaterThanOrEqual(8 * s.resolution!);
    }

    // Progress carried the stage's resolution and fade-in: alpha rises over each fade, then stays 1.
    const history: TrialMetrics[] = await coordinator.store.history(trialId);
    for (const p of history) {
      const stageStart = p.step <= 40 ? 0 : p.step <= 140 ? 40 : 140;
      const fade = p.step <= 40 ? 0 : p.step <= 140 ? 40 : 20;
      expect(p.resolution).toBe(p.step <= 40 ? 4 : p.step <= 140 ? 8 : 16);
      const alpha = fade === 0 ? 1 : Math.min(1, (p.step - 1 - stageStart) / fade);
      expect(p.alpha, `alpha at step ${p.step}`).toBeCloseTo(alpha, 6);
    }
    // Checkpoint pointers only moved forward.
    const cks = (await coordinator.store.checkpoints(trialId)).map((c) => c.step);
    expect(cks).toEqual([...cks].sort((a, b) => a - b));
  }, 600_000);
});
