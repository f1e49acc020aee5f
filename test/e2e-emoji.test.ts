import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileSweepSpec, createLogger, loadConfig, type StageEvent } from '@gantry/shared';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../packages/coordinator/src/coordinator.ts';
import {
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { testEnv } from './support/infra.ts';
import { waitForSweepEnd, waitForWorkers } from './support/wait-for.ts';

/** Share of an RGB PNG's pixels that are not gray. */
function colourShare(png: PNG): number {
  let n = 0;
  for (let p = 0; p < png.data.length; p += 4)
    if (png.data[p] !== png.data[p + 1] || png.data[p + 1] !== png.data[p + 2]) n += 1;
  return n / (png.width * png.height);
}

describe('emoji at 64x64 RGB on two workers', () => {
  const env = testEnv({ GANTRY_LOCK_MS: '5000' });
  const coordinator = new Coordinator(loadConfig(env), createLogger('e2e', 'silent'), {
    schedulerIntervalMs: 250,
  });
  const workers: WorkerProcess[] = [];

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopWorker(w, 10_000)));
    await coordinator.close();
  });

  it('completes a dcgan sweep and a progan trial growing from 4x4 to 64x64, with colour sample grids', async () => {
    await coordinator.start();
    const logDir = await mkdtemp(join(tmpdir(), 'gantry-e2e-'));
    workers.push(await spawnWorker('w1', env, logDir), await spawnWorker('w2', env, logDir));
    await waitForWorkers(coordinator, 2);
    const small = { batch_size: { value: 8 }, base_filters: { value: 8 }, latent_dim: { value: 16 } };
    // Quality is evaluated as by default (at the end of each trial and stage, progan's stages also scoring
    // real images at their resolution), on the fewest samples allowed instead of 512: nothing here reads
    // the scores, and 512 images of 64 px cost seconds each time.
    const health = { eval_samples: 64 };
    // The first sweep on emoji pushes the built-in set.
    const dcgan = await coordinator.submit(
      compileSweepSpec({
        name: 'emoji-dcgan',
        model: 'dcgan',
        dataset: 'emoji',
        method: 'grid',
        seed: 2,
        budget: { parallel: 2, steps: 12 },
        checkpoint: { every_steps: 6 },
        health,
        parameters: { ...small, lr_g: { values: [2e-4, 5e-4] } },
      }),
    );
    const stages = [4, 8, 16, 32, 64].map((resolution, i) => ({
      resolution,
      stable_steps: 4,
      ...(i > 0 ? { fade_steps: 4 } : {}),
      batch_size: 4,
    }));
    const progan = await coordinator.submit(
      compileSweepSpec({
        name: 'emoji-progan',
        model: 'progan',
        dataset: 'emoji',
        seed: 3,
        budget: { trials: 1 },
        checkpoint: { every_steps: 4 },
        health,
        parameters: { base_filters: { value: 16 }, latent_dim: { value: 16 } },
        stages,
      }),
    );
    for (const id of [dcgan.id, progan.id]) await waitForSweepEnd(coordinator, id, 400_000);
    const trials = await coordinator.store.trials([...dcgan.trialIds, ...progan.trialIds]);
    // States with their reasons, so that a failure says why.
    expect(trials.map((t) => `${t.state} ${t.reason ?? ''}`.trim())).toEqual([
      'completed',
      'completed',
      'completed',
    ]);
    for (const id of [dcgan.id, progan.id])
      expect((await coordinator.store.get(id))?.state).toBe('completed');
    for (const t of trials.slice(0, 2)) {
      const last = (await coordinator.store.samples(t.id)).at(-1)!;
      expect(last.step).toBe(12);
      const png = PNG.sync.read(await coordinator.objects.get(last.key));
      // 8 x 8 tiles of 64 px with 2 px gaps.
      expect([png.colorType, png.width]).toEqual([2, 8 * 64 + 9 * 2]);
      expect(colourShare(png)).toBeGreaterThan(0.1);
    }
    const grown = trials[2]!;
    const samples = await coordinator.store.samples(grown.id);
    expect(samples.at(-1)).toMatchObject({ step: 36, resolution: 64 });
    expect([...new Set(samples.map((s) => s.resolution))]).toEqual([4, 8, 16, 32, 64]);
    const top = PNG.sync.read(await coordinator.objects.get(samples.at(-1)!.key));
    expect(top.colorType).toBe(2);
    expect(colourShare(top)).toBeGreaterThan(0.1);
    const events: StageEvent[] = await coordinator.store.stageEvents(grown.id);
    expect(events.filter((e) => e.event === 'done').map((e) => e.step)).toEqual([4, 12, 20, 28, 36]);
    // Both workers trained: the dcgan trials and the stages were spread over them.
    const busy = new Set([...trials.map((t) => t.worker), ...events.map((e) => e.worker)]);
    expect(busy).toEqual(new Set(['w1', 'w2']));
  }, 600_000);
});
