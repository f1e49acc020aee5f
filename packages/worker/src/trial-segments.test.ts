import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CheckpointRef,
  createLogger,
  type DatasetManifest,
  datasetKeys,
  decodeTrial,
  encodeShard,
  encodeTrial,
  ObjectStore,
  type QualityPoint,
  type RedisKeys,
  Rng,
  redisKeys,
  segmentJobId,
  type TrialEvent,
  trialId,
} from '@gantry/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { s3Config, uniqueId } from '../../../test/support/infra.ts';
import type { RunTail } from './checkpoint-store.ts';
import { DatasetCache } from './data/dataset-cache.ts';
import { WorkerMetrics } from './metrics.ts';
import { runTrialAttempt, type TrialRunnerDeps } from './trial-runner.ts';

const SWEEP = 'sw-seg';
const TRIAL = trialId(SWEEP, 0);
const TOKEN = 'token-seg';
const VERSION = '5e95e95e95e95e95';
const PARAMS = {
  lr_g: 2e-4,
  lr_d: 2e-4,
  beta1: 0.5,
  beta2: 0.999,
  batch_size: 8,
  latent_dim: 8,
  base_filters: 8,
};

let redis: Redis;
let keys: RedisKeys;
let store: ObjectStore;
let cacheDir: string;
let deps: TrialRunnerDeps;

/**
 * A 28x28 gray set named mnist (so that the committed mnist classifier scores it; no classifier is trained
 * here): `n` noisy images of 10 classes per split, pushed as a version the way the coordinator stores one.
 */
async function pushMnistLike(n: number): Promise<void> {
  const rng = new Rng(11);
  const shards: DatasetManifest['shards'] = [];
  for (const split of ['train', 'test'] as const) {
    const pixels = Uint8Array.from({ length: n * 784 }, () => rng.int(256));
    const labels = Uint16Array.from({ length: n }, (_, i) => i % 10);
    const data = encodeShard({ count: n, height: 28, width: 28, channels: 1, paired: false, labels, pixels });
    const file = `${split}-0000.bin.gz`;
    await store.put(datasetKeys.shard('mnist', VERSION, file), data, 'application/gzip');
    shards.push({
      file,
      split,
      count: n,
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
    });
  }
  const manifest: DatasetManifest = {
    format: 'gantry-dataset/1',
    name: 'mnist',
    version: VERSION,
    created_at: 0,
    image: { height: 28, width: 28, channels: 1 },
    classes: Array.from({ length: 10 }, (_, i) => String(i)),
    paired: false,
    counts: { train: n, test: n },
    split: { test_fraction: 0.5, method: 'test' },
    shards,
    source: { kind: 'test', files: 2 * n, skipped: 0, alpha: 'none' },
  };
  await store.put(
    datasetKeys.manifest('mnist', VERSION),
    Buffer.from(JSON.stringify(manifest)),
    'application/json',
  );
}

/** A BullMQ job of segment `segment` as the worker sees it, its lock held with TOKEN. */
async function segmentJob(
  segment: number,
  data: { until?: number; params?: Record<string, number> },
  attemptsMade = 0,
) {
  const id = segmentJobId(TRIAL, segment);
  await redis.set(keys.jobLock(id), TOKEN);
  return {
    id,
    attemptsMade,
    data: {
      v: 2,
      sweepId: SWEEP,
      trialId: TRIAL,
      index: 0,
      model: 'dcgan',
      dataset: { name: 'mnist', version: VERSION, image_size: 28, channels: 1 },
      seed: 5,
      steps: 40,
      checkpointEvery: 10,
      params: data.params ?? PARAMS,
      health: { eval_every_steps: 10, eval_samples: 64 },
      ...(data.until !== undefined ? { until: data.until } : {}),
    },
    moveToWait: () => Promise.reject(new Error('not given back in this test')),
  };
}

const run = (job: Awaited<ReturnType<typeof segmentJob>>) =>
  runTrialAttempt(job as never, TOKEN, new AbortController().signal, deps);

