import { compileSweepSpec, createLogger, encodeTrial, TRIAL_QUEUE } from '@gantry/shared';
import { Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueId } from '../../../test/support/infra.ts';
import { waitFor } from '../../../test/support/wait-for.ts';
import { planSweep } from './planner/plan-sweep.ts';
import { Scheduler } from './scheduler.ts';
import { SweepStore } from './sweep-store.ts';

/**
 * The scheduler's passes on a real Redis and BullMQ queue, the workers played by the test (it writes what a
 * worker's fenced write does, dirty mark included). What a pass costs is counted in trial records read.
 */
let redis: Redis;
const closers: (() => Promise<unknown>)[] = [];
beforeAll(() => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
});
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  redis.disconnect();
});

const log = createLogger('test', 'silent');

function setup(opts: { events?: boolean; auditIntervalMs?: number } = {}) {
  const prefix = uniqueId('sch');
  const store = new SweepStore(redis, prefix);
  const queue = new Queue(TRIAL_QUEUE, { connection: redis.duplicate(), prefix });
  closers.push(() => queue.close());
  let events: QueueEvents | undefined;
  if (opts.events) {
    events = new QueueEvents(TRIAL_QUEUE, { connection: redis.duplicate(), prefix });
    closers.push(() => events!.close());
  }
  const scheduler = new Scheduler(store, queue, log, {
    events,
    auditIntervalMs: opts.auditIntervalMs,
    auditSlice: 2,
    intervalMs: 200,
  });
  closers.push(() => scheduler.stop());
  return { prefix, store, queue, scheduler, events };
}

