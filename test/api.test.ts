import { Coordinator } from '@gantry/coordinator';
import {
  createLogger,
  type GantryConfig,
  LIMITS,
  MODEL_PARAMS,
  objectKeys,
  redisKeys,
  type TrialJob,
  type WorkerInfo,
} from '@gantry/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { testConfig } from './support/infra.ts';

/** Coordinators started by the current test; closed after it. */
const started: Coordinator[] = [];

async function startCoordinator(config: GantryConfig = testConfig()): Promise<Coordinator> {
  // A long interval: only the passes the coordinator runs itself (start, submit) and those a test asks for.
  const coord = new Coordinator(config, createLogger('test', 'silent'), { schedulerIntervalMs: 60_000 });
  started.push(coord);
  await coord.start();
  return coord;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.close()));
});

const yamlSpec = (fields: { trials?: number; parallel?: number; extra?: string } = {}) => `
name: api-test
model: dcgan
dataset: mnist
method: random
seed: 7
budget: {trials: ${fields.trials ?? 3}, parallel: ${fields.parallel ?? 2}, steps: 20}
checkpoint: {every_steps: 10}
parameters:
  lr_g: {distribution: log_uniform, min: 1.0e-5, max: 1.0e-3}
  lr_d: {values: [1.0e-4, 2.0e-4]}
  batch_size: {value: 16}
${fields.extra ?? ''}`;

function jsonSpec(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'api-json',
    model: 'cgan',
    dataset: 'fashion-mnist',
    method: 'grid',
    budget: { parallel: 1, steps: 20 },
    parameters: { lr_g: { values: [1e-4, 2e-4] } },
    ...overrides,
  };
}

/**
 * POSTs a spec, then waits for the scheduler's pass that follows (a submit answers once the sweep is
 * stored; the pass it starts queues the first trials).
 */
async function postYaml(coord: Coordinator, body: string, contentType = 'application/yaml') {
  const res = await coord.app.inject({
    method: 'POST',
    url: '/v1/sweeps',
    headers: { 'content-type': contentType },
    payload: body,
  });
  await coord.scheduler.tick();
  return res;
}

async function postJson(coord: Coordinator, body: unknown) {
  const res = await coord.app.inject({
    method: 'POST',
    url: '/v1/sweeps',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });
  await coord.scheduler.tick();
  return res;
}

const get = (coord: Coordinator, url: string) => coord.app.inject({ method: 'GET', url });

interface ErrorBody {
  error: { code: string; message: string; issues?: { path: string; message: string }[] };
}

const errorOf = (res: { json(): unknown }) => (res.json() as ErrorBody).error;

async function jobCounts(coord: Coordinator): Promise<Record<string, number>> {
  return coord.queue.getJobCounts(
    'waiting',
    'active',
    'delayed',
    'prioritized',
    'completed',
    'failed',
    'paused',
  );
}

/** Asserts that the coordinator holds no sweep at all: no queued job, nothing listed, no sweep key in Redis. */
async function expectNothingStored(coord: Coordinator): Promise<void> {
  expect(Object.values(await jobCounts(coord)).every((n) => n === 0)).toBe(true);
  const list = await get(coord, '/v1/sweeps');
  expect(list.statusCode).toBe(200);
  expect(list.json()).toEqual({ sweeps: [] });
  expect(await coord.redis.keys(`${coord.config.prefix}:sweep:*`)).toEqual([]);
  expect(await coord.redis.keys(`${coord.config.prefix}:trial:*`)).toEqual([]);
}

interface SweepBody {
  id: string;
  state: string;
  trialIds: string[];
  trials: { id: string; index: number; state: string; params: Record<string, number> }[];
}

async function submit(coord: Coordinator, spec = yamlSpec()): Promise<SweepBody> {
  const res = await postYaml(coord, spec);
  expect(res.statusCode).toBe(201);
  return res.json() as SweepBody;
}

