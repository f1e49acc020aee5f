import {
  type CheckpointRef,
  ConfigError,
  compileSweepSpec,
  createLogger,
  createRedis,
  encodeTrial,
  FaultInjector,
  type GantryConfig,
  loadConfig,
  type ObjectStore,
  type PinnedDataset,
  type QualityPoint,
  type RedisClient,
  redisKeys,
  TRIAL_QUEUE,
  type TrialEvent,
} from '@gantry/shared';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { compileFakeTrainer, fakeTrainerLauncher } from '../bench/scale/fake-trainer.ts';
import { Coordinator } from '../packages/coordinator/src/coordinator.ts';
import { LeaderLease } from '../packages/coordinator/src/leader-lease.ts';
import { planSweep } from '../packages/coordinator/src/planner/plan-sweep.ts';
import { SearchEngine } from '../packages/coordinator/src/search/engine.ts';
import { LeaseLostError, SweepStore } from '../packages/coordinator/src/sweep-store.ts';
import { qualityTurn } from '../packages/worker/src/quality/quality-lease.ts';
import { qualityPrefix } from '../packages/worker/src/quality/quality-source.ts';
import { TrialReporter } from '../packages/worker/src/trial-reporter.ts';
import { GantryWorker } from '../packages/worker/src/worker.ts';
import { freshStore, testEnv, uniqueId } from './support/infra.ts';
import { type LocalRedisCluster, startRedisCluster } from './support/redis-cluster.ts';
import { waitFor, waitForSweepEnd } from './support/wait-for.ts';

/**
 * Gantry on a real Redis Cluster (3 masters on loopback, TLS only, with a password, as a managed one is):
 * every client comes from REDIS_URL's node list and GANTRY_REDIS_CA_FILE through createRedis. BullMQ and every Lua script and MULTI of the
 * project run there under a hash-tagged prefix and do what they do on one Redis, and a coordinator with two
 * workers trains a sweep there; without the tag the same calls fail (CROSSSLOT), which is why loadConfig
 * refuses such a prefix in cluster mode. The last case finds every key written under each tagged prefix in
 * that tag's one slot.
 */
let cluster: LocalRedisCluster;
let objects: ObjectStore;
/** What to close after the file, and the tagged prefixes whose keys the last case looks for. */
const clients: RedisClient[] = [];
const closers: { close(): Promise<void> }[] = [];
const taggedPrefixes: string[] = [];

// '@' and '/' in the password: REDIS_URL carries it percent-encoded.
const PASSWORD = `p@ss/${uniqueId('w')}`;

beforeAll(async () => {
  cluster = await startRedisCluster({ tls: true, password: PASSWORD });
  objects = await freshStore();
}, 60_000);
afterAll(async () => {
  for (const c of closers) await c.close();
  for (const c of clients) c.disconnect();
  await objects?.close();
  await cluster?.stop();
});

/** A config for the cluster (as a deployment's env gives it) under `prefix`. */
const clusterConfig = (prefix: string): GantryConfig => loadConfig(clusterEnv(prefix));

/** The cluster's variables of a deployment's environment. */
const clusterEnv = (prefix: string): NodeJS.ProcessEnv => ({
  REDIS_URL: cluster.redisUrl,
  GANTRY_REDIS_CA_FILE: cluster.caFile,
  GANTRY_PREFIX: prefix,
  LOG_LEVEL: 'silent',
});

/** A fresh `{g-<random>}` prefix; one that `leavesKeys` is checked by the last case. */
function tagged(leavesKeys = true): string {
  const prefix = `{${uniqueId('g')}}`;
  if (leavesKeys) taggedPrefixes.push(prefix);
  return prefix;
}

/** A new cluster client, closed after the file. */
function clusterClient(prefix: string): RedisClient {
  const client = createRedis(clusterConfig(prefix));
  clients.push(client);
  return client;
}

