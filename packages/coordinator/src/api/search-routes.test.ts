import { compileSweepSpec, MODEL_PARAMS, TokenAuthenticator, type TrialRecord } from '@gantry/shared';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { uniqueId } from '../../../../test/support/infra.ts';
import { SweepStore } from '../sweep-store.ts';
import { type ApiDeps, buildApi } from './app.ts';

let redis: Redis;
let store: SweepStore;
let app: FastifyInstance;

const LR_G = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 8e-4, 1e-3];
const spec = compileSweepSpec({
  name: 'seeing',
  model: 'dcgan',
  dataset: 'mnist',
  method: 'random',
  metric: { name: 'fld', goal: 'minimize' },
  budget: { trials: LR_G.length, steps: 400 },
  health: { eval_every_steps: 100 },
  parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 }, lr_d: { values: [1e-4, 2e-4] } },
  scheduler: { type: 'asha', min_steps: 100, eta: 3 },
});
const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS.dcgan).map(([k, d]) => [k, d.default]));

/** A sweep of 8 trials: trial i has lr_g = LR_G[i], lr_d alternating 1e-4 / 2e-4, and `finish` says its end. */
async function sweepWith(finish: (i: number) => Partial<TrialRecord>): Promise<string> {
  const plan = LR_G.map((lr_g, index) => ({
    index,
    seed: index,
    params: { ...defaults, lr_g, lr_d: index % 2 === 0 ? 1e-4 : 2e-4 },
  }));
  const sweep = await store.create(spec, plan);
  await Promise.all(sweep.trialIds.map((id, i) => store.updateTrial(id, finish(i))));
  return sweep.id;
}

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  store = new SweepStore(redis, uniqueId('search'));
  const deps = { store, auth: new TokenAuthenticator([]), augmentations: {} } as unknown as ApiDeps;
  app = buildApi(deps);
});

const get = (url: string) => app.inject({ method: 'GET', url });
const errorOf = (res: { json(): unknown }) =>
  (res.json() as { error: { code: string; message: string } }).error;

describe('GET /v1/sweeps/:id/importance', () => {
  it("ranks the parameters of a sweep's completed trials, the one the FLD follows first", async () => {
    // Trials 0-5 completed with FLD falling as lr_g grows (trial 5 best); 6 and 7 stopped and running.
    const id = await sweepWith((i) =>
      i < 6
        ? { state: 'completed', result: 300 - 10 * i }
        : i === 6
          ? { state: 'stopped', quality: { step: 100, fld: 10, diversity_ratio: 1 } }
          : { state: 'running' },
    );
    const res = await get(`/v1/sweeps/${id}/importance`);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      sweepId: id,
      metric: { name: 'fld', goal: 'minimize' },
      method: 'eta2-bins',
      trials: 6,
    });
    // 6 trials: 2 bins of 3. By lr_g, ranks {6, 5, 4} and {3, 2, 1}: means 5 and 2 about 3.5, between-bin
    // sum of squares 6 * 1.5^2 = 13.5 of the total 2 * (2.5^2 + 1.5^2 + 0.5^2) = 17.5. By lr_d (alternating),
    // ranks {6, 4, 2} and {5, 3, 1}: means 4 and 3, 6 * 0.5^2 = 1.5. Shares 13.5 / 15 and 1.5 / 15.
    expect(body.params.map((p: { name: string }) => p.name)).toEqual(['lr_g', 'lr_d']);
    expect(body.params[0].eta2).toBeCloseTo(13.5 / 17.5, 12);
    expect(body.params[0].importance).toBeCloseTo(0.9, 12);
    expect(body.params[1].eta2).toBeCloseTo(1.5 / 17.5, 12);
  });

  it('answers 409 before 4 trials have results, 404 for an unknown sweep and 400 for a bad id', async () => {
    const id = await sweepWith((i) => (i < 3 ? { state: 'completed', result: i } : { state: 'running' }));
    const early = await get(`/v1/sweeps/${id}/importance`);
    expect(early.statusCode).toBe(409);
    expect(errorOf(early).code).toBe('CONFLICT');
    expect(errorOf(early).message).toMatch(/at least 4 trials with results; there are 3/);
    const missing = await get('/v1/sweeps/nope-00000000/importance');
    expect([missing.statusCode, errorOf(missing).code]).toEqual([404, 'NOT_FOUND']);
    const bad = await get('/v1/sweeps/Bad_Id/importance');
    expect([bad.statusCode, errorOf(bad).code]).toEqual([400, 'BAD_REQUEST']);
  });
});

describe('GET /v1/sweeps/:id/parallel.png', () => {
  it('is a PNG of the trials with a value, stopped ones included', async () => {
    const id = await sweepWith((i) =>
      i < 2
        ? { state: 'completed', result: 200 + i }
        : { state: 'stopped', quality: { step: 100, fld: 250 + i, diversity_ratio: 1 } },
    );
    const res = await get(`/v1/sweeps/${id}/parallel.png`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    const png = PNG.sync.read(res.rawPayload);
    // Three axes (lr_d, lr_g, fld) and the legend 'fld: best 200 .. worst 257' with 'dim: stopped': the
    // legend's 26 chars (310 px) + 132 + 154 px and 48 px of margins make it 644 px wide.
    expect([png.width, png.height]).toEqual([644, 420]);
  });

  it('answers 409 while no trial has a value', async () => {
    const id = await sweepWith(() => ({ state: 'running' }));
    const res = await get(`/v1/sweeps/${id}/parallel.png`);
    expect([res.statusCode, errorOf(res).code]).toEqual([409, 'CONFLICT']);
    expect(errorOf(res).message).toMatch(/no trial has a value of fld/);
  });
});
