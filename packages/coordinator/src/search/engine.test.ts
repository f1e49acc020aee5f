import { createHash } from 'node:crypto';
import {
  type CheckpointRef,
  compileSweepSpec,
  createLogger,
  encodeTrial,
  FaultInjector,
  type ObjectStore,
  objectKeys,
  type QualityPoint,
  type SearchEvent,
  type SpecValidationError,
  segmentJobId,
  TRIAL_QUEUE,
  type TrialRecord,
} from '@gantry/shared';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freshStore, uniqueId } from '../../../../test/support/infra.ts';
import { planSweep } from '../planner/plan-sweep.ts';
import { resolveSearch } from '../planner/search-submit.ts';
import { Scheduler } from '../scheduler.ts';
import { type StoredSweep, SweepStore } from '../sweep-store.ts';
import { SearchEngine, type Trial, tpeObservations } from './engine.ts';

/**
 * The coordinator's search decisions on a real Redis and S3, with the workers played by the test: it writes
 * what a worker would report (a trial running, its evaluations, a pause, a completion) and runs scheduler
 * passes. Every expected decision is worked out by hand in the comments.
 */
let redis: Redis;
let objects: ObjectStore;
const queues: Queue[] = [];

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  objects = await freshStore();
});
afterAll(async () => {
  for (const q of queues) await q.close();
  redis.disconnect();
  await objects.close();
});

/** A scheduler, its search engine and a store over one fresh prefix; `live` is the workers' heartbeat. */
function setup(prefix = uniqueId('s'), live: Set<string> = new Set(['w1'])) {
  const store = new SweepStore(redis, prefix);
  const queue = new Queue(TRIAL_QUEUE, { connection: redis.duplicate(), prefix });
  queues.push(queue);
  const log = createLogger('test', 'silent');
  const faults = new FaultInjector(undefined);
  const search = new SearchEngine({ store, queue, objects, log, faults, liveWorkers: async () => live });
  const scheduler = new Scheduler(store, queue, log, { faults, search });
  return { prefix, store, queue, search, scheduler };
}

type Setup = ReturnType<typeof setup>;

