import {
  type CheckpointRef,
  decodeTrial,
  encodeTrial,
  type QualityPoint,
  type RedisKeys,
  redisKeys,
  type TrialMetrics,
} from '@gantry/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { uniqueId } from '../../../test/support/infra.ts';
import { TrialReporter } from './trial-reporter.ts';

const JOB = 'sw-fence-t000';
const TRIAL = 'sw-fence-t000';
const TOKEN_A = 'token-a';
const TOKEN_B = 'token-b';

let redis: Redis;
let keys: RedisKeys;

const point = (step: number): TrialMetrics => ({
  step,
  d_loss: 1.25,
  g_loss: 0.75,
  d_real: 0.6,
  d_fake: 0.4,
  images_per_sec: 1000,
  t: 1_700_000_000_000 + step,
  worker: 'w1',
});

const ref = (step: number, worker = 'w1'): CheckpointRef => ({
  step,
  manifestKey: `sweeps/sw-fence/trials/${TRIAL}/checkpoints/${step}/${worker}/manifest.json`,
  worker,
  t: 1_700_000_000_000 + step,
});

const reporter = (token: string) => new TrialReporter(redis, keys, JOB, token, TRIAL);

async function trial() {
  return decodeTrial(await redis.hgetall(keys.trial(TRIAL)));
}

async function history(): Promise<TrialMetrics[]> {
  return (await redis.lrange(keys.trialHistory(TRIAL), 0, -1)).map((s) => JSON.parse(s) as TrialMetrics);
}

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});

afterAll(async () => {
  await redis.quit();
});

beforeEach(async () => {
  // A fresh prefix per test: the state as the coordinator leaves it when it queues the trial, and the
  // job lock as BullMQ holds it for the worker with token A.
  keys = redisKeys(uniqueId('g'));
  await redis.hset(
    keys.trial(TRIAL),
    encodeTrial({
      id: TRIAL,
      sweepId: 'sw-fence',
      index: 0,
      state: 'queued',
      step: 0,
      steps: 1000,
      attempts: 0,
    }),
  );
  await redis.set(keys.jobLock(JOB), TOKEN_A);
});

