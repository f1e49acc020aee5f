import {
  AUGMENTATION_LIMITS,
  type AugmentationJob,
  type AugmentationRecord,
  type CheckpointRef,
  compileSweepSpec,
  type DatasetManifest,
  MODEL_PARAMS,
  type ModelName,
  parseAugmentationJob,
  parseTrialJob,
  TokenAuthenticator,
  type TrialRecord,
} from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import type { StoredSweep, SweepStore } from '../sweep-store.ts';
import { type ApiDeps, buildApi } from './app.ts';

const VERSION = '0123456789abcdef';

interface Fixture {
  model?: ModelName;
  subset?: number;
  classes?: string[];
  checkpoints?: CheckpointRef[];
}

/** The API over one sweep of one trial, with in-memory records and a queue that keeps what it is given. */
function api(f: Fixture = {}) {
  const model = f.model ?? 'cgan';
  const spec = compileSweepSpec({
    name: 'aug',
    model,
    dataset: 'fashion-mnist',
    metric: { name: 'g_loss', goal: 'minimize' },
    budget: { trials: 1, steps: 100 },
    checkpoint: { every_steps: 50 },
  });
  const sweep: StoredSweep = {
    id: 'aug-1234',
    name: 'aug',
    state: 'completed',
    spec: {
      ...spec,
      dataset: {
        name: 'fashion-mnist',
        version: VERSION,
        image_size: 28,
        channels: 1,
        ...(f.subset ? { subset_per_class: f.subset } : {}),
      },
    },
    createdAt: 0,
    trialIds: ['aug-1234-t000'],
  };
  const params = Object.fromEntries(Object.entries(MODEL_PARAMS[model]).map(([k, d]) => [k, d.default]));
  const trial: TrialRecord = {
    id: 'aug-1234-t000',
    sweepId: sweep.id,
    index: 0,
    state: 'completed',
    params,
    seed: 5,
    step: 100,
    steps: 100,
    attempts: 1,
    createdAt: 0,
  };
  const refs =
    f.checkpoints ?? [50, 100].map((step) => ({ step, manifestKey: `m/${step}`, worker: 'w', t: 0 }));
  const records = new Map<string, AugmentationRecord>();
  const queued: { name: string; data: AugmentationJob; opts: { jobId: string } }[] = [];
  const store = {
    trial: async (id: string) => (id === trial.id ? { ...trial, dispatched: true } : undefined),
    get: async (id: string) => (id === sweep.id ? sweep : undefined),
    checkpoints: async () => refs,
    history: async () => [],
    samples: async () => [],
    events: async () => [],
    qualityHistory: async () => [],
  };
  const manifest = { name: 'fashion-mnist', version: VERSION, classes: f.classes ?? ['t-shirt', 'trouser'] };
  const deps = {
    store: store as unknown as SweepStore,
    datasets: { manifest: async () => manifest as unknown as DatasetManifest },
    auth: new TokenAuthenticator([]),
    augmentations: {
      records: {
        create: async (r: AugmentationRecord) => void records.set(r.id, r),
        get: async (id: string) => records.get(id),
        ofTrial: async (id: string) => [...records.values()].filter((r) => r.trialId === id),
      },
      queue: {
        add: async (name: string, data: AugmentationJob, opts: { jobId: string }) =>
          queued.push({ name, data, opts }),
      },
    },
  } as unknown as ApiDeps;
  const app = buildApi(deps);
  const post = (body: unknown, id = trial.id) =>
    app.inject({ method: 'POST', url: `/v1/trials/${id}/augment`, payload: body as Record<string, unknown> });
  return { app, post, queued, records, trial };
}

const request = { real_per_class: 10, synthetic_per_class: 100, seeds: 3 };
const errorOf = (res: { json(): unknown }) =>
  (res.json() as { error: { code: string; message: string; issues: { path: string; message: string }[] } })
    .error;