const trial = async () => decodeTrial(await redis.hgetall(keys.trial(TRIAL)))!;
const list = async <T>(key: string): Promise<T[]> =>
  (await redis.lrange(key, 0, -1)).map((s) => JSON.parse(s) as T);

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  keys = redisKeys(uniqueId('g'));
  const s3 = s3Config();
  store = new ObjectStore(s3);
  await store.ensureBucket();
  await pushMnistLike(40);
  cacheDir = await mkdtemp(join(tmpdir(), 'gantry-seg-cache-'));
  const log = createLogger('test', 'silent');
  deps = {
    redis,
    keys,
    store: s3,
    workerId: 'w1',
    backend: 'wasm',
    datasets: new DatasetCache({ store, log, dir: cacheDir }),
    objectStore: store,
    metrics: new WorkerMetrics(),
    log,
    progressEvery: 10,
  };
  // The trial as the coordinator queues its first segment.
  await redis.hset(
    keys.trial(TRIAL),
    encodeTrial({
      id: TRIAL,
      sweepId: SWEEP,
      index: 0,
      state: 'queued',
      params: PARAMS,
      seed: 5,
      step: 0,
      steps: 40,
      attempts: 0,
      segment: 0,
      until: 20,
      createdAt: 1,
    }),
  );
});

afterAll(async () => {
  await redis.quit();
  await store.close();
  await rm(cacheDir, { recursive: true, force: true });
});

describe('a trial trained in segments', () => {
  it('pauses at its segment end with a checkpoint and an evaluation there, and resumes from it under new params', async () => {
    // Segment 0: steps 0 to 20 of 40.
    expect(await run(await segmentJob(0, { until: 20 }))).toEqual({ state: 'paused', step: 20 });
    const paused = await trial();
    expect(paused).toMatchObject({
      state: 'queued',
      step: 20,
      pausedAt: 20,
      reason: 'paused at step 20',
      attempts: 1,
    });
    expect(paused.latestCheckpoint?.step).toBe(20);
    expect((await list<CheckpointRef>(keys.trialCheckpoints(TRIAL))).map((c) => c.step)).toEqual([10, 20]);
    const q0 = await list<QualityPoint>(keys.trialQuality(TRIAL));
    expect(q0.map((q) => q.step)).toEqual([10, 20]);
    for (const q of q0) {
      expect(Number.isFinite(q.fld)).toBe(true);
      expect(q.t).toBeGreaterThan(0);
    }
    expect(paused.quality).toEqual({ ...q0[1], t: undefined });
    // The checkpoint at the pause carries the run's tail: the last tenth of all 40 steps, not of 20.
    const manifest = await store.getJson<{ step: number; tail: RunTail }>(
      paused.latestCheckpoint!.manifestKey,
    );
    expect(manifest.step).toBe(20);
    expect(manifest.tail.stats).toHaveLength(4);
    expect(paused.endedAt).toBeUndefined();

    // The same segment's job again (it died before completing): nothing trained, the pause said again.
    expect(await run(await segmentJob(0, { until: 20 }, 1))).toEqual({ state: 'paused', step: 20 });
    expect(await trial()).toMatchObject({ state: 'queued', step: 20, pausedAt: 20, attempts: 1 });
    expect(await redis.llen(keys.trialCheckpoints(TRIAL))).toBe(2);

    // Segment 1: the rest, with a new learning rate (PBT's explore), from the checkpoint at 20.
    await redis.hset(keys.trial(TRIAL), encodeTrial({ segment: 1, until: 40 }));
    const outcome = await run(await segmentJob(1, { params: { ...PARAMS, lr_d: 1e-3 } }));
    expect(outcome).toMatchObject({ state: 'completed', step: 40 });
    const done = await trial();
    expect(done).toMatchObject({
      state: 'completed',
      step: 40,
      resumedFrom: 20,
      attempts: 2,
      reason: undefined,
    });
    expect((await list<CheckpointRef>(keys.trialCheckpoints(TRIAL))).map((c) => c.step)).toEqual([
      10, 20, 30, 40,
    ]);
    expect((await list<QualityPoint>(keys.trialQuality(TRIAL))).map((q) => q.step)).toEqual([10, 20, 30, 40]);
    const events = await list<TrialEvent>(keys.trialEvents(TRIAL));
    expect(events.map((e) => [e.event, e.step])).toEqual([
      ['start', 0],
      ['start', 20],
      ['done', 40],
    ]);
    // The summary is over the tail the checkpoints handed on (steps 37 to 40).
    const last = await store.getJson<{ tail: RunTail }>(done.latestCheckpoint!.manifestKey);
    const mean = (i: number) => last.tail.stats.reduce((a, s) => a + s[i]!, 0) / last.tail.stats.length;
    expect(last.tail.stats).toHaveLength(4);
    expect(done.summary?.d_loss).toBeCloseTo(mean(0), 10);
    expect(done.summary?.g_loss).toBeCloseTo(mean(1), 10);
  }, 120_000);
});