describe('TrialReporter', () => {
  it('applies fields, appends a history point and increments a counter while it holds the lock', async () => {
    expect(
      await reporter(TOKEN_A).update(
        { state: 'running', worker: 'w1', step: 10 },
        { history: point(10), increment: 'attempts' },
      ),
    ).toBe('ok');
    expect(await trial()).toMatchObject({
      state: 'running',
      worker: 'w1',
      step: 10,
      attempts: 1,
      steps: 1000,
    });
    expect(await history()).toEqual([point(10)]);

    expect(await reporter(TOKEN_A).update({ step: 20, metrics: point(20) }, { history: point(20) })).toBe(
      'ok',
    );
    expect(await trial()).toMatchObject({ state: 'running', step: 20, attempts: 1, metrics: point(20) });
    expect(await history()).toEqual([point(10), point(20)]);

    // Fields only: no history point, no counter.
    expect(await reporter(TOKEN_A).update({ step: 25 })).toBe('ok');
    expect(await trial()).toMatchObject({ step: 25, attempts: 1 });
    expect(await history()).toHaveLength(2);
  });

  it("marks the trial in the scheduler's dirty set for a new state or an evaluation, not for progress", async () => {
    const dirty = () => redis.smembers(keys.dirty);
    expect(await reporter(TOKEN_A).update({ step: 10, metrics: point(10) }, { history: point(10) })).toBe(
      'ok',
    );
    expect(await dirty()).toEqual([]);
    expect(await reporter(TOKEN_A).update({ state: 'running', worker: 'w1' })).toBe('ok');
    expect(await dirty()).toEqual([TRIAL]);
    await redis.del(keys.dirty);
    const q: QualityPoint = { step: 20, fld: 12.5, diversity_ratio: 0.9, t: 1 };
    expect(await reporter(TOKEN_A).update({}, { quality: q })).toBe('ok');
    expect(await dirty()).toEqual([TRIAL]);
    await redis.del(keys.dirty);
    // A staged trial's progress rewrites its stage record: only a new stage or one done marks it.
    const stage = (index: number, alpha: number, done: number) => ({ index, count: 3, alpha, done });
    expect(await reporter(TOKEN_A).update({ stage: stage(0, 0.5, 0) })).toBe('ok');
    expect(await dirty()).toEqual([TRIAL]);
    await redis.del(keys.dirty);
    expect(await reporter(TOKEN_A).update({ step: 30, stage: stage(0, 0.75, 0) })).toBe('ok');
    expect(await dirty()).toEqual([]);
    expect(await reporter(TOKEN_A).update({ stage: stage(0, 1, 1) })).toBe('ok');
    expect(await dirty()).toEqual([TRIAL]);
    await redis.del(keys.dirty);
    // A refused write marks nothing.
    expect(await reporter(TOKEN_B).update({ state: 'completed' })).toBe('lock-lost');
    expect(await dirty()).toEqual([]);
  });

  it('changes nothing for a worker whose token no longer holds the lock', async () => {
    await reporter(TOKEN_A).update({ state: 'running', step: 10 }, { history: point(10) });
    const before = await redis.hgetall(keys.trial(TRIAL));
    expect(
      await reporter(TOKEN_B).update(
        { step: 99, worker: 'w2' },
        { history: point(99), increment: 'attempts' },
      ),
    ).toBe('lock-lost');
    expect(await redis.hgetall(keys.trial(TRIAL))).toEqual(before);
    expect(await history()).toEqual([point(10)]);

    // The lock expired altogether: refused as well.
    await redis.del(keys.jobLock(JOB));
    expect(await reporter(TOKEN_A).update({ step: 11 })).toBe('lock-lost');
    expect((await trial())?.step).toBe(10);
  });

  it('moves the checkpoint pointer forward only, and only for the lock holder', async () => {
    const a = reporter(TOKEN_A);
    const checkpoints = async () =>
      (await redis.lrange(keys.trialCheckpoints(TRIAL), 0, -1)).map((s) => JSON.parse(s) as CheckpointRef);
    const samples = async () =>
      (await redis.lrange(keys.trialSamples(TRIAL), 0, -1)).map((s) => JSON.parse(s) as unknown);

    expect(await a.commitCheckpoint(ref(100), 'samples/100.png')).toBe('ok');
    expect((await trial())?.latestCheckpoint).toEqual(ref(100));
    expect(await redis.hget(keys.trial(TRIAL), 'checkpointOrder')).toBe('100');
    expect(await checkpoints()).toEqual([ref(100)]);
    expect(await samples()).toEqual([{ step: 100, key: 'samples/100.png', t: ref(100).t }]);

    expect(await a.commitCheckpoint(ref(50), 'samples/50.png')).toBe('stale');
    expect(await a.commitCheckpoint(ref(100, 'w2'), 'samples/100b.png')).toBe('stale');
    expect((await trial())?.latestCheckpoint).toEqual(ref(100));

    expect(await reporter(TOKEN_B).commitCheckpoint(ref(200, 'w2'), 'samples/200.png')).toBe('lock-lost');
    expect((await trial())?.latestCheckpoint).toEqual(ref(100));
    expect(await checkpoints()).toEqual([ref(100)]);
    expect(await samples()).toHaveLength(1);

    expect(await a.commitCheckpoint(ref(200), 'samples/200.png')).toBe('ok');
    expect((await trial())?.latestCheckpoint).toEqual(ref(200));
    expect(await checkpoints()).toEqual([ref(100), ref(200)]);

    // A health restart rewound training to step 100: its checkpoints supersede step 200, and each
    // further restart supersedes the one before.
    const restarted = (step: number, restarts: number): CheckpointRef => ({ ...ref(step), restarts });
    expect(await a.commitCheckpoint(restarted(150, 1), 'samples/150.png')).toBe('ok');
    expect((await trial())?.latestCheckpoint).toEqual(restarted(150, 1));
    expect(await a.commitCheckpoint(ref(300), 'samples/300.png')).toBe('stale');
    expect(await a.commitCheckpoint(restarted(120, 1), 'samples/120.png')).toBe('stale');
    expect(await a.commitCheckpoint(restarted(100, 2), 'samples/100c.png')).toBe('ok');
    expect((await trial())?.latestCheckpoint).toEqual(restarted(100, 2));
  });

  it('lets the new lock holder move the pointer after a takeover, and refuses the old one', async () => {
    expect(await reporter(TOKEN_A).commitCheckpoint(ref(100), 's/100.png')).toBe('ok');
    // BullMQ hands the stalled job to another worker: the lock now holds its token.
    await redis.set(keys.jobLock(JOB), TOKEN_B);
    expect(await reporter(TOKEN_A).commitCheckpoint(ref(300), 's/300.png')).toBe('lock-lost');
    expect(await reporter(TOKEN_B).commitCheckpoint(ref(200, 'w2'), 's/200.png')).toBe('ok');
    expect((await trial())?.latestCheckpoint).toEqual(ref(200, 'w2'));
  });

  it('refuses every write once the coordinator cancelled the trial, keeping the cancelled state', async () => {
    const a = reporter(TOKEN_A);
    expect(await a.update({ state: 'running', step: 10 })).toBe('ok');
    expect(await a.commitCheckpoint(ref(100), 's/100.png')).toBe('ok');
    await redis.hset(keys.trial(TRIAL), 'state', 'cancelled');

    expect(await a.update({ state: 'completed', step: 1000, endedAt: 1 }, { history: point(1000) })).toBe(
      'cancelled',
    );
    expect(await a.commitCheckpoint(ref(200), 's/200.png')).toBe('cancelled');
    expect(await trial()).toMatchObject({ state: 'cancelled', step: 10, latestCheckpoint: ref(100) });
    expect((await trial())?.endedAt).toBeUndefined();
    expect(await history()).toEqual([]);
  });
});