describe('BullMQ on the cluster', () => {
  it('adds, takes and completes jobs under a hash-tagged prefix, and counts them', async () => {
    const prefix = tagged();
    const queue = new Queue(TRIAL_QUEUE, { connection: clusterClient(prefix), prefix });
    closers.push(queue);
    await queue.add('t', { n: 1 }, { jobId: 'a' });
    await queue.add('t', { n: 2 }, { jobId: 'b', priority: 5 });
    await queue.add('t', { n: 3 }, { jobId: 'c', delay: 1 });
    const worker = new Worker(TRIAL_QUEUE, async (job) => job.data.n * 10, {
      connection: clusterClient(prefix),
      prefix,
    });
    closers.push(worker);
    await waitFor(
      'three completed jobs',
      async () => ((await queue.getJobCounts('completed')).completed === 3 ? true : undefined),
      20_000,
    );
    await worker.close();
    const counts = await queue.getJobCounts(
      'waiting',
      'prioritized',
      'delayed',
      'active',
      'completed',
      'failed',
    );
    expect(counts).toEqual({
      waiting: 0,
      paused: 0,
      prioritized: 0,
      delayed: 0,
      active: 0,
      completed: 3,
      failed: 0,
    });
    const done = await Promise.all(['a', 'b', 'c'].map((id) => queue.getJob(id)));
    expect(done.map((j) => j?.returnvalue)).toEqual([10, 20, 30]);
  });
});

/** A checkpoint reference at `step` (fixed times, so two runs write the same bytes). */
const ref = (step: number): CheckpointRef => ({
  step,
  manifestKey: `ck/${step}/manifest.json`,
  worker: 'w1',
  t: step,
});
const event = (e: TrialEvent['event'], step: number): TrialEvent => ({
  event: e,
  attempt: 1,
  worker: 'w1',
  step,
  t: step,
});

/**
 * The trial reporter's fenced scripts through each of their outcomes, with a job taken from a real BullMQ
 * queue (its lock is the fence): what each call returned, and the trial's keys afterwards.
 */
async function fenceScenario(client: RedisClient, prefix: string) {
  const keys = redisKeys(prefix);
  const trialId = 'sw-1-t000';
  const queue = new Queue(TRIAL_QUEUE, { connection: client, prefix });
  const taker = new Worker(TRIAL_QUEUE, null, { connection: client, prefix });
  try {
    await queue.add('trial', { trialId }, { jobId: trialId });
    const job = await taker.getNextJob('token-1');
    expect(job?.id).toBe(trialId);
    await client.hset(keys.trial(trialId), encodeTrial({ id: trialId, state: 'queued', step: 0 }));
    const holder = new TrialReporter(client, keys, trialId, 'token-1', trialId);
    const intruder = new TrialReporter(client, keys, trialId, 'token-0', trialId);
    const noTrial = new TrialReporter(client, keys, trialId, 'token-1', 'sw-1-t999');
    const point = { step: 10, d_loss: 1, g_loss: 2, d_real: 0.5, d_fake: 0.5, images_per_sec: 9, t: 10 };
    const quality: QualityPoint = { step: 10, fld: 42, diversity_ratio: 1, t: 10 };
    const results = [
      await holder.update(
        { state: 'running', step: 10, worker: 'w1' },
        { history: point, increment: 'attempts', event: event('start', 0), quality },
      ),
      await holder.commitCheckpoint(ref(100), 'samples/100.png'),
      await holder.commitCheckpoint(ref(50), 'samples/50.png'),
      await holder.rewindCheckpoint(ref(50), undefined, event('fallback', 0)),
      await holder.rewindCheckpoint(ref(100), undefined, event('fallback', 0)),
      await holder.commitCheckpoint(ref(200), 'samples/200.png', 16),
      await intruder.update({ step: 999 }),
      await intruder.commitCheckpoint(ref(900), 'samples/900.png'),
      await intruder.rewindCheckpoint(ref(200), undefined, event('fallback', 0)),
      await noTrial.update({ step: 1 }),
      await client.hset(keys.trial(trialId), 'state', 'cancelled').then(() => holder.update({ step: 20 })),
      await holder.commitCheckpoint(ref(300), 'samples/300.png'),
      await holder.rewindCheckpoint(ref(200), undefined, event('fallback', 0)),
    ];
    const list = (key: string) => client.lrange(key, 0, -1);
    return {
      results,
      trial: await client.hgetall(keys.trial(trialId)),
      history: await list(keys.trialHistory(trialId)),
      checkpoints: await list(keys.trialCheckpoints(trialId)),
      samples: await list(keys.trialSamples(trialId)),
      events: await list(keys.trialEvents(trialId)),
      quality: await list(keys.trialQuality(trialId)),
      missing: await client.exists(keys.trial('sw-1-t999')),
    };
  } finally {
    await taker.close();
    await queue.close();
  }
}

