import { randomBytes } from 'node:crypto';
import { TRIAL_QUEUE } from '@gantry/shared';
import type { IScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readInfraFiles } from '../packages/coordinator/src/k8s/infra-files.ts';
import type { K8sObject } from '../packages/coordinator/src/k8s/objects.ts';
import { renderManifests } from '../packages/coordinator/src/k8s/render.ts';
import { loadValues } from '../packages/coordinator/src/k8s/values.ts';
import { coordinatorMetrics } from '../packages/coordinator/src/metrics.ts';
import { SweepStore } from '../packages/coordinator/src/sweep-store.ts';
import { waitFor } from './support/wait-for.ts';

const files = readInfraFiles();

/** The rendered deployment for `sets`, with the autoscaled Deployment and its ScaledObject. */
function deployment(sets: string[]) {
  const values = loadValues({ sets: sets.map((assignment) => ({ assignment, asString: false })) });
  const objects: K8sObject[] = renderManifests(values, files);
  const so = objects.find((o) => o.kind === 'ScaledObject') as IScaledObject;
  const target = objects.find(
    (o) => o.kind === 'Deployment' && o.metadata!.name === so.spec!.scaleTargetRef.name,
  ) as IDeployment;
  const env = target.spec!.template.spec!.containers[0]!.env!;
  const prefix = env.find((e) => e.name === 'GANTRY_PREFIX')!.value!;
  return { values, so, prefix };
}

/**
 * KEDA's arithmetic for a ScaledObject with scalingModifiers: the formula over the named triggers'
 * values, then the HPA's AverageValue rule, desired = ceil(metric / target).
 */
function desiredReplicas(
  so: IScaledObject,
  triggerValues: Record<string, number>,
): { metric: number; desired: number } {
  const mod = so.spec!.advanced!.scalingModifiers!;
  // The formulas the renderer writes are sums of trigger names; anything else fails here.
  const terms = mod.formula!.split('+').map((s) => s.trim());
  const metric = terms.reduce((acc, name) => {
    expect(triggerValues, `formula term ${name} is a trigger`).toHaveProperty(name);
    return acc + triggerValues[name]!;
  }, 0);
  return { metric, desired: Math.ceil(metric / Number(mod.target)) };
}

/**
 * The prometheus source's query evaluated over scraped series: exactly the form
 * `sum(max by (state) (gantry_queue_jobs{<matchers>}))` with `=` and `=~` matchers.
 */
function evaluateQuery(query: string, series: { labels: Record<string, string>; value: number }[]): number {
  const m = /^sum\(max by \(state\) \(gantry_queue_jobs\{(.*)\}\)\)$/.exec(query);
  expect(m, `the query has the expected form: ${query}`).not.toBeNull();
  const matchers = [...m![1]!.matchAll(/([a-z_]+)(=~|=)"([^"]*)"/g)].map(([, name, op, value]) => ({
    name: name!,
    test: op === '=~' ? (v: string) => new RegExp(`^(?:${value})$`).test(v) : (v: string) => v === value,
  }));
  const maxByState = new Map<string, number>();
  for (const s of series) {
    if (!matchers.every((mt) => mt.test(s.labels[mt.name] ?? ''))) continue;
    const state = s.labels.state!;
    maxByState.set(state, Math.max(maxByState.get(state) ?? Number.NEGATIVE_INFINITY, s.value));
  }
  return [...maxByState.values()].reduce((a, b) => a + b, 0);
}