describe('scheduler stops and quality history', () => {
  const quality = (step: number): QualityPoint => ({
    step,
    fld: 12.5 - step / 100,
    diversity_ratio: 0.875,
    t: 1_700_000_000_000 + step,
  });
  const qualityHistory = async (): Promise<QualityPoint[]> =>
    (await redis.lrange(keys.trialQuality(TRIAL), 0, -1)).map((s) => JSON.parse(s) as QualityPoint);

  it('appends a quality point with the evaluation in one fenced write, none for a stale holder', async () => {
    const { t: _t, ...q10 } = quality(10);
    expect(await reporter(TOKEN_A).update({ quality: q10 }, { quality: quality(10) })).toBe('ok');
    expect(await reporter(TOKEN_B).update({ quality: q10 }, { quality: quality(99) })).toBe('lock-lost');
    const { t: _t20, ...q20 } = quality(20);
    expect(await reporter(TOKEN_A).update({ quality: q20 }, { quality: quality(20) })).toBe('ok');
    expect(await qualityHistory()).toEqual([quality(10), quality(20)]);
    expect((await trial())?.quality).toEqual(q20);
    // Other writes leave the quality history alone.
    expect(await reporter(TOKEN_A).update({ step: 25 }, { history: point(25) })).toBe('ok');
    expect(await qualityHistory()).toHaveLength(2);
  });

  it('refuses every write once a scheduler stopped the trial, keeping the stop and its reason', async () => {
    const a = reporter(TOKEN_A);
    expect(await a.update({ state: 'running', step: 10 })).toBe('ok');
    expect(await a.commitCheckpoint(ref(100), 's/100.png')).toBe('ok');
    // The coordinator's stop, written on the trial itself before it tells the workers.
    await redis.hset(
      keys.trial(TRIAL),
      encodeTrial({ state: 'stopped', reason: 'asha: below the rung at step 100', endedAt: 5 }),
    );

    expect(await a.update({ state: 'running', step: 110 }, { history: point(110) })).toBe('cancelled');
    expect(await a.update({ quality: quality(110) }, { quality: quality(110) })).toBe('cancelled');
    expect(await a.update({ state: 'completed', step: 1000, endedAt: 9 }, { history: point(1000) })).toBe(
      'cancelled',
    );
    expect(await a.commitCheckpoint(ref(200), 's/200.png')).toBe('cancelled');
    expect(
      await a.rewindCheckpoint(ref(100), undefined, {
        event: 'fallback',
        attempt: 1,
        worker: 'w1',
        step: 0,
        t: 1,
      }),
    ).toBe('cancelled');
    expect(await trial()).toMatchObject({
      state: 'stopped',
      reason: 'asha: below the rung at step 100',
      endedAt: 5,
      step: 10,
      latestCheckpoint: ref(100),
    });
    expect(await history()).toEqual([]);
    expect(await qualityHistory()).toEqual([]);
  });

  it("lets a health rule's own stop through, and refuses what any worker writes after it", async () => {
    const a = reporter(TOKEN_A);
    expect(await a.update({ state: 'running', step: 40 })).toBe('ok');
    // What the runner writes on a trainer's `halted` (the trial is still running until this write).
    expect(
      await a.update({
        state: 'stopped',
        step: 40,
        reason: 'stopped by health rule d_dominance',
        endedAt: 7,
      }),
    ).toBe('ok');
    expect(await a.update({ state: 'queued', reason: 'attempt 1 failed: trainer exited' })).toBe('cancelled');
    expect(await trial()).toMatchObject({
      state: 'stopped',
      step: 40,
      reason: 'stopped by health rule d_dominance',
      endedAt: 7,
    });
  });
});