const base = {
  model: 'dcgan',
  dataset: { name: 'mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
  metric: { name: 'fld', goal: 'minimize' },
  seed: 5,
  checkpoint: { every_steps: 100 },
  health: { eval_every_steps: 100, eval_samples: 128 },
};

async function submit(s: Setup, spec: Record<string, unknown>): Promise<StoredSweep> {
  const compiled = compileSweepSpec({ name: 'engine', ...base, ...spec });
  const sweep = await s.store.create(compiled, planSweep(compiled), (p) =>
    s.search.firstSegment(compiled, p.index),
  );
  await s.scheduler.tick();
  return sweep;
}

/**
 * What a worker writes when it evaluates trial `id` at `step` (running, at that step), with the dirty mark
 * its fenced write adds (trial-reporter.ts).
 */
async function evaluated(s: Setup, id: string, step: number, fld: number, worker = 'w1'): Promise<void> {
  const point: QualityPoint = { step, fld, diversity_ratio: 1, t: Date.now() };
  await redis
    .multi()
    .rpush(s.store.keys.trialQuality(id), JSON.stringify(point))
    .hset(s.store.keys.trial(id), encodeTrial({ state: 'running', step, worker, quality: point }))
    .sadd(s.store.keys.dirty, id)
    .exec();
}

async function completed(s: Setup, id: string, fld: number, steps: number): Promise<void> {
  await evaluated(s, id, steps, fld);
  await redis
    .multi()
    .hset(
      s.store.keys.trial(id),
      encodeTrial({ state: 'completed', step: steps, summary: { fld }, endedAt: Date.now() }),
    )
    .sadd(s.store.keys.dirty, id)
    .exec();
}

/** A committed checkpoint of trial `id` at `step`, with real objects (PBT copies them). */
async function checkpoint(s: Setup, sweepId: string, id: string, step: number): Promise<CheckpointRef> {
  const dir = objectKeys.checkpointDir(sweepId, id, step, 'w1-a');
  const blob = Buffer.from(`weights of ${id} at ${step}`);
  await objects.put(`${dir}g.bin`, blob);
  const manifest = {
    version: 1,
    trialId: id,
    step,
    writer: 'w1-a',
    createdAt: Date.now(),
    rng: [1, 2, 3, 4],
    optimizerSteps: { g: step, d: step },
    objects: [
      {
        name: 'g',
        key: `${dir}g.bin`,
        bytes: blob.length,
        sha256: createHash('sha256').update(blob).digest('hex'),
      },
    ],
  };
  await objects.put(`${dir}manifest.json`, JSON.stringify(manifest));
  const ref: CheckpointRef = { step, manifestKey: `${dir}manifest.json`, worker: 'w1', t: Date.now() };
  await redis
    .multi()
    .rpush(s.store.keys.trialCheckpoints(id), JSON.stringify(ref))
    .hset(s.store.keys.trial(id), { latestCheckpoint: JSON.stringify(ref), checkpointOrder: String(step) })
    .exec();
  return ref;
}

/** What a worker writes when a segment's job pauses trial `id` at `step` (after its eval and checkpoint). */
async function paused(s: Setup, sweepId: string, id: string, step: number, fld: number) {
  await evaluated(s, id, step, fld);
  await checkpoint(s, sweepId, id, step);
  await redis
    .multi()
    .hset(s.store.keys.trial(id), encodeTrial({ state: 'queued', step, pausedAt: step }))
    .sadd(s.store.keys.dirty, id)
    .exec();
}

const events = (s: Setup, id: string) => s.store.searchEvents(id);
const trial = async (s: Setup, id: string) => (await s.store.trial(id))!;

describe('ASHA, stopping variant', () => {
  it('records each trial at each rung once and stops those outside the top 1/eta', async () => {
    const s = setup();
    const sweep = await submit(s, {
      method: 'random',
      budget: { trials: 4, parallel: 4, steps: 400 },
      parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
      scheduler: { type: 'asha', min_steps: 100, eta: 2 },
    });
    const [t0, t1, t2, t3] = sweep.trialIds as [string, string, string, string];
    // Rungs at 100 and 200 (400 is the budget). t0 arrives first: alone, it goes on (cut-off = itself).
    await evaluated(s, t0, 100, 10);
    await s.scheduler.tick();
    // t1: values [10, 20]; the 1/2 quantile interpolates half way: 15; 20 > 15 stops.
    await evaluated(s, t1, 100, 20);
    // t2 reports 200 at once (its rung-100 evaluation is best-so-far 5): [5, 10, 20] -> cut-off 10; goes on.
    await evaluated(s, t2, 100, 5);
    await evaluated(s, t2, 200, 7);
    await s.scheduler.tick();
    const ev = (await events(s, sweep.id)).filter((e) => e.kind === 'rung');
    expect(ev.map((e) => [e.trial, e.rung, e.value, e.cutoff, e.action])).toEqual([
      [t0, 0, 10, 10, 'continue'],
      [t1, 0, 20, 15, 'stop'],
      [t2, 0, 5, 10, 'continue'],
      // Rung 1 (step 200): t2 first there, best so far min(5, 7) = 5.
      [t2, 1, 5, 5, 'continue'],
    ]);
    const stopped = await trial(s, t1);
    expect(stopped.state).toBe('stopped');
    expect(stopped.reason).toMatch(
      /^asha: rung 0 \(step 100\): best fld 20\.00 .* top 1\/2 .*cut-off 15\.00/,
    );
    // A coordinator that restarts reads the decisions back: nothing is decided twice, t3 is untouched.
    const again = setup(s.prefix);
    await again.scheduler.tick();
    await again.scheduler.tick();
    expect((await events(again, sweep.id)).length).toBe(4);
    expect((await trial(again, t3)).state).toBe('queued');
    // A worker that had not heard keeps writing? The trial stays stopped: state writes are the worker's
    // fenced ones (trial-reporter), and a completion the coordinator sees later does not undo the decision.
    await again.scheduler.tick();
    expect((await trial(again, t1)).state).toBe('stopped');
  });
});

describe('median stopping', () => {
  it("stops a trial whose best is worse than the median of the others' running averages", async () => {
    const s = setup();
    const sweep = await submit(s, {
      method: 'random',
      budget: { trials: 4, parallel: 4, steps: 400 },
      parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
      scheduler: { type: 'median', grace_steps: 100, min_trials: 2 },
    });
    const [t0, t1, t2] = sweep.trialIds as [string, string, string];
    // Running averages up to 200: t0 (10, 8) -> 9; t1 (30, 10) -> 20. Median of 9 and 20: 14.5.
    await evaluated(s, t0, 100, 10);
    await evaluated(s, t0, 200, 8);
    await evaluated(s, t1, 100, 30);
    await evaluated(s, t1, 200, 10);
    await s.scheduler.tick();
    // Up to then each had only one other trial (min_trials 2): no decision.
    expect(await events(s, sweep.id)).toEqual([]);
    // t2's best up to 200 is 16 > 14.5: stopped. A best of 14 would have gone on.
    await evaluated(s, t2, 100, 25);
    await evaluated(s, t2, 200, 16);
    await s.scheduler.tick();
    const ev = await events(s, sweep.id);
    expect(ev.map((e) => e.kind === 'median' && [e.trial, e.step, e.value, e.median, e.others])).toEqual([
      [t2, 200, 16, 14.5, 2],
    ]);
    expect((await trial(s, t2)).state).toBe('stopped');
    expect((await trial(s, t0)).state).toBe('running');
  });
});

describe('population-based training', () => {
  const pbtSpec = {
    method: 'grid',
    budget: { trials: 3, parallel: 3, steps: 300 },
    parameters: { lr_g: { values: [1e-4, 2e-4, 4e-4] } },
    scheduler: { type: 'pbt', interval: 100, quantile: 0.5, resample_probability: 0 },
  };

  it("copies the top trial's checkpoint object into the bottom one, explores, and resumes it there", async () => {
    const s = setup();
    const sweep = await submit(s, pbtSpec);
    const [t0, t1, t2] = sweep.trialIds as [string, string, string];
    const job0 = await s.queue.getJob(segmentJobId(t0, 0));
    // Every trial's first segment pauses at the first ready point.
    expect(job0?.data.until).toBe(100);
    // t0 pauses first: alone in the population, it goes on.
    await paused(s, sweep.id, t0, 100, 50);
    await s.scheduler.tick();
    // t1 pauses: population {t0: 50, t1: 20}; quantile 0.5 of 2 = 1 each side: t1 top, t0 bottom, but only
    // the trial at its ready point acts: t1 is on top, goes on.
    await paused(s, sweep.id, t1, 100, 20);
    await s.scheduler.tick();
    // t2 pauses with 90: population {t0: 50, t1: 20, t2: 90}: k = ceil(3 * 0.5) = 2, capped at 1: top t1,
    // bottom t2. t2 copies t1's checkpoint at 100 and explores t1's lr_g (2e-4: a neighbour, 1e-4 or 4e-4).
    const source = await paused(s, sweep.id, t2, 100, 90).then(() => s.store.checkpoints(t1));
    await s.scheduler.tick();
    const ev = await events(s, sweep.id);
    expect(ev.map((e) => [e.kind, e.trial])).toEqual([
      ['continue', t0],
      ['continue', t1],
      ['exploit', t2],
    ]);
    const exploit = ev[2] as Extract<SearchEvent, { kind: 'exploit' }>;
    expect(exploit).toMatchObject({
      segment: 1,
      step: 100,
      value: 90,
      source: t1,
      sourceStep: 100,
      sourceValue: 20,
      sourceManifest: source[0]!.manifestKey,
      from: { lr_g: 4e-4 },
    });
    expect([1e-4, 4e-4]).toContain(exploit.to.lr_g);
    // The copy is t2's own checkpoint with t1's bytes; t2's pointer names it; its next job resumes there
    // with the explored params and pauses at the next ready point.
    const copied = JSON.parse((await objects.get(exploit.copiedManifest)).toString()) as {
      trialId: string;
      objects: { key: string; sha256: string }[];
    };
    expect(copied.trialId).toBe(t2);
    expect((await objects.get(copied.objects[0]!.key)).toString()).toBe(`weights of ${t1} at 100`);
    const t2now = await trial(s, t2);
    expect(t2now.latestCheckpoint?.manifestKey).toBe(exploit.copiedManifest);
    expect(t2now).toMatchObject({ segment: 1, until: 200, step: 100, params: { lr_g: exploit.to.lr_g } });
    const job = await s.queue.getJob(segmentJobId(t2, 1));
    expect(job?.data).toMatchObject({ until: 200, params: { lr_g: exploit.to.lr_g } });
  });

  it('applies an exploit recorded by a coordinator that died before acting on it, deciding nothing anew', async () => {
    const s = setup();
    const sweep = await submit(s, pbtSpec);
    const [t0, t1] = sweep.trialIds as [string, string];
    await paused(s, sweep.id, t1, 100, 20);
    await s.scheduler.tick();
    await paused(s, sweep.id, t0, 100, 50);
    const [src] = await s.store.checkpoints(t1);
    // The decision as the dead coordinator recorded it (its copy and pointer move never happened).
    const recorded: SearchEvent = {
      kind: 'exploit',
      trial: t0,
      segment: 1,
      step: 100,
      value: 50,
      source: t1,
      sourceStep: 100,
      sourceValue: 20,
      sourceManifest: src!.manifestKey,
      copiedManifest: `sweeps/${sweep.id}/trials/${t0}/checkpoints/100/pbt-1/manifest.json`,
      from: { lr_g: 1e-4 },
      to: { lr_g: 4e-4 },
      explored: { lr_g: '+1' },
      t: Date.now(),
    };
    await redis.rpush(s.store.keys.sweepSearch(sweep.id), JSON.stringify(recorded));
    const restarted = setup(s.prefix);
    await restarted.scheduler.tick();
    expect((await events(restarted, sweep.id)).length).toBe(2);
    const t0now = await trial(restarted, t0);
    expect(t0now).toMatchObject({ segment: 1, params: { lr_g: 4e-4 } });
    expect(t0now.latestCheckpoint?.manifestKey).toBe(recorded.copiedManifest);
    expect(await objects.exists(recorded.copiedManifest)).toBe(true);
  });
});

describe('ASHA, promotion variant', () => {
  it('pauses trials at rungs and promotes the top floor(n/eta) when a slot frees', async () => {
    const s = setup();
    const sweep = await submit(s, {
      method: 'random',
      budget: { trials: 3, parallel: 1, steps: 400 },
      parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
      scheduler: { type: 'asha', min_steps: 100, eta: 2, mode: 'promote' },
    });
    const [t0, t1, t2] = sweep.trialIds as [string, string, string];
    // One slot. t0 pauses at rung 100 with 30: floor(1/2) = 0 promotable, so t1 starts.
    await paused(s, sweep.id, t0, 100, 30);
    await s.scheduler.tick();
    expect((await trial(s, t1)).dispatched).toBe(true);
    // t1 pauses with 10: floor(2/2) = 1 promotable: t1 (the best) goes on to rung 200, before t2 starts.
    await paused(s, sweep.id, t1, 100, 10);
    await s.scheduler.tick();
    expect(await trial(s, t1)).toMatchObject({ segment: 1, until: 200, dispatched: true });
    expect((await trial(s, t2)).dispatched).toBe(false);
    const ev = await events(s, sweep.id);
    expect(ev.map((e) => [e.kind, e.trial])).toEqual([
      ['rung', t0],
      ['rung', t1],
      ['promote', t1],
    ]);
  });
});

describe('TPE', () => {
  it('suggests trials one by one, then more after gantry extend, and reopens the ended sweep', async () => {
    const s = setup();
    const sweep = await submit(s, {
      method: 'tpe',
      budget: { trials: 2, parallel: 1, steps: 100 },
      parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
      tpe: { startup_trials: 1 },
    });
    // One trial at a time: the second is suggested only once the first has a place to run in.
    expect((await s.store.get(sweep.id))!.trialIds).toHaveLength(1);
    const [t0] = (await s.store.get(sweep.id))!.trialIds as [string];
    await completed(s, t0, 40, 100);
    await s.scheduler.tick();
    await s.scheduler.tick();
    const ids = (await s.store.get(sweep.id))!.trialIds;
    expect(ids).toHaveLength(2);
    await completed(s, ids[1]!, 30, 100);
    await s.scheduler.tick();
    await s.scheduler.tick();
    expect((await s.store.get(sweep.id))!.state).toBe('completed');
    const { trials } = await s.scheduler.extend(sweep.id, 2);
    expect(trials).toBe(4);
    await s.scheduler.tick();
    const after = (await s.store.get(sweep.id))!;
    expect(after.state).toBe('running');
    expect(after.trialIds).toHaveLength(3);
    for (const t of await s.store.trials(after.trialIds)) {
      expect(t.params.lr_g).toBeGreaterThanOrEqual(1e-5);
      expect(t.params.lr_g).toBeLessThanOrEqual(1e-3);
    }
  });

  it('does not count a running trial whose worker vanished as pending (no liar holds its region)', () => {
    const spec = compileSweepSpec({
      name: 'tpe-obs',
      ...base,
      method: 'tpe',
      budget: { trials: 5, steps: 100 },
      parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
    });
    const t = (i: number, fields: Partial<TrialRecord>): Trial =>
      ({ id: `x-t00${i}`, index: i, params: { lr_g: i / 1e4 }, dispatched: true, ...fields }) as Trial;
    const series = new Map([[`x-t003`, [{ step: 50, fld: 70, diversity_ratio: 1, t: 0 }]]]);
    const obs = tpeObservations(
      spec,
      [
        t(1, { state: 'completed', result: 12 }),
        t(2, { state: 'running', worker: 'alive' }),
        t(3, { state: 'stopped' }),
        t(4, { state: 'running', worker: 'gone' }),
        t(5, { state: 'queued' }),
        t(6, { state: 'failed' }),
      ],
      series,
      new Set(['alive']),
    );
    expect(obs.complete).toEqual([{ params: { lr_g: 1e-4 }, value: 12 }]);
    expect(obs.pruned).toEqual([{ params: { lr_g: 3e-4 }, step: 50, value: 70 }]);
    expect(obs.running.map((r) => r.params.lr_g)).toEqual([2e-4, 5e-4]);
  });
});

describe('what a search takes from other sweeps on submit', () => {
  const random = {
    method: 'random',
    budget: { trials: 6, parallel: 6, steps: 100 },
    parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
  };
  const tpe = (extra: Record<string, unknown>) =>
    compileSweepSpec({
      name: 'engine',
      ...base,
      method: 'tpe',
      budget: { trials: 1, parallel: 1, steps: 100 },
      parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
      tpe: { startup_trials: 5 },
      ...extra,
    });

  it('refuses warm_start and replay sources that do not exist or do not fit, naming the field', async () => {
    const s = setup();
    const old = await submit(s, random);
    const paths = async (spec: ReturnType<typeof compileSweepSpec>) =>
      resolveSearch(spec, s.store).then(
        () => [],
        (err: SpecValidationError) => err.issues.map((i) => `${i.path}: ${i.message}`),
      );
    expect(await paths(tpe({ warm_start: ['nope-00000000', old.id] }))).toEqual([
      "warm_start.0: no sweep 'nope-00000000'",
    ]);
    expect(await paths(tpe({ warm_start: [old.id], metric: { name: 'fld', goal: 'maximize' } }))).toEqual([
      `warm_start.0: sweep ${old.id} ranks by fld (minimize), not fld (maximize)`,
    ]);
    const replay = (trial: string) =>
      compileSweepSpec({
        name: 'replay',
        ...base,
        method: 'pbt-replay',
        replay: { sweep: old.id, trial },
        budget: { trials: 1, steps: 100 },
      });
    expect(await paths(replay(old.trialIds[0]!))).toEqual([
      `replay.sweep: sweep ${old.id} did not run pbt: it has no schedule to replay`,
    ]);
  });

  it("seeds TPE with a finished sweep's results: its first suggestion is a model's, not a startup draw", async () => {
    const s = setup();
    const old = await submit(s, random);
    // The old results: best near lr_g = 1e-4, (log10 lr_g + 4)^2.
    for (const t of await s.store.trials(old.trialIds))
      await completed(s, t.id, (Math.log10(t.params.lr_g!) + 4) ** 2, 100);
    await s.scheduler.tick();
    const plain = await submit(s, {
      ...random,
      method: 'tpe',
      budget: { trials: 1, steps: 100 },
      tpe: { startup_trials: 5 },
    });
    const seeded = await submit(s, {
      ...random,
      method: 'tpe',
      budget: { trials: 1, steps: 100 },
      tpe: { startup_trials: 5 },
      warm_start: [old.id],
    });
    const [a] = await s.store.trials((await s.store.get(plain.id))!.trialIds);
    const [b] = await s.store.trials((await s.store.get(seeded.id))!.trialIds);
    // Same seed and index: without the six old results the draw is the prior's; with them, TPE's.
    expect(b!.params.lr_g).not.toBe(a!.params.lr_g);
    // And it lands where the old results were good: within half a decade of 1e-4, where four of the six
    // old trials (0.87 to 0.98 decades away; the best two 0.31 and 0.43) are not.
    expect(Math.abs(Math.log10(b!.params.lr_g!) + 4)).toBeLessThan(0.5);
  });
});