describe('the keys the autoscaler reads are the keys BullMQ writes under the deployed prefix', () => {
  const redisUrl = inject('redisUrl');
  // A unique hash-tagged prefix per run, so the test shares the run's Redis with the others.
  const tag = `{k8s-${randomBytes(4).toString('hex')}}`;
  const N = 7;
  const HELD = 3;
  let redis: Redis;
  let queue: Queue;
  let worker: Worker | undefined;
  const release = new Map<string, () => void>();

  beforeAll(() => {
    redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    for (const r of release.values()) r();
    await worker?.close();
    await queue?.obliterate({ force: true }).catch(() => {});
    await queue?.close();
    await redis.quit();
  });

  it('deploys under the hash-tagged {gantry} prefix by default', () => {
    expect(deployment([]).prefix).toBe('{gantry}');
  });

  it('counts waiting and held jobs in the lists the ScaledObject names, as BullMQ counts them, and scales to ceil((waiting + active) / trials per pod)', async () => {
    const one = deployment([`gantry.prefix=${tag}`]);
    expect(one.prefix).toBe(tag);
    const lists = Object.fromEntries(one.so.spec!.triggers.map((t) => [t.name!, t.metadata.listName!]));
    expect(Object.keys(lists).sort()).toEqual(['active', 'waiting']);

    // Queued as the scheduler's dispatch queues trials: its job ids, attempts and backoff, no priority.
    queue = new Queue(TRIAL_QUEUE, { connection: redis.duplicate(), prefix: one.prefix });
    await queue.addBulk(
      Array.from({ length: N }, (_, i) => ({
        name: 'train',
        data: { trialId: `s-t${String(i).padStart(3, '0')}` },
        opts: {
          jobId: `s-t${String(i).padStart(3, '0')}`,
          attempts: 3,
          backoff: { type: 'exponential', delay: 2000 },
        },
      })),
    );
    const read = async () => ({
      waiting: await redis.llen(lists.waiting!),
      active: await redis.llen(lists.active!),
      prioritized: await redis.zcard(`${one.prefix}:${TRIAL_QUEUE}:prioritized`),
    });
    // Nothing pauses the trial queue, so BullMQ's paused list (which it counts as waiting) stays empty.
    const paused = () => redis.llen(`${one.prefix}:${TRIAL_QUEUE}:paused`);
    expect(await read()).toEqual({ waiting: N, active: 0, prioritized: 0 });
    expect(desiredReplicas(one.so, await read())).toEqual({ metric: N, desired: N });

    // A real worker takes HELD jobs and holds them until the test lets go.
    worker = new Worker(
      TRIAL_QUEUE,
      (job: Job) => new Promise<void>((resolve) => release.set(job.id!, resolve)),
      { connection: redis.duplicate(), prefix: one.prefix, concurrency: HELD },
    );
    await waitFor(
      'the worker to hold its jobs',
      async () => (release.size === HELD ? true : undefined),
      10_000,
    );
    const held = await waitFor(
      `${HELD} jobs in the active list`,
      async () => {
        const c = await read();
        return c.active === HELD ? c : undefined;
      },
      10_000,
    );
    expect(held).toEqual({ waiting: N - HELD, active: HELD, prioritized: 0 });
    const counts = await queue.getJobCounts('waiting', 'active', 'prioritized');
    expect(counts).toEqual({ waiting: held.waiting, active: held.active, prioritized: 0, paused: 0 });
    expect(await paused()).toBe(0);

    // 4 waiting + 3 held = 7: seven pods at one GPU a pod, four at two, two at four; never below the
    // pods the held jobs keep busy.
    expect(desiredReplicas(one.so, held)).toEqual({ metric: 7, desired: 7 });
    expect(
      desiredReplicas(deployment([`gantry.prefix=${tag}`, 'worker.gpu.gpusPerPod=2']).so, held).desired,
    ).toBe(4);
    expect(
      desiredReplicas(deployment([`gantry.prefix=${tag}`, 'worker.gpu.gpusPerPod=4']).so, held).desired,
    ).toBe(2);

    // The prometheus source reads the same number from two coordinators' gauges.
    const prom = deployment([`gantry.prefix=${tag}`, 'autoscaling.source=prometheus']);
    const trigger = prom.so.spec!.triggers[0]!;
    const store = new SweepStore(redis, prom.prefix);
    const series: { labels: Record<string, string>; value: number }[] = [];
    for (const replica of ['coordinator-a', 'coordinator-b']) {
      const registry = coordinatorMetrics(store, queue, async () => 1);
      const gauge = await registry.getSingleMetric('gantry_queue_jobs')!.get();
      for (const v of gauge.values) {
        // Labelled as the rendered scrape jobs and monitors label a coordinator's series.
        const labels = {
          ...v.labels,
          namespace: prom.values.namespace,
          job: 'gantry-coordinator',
          pod: replica,
        } as Record<string, string>;
        series.push({ labels, value: v.value });
      }
    }
    expect(evaluateQuery(trigger.metadata.query!, series)).toBe(7);
    expect(Number(trigger.metadata.threshold)).toBe(1);
    // A plain sum would count the queue once per coordinator.
    const plain = series
      .filter((s) => ['waiting', 'prioritized', 'active'].includes(s.labels.state!))
      .reduce((a, s) => a + s.value, 0);
    expect(plain).toBe(14);
    // Another namespace's Gantry is not counted.
    const other = series.map((s) => ({ ...s, labels: { ...s.labels, namespace: 'elsewhere' } }));
    expect(evaluateQuery(trigger.metadata.query!, [...series, ...other])).toBe(7);

    // A finished trial frees its slot; the worker takes the next job: 3 waiting + 3 active = 6.
    release.get('s-t000')!();
    // Once the fourth job has reached the processor, all three slots are held again: nothing moves.
    await waitFor(
      'the worker to take the next job',
      async () => (release.size === HELD + 1 ? true : undefined),
      10_000,
    );
    const next = await read();
    expect(next).toEqual({ waiting: N - HELD - 1, active: HELD, prioritized: 0 });
    expect(desiredReplicas(one.so, next)).toEqual({ metric: 6, desired: 6 });
  });
});
