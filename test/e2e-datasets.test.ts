import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileSweepSpec, createLogger, loadConfig, type TrialJob } from '@gantry/shared';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../packages/coordinator/src/coordinator.ts';
import {
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { labelledSet, type SetFiles, tarOf } from './support/image-sets.ts';
import { testEnv } from './support/infra.ts';
import { waitForSweepEnd, waitForWorkers } from './support/wait-for.ts';

/** Pushes `files` as a tar through the API; returns the version. */
async function push(coordinator: Coordinator, name: string, files: SetFiles): Promise<string> {
  const res = await coordinator.app.inject({
    method: 'POST',
    url: `/v1/datasets?name=${name}`,
    headers: { 'content-type': 'application/x-tar' },
    payload: tarOf(files),
  });
  expect(res.statusCode).toBe(201);
  return (res.json() as { manifest: { version: string } }).manifest.version;
}

/** Sum of a counter's samples with these labels in a worker's /metrics text. */
async function counter(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(url)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

describe('training on a pushed data set', () => {
  // Both workers are one node: they share a cache folder of their own for this test.
  const env = testEnv({ GANTRY_LOCK_MS: '5000' });
  const workers: WorkerProcess[] = [];
  let coordinator: Coordinator;

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopWorker(w, 10_000)));
    await coordinator?.close();
  });

  it('trains a colour set on two workers of one node from one download, pinned to the version it was submitted with', async () => {
    env.GANTRY_CACHE_DIR = await mkdtemp(join(tmpdir(), 'gantry-e2e-cache-'));
    coordinator = new Coordinator(loadConfig(env), createLogger('e2e', 'silent'), {
      schedulerIntervalMs: 250,
    });
    await coordinator.start();
    const logDir = await mkdtemp(join(tmpdir(), 'gantry-e2e-'));
    workers.push(await spawnWorker('w1', env, logDir), await spawnWorker('w2', env, logDir));
    // Both take a trial at once: each runs one (GANTRY_WORKER_CONCURRENCY=1), so they fetch the set together.
    await waitForWorkers(coordinator, 2);

    const colours = { red: [220, 40, 40], green: [40, 200, 60], blue: [40, 60, 220] } as const;
    const v1 = await push(coordinator, 'swatches', labelledSet(colours, 16));
    const { id, trialIds, warnings } = await coordinator.submit(
      compileSweepSpec({
        name: 'pushed-set',
        model: 'cgan',
        dataset: 'swatches',
        method: 'grid',
        seed: 5,
        metric: { name: 'fld', goal: 'minimize' },
        budget: { parallel: 2, steps: 30 },
        checkpoint: { every_steps: 15 },
        parameters: {
          lr_g: { values: [2e-4, 4e-4] },
          batch_size: { value: 8 },
          base_filters: { value: 8 },
          latent_dim: { value: 16 },
        },
      }),
    );
    expect(warnings.join()).toMatch(/the first evaluation trains one on the set \(its classes\)/);
    // A push while the sweep runs is a new version; the sweep's trials keep the one they were given.
    const v2 = await push(coordinator, 'swatches', labelledSet({ ...colours, black: [10, 10, 10] }, 16));
    expect(v2).not.toBe(v1);

    const sweep = await waitForSweepEnd(coordinator, id, 300_000);
    const trials = await coordinator.store.trials(trialIds);
    expect(sweep.state).toBe('completed');
    expect(new Set(trials.map((t) => t.worker))).toEqual(new Set(['w1', 'w2']));
    // The first evaluation trained the set's classifier and kept it beside the version; both trials scored.
    const quality = await coordinator.objects.list(`datasets/swatches/${v1}/quality/`);
    expect(quality.sort()).toEqual([
      `datasets/swatches/${v1}/quality/16x16x3/swatches.bin`,
      `datasets/swatches/${v1}/quality/16x16x3/swatches.json`,
    ]);
    for (const t of trials) {
      expect(t.quality?.step).toBe(30);
      expect(t.result).toBe(t.quality?.fld);
      const job = await coordinator.queue.getJob(t.id);
      expect((job?.data as TrialJob).dataset).toEqual({
        name: 'swatches',
        version: v1,
        image_size: 16,
        channels: 3,
      });
      // The sample grid is in colour: an RGB PNG whose pixels are not all gray.
      const sample = (await coordinator.store.samples(t.id)).at(-1)!;
      const png = PNG.sync.read(await coordinator.objects.get(sample.key));
      expect(png.colorType).toBe(2);
      let colourful = 0;
      for (let p = 0; p < png.data.length; p += 4)
        if (png.data[p] !== png.data[p + 1] || png.data[p + 1] !== png.data[p + 2]) colourful += 1;
      expect(colourful).toBeGreaterThan(png.width * png.height * 0.1);
    }
    // One download on the node for both trainers; the version pushed mid-sweep was never fetched.
    const urls = (await coordinator.workers()).map((w) => w.metricsUrl);
    expect(urls).toHaveLength(2);
    const fetched = async (version: string, result: string) =>
      (
        await Promise.all(
          urls.map((u) =>
            counter(
              u,
              'gantry_worker_dataset_fetches_total',
              `dataset="swatches@${version}",result="${result}"`,
            ),
          ),
        )
      ).reduce((a, b) => a + b, 0);
    expect(await fetched(v1, 'downloaded')).toBe(1);
    expect(await fetched(v1, 'cached')).toBe(1);
    expect((await fetched(v2, 'downloaded')) + (await fetched(v2, 'cached'))).toBe(0);
  }, 400_000);
});