describe('POST /v1/trials/:id/augment', () => {
  it("queues a job for a cgan trial's latest checkpoint that a worker accepts, and serves its record", async () => {
    const { app, post, queued, trial } = api({ subset: 10 });
    const res = await post(request);
    expect(res.statusCode, res.body).toBe(202);
    const record = res.json() as AugmentationRecord;
    expect(record).toMatchObject({
      trialId: trial.id,
      state: 'queued',
      params: { ...request, classifier_steps: AUGMENTATION_LIMITS.classifierSteps.default },
      checkpoint: { step: 100 },
      attempts: 0,
    });
    expect(queued).toHaveLength(1);
    expect(queued[0]!.opts.jobId).toBe(record.id);
    // What the worker reads: a valid payload whose trial job pins the subset the generator saw.
    const payload = parseAugmentationJob(JSON.parse(JSON.stringify(queued[0]!.data)));
    expect(payload.checkpoint).toEqual({ step: 100, manifestKey: 'm/100' });
    expect(parseTrialJob(payload.trial).dataset.subset_per_class).toBe(10);
    const got = await app.inject({ method: 'GET', url: `/v1/augmentations/${record.id}` });
    expect(got.json()).toEqual(record);
    const view = await app.inject({ method: 'GET', url: `/v1/trials/${trial.id}` });
    expect((view.json() as { augmentations: AugmentationRecord[] }).augmentations).toEqual([record]);
    // An earlier checkpoint by its step, the test-only knobs carried as given.
    const early = await post({ ...request, step: 50, classifier_steps: 20, test_per_class: 5 });
    expect(early.statusCode).toBe(202);
    expect(queued[1]!.data.checkpoint.manifestKey).toBe('m/50');
    expect(queued[1]!.data.params).toMatchObject({ classifier_steps: 20, test_per_class: 5 });
  });

  it.each([
    [{ ...request, seeds: 0 }, 'seeds'],
    [{ ...request, seeds: 21 }, 'seeds'],
    [{ ...request, synthetic_per_class: 2.5 }, 'synthetic_per_class'],
    [{ ...request, synthetic_per_class: 0 }, 'synthetic_per_class'],
    [{ seeds: 3, synthetic_per_class: 10 }, 'real_per_class'],
    [{ ...request, real_per_class: '10' }, 'real_per_class'],
    [{ ...request, classifier_steps: 0 }, 'classifier_steps'],
    [{ ...request, step: -1 }, 'step'],
    [{ ...request, m: 3 }, 'm'],
  ])('refuses %j with 400 naming %s, queueing nothing', async (body, path) => {
    const { post, queued, records } = api({ subset: 10 });
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    expect(errorOf(res).code).toBe('BAD_REQUEST');
    expect(errorOf(res).issues[0]!.path).toBe(path);
    expect(queued).toHaveLength(0);
    expect(records.size).toBe(0);
  });

  it('refuses an unconditional trial, a set without classes, and K other than the images the generator saw', async () => {
    const cases: [Fixture, string, RegExp][] = [
      [{ model: 'dcgan', subset: 10 }, 'id', /dcgan trial: its generator is not conditional.*\(cgan\)/],
      [{ subset: 10, classes: [] }, 'id', /has no classes/],
      [{}, 'real_per_class', /trained on all of fashion-mnist.*leakage.*subset_per_class: 10/],
      [{ subset: 20 }, 'real_per_class', /must be 20: .* saw the first 20 images of each class/],
    ];
    for (const [fixture, path, message] of cases) {
      const { post, queued, records } = api(fixture);
      const res = await post(request);
      expect(res.statusCode, JSON.stringify(fixture)).toBe(400);
      expect(errorOf(res).issues[0]).toMatchObject({ path, message: expect.stringMatching(message) });
      expect(queued).toHaveLength(0);
      expect(records.size).toBe(0);
    }
  });

  it('answers 409 for a trial without a checkpoint, 404 for a step without one, an unknown trial or augmentation', async () => {
    const none = api({ subset: 10, checkpoints: [] });
    const res = await none.post(request);
    expect(res.statusCode).toBe(409);
    expect(errorOf(res).message).toMatch(/has no committed checkpoint yet/);
    expect(none.queued).toHaveLength(0);
    const { app, post, queued } = api({ subset: 10 });
    const step = await post({ ...request, step: 70 });
    expect(step.statusCode).toBe(404);
    expect(errorOf(step).message).toMatch(/steps with checkpoints: 50, 100/);
    expect((await post(request, 'aug-1234-t009')).statusCode).toBe(404);
    expect(queued).toHaveLength(0);
    const missing = await app.inject({ method: 'GET', url: '/v1/augmentations/aug-1234-t000-a00000000' });
    expect(missing.statusCode).toBe(404);
    expect(errorOf(missing).code).toBe('NOT_FOUND');
  });
});