describe("the worker's fenced writes on the cluster", () => {
  it('return and write on the cluster what they do on one Redis, through every outcome', async () => {
    const single = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    clients.push(single);
    const onOne = await fenceScenario(single, uniqueId('g'));
    const onCluster = await fenceScenario(clusterClient(tagged()), taggedPrefixes.at(-1)!);
    expect(onCluster).toEqual(onOne);
    // Worked by hand: the update applies; 100 moves the pointer, 50 is older (stale); a rewind from 50 is
    // stale (the pointer names 100), from 100 it clears the pointer; 200 moves it; a foreign token changes
    // nothing (lock lost); a trial the coordinator never made is missing; once cancelled, nothing applies.
    expect(onCluster.results).toEqual([
      'ok',
      'ok',
      'stale',
      'stale',
      'ok',
      'ok',
      'lock-lost',
      'lock-lost',
      'lock-lost',
      'missing',
      'cancelled',
      'cancelled',
      'cancelled',
    ]);
    expect(onCluster.trial).toMatchObject({
      state: 'cancelled',
      step: '0',
      resumedFrom: '0',
      attempts: '1',
      checkpointOrder: '200',
      latestCheckpoint: JSON.stringify(ref(200)),
    });
    expect(onCluster.checkpoints).toEqual([JSON.stringify(ref(100)), JSON.stringify(ref(200))]);
    expect(onCluster.samples.map((s) => JSON.parse(s).key)).toEqual(['samples/100.png', 'samples/200.png']);
    expect(onCluster.events.map((e) => JSON.parse(e).event)).toEqual(['start', 'fallback']);
    expect([onCluster.history.length, onCluster.quality.length, onCluster.missing]).toEqual([1, 1, 0]);
  });

  it('hold the quality lease on the cluster: taken by one attempt, renewed, released to the next', async () => {
    const prefix = tagged(false);
    const redis = clusterClient(prefix);
    const dataset: PinnedDataset = {
      name: uniqueId('set'),
      version: '0123456789abcdef',
      image_size: 16,
      channels: 3,
    };
    const key = redisKeys(prefix).qualityLease(dataset.name, '16x16x3');
    const turn = (holder: string) =>
      qualityTurn({ redis, key, holder, store: objects, dataset, pollMs: 50, leaseMs: 600 });
    const first = await turn('a');
    expect(first).toBeDefined();
    expect(await redis.get(key)).toBe('a');
    expect(await redis.call('CLUSTER', 'KEYSLOT', key)).toBe(await redis.call('CLUSTER', 'KEYSLOT', prefix));
    // Renewed (RENEW script) every 200 ms: its time to live goes back up.
    let last = await redis.pttl(key);
    await waitFor(
      'the lease to be renewed',
      async () => {
        const now = await redis.pttl(key);
        const renewed = now > last;
        last = now;
        return renewed ? true : undefined;
      },
      5000,
    );
    const second = turn('b');
    await first!.release();
    const next = await second;
    expect(await redis.get(key)).toBe('b');
    await next!.release();
    expect(await redis.exists(key)).toBe(0);
    // Once the classifier is stored nobody needs a turn.
    await objects.put(`${qualityPrefix(dataset)}${dataset.name}.json`, '{}');
    expect(await turn('c')).toBeUndefined();
  });
});

