import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ObjectStore, redisKeys, trialId } from '@gantry/shared';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { compileFakeTrainer, trialSecondsOf } from '../bench/scale/fake-trainer.ts';
import { dispatchSamples, parseInfo, percentile } from '../bench/scale/measure.ts';
import { parseMonitorLine } from '../bench/scale/monitor.ts';
import { runScale } from '../bench/scale/scale-run.ts';
import { pushSimDataset, SIM_DATASET } from '../bench/scale/sim-dataset.ts';
import { s3Config, uniqueId } from './support/infra.ts';

describe('the scale bench measures', () => {
  it('pairs the k-th slot freed with the (slots + k)-th job started, within the window', () => {
    // 2 slots: the first two jobs start at 0 and 5; slots free at 10 and 20, and the next two jobs start at
    // 21 and 40: the first slot freed goes with the first of those starts (11), the second with the second
    // (20), in time order whichever trial each start belongs to. The ends at 60 and 70 free slots that no job
    // is left for (4 jobs); with a 5th job, not started yet, the end at 60 is pending.
    const all = { ends: [60, 10, 20, 70], starts: [40, 0, 21, 5], slots: 2, jobs: 4 };
    expect(dispatchSamples({ ...all, from: 0, to: 100 })).toEqual({ latencies: [11, 20], pending: 0 });
    expect(dispatchSamples({ ...all, from: 15, to: 100 })).toEqual({ latencies: [20], pending: 0 });
    expect(dispatchSamples({ ...all, jobs: 5, from: 0, to: 100 })).toEqual({
      latencies: [11, 20],
      pending: 1,
    });
  });

  it('takes percentiles by nearest rank and reads INFO and MONITOR lines', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 1..100 shuffled by reversal
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    const info = parseInfo('# Stats\r\ntotal_commands_processed:1234\r\nused_memory:99\r\n');
    expect([info.get('total_commands_processed'), info.get('used_memory')]).toEqual(['1234', '99']);
    expect(parseMonitorLine('+1700000000.123456 [0 127.0.0.1:54321] "HGETALL" "g:trial:x"')).toEqual({
      source: '127.0.0.1:54321',
      command: 'hgetall',
    });
    expect(parseMonitorLine('+1700000000.123456 [0 lua] "hset" "k" "f" "v"')?.source).toBe('lua');
    expect(parseMonitorLine('+OK')).toBeUndefined();
  });

  it('spreads trial lengths over the range by index', () => {
    const d = compileFakeTrainer({ trialSeconds: [20, 60] });
    const lengths = Array.from({ length: 10 }, (_, i) => trialSecondsOf(d, i));
    expect(lengths[0]).toBe(20);
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(20);
    expect(Math.max(...lengths)).toBeLessThan(60);
    // Golden-ratio spacing: 10 lengths leave no gap wider than a fifth of the range.
    const sorted = [...lengths, 60].sort((a, b) => a - b);
    expect(Math.max(...sorted.slice(1).map((x, i) => x - sorted[i]!))).toBeLessThan(8);
    expect(() => compileFakeTrainer({ trialSeconds: [0.5, 2] })).toThrow(/trialSeconds/);
  });
});

describe('the scale bench at N = 3 on real Redis and S3', () => {
  const work = mkdtemp(join(tmpdir(), 'gantry-scale-test-'));
  const redis = new Redis(inject('redisUrl'));
  afterAll(async () => {
    redis.disconnect();
    await rm(await work, { recursive: true, force: true });
  });

  it('runs a 12-trial sweep through the real coordinator and workers and measures every freed slot', async () => {
    const s3 = s3Config();
    const store = new ObjectStore(s3);
    await store.ensureBucket();
    await pushSimDataset(store);
    await store.close();
    const prefix = uniqueId('scale');
    const n = 3;
    const trials = 12;
    const steps = 400;
    const row = await runScale({
      workers: n,
      hosts: 1,
      trials,
      steps,
      // Trials of 1-2 s with a report every 250 ms; a checkpoint every 0.5 s of wall time (60 s simulated).
      fake: compileFakeTrainer({ progressMs: 250, trialSeconds: [1, 2], timeScale: 120 }),
      warmupS: 0,
      window: 'sweep',
      apiEveryMs: 1000,
      monitorS: 0,
      smallTrials: 0,
      redisUrl: inject('redisUrl'),
      s3: { endpoint: s3.endpoint!, bucket: s3.bucket, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      prefix,
      workDir: join(await work, 'n3'),
      dataset: SIM_DATASET,
      say: () => {},
    });
    expect(row.states).toEqual({ completed: trials });
    expect(row.completed_in_window).toBe(trials);
    // Every end but the last N freed a slot that a queued trial took.
    expect(row.dispatch.samples).toBe(trials - n);
    expect(row.dispatch.pending).toBe(0);
    expect(row.dispatch_started_at.samples).toBe(trials - n);
    expect(row.dispatch_queued.samples).toBe(trials - n);
    // A job is taken after it is queued: rank by rank, the coordinator's part is at most the whole.
    expect(row.dispatch_queued.p50_ms).toBeLessThanOrEqual(row.dispatch.p50_ms);
    expect(row.dispatch_queued.max_ms).toBeLessThanOrEqual(row.dispatch.max_ms);
    for (const d of [row.dispatch, row.dispatch_started_at, row.dispatch_queued]) {
      expect(d.p50_ms).toBeGreaterThanOrEqual(0);
      expect(d.p99_ms).toBeGreaterThanOrEqual(d.p50_ms);
      expect(d.max_ms).toBeLessThan(10_000);
    }
    expect(row.planning.post_ms).toBeGreaterThan(0);
    expect(row.api.samples).toBeGreaterThanOrEqual(1);
    expect(row.api.bytes).toBeGreaterThan(0);
    for (const v of Object.values(row.usage)) expect(Number.isFinite(v)).toBe(true);
    expect(row.usage.coordinator_rss_mb).toBeGreaterThan(10);
    expect(row.usage.redis_commands_per_s).toBeGreaterThan(0);
    // The fake trainer went through the worker's real reports: fenced checkpoint commits up to the last
    // step, the step history, and a summary with the sweep's metric.
    const keys = redisKeys(prefix);
    const id = trialId(row.sweepId, 0);
    const checkpoints = (await redis.lrange(keys.trialCheckpoints(id), 0, -1)).map(
      (s) => JSON.parse(s) as { step: number; manifestKey: string },
    );
    expect(checkpoints.length).toBeGreaterThanOrEqual(2);
    expect(checkpoints.at(-1)!.step).toBe(steps);
    expect(checkpoints.at(-1)!.manifestKey).toMatch(
      new RegExp(`^sweeps/${row.sweepId}/trials/${id}/checkpoints/${steps}/[^/]+/manifest\\.json$`),
    );
    expect(await redis.llen(keys.trialHistory(id))).toBeGreaterThanOrEqual(3);
    const summary = JSON.parse((await redis.hget(keys.trial(id), 'summary')) ?? '{}') as Record<
      string,
      number
    >;
    expect(Number.isFinite(summary.g_loss)).toBe(true);
  }, 25_000);
});