describe('POST /v1/sweeps', () => {
  it('creates a sweep from YAML: 201 with id and trial ids, trials readable, min(parallel, trials) jobs queued', async () => {
    const coord = await startCoordinator();
    const res = await postYaml(coord, yamlSpec({ trials: 3, parallel: 2 }));
    expect(res.statusCode).toBe(201);
    const body = res.json() as SweepBody;
    expect(body.id).toMatch(/^api-test-[0-9a-f]{8}$/);
    expect(body.trialIds).toEqual([0, 1, 2].map((i) => `${body.id}-t00${i}`));

    const sweep = await get(coord, `/v1/sweeps/${body.id}`);
    expect(sweep.statusCode).toBe(200);
    const view = sweep.json() as SweepBody;
    expect(view.id).toBe(body.id);
    expect(view.state).toBe('running');
    expect(view.trials.map((t) => t.id)).toEqual(body.trialIds);
    for (const t of view.trials) {
      expect(t.state).toBe('queued');
      expect(Object.keys(t.params).sort()).toEqual(Object.keys(MODEL_PARAMS.dcgan).sort());
      expect(t.params.batch_size).toBe(16);
      expect([1e-4, 2e-4]).toContain(t.params.lr_d);
    }

    const counts = await jobCounts(coord);
    expect(counts.waiting).toBe(2);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(2);
    const jobs = await coord.queue.getJobs(['waiting']);
    expect(jobs.map((j) => j.id).sort()).toEqual(body.trialIds.slice(0, 2));
    const job = jobs.find((j) => j.id === body.trialIds[0])?.data as TrialJob;
    // The built-in set was pushed on first use, and its version pinned into the job.
    const { versions } = (await get(coord, '/v1/datasets/mnist')).json() as {
      versions: { version: string }[];
    };
    expect(versions).toHaveLength(1);
    expect(job.dataset).toEqual({
      name: 'mnist',
      version: versions[0]!.version,
      image_size: 28,
      channels: 1,
    });
    expect(job).toMatchObject({
      v: 2,
      sweepId: body.id,
      trialId: body.trialIds[0],
      steps: 20,
      checkpointEvery: 10,
      params: view.trials[0]?.params,
    });

    const list = (await get(coord, '/v1/sweeps')).json() as { sweeps: { id: string }[] };
    expect(list.sweeps.map((s) => s.id)).toEqual([body.id]);
  });

  it('queues only as many jobs as there are trials when parallel exceeds them', async () => {
    const coord = await startCoordinator();
    await submit(coord, yamlSpec({ trials: 2, parallel: 5 }));
    expect((await jobCounts(coord)).waiting).toBe(2);
  });

  it('creates a sweep from a JSON body (grid of two trials, parallel 1)', async () => {
    const coord = await startCoordinator();
    const res = await postJson(coord, jsonSpec());
    expect(res.statusCode).toBe(201);
    const body = res.json() as SweepBody;
    expect(body.trialIds).toHaveLength(2);
    const view = (await get(coord, `/v1/sweeps/${body.id}`)).json() as SweepBody;
    expect(view.trials.map((t) => t.params.lr_g)).toEqual([1e-4, 2e-4]);
    expect((await jobCounts(coord)).waiting).toBe(1);
  });

  it('accepts text/plain as YAML', async () => {
    const coord = await startCoordinator();
    expect((await postYaml(coord, yamlSpec(), 'text/plain')).statusCode).toBe(201);
  });

  const badSpecs: { what: string; send: 'yaml' | 'json'; body: unknown; path: string }[] = [
    {
      what: 'an unknown top-level key',
      send: 'yaml',
      body: yamlSpec({ extra: 'learning_rate: 1' }),
      path: 'learning_rate',
    },
    {
      what: 'an unknown budget key',
      send: 'json',
      body: jsonSpec({ budget: { steps: 5, x: 1 } }),
      path: 'budget.x',
    },
    {
      what: 'an unknown parameter for the model',
      send: 'json',
      body: jsonSpec({ parameters: { gamma: { value: 1 } } }),
      path: 'parameters.gamma',
    },
    { what: 'an uppercase name', send: 'json', body: jsonSpec({ name: 'Sweep' }), path: 'name' },
    { what: 'an unknown model', send: 'json', body: jsonSpec({ model: 'stylegan' }), path: 'model' },
    { what: 'an unknown dataset', send: 'json', body: jsonSpec({ dataset: 'cifar10' }), path: 'dataset' },
    { what: 'an unknown method', send: 'json', body: jsonSpec({ method: 'bayes' }), path: 'method' },
    {
      what: 'an out-of-range value',
      send: 'json',
      body: jsonSpec({ parameters: { beta1: { value: 1 } } }),
      path: 'parameters.beta1.value',
    },
    {
      what: 'an empty range',
      send: 'json',
      body: jsonSpec({
        method: 'random',
        parameters: { lr_g: { distribution: 'uniform', min: 1e-3, max: 1e-3 } },
      }),
      path: 'parameters.lr_g.max',
    },
    {
      what: 'log_uniform with min <= 0',
      send: 'json',
      body: jsonSpec({
        method: 'random',
        parameters: { beta1: { distribution: 'log_uniform', min: 0, max: 0.9 } },
      }),
      path: 'parameters.beta1.min',
    },
    {
      what: 'a distribution in a grid sweep',
      send: 'json',
      body: jsonSpec({ parameters: { lr_g: { distribution: 'uniform', min: 1e-4, max: 1e-3 } } }),
      path: 'parameters.lr_g.distribution',
    },
    {
      what: 'a grid larger than LIMITS.maxTrials',
      send: 'json',
      body: jsonSpec({
        parameters: {
          lr_g: { values: Array.from({ length: 30 }, (_, i) => (i + 1) * 1e-5) },
          lr_d: { values: Array.from({ length: 30 }, (_, i) => (i + 1) * 1e-5) },
          batch_size: { values: Array.from({ length: 12 }, (_, i) => (i + 1) * 8) },
        },
      }),
      path: 'parameters',
    },
    {
      what: 'budget.trials over the limit',
      send: 'json',
      body: jsonSpec({ method: 'random', budget: { trials: LIMITS.maxTrials + 1, steps: 5 } }),
      path: 'budget.trials',
    },
    {
      what: 'budget.parallel 0',
      send: 'json',
      body: jsonSpec({ budget: { parallel: 0, steps: 5 } }),
      path: 'budget.parallel',
    },
    {
      what: 'a missing budget.steps',
      send: 'yaml',
      body: 'name: a\nmodel: dcgan\ndataset: mnist\nbudget: {trials: 2}\n',
      path: 'budget.steps',
    },
    { what: 'invalid YAML', send: 'yaml', body: 'name: [a\nmodel: dcgan\n', path: '' },
    { what: 'a YAML list instead of a mapping', send: 'yaml', body: '- name: a\n- model: dcgan\n', path: '' },
    { what: 'a JSON array instead of an object', send: 'json', body: [1, 2], path: '' },
  ];

  it.each(badSpecs)('answers 400 INVALID_SPEC naming "$path" for $what, and stores nothing', async ({
    send,
    body,
    path,
  }) => {
    const coord = await startCoordinator();
    const res = send === 'yaml' ? await postYaml(coord, body as string) : await postJson(coord, body);
    expect(res.statusCode).toBe(400);
    const error = errorOf(res);
    expect(error.code).toBe('INVALID_SPEC');
    expect(typeof error.message).toBe('string');
    expect(error.issues?.map((i) => i.path)).toEqual([path]);
    expect(typeof error.issues?.[0]?.message).toBe('string');
    await expectNothingStored(coord);
  });

  it('answers 413 PAYLOAD_TOO_LARGE for a YAML spec over LIMITS.specBytes, and stores nothing', async () => {
    const coord = await startCoordinator();
    const res = await postYaml(coord, `${yamlSpec()}# ${'x'.repeat(LIMITS.specBytes)}\n`);
    expect(res.statusCode).toBe(413);
    expect(errorOf(res).code).toBe('PAYLOAD_TOO_LARGE');
    await expectNothingStored(coord);
  });

  it('answers 413 PAYLOAD_TOO_LARGE for a JSON spec over LIMITS.specBytes, and stores nothing', async () => {
    const coord = await startCoordinator();
    // Valid JSON, valid spec: only its size is wrong.
    const body = `${JSON.stringify(jsonSpec())}${' '.repeat(LIMITS.specBytes)}`;
    const res = await coord.app.inject({
      method: 'POST',
      url: '/v1/sweeps',
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
    expect(res.statusCode).toBe(413);
    expect(errorOf(res).code).toBe('PAYLOAD_TOO_LARGE');
    await expectNothingStored(coord);
  });

  it('answers 413 PAYLOAD_TOO_LARGE for a body over the server-wide LIMITS.bodyBytes, and stores nothing', async () => {
    const coord = await startCoordinator();
    const res = await postYaml(coord, `${yamlSpec()}# ${'x'.repeat(LIMITS.bodyBytes)}\n`);
    expect(res.statusCode).toBe(413);
    expect(errorOf(res).code).toBe('PAYLOAD_TOO_LARGE');
    await expectNothingStored(coord);
  });

  it('answers 400 for malformed JSON, and stores nothing', async () => {
    const coord = await startCoordinator();
    const res = await coord.app.inject({
      method: 'POST',
      url: '/v1/sweeps',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": "a", "model": ',
    });
    expect(res.statusCode).toBe(400);
    expect(errorOf(res).code).toBeTypeOf('string');
    await expectNothingStored(coord);
  });

  it('answers 415 for an unsupported content type, and stores nothing', async () => {
    const coord = await startCoordinator();
    const res = await postYaml(coord, '<sweep/>', 'application/xml');
    expect(res.statusCode).toBe(415);
    expect(errorOf(res).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    await expectNothingStored(coord);
  });
});

describe('reading sweeps, trials and workers', () => {
  it.each([
    '/v1/sweeps/nope-00000000',
    '/v1/trials/nope-00000000-t000',
    '/v1/trials/nope-00000000-t000/samples/latest.png',
  ])('answers 404 NOT_FOUND for GET %s', async (url) => {
    const coord = await startCoordinator();
    const res = await get(coord, url);
    expect(res.statusCode).toBe(404);
    expect(errorOf(res).code).toBe('NOT_FOUND');
  });

  it('answers 404 NOT_FOUND for cancelling an unknown sweep', async () => {
    const coord = await startCoordinator();
    const res = await coord.app.inject({ method: 'POST', url: '/v1/sweeps/nope-00000000/cancel' });
    expect(res.statusCode).toBe(404);
    expect(errorOf(res).code).toBe('NOT_FOUND');
  });

  it('returns a trial with params, state and empty history, checkpoints and samples', async () => {
    const coord = await startCoordinator();
    const sweep = await submit(coord);
    const id = sweep.trialIds[0] ?? '';
    const res = await get(coord, `/v1/trials/${id}`);
    expect(res.statusCode).toBe(200);
    const trial = res.json() as Record<string, unknown>;
    expect(trial).toMatchObject({ id, sweepId: sweep.id, index: 0, state: 'queued', step: 0, steps: 20 });
    expect(Object.keys(trial.params as object).sort()).toEqual(Object.keys(MODEL_PARAMS.dcgan).sort());
    expect(trial.history).toEqual([]);
    expect(trial.checkpoints).toEqual([]);
    expect(trial.samples).toEqual([]);
    expect(trial).not.toHaveProperty('dispatched');
  });

  it('returns the history, checkpoints and samples workers recorded for a trial', async () => {
    const coord = await startCoordinator();
    const sweep = await submit(coord);
    const id = sweep.trialIds[0] ?? '';
    const keys = redisKeys(coord.config.prefix);
    const point = {
      step: 10,
      d_loss: 1.2,
      g_loss: 0.8,
      d_real: 0.6,
      d_fake: 0.4,
      images_per_sec: 50,
      t: Date.now(),
    };
    const ckpt = { step: 10, manifestKey: 'm.json', worker: 'w1', t: Date.now() };
    const sample = { step: 10, key: objectKeys.sample(sweep.id, id, 10), t: Date.now() };
    await coord.redis.rpush(keys.trialHistory(id), JSON.stringify(point));
    await coord.redis.rpush(keys.trialCheckpoints(id), JSON.stringify(ckpt));
    await coord.redis.rpush(keys.trialSamples(id), JSON.stringify(sample));
    const trial = (await get(coord, `/v1/trials/${id}`)).json() as Record<string, unknown>;
    expect(trial.history).toEqual([point]);
    expect(trial.checkpoints).toEqual([ckpt]);
    expect(trial.samples).toEqual([sample]);
  });

  it('serves the latest sample PNG once one is recorded, 404 before', async () => {
    const coord = await startCoordinator();
    const sweep = await submit(coord);
    const id = sweep.trialIds[1] ?? '';
    const url = `/v1/trials/${id}/samples/latest.png`;
    const before = await get(coord, url);
    expect(before.statusCode).toBe(404);
    expect(errorOf(before).code).toBe('NOT_FOUND');

    const keys = redisKeys(coord.config.prefix);
    const png = (step: number) =>
      Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        Buffer.from(`step ${step}`),
      ]);
    for (const step of [100, 200]) {
      const key = objectKeys.sample(sweep.id, id, step);
      await coord.objects.put(key, png(step), 'image/png');
      await coord.redis.rpush(keys.trialSamples(id), JSON.stringify({ step, key, t: Date.now() }));
    }
    const res = await get(coord, url);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['x-gantry-step']).toBe('200');
    expect(res.rawPayload.equals(png(200))).toBe(true);
    // Any recorded step by number (a staged trial's grid per resolution); unknown steps 404, junk 400.
    const at100 = await get(coord, `/v1/trials/${id}/samples/100.png`);
    expect(at100.statusCode).toBe(200);
    expect(at100.rawPayload.equals(png(100))).toBe(true);
    expect((await get(coord, `/v1/trials/${id}/samples/150.png`)).statusCode).toBe(404);
    const junk = await get(coord, `/v1/trials/${id}/samples/first.png`);
    expect(junk.statusCode).toBe(400);
    expect(errorOf(junk).issues?.[0]?.path).toBe('step');
  });

  it('answers 404 NOT_FOUND when the recorded sample object is missing from the store', async () => {
    const coord = await startCoordinator();
    const sweep = await submit(coord);
    const id = sweep.trialIds[0] ?? '';
    const key = objectKeys.sample(sweep.id, id, 5);
    await coord.redis.rpush(
      redisKeys(coord.config.prefix).trialSamples(id),
      JSON.stringify({ step: 5, key, t: 1 }),
    );
    const res = await get(coord, `/v1/trials/${id}/samples/latest.png`);
    expect(res.statusCode).toBe(404);
    expect(errorOf(res).code).toBe('NOT_FOUND');
  });

  it('lists workers with a recent heartbeat and omits stale ones', async () => {
    const coord = await startCoordinator();
    const now = Date.now();
    const worker = (id: string, lastHeartbeat: number): WorkerInfo => ({
      id,
      host: 'gpu-node-1',
      pid: 1234,
      backend: 'wasm',
      device: 'cpu',
      concurrency: 1,
      busyTrials: ['s-00000000-t000'],
      metricsUrl: 'http://127.0.0.1:9100/metrics',
      lastHeartbeat,
      startedAt: now - 120_000,
    });
    const fresh = worker('w-fresh', now - 1000);
    const stale = worker('w-stale', now - 10 * 60_000);
    const keys = redisKeys(coord.config.prefix);
    await coord.redis.hset(keys.workers, fresh.id, JSON.stringify(fresh), stale.id, JSON.stringify(stale));
    const res = await get(coord, '/v1/workers');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ workers: [fresh] });
  });

  it('serves Prometheus HTTP service discovery: itself and every live worker, by role', async () => {
    const coord = await startCoordinator();
    const now = Date.now();
    const info = (id: string, metricsUrl: string, lastHeartbeat: number): WorkerInfo => ({
      id,
      host: 'gpu-node-1',
      pid: 1,
      backend: 'wasm',
      device: 'cpu',
      concurrency: 1,
      busyTrials: [],
      metricsUrl,
      lastHeartbeat,
      startedAt: now - 60_000,
    });
    const keys = redisKeys(coord.config.prefix);
    const workers = [
      info('w1', 'http://10.0.0.7:9100/metrics', now - 1000),
      info('w2', 'http://gpu-node-2:41234/metrics', now - 2000),
      info('w-stale', 'http://10.0.0.9:9100/metrics', now - 10 * 60_000),
    ];
    for (const w of workers) await coord.redis.hset(keys.workers, w.id, JSON.stringify(w));
    const sd = (query: string) =>
      coord.app.inject({
        method: 'GET',
        url: `/v1/prometheus/targets${query}`,
        headers: { host: 'coord:8080' },
      });
    const byWorker = (body: { labels: Record<string, string> }[]) =>
      [...body].sort((a, b) => (a.labels.worker ?? '').localeCompare(b.labels.worker ?? ''));
    expect(byWorker((await sd('?role=worker')).json())).toEqual([
      { targets: ['10.0.0.7:9100'], labels: { worker: 'w1' } },
      { targets: ['gpu-node-2:41234'], labels: { worker: 'w2' } },
    ]);
    expect((await sd('?role=coordinator')).json()).toEqual([{ targets: ['coord:8080'], labels: {} }]);
    expect((await sd('')).json()).toHaveLength(3);
    const bad = await sd('?role=gpu');
    expect(bad.statusCode).toBe(400);
    expect(errorOf(bad).message).toMatch(/^role: /);
  });

  it('answers /healthz with 200 while running', async () => {
    const coord = await startCoordinator();
    const res = await get(coord, '/healthz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: true });
  });

  it('exposes trial and queue gauges on /metrics', async () => {
    const coord = await startCoordinator();
    await submit(coord, yamlSpec({ trials: 3, parallel: 2 }));
    const res = await get(coord, '/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/^gantry_trials\{state="queued"\} 3$/m);
    expect(res.body).toMatch(/^gantry_queue_jobs\{state="waiting"\} 2$/m);
  });

  it("exposes each active sweep's trials' current metric value for leaderboards", async () => {
    const coord = await startCoordinator();
    const body = await submit(coord, yamlSpec({ trials: 2, parallel: 2 }));
    const [t0, t1] = body.trialIds as [string, string];
    const point = { step: 10, d_loss: 1, g_loss: 0.75, d_real: 0.6, d_fake: 0.4, images_per_sec: 50, t: 0 };
    await coord.store.updateTrial(t0, { state: 'running', metrics: point });
    await coord.store.updateTrial(t1, { state: 'completed', metrics: point, result: 0.5 });
    const metrics = (await get(coord, '/metrics')).body;
    const line = (trial: string) =>
      new RegExp(
        `^gantry_trial_objective\\{sweep="${body.id}",trial="${trial}",metric="g_loss"\\} ([0-9.]+)$`,
        'm',
      );
    expect(metrics.match(line(t0))?.[1]).toBe('0.75');
    expect(metrics.match(line(t1))?.[1]).toBe('0.5');
    // Once the sweep ends its series go: label values stay bounded by the active sweeps.
    await coord.scheduler.cancel(body.id);
    expect((await get(coord, '/metrics')).body).not.toMatch(/gantry_trial_objective\{/);
  });
});

describe('POST /v1/sweeps/:id/cancel', () => {
  it('cancels the sweep and its trials, removes waiting jobs, and refuses a second cancel with 409', async () => {
    const coord = await startCoordinator();
    const sweep = await submit(coord, yamlSpec({ trials: 4, parallel: 2 }));
    expect((await jobCounts(coord)).waiting).toBe(2);

    const res = await coord.app.inject({ method: 'POST', url: `/v1/sweeps/${sweep.id}/cancel` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ id: sweep.id, state: 'cancelled' });

    const view = (await get(coord, `/v1/sweeps/${sweep.id}`)).json() as SweepBody;
    expect(view.state).toBe('cancelled');
    expect(view.trials.map((t) => t.state)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    expect(Object.values(await jobCounts(coord)).every((n) => n === 0)).toBe(true);

    // A later scheduler pass does not dispatch anything for the cancelled sweep.
    await coord.scheduler.tick();
    expect(Object.values(await jobCounts(coord)).every((n) => n === 0)).toBe(true);

    const again = await coord.app.inject({ method: 'POST', url: `/v1/sweeps/${sweep.id}/cancel` });
    expect(again.statusCode).toBe(409);
    expect(errorOf(again).code).toBe('CONFLICT');
  });
});

describe('restarts', () => {
  it('a restarted coordinator carries on: the next trial is queued once the dispatched one completes', async () => {
    const config = testConfig();
    const first = await startCoordinator(config);
    const sweep = await submit(first, yamlSpec({ trials: 3, parallel: 1 }));
    const [t0, t1, t2] = sweep.trialIds;
    expect((await first.queue.getJobs(['waiting'])).map((j) => j.id)).toEqual([t0]);
    await first.close();

    const second = await startCoordinator(config);
    // Nothing changes on start: t0 is still in flight, parallel is 1.
    expect((await second.queue.getJobs(['waiting'])).map((j) => j.id)).toEqual([t0]);

    // A worker finishes t0: it records the result (its fenced write marks the trial dirty, trial-reporter.ts)
    // and its job leaves the queue.
    const keys = redisKeys(config.prefix);
    await second.redis.hset(keys.trial(t0 ?? ''), {
      state: 'completed',
      summary: JSON.stringify({ g_loss: 1 }),
    });
    await second.redis.sadd(keys.dirty, t0 ?? '');
    await (await second.queue.getJob(t0 ?? ''))?.remove();

    await second.scheduler.tick();
    expect((await second.queue.getJobs(['waiting'])).map((j) => j.id)).toEqual([t1]);
    const view = (await get(second, `/v1/sweeps/${sweep.id}`)).json() as SweepBody & {
      trials: { id: string; state: string; result?: number }[];
      best: { trialId: string; value: number } | null;
    };
    expect(view.state).toBe('running');
    expect(view.trials.map((t) => t.state)).toEqual(['completed', 'queued', 'queued']);
    expect(view.trials[0]?.result).toBe(1);
    expect(view.best).toMatchObject({ trialId: t0, value: 1 });
    expect(view.trials.find((t) => t.id === t2)?.state).toBe('queued');
  });
});

describe('staged trials (progan)', () => {
  const stagedSpec = `
name: staged
model: progan
dataset: mnist
seed: 3
budget: {trials: 2, parallel: 1}
parameters:
  batch_size: {value: 8}
stages:
  - {resolution: 4, stable_steps: 10, batch_size: 16}
  - {resolution: 8, fade_steps: 5, stable_steps: 10}
  - {resolution: 16, stable_steps: 10}
`;

  it('queues one job per stage, in order, each once, across a coordinator restart', async () => {
    const config = testConfig();
    const first = await startCoordinator(config);
    const sweep = await submit(first, stagedSpec);
    const [t0, t1] = sweep.trialIds as [string, string];
    const waiting = async (c: Coordinator) =>
      (await c.queue.getJobs(['waiting'])).map((j) => ({ id: j.id, name: j.name, stage: j.data.stage }));
    expect(await waiting(first)).toEqual([
      {
        id: `${t0}-s0`,
        name: 'stage-0',
        stage: {
          index: 0,
          count: 3,
          resolution: 4,
          fade_steps: 0,
          stable_steps: 10,
          batch_size: 16,
          start_step: 0,
        },
      },
    ]);
    const trial = (await get(first, `/v1/trials/${t0}`)).json() as Record<string, unknown>;
    expect(trial.steps).toBe(45);
    expect(trial.stage).toEqual({ index: 0, count: 3, resolution: 4, alpha: 1, done: 0 });
    expect(trial.stageEvents).toEqual([]);
    await first.close();

    // A worker finishes stage 0 (the trial waits for its next stage) while no coordinator runs.
    const second = await startCoordinator(config);
    const keys = redisKeys(config.prefix);
    const finishStage = async (index: number, next: { index: number; resolution: number }) => {
      await second.redis.hset(keys.trial(t0), {
        state: 'queued',
        stage: JSON.stringify({ ...next, count: 3, alpha: 0, done: index + 1 }),
      });
      await second.redis.sadd(keys.dirty, t0); // as the worker's fenced write does
      await (await second.queue.getJob(`${t0}-s${index}`))?.remove();
    };
    await finishStage(0, { index: 1, resolution: 8 });
    await second.scheduler.tick();
    await second.scheduler.tick(); // a second pass adds nothing
    expect(await waiting(second)).toEqual([
      {
        id: `${t0}-s1`,
        name: 'stage-1',
        // The trial's batch_size fills in for the stage's; steps count on from stage 0's 10.
        stage: {
          index: 1,
          count: 3,
          resolution: 8,
          fade_steps: 5,
          stable_steps: 10,
          batch_size: 8,
          start_step: 10,
        },
      },
    ]);
    // The staged trial keeps its place: the other trial (parallel 1) is not queued meanwhile.
    expect((await get(second, `/v1/trials/${t1}`)).json()).toMatchObject({ state: 'queued' });

    await finishStage(1, { index: 2, resolution: 16 });
    await second.scheduler.tick();
    expect((await waiting(second)).map((j) => [j.id, j.stage.start_step])).toEqual([[`${t0}-s2`, 25]]);
    // The last stage ends the trial; then the next trial starts at its own stage 0.
    await second.redis.hset(keys.trial(t0), { state: 'completed', summary: JSON.stringify({ g_loss: 1 }) });
    await second.redis.sadd(keys.dirty, t0);
    await (await second.queue.getJob(`${t0}-s2`))?.remove();
    await second.scheduler.tick();
    expect((await waiting(second)).map((j) => j.id)).toEqual([`${t1}-s0`]);

    // Cancelling removes the waiting stage job of the live trial.
    const cancel = await second.app.inject({ method: 'POST', url: `/v1/sweeps/${sweep.id}/cancel` });
    expect(cancel.statusCode).toBe(200);
    expect(await waiting(second)).toEqual([]);
  });
});