const spec = compileSweepSpec({
  name: 'cluster',
  model: 'dcgan',
  dataset: { name: 'mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
  metric: { name: 'fld', goal: 'minimize' },
  seed: 5,
  method: 'random',
  budget: { trials: 3, parallel: 3, steps: 400 },
  parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
  scheduler: { type: 'median', grace_steps: 100, min_trials: 2 },
  checkpoint: { every_steps: 100 },
  health: { eval_every_steps: 100, eval_samples: 128 },
});

describe("the coordinator's writes on the cluster", () => {
  it("create a sweep in one MULTI and stop a trial with the search engine's script", async () => {
    const prefix = tagged();
    const redis = clusterClient(prefix);
    const store = new SweepStore(redis, prefix);
    const queue = new Queue(TRIAL_QUEUE, { connection: redis, prefix });
    closers.push(queue);
    const log = createLogger('test', 'silent');
    const engine = new SearchEngine({
      store,
      queue,
      objects,
      log,
      faults: new FaultInjector(undefined),
      liveWorkers: async () => new Set(['w1']),
    });
    const sweep = await store.create(spec, planSweep(spec));
    expect((await store.get(sweep.id))?.trialIds).toEqual(sweep.trialIds);
    const [t0, t1, t2] = sweep.trialIds as [string, string, string];
    const evaluated = async (id: string, step: number, fld: number) => {
      const point: QualityPoint = { step, fld, diversity_ratio: 1, t: step };
      await redis
        .multi()
        .rpush(store.keys.trialQuality(id), JSON.stringify(point))
        .hset(store.keys.trial(id), encodeTrial({ state: 'running', step, worker: 'w1', quality: point }))
        .exec();
    };
    // As in engine.test's median case: running averages up to 200 are 9 (t0) and 20 (t1), median 14.5;
    // t2's best, 16, is worse: stopped.
    for (const [id, a, b] of [
      [t0, 10, 8],
      [t1, 30, 10],
      [t2, 25, 16],
    ] as const) {
      await evaluated(id, 100, a);
      await evaluated(id, 200, b);
    }
    await engine.decide(sweep, await store.trials(sweep.trialIds));
    const ev = await store.searchEvents(sweep.id);
    expect(ev.map((e) => e.kind === 'median' && [e.trial, e.step, e.value, e.median, e.others])).toEqual([
      [t2, 200, 16, 14.5, 2],
    ]);
    const states = (await store.trials(sweep.trialIds)).map((t) => t.state);
    expect(states).toEqual(['running', 'running', 'stopped']);
  });

  it("pass the leader lease from one coordinator to the next and fence the scheduler's writes by it", async () => {
    const prefix = tagged();
    const redis = clusterClient(prefix);
    const store = new SweepStore(redis, prefix);
    const log = createLogger('test', 'silent');
    const lease = (id: string) => new LeaderLease(redis, store.keys, { leaseMs: 900, id, log });
    const a = lease('a');
    const b = lease('b');
    closers.push({ close: () => a.stop() }, { close: () => b.stop() });
    const sweep = await store.create(spec, planSweep(spec));
    const [t0, t1] = sweep.trialIds as [string, string];
    await a.start();
    await b.start();
    expect([a.token, b.token]).toEqual(['1:a', undefined]);
    await store.updateTrialsFenced(a.token!, [
      { id: t0, fields: { state: 'running', dispatched: true } },
      { id: t1, fields: { step: 5 } },
    ]);
    await expect(store.updateTrialsFenced('0:old', [{ id: t1, fields: { step: 6 } }])).rejects.toThrow(
      LeaseLostError,
    );
    await store.setSweepStateFenced(a.token!, sweep.id, 'running');
    expect((await store.trials([t0, t1])).map((t) => [t.state, t.dispatched, t.step])).toEqual([
      ['running', true, 0],
      ['queued', false, 5],
    ]);
    // A clean stop gives the lease up; the other takes it with the next epoch, and the old token is refused.
    await a.stop();
    await waitFor('b to lead', async () => (b.token === '2:b' ? true : undefined), 5000);
    await expect(store.setSweepStateFenced('1:a', sweep.id, 'completed')).rejects.toThrow(LeaseLostError);
    expect((await store.get(sweep.id))?.state).toBe('running');
    await store.setSweepStateFenced(b.token!, sweep.id, 'completed');
    expect((await store.get(sweep.id))?.state).toBe('completed');
    expect(await store.activeIds()).toEqual([]);
    await b.stop();
  });

  it("deliver the control channel's messages to a subscriber, published on any node", async () => {
    const prefix = tagged(false);
    const { control } = redisKeys(prefix);
    const sub = clusterClient(prefix);
    const got: string[] = [];
    sub.on('message', (channel: string, message: string) => {
      if (channel === control) got.push(message);
    });
    await sub.subscribe(control);
    const pub = clusterClient(prefix);
    await pub.publish(control, 'via-cluster');
    for (const i of cluster.urls.keys()) {
      const node = cluster.node(i);
      await node.publish(control, `via-node-${i}`);
      node.disconnect();
    }
    const expected = ['via-cluster', ...cluster.urls.map((_u, i) => `via-node-${i}`)];
    await waitFor('every message', async () => (got.length >= expected.length ? true : undefined), 5000);
    expect([...got].sort()).toEqual([...expected].sort());
  });
});

describe('a sweep on the cluster', () => {
  it('is trained to the end by a coordinator and two workers whose Redis is the cluster', async () => {
    const prefix = tagged();
    const config = loadConfig(testEnv(clusterEnv(prefix)));
    expect([config.redis.cluster, config.redis.options.password]).toEqual([true, PASSWORD]);
    const log = createLogger('cluster', 'silent');
    const coordinator = new Coordinator(config, log, { schedulerIntervalMs: 250 });
    const workers: GantryWorker[] = [];
    try {
      await coordinator.start();
      // The real worker code; the trainer is the scale bench's fake (progress, checkpoints, a result).
      const launchTrainer = fakeTrainerLauncher(
        compileFakeTrainer({ progressMs: 100, trialSeconds: [0.5, 1] }),
      );
      for (const id of ['w1', 'w2']) {
        const w = new GantryWorker({ ...config, worker: { ...config.worker, id } }, log, {
          concurrency: 1,
          launchTrainer,
        });
        workers.push(w);
        await w.start();
      }
      const { id, trialIds } = await coordinator.submit(
        compileSweepSpec({
          name: 'on-cluster',
          model: 'dcgan',
          dataset: 'fashion-mnist',
          method: 'random',
          metric: { name: 'g_loss', goal: 'minimize' },
          budget: { trials: 4, parallel: 2, steps: 40 },
          checkpoint: { every_steps: 40 },
          health: { eval_every_steps: 0 },
          parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
        }),
      );
      expect((await waitForSweepEnd(coordinator, id, 60_000)).state).toBe('completed');
      const trials = await coordinator.store.trials(trialIds);
      expect(trials.map((t) => [t.state, t.attempts, typeof t.result])).toEqual(
        trialIds.map(() => ['completed', 1, 'number']),
      );
      expect(new Set(trials.map((t) => t.worker))).toEqual(new Set(['w1', 'w2']));
      expect((await coordinator.queue.getJobCounts('completed')).completed).toBe(4);
    } finally {
      for (const w of workers) await w.close();
      await coordinator.close();
    }
  });
});

describe('without a hash tag', () => {
  it('the same calls fail across slots, and loadConfig refuses the prefix in cluster mode', async () => {
    const prefix = uniqueId('g');
    expect(() => clusterConfig(prefix)).toThrow(ConfigError);
    expect(() => clusterConfig(prefix)).toThrow(/GANTRY_PREFIX: .*CROSSSLOT/);
    // A client of the cluster (its connection does not depend on the prefix), used with the untagged keys:
    // what a deployment without that check would run.
    const asCluster = clusterClient('{any}');
    const keys = redisKeys(prefix);
    const queue = new Queue(TRIAL_QUEUE, { connection: asCluster, prefix });
    closers.push(queue);
    await expect(queue.add('t', {}, { jobId: 'a' })).rejects.toThrow(/CROSSSLOT/);
    await asCluster.set(keys.jobLock('a'), 'token');
    await asCluster.hset(keys.trial('a'), 'state', 'running');
    const reporter = new TrialReporter(asCluster, keys, 'a', 'token', 'a');
    await expect(reporter.update({ step: 1 })).rejects.toThrow(/CROSSSLOT/);
    await expect(reporter.commitCheckpoint(ref(1), 's')).rejects.toThrow(/CROSSSLOT/);
    await expect(reporter.rewindCheckpoint(ref(1), undefined, event('fallback', 0))).rejects.toThrow(
      /CROSSSLOT/,
    );
    // ioredis refuses a MULTI across slots before sending it.
    const store = new SweepStore(asCluster, prefix);
    await expect(store.create(spec, planSweep(spec))).rejects.toThrow(/same slot/);
    await expect(store.updateTrialsFenced('', [{ id: 'a', fields: { step: 1 } }])).rejects.toThrow(
      /CROSSSLOT/,
    );
    await expect(store.setSweepStateFenced('', 'sw', 'running')).rejects.toThrow(/CROSSSLOT/);
    // The lease's script fails too: a coordinator there never leads.
    const lease = new LeaderLease(asCluster, keys, { log: createLogger('test', 'silent') });
    await lease.start();
    expect(lease.held).toBe(false);
    await lease.stop();
  });
});

describe('where the keys went', () => {
  it("keeps every key of a tagged prefix in its tag's one slot, on one node", async () => {
    const nodes = [...cluster.urls.keys()].map((i) => cluster.node(i));
    const seen: string[] = [];
    try {
      for (const prefix of taggedPrefixes) {
        const found: string[][] = [];
        for (const node of nodes) {
          const keys: string[] = [];
          let cursor = '0';
          do {
            const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
            keys.push(...batch);
            cursor = next;
          } while (cursor !== '0');
          found.push(keys);
        }
        const holders = found.filter((keys) => keys.length > 0);
        expect(holders.length, `nodes holding ${prefix}'s keys`).toBe(1);
        const slot = await nodes[0]!.call('CLUSTER', 'KEYSLOT', prefix);
        const slots = await Promise.all(holders[0]!.map((k) => nodes[0]!.call('CLUSTER', 'KEYSLOT', k)));
        expect(new Set(slots)).toEqual(new Set([slot]));
        seen.push(...holders[0]!.map((k) => k.slice(prefix.length)));
      }
      // The keys of BullMQ's case, the fenced writes', the coordinator's, the lease's and the sweep's.
      expect(taggedPrefixes.length).toBe(5);
      const kinds = new Set(seen.map((k) => k.replace(/cluster-[0-9a-f]{8}/, '<sweep>')));
      const expected = [
        ':trials:completed',
        ':trials:sw-1-t000:lock',
        ':trial:sw-1-t000',
        ':trial:sw-1-t000:checkpoints',
        ':sweeps:active',
        ':sweep:<sweep>:search',
        ':trial:<sweep>-t002:quality',
        ':coordinator:epoch',
        ':scheduler:dirty',
        ':trial:on-<sweep>-t003:events',
        ':trial:on-<sweep>-t003:history',
        ':trial:on-<sweep>-t003:checkpoints',
      ];
      expect(expected.filter((k) => !kinds.has(k))).toEqual([]);
    } finally {
      for (const n of nodes) n.disconnect();
    }
  });
});