function spec(trials: number, parallel: number) {
  return compileSweepSpec({
    name: 'sched',
    model: 'dcgan',
    dataset: { name: 'mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    method: 'random',
    metric: { name: 'g_loss', goal: 'minimize' },
    seed: 3,
    budget: { trials, parallel, steps: 10 },
    checkpoint: { every_steps: 10 },
    health: { eval_every_steps: 0 },
    parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
  });
}

const waitingIds = async (queue: Queue) => (await queue.getJobs(['waiting'])).map((j) => j.id).sort();

describe('Scheduler passes', () => {
  it('cost the trials that changed, not the idle ones: 2,000 waiting trials, one completion, one read', async () => {
    const s = setup({ auditIntervalMs: 3_600_000 }); // no rolling audit reads during the test
    const compiled = spec(2000, 2);
    const sweep = await s.store.create(compiled, planSweep(compiled));
    const [t0, t1, t2] = sweep.trialIds as [string, string, string];
    await s.scheduler.tick();
    // The first pass loads the sweep whole and fills its two places.
    expect(s.scheduler.stats.trialsRead).toBe(2000);
    expect(await waitingIds(s.queue)).toEqual([t0, t1]);
    // Passes with nothing changed read nothing.
    await s.scheduler.tick();
    await s.scheduler.tick();
    expect(s.scheduler.stats.trialsRead).toBe(2000);

    // A worker completes t0: a pass reads that one trial, records its result and queues the next.
    await (await s.queue.getJob(t0))?.remove();
    await redis
      .multi()
      .hset(s.store.keys.trial(t0), encodeTrial({ state: 'completed', summary: { g_loss: 0.5 }, endedAt: 1 }))
      .sadd(s.store.keys.dirty, t0)
      .exec();
    await s.scheduler.tick();
    expect(s.scheduler.stats.trialsRead).toBe(2001);
    expect((await s.store.trial(t0))?.result).toBe(0.5);
    expect(await waitingIds(s.queue)).toEqual([t1, t2].sort());
    expect((await s.store.get(sweep.id))?.state).toBe('running');
  });

  it("gives the API a sweep's trials from its view, reading again only those running", async () => {
    const s = setup({ auditIntervalMs: 3_600_000 });
    const compiled = spec(500, 2);
    const sweep = await s.store.create(compiled, planSweep(compiled));
    const [t0] = sweep.trialIds as [string];
    await s.scheduler.tick();
    // Progress marks nothing dirty: the view has step 0, Redis step 7.
    await redis.hset(s.store.keys.trial(t0), encodeTrial({ state: 'running', step: 7 }));
    const read = s.scheduler.stats.trialsRead;
    const trials = (await s.scheduler.currentTrials(sweep.id))!;
    expect(trials.map((t) => t.id)).toEqual(sweep.trialIds);
    expect(trials[0]).toMatchObject({ state: 'running', step: 7 });
    expect(trials[2]).toMatchObject({ state: 'queued', step: 0 });
    expect(s.scheduler.stats.trialsRead).toBe(read); // the API's reads are not the scheduler's
    expect(await s.scheduler.currentTrials('no-such-sweep')).toBeUndefined();
  });

  it("settles a job the queue failed for good from the queue's event, without reading the rest", async () => {
    const s = setup({ events: true });
    const compiled = spec(50, 1);
    const sweep = await s.store.create(compiled, planSweep(compiled));
    const [t0, t1] = sweep.trialIds as [string, string];
    s.scheduler.start();
    await s.events!.waitUntilReady();
    await s.scheduler.tick();
    const read = s.scheduler.stats.trialsRead;
    // A worker whose attempt fails for good (an invalid payload, a NaN): its job goes to failed.
    const worker = new Worker(
      TRIAL_QUEUE,
      async () => {
        throw new UnrecoverableError('loss is NaN at step 3');
      },
      { connection: redis.duplicate(), prefix: s.prefix, autorun: true },
    );
    closers.push(() => worker.close());
    const failed = await waitFor(
      't0 failed',
      async () => {
        const t = await s.store.trial(t0);
        return t?.state === 'failed' ? t : undefined;
      },
      10_000,
    );
    expect(failed.reason).toBe('loss is NaN at step 3');
    // The place it held went to t1 (whose job the same worker then fails too).
    await waitFor(
      't1 dispatched',
      async () => ((await s.store.trial(t1))?.dispatched ? true : undefined),
      10_000,
    );
    await worker.close();
    expect(s.scheduler.stats.fullPasses).toBe(1);
    expect(s.scheduler.stats.trialsRead - read).toBeLessThan(10);
  });

  it('finds a job that vanished from the queue when the rolling audit reaches its trial', async () => {
    const s = setup({ auditIntervalMs: 100 });
    const compiled = spec(3, 1);
    const sweep = await s.store.create(compiled, planSweep(compiled));
    const [t0] = sweep.trialIds as [string];
    await s.scheduler.tick();
    await (await s.queue.getJob(t0))?.remove();
    s.scheduler.start();
    const t = await waitFor(
      'the audit to settle t0',
      async () => {
        const x = await s.store.trial(t0);
        return x?.state === 'failed' ? x : undefined;
      },
      10_000,
    );
    expect(t.reason).toBe('its queue job disappeared');
    expect(s.scheduler.stats.fullPasses).toBe(1);
  });

  it('heals a change that marked nothing (a stale leader took its mark) when the rolling audit reads it', async () => {
    const s = setup({ auditIntervalMs: 100 });
    const compiled = spec(3, 1);
    const sweep = await s.store.create(compiled, planSweep(compiled));
    const [t0, t1] = sweep.trialIds as [string, string];
    await s.scheduler.tick();
    await (await s.queue.getJob(t0))?.remove();
    // Completed, but nothing in the dirty set.
    await redis.hset(
      s.store.keys.trial(t0),
      encodeTrial({ state: 'completed', summary: { g_loss: 2 }, endedAt: 1 }),
    );
    s.scheduler.start();
    await waitFor(
      't1 to be queued',
      async () => ((await s.store.trial(t1))?.dispatched ? true : undefined),
      10_000,
    );
    expect((await s.store.trial(t0))?.result).toBe(2);
  });
});

describe("the sweep store's fenced writes", () => {
  it('refuse to end a sweep whose version moved on, and to write over a cancelled one', async () => {
    const s = setup();
    const compiled = spec(2, 1);
    const sweep = await s.store.create(compiled, planSweep(compiled));
    const seen = (await s.store.get(sweep.id))!;
    expect(seen.version).toBeUndefined();
    // Another coordinator extends the sweep (gantry extend): trials added, the spec reopened.
    const other = (await s.store.get(sweep.id))!;
    other.spec = { ...other.spec, budget: { ...other.spec.budget, trials: 3 } };
    await s.store.addTrials(other, planSweep(other.spec).slice(2));
    await s.store.reopen(other);
    expect(other.version).toBe(1);
    expect((await s.store.get(sweep.id))?.version).toBe(2);
    // The scheduler decided on what it saw before (version 0): the end is refused, the sweep stays active.
    expect(await s.store.setSweepStateFenced('', sweep.id, 'completed', seen.version ?? 0)).toBe(false);
    expect((await s.store.get(sweep.id))?.state).toBe('queued');
    expect(await s.store.activeIds()).toContain(sweep.id);
    expect(await s.store.setSweepStateFenced('', sweep.id, 'completed', 2)).toBe(true);
    await s.store.setSweepState(sweep.id, 'cancelled');
    expect(await s.store.setSweepStateFenced('', sweep.id, 'running', 2)).toBe(false);
    expect((await s.store.get(sweep.id))?.state).toBe('cancelled');
  });

  it('leave a trial ended from outside as it is and mark it dirty; refuse everything to a lost lease', async () => {
    const s = setup();
    const compiled = spec(2, 1);
    const sweep = await s.store.create(compiled, planSweep(compiled));
    const [t0, t1] = sweep.trialIds as [string, string];
    await s.store.updateTrial(t0, { state: 'cancelled' });
    await s.store.updateTrial(t1, { state: 'completed' });
    await s.store.updateTrialsFenced('', [
      { id: t0, fields: { state: 'failed', reason: 'its queue job disappeared' } },
      { id: t1, fields: { state: 'failed' } },
    ]);
    expect((await s.store.trial(t0))?.state).toBe('cancelled');
    expect((await s.store.trial(t1))?.state).toBe('completed');
    expect((await s.store.takeDirty()).sort()).toEqual([t0, t1].sort());
    // A result on a completed trial is no state change: written.
    await s.store.updateTrialsFenced('', [{ id: t1, fields: { result: 0.25 } }]);
    expect((await s.store.trial(t1))?.result).toBe(0.25);
    await redis.set(s.store.keys.leader, '7:someone-else');
    await expect(s.store.updateTrialsFenced('3:me', [{ id: t1, fields: { result: 1 } }])).rejects.toThrow(
      'lease has moved',
    );
    await s.store.markDirty([t1]);
    await expect(s.store.takeDirty('3:me')).rejects.toThrow('lease has moved');
    expect(await s.store.takeDirty('7:someone-else')).toEqual([t1]);
  });
});