describe('staged trials', () => {
  it('appends stage events with the fenced update, and none for a stale lock holder', async () => {
    const event = (step: number) => ({
      stage: 1,
      resolution: 8,
      event: 'start' as const,
      step,
      worker: 'w1',
      attempt: 1,
      t: 1_700_000_000_000,
    });
    expect(
      await reporter(TOKEN_A).update(
        { stage: { index: 1, count: 3, resolution: 8, alpha: 0, done: 1 } },
        { stageEvent: event(40) },
      ),
    ).toBe('ok');
    expect(await reporter(TOKEN_B).update({ step: 99 }, { stageEvent: event(99) })).toBe('lock-lost');
    const events = (await redis.lrange(keys.trialStages(TRIAL), 0, -1)).map((e) => JSON.parse(e));
    expect(events).toEqual([event(40)]);
    expect((await trial())?.stage).toEqual({ index: 1, count: 3, resolution: 8, alpha: 0, done: 1 });
  });
});

describe('runTrialAttempt on a stage already recorded as done', () => {
  it('returns at once without training it again or touching the trial', async () => {
    const { runTrialAttempt } = await import('./trial-runner.ts');
    const { WorkerMetrics } = await import('./metrics.ts');
    const { createLogger, jobStage, MODEL_PARAMS } = await import('@gantry/shared');
    const params = Object.fromEntries(Object.entries(MODEL_PARAMS.progan).map(([k, d]) => [k, d.default]));
    const stages = [
      { resolution: 4, fade_steps: 0, stable_steps: 10, batch_size: 8 },
      { resolution: 8, fade_steps: 10, stable_steps: 10, batch_size: 8 },
    ];
    await redis.hset(
      keys.trial(TRIAL),
      encodeTrial({
        state: 'queued',
        step: 10,
        stage: { index: 1, count: 2, resolution: 8, alpha: 0, done: 1 },
      }),
    );
    const job = {
      id: `${TRIAL}-s0`,
      attemptsMade: 1,
      data: {
        v: 2,
        sweepId: 'sw-fence',
        trialId: TRIAL,
        index: 0,
        model: 'progan',
        dataset: { name: 'mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
        seed: 1,
        steps: 30,
        checkpointEvery: 5,
        params,
        stage: jobStage(stages, 0, params),
      },
    };
    const before = await redis.hgetall(keys.trial(TRIAL));
    const outcome = await runTrialAttempt(job as never, TOKEN_A, new AbortController().signal, {
      redis,
      keys,
      store: { endpoint: 'http://127.0.0.1:1', region: 'x', bucket: 'x', forcePathStyle: true },
      workerId: 'w1',
      // A finished stage returns before its data set is fetched.
      datasets: undefined as never,
      objectStore: undefined as never,
      metrics: new WorkerMetrics(),
      log: createLogger('test', 'silent'),
    });
    expect(outcome).toEqual({ state: 'stage-completed', step: 10 });
    expect(await redis.hgetall(keys.trial(TRIAL))).toEqual(before);
    expect(await redis.llen(keys.trialStages(TRIAL))).toBe(0);
  });

  it('returns at once for a trial a scheduler stopped, without a trainer or a write', async () => {
    const { runTrialAttempt } = await import('./trial-runner.ts');
    const { WorkerMetrics } = await import('./metrics.ts');
    const { createLogger, MODEL_PARAMS } = await import('@gantry/shared');
    const params = Object.fromEntries(Object.entries(MODEL_PARAMS.dcgan).map(([k, d]) => [k, d.default]));
    await redis.hset(
      keys.trial(TRIAL),
      encodeTrial({ state: 'stopped', step: 30, reason: 'median: below the median at step 30' }),
    );
    const job = {
      id: TRIAL,
      attemptsMade: 0,
      data: {
        v: 2,
        sweepId: 'sw-fence',
        trialId: TRIAL,
        index: 0,
        model: 'dcgan',
        dataset: { name: 'mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
        seed: 1,
        steps: 100,
        checkpointEvery: 10,
        params,
      },
    };
    const before = await redis.hgetall(keys.trial(TRIAL));
    const outcome = await runTrialAttempt(job as never, TOKEN_A, new AbortController().signal, {
      redis,
      keys,
      store: { endpoint: 'http://127.0.0.1:1', region: 'x', bucket: 'x', forcePathStyle: true },
      workerId: 'w1',
      datasets: undefined as never,
      objectStore: undefined as never,
      metrics: new WorkerMetrics(),
      log: createLogger('test', 'silent'),
    });
    expect(outcome).toEqual({ state: 'stopped', step: 30 });
    expect(await redis.hgetall(keys.trial(TRIAL))).toEqual(before);
    expect(await redis.llen(keys.trialEvents(TRIAL))).toBe(0);
  });

  it('appends attempt events in the same fenced write, refused to a stale holder', async () => {
    const start = { event: 'start' as const, attempt: 1, worker: 'w1', step: 0, t: 1 };
    expect(await reporter(TOKEN_A).update({ state: 'running' }, { event: start })).toBe('ok');
    expect(await reporter(TOKEN_B).update({ state: 'running' }, { event: { ...start, worker: 'w2' } })).toBe(
      'lock-lost',
    );
    const events = (await redis.lrange(keys.trialEvents(TRIAL), 0, -1)).map((e) => JSON.parse(e));
    expect(events).toEqual([start]);
  });

  it('rewinds the pointer to an older checkpoint (or none) when the newest cannot be read', async () => {
    const a = reporter(TOKEN_A);
    expect(await a.commitCheckpoint(ref(20), 's20')).toBe('ok');
    expect(await a.commitCheckpoint(ref(40), 's40')).toBe('ok');
    const fallback = {
      event: 'fallback' as const,
      attempt: 2,
      worker: 'w1',
      step: 20,
      from: 40,
      t: 5,
      reason: 'corrupt',
    };
    expect(await reporter(TOKEN_B).rewindCheckpoint(ref(40), ref(20), fallback)).toBe('lock-lost');
    expect((await trial())?.latestCheckpoint).toEqual(ref(40));
    // Only from the checkpoint the pointer names: one found unreadable earlier is no reason now.
    expect(await a.rewindCheckpoint(ref(30), ref(20), fallback)).toBe('stale');
    expect((await trial())?.latestCheckpoint).toEqual(ref(40));
    expect(await a.rewindCheckpoint(ref(40), ref(20), fallback)).toBe('ok');
    expect(await trial()).toMatchObject({ latestCheckpoint: ref(20), step: 20, resumedFrom: 20 });
    // Training on from 20 commits 30, which the pointer at 40 would have refused as stale.
    expect(await a.commitCheckpoint(ref(30), 's30')).toBe('ok');
    expect(await a.rewindCheckpoint(ref(30), undefined, { ...fallback, step: 0, from: 30 })).toBe('ok');
    const t = await trial();
    expect(t?.latestCheckpoint).toBeUndefined();
    expect(t?.step).toBe(0);
    expect(await a.commitCheckpoint(ref(10), 's10')).toBe('ok');
    const events = (await redis.lrange(keys.trialEvents(TRIAL), 0, -1)).map((e) => JSON.parse(e));
    expect(events.map((e) => e.from)).toEqual([40, 30]);
  });
});
