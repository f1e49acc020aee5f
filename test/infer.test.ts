import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Coordinator } from '@gantry/coordinator';
import { compileSweepSpec, createLogger, loadConfig, Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { runGantry } from './support/cli.ts';
import { labelledSet, pngImage, tarOf } from './support/image-sets.ts';
import { testEnv } from './support/infra.ts';
import { waitForSweepEnd } from './support/wait-for.ts';

/** The image body limit of this test's coordinator (GANTRY_INFER_MAX_BYTES). */
const MAX_BYTES = 64 * 1024;

// One inference process, no queue: a second request while one runs is refused (503).
const env = testEnv({ GANTRY_INFER_MAX_BYTES: String(MAX_BYTES), GANTRY_INFER_QUEUE: '0' });
let coordinator: Coordinator;
let apiUrl: string;
let worker: WorkerProcess | undefined;
let trialId: string;
let work: string;

/** A tiny DCGAN trial on a 16x16 colour set: 20 steps, checkpoints at 10 and 20. */
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gantry-infer-'));
  coordinator = new Coordinator(loadConfig(env), createLogger('infer', 'silent'), {
    schedulerIntervalMs: 200,
  });
  apiUrl = (await coordinator.start({ host: '127.0.0.1', port: 0 }))!;
  worker = await spawnWorker('w1', env, work);
  const pushed = await coordinator.app.inject({
    method: 'POST',
    url: '/v1/datasets?name=swatches',
    headers: { 'content-type': 'application/x-tar' },
    payload: tarOf(labelledSet({ red: [220, 40, 40], blue: [40, 60, 220] }, 8)),
  });
  expect(pushed.statusCode, pushed.body).toBe(201);
  const { id, trialIds } = await coordinator.submit(
    compileSweepSpec({
      name: 'infer',
      model: 'dcgan',
      dataset: 'swatches',
      method: 'grid',
      seed: 3,
      metric: { name: 'g_loss', goal: 'minimize' },
      budget: { parallel: 1, steps: 20 },
      checkpoint: { every_steps: 10 },
      health: { eval_every_steps: 0 },
      parameters: { batch_size: { value: 8 }, base_filters: { value: 8 }, latent_dim: { value: 8 } },
    }),
  );
  trialId = trialIds[0]!;
  expect((await waitForSweepEnd(coordinator, id, 120_000)).state).toBe('completed');
}, 180_000);

afterAll(async () => {
  if (worker) await stopWorker(worker, 10_000);
  await coordinator?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

function infer(id: string, query = '', body?: { payload: Buffer | string; type: string }) {
  return coordinator.app.inject({
    method: 'POST',
    url: `/v1/trials/${id}/infer${query}`,
    ...(body ? { headers: { 'content-type': body.type }, payload: body.payload } : {}),
  });
}

const errorOf = (res: { json(): unknown }) =>
  (res.json() as { error: { code: string; message: string; issues?: { path: string }[] } }).error;

const run = (args: string[]) => runGantry({ ...env, GANTRY_API_URL: apiUrl }, args);

describe('inference from a trained trial', () => {
  it('draws count samples of the latest checkpoint as a grid PNG; the same seed draws the same samples', async () => {
    const res = await infer(trialId, '?count=6&seed=11');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers).toMatchObject({
      'x-gantry-step': '20',
      'x-gantry-count': '6',
      'x-gantry-cols': '3',
      'x-gantry-tile': '16x16',
      'x-gantry-padding': '2',
      'x-gantry-seed': '11',
    });
    const png = PNG.sync.read(res.rawPayload);
    // 3 x 2 tiles of 16 px, 2 px between and around them; colour, like the set.
    expect([png.width, png.height]).toEqual([3 * 16 + 4 * 2, 2 * 16 + 3 * 2]);
    expect(png.colorType).toBe(2);
    const again = await infer(trialId, '?count=6&seed=11');
    expect(again.rawPayload.equals(res.rawPayload)).toBe(true);
    const other = await infer(trialId, '?count=6&seed=12');
    expect(other.rawPayload.equals(res.rawPayload)).toBe(false);
    // Without a seed, a random one, reported.
    const random = await infer(trialId);
    expect(random.headers['x-gantry-count']).toBe('16');
    expect(Number(random.headers['x-gantry-seed'])).toBeGreaterThanOrEqual(0);
  });

  it('loads the checkpoint of ?step, and answers 404 listing the steps for one without', async () => {
    const res = await infer(trialId, '?step=10&count=1&seed=1');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['x-gantry-step']).toBe('10');
    expect(PNG.sync.read(res.rawPayload).width).toBe(16);
    const latest = await infer(trialId, '?step=20&count=1&seed=1');
    expect(latest.rawPayload.equals(res.rawPayload)).toBe(false);
    const missing = await infer(trialId, '?step=15');
    expect(missing.statusCode).toBe(404);
    expect(errorOf(missing)).toMatchObject({ code: 'NOT_FOUND' });
    expect(errorOf(missing).message).toContain('steps with checkpoints: 10, 20');
  });

  it('refuses a body that is not an image, one over the limit, and an image for a generative trial', async () => {
    const junk = await infer(trialId, '', { payload: 'not a png at all', type: 'image/png' });
    expect(junk.statusCode).toBe(400);
    expect(errorOf(junk)).toMatchObject({ code: 'INVALID_IMAGE', message: 'body: not a PNG or JPEG image' });
    const big = await infer(trialId, '', { payload: Buffer.alloc(MAX_BYTES + 1, 1), type: 'image/png' });
    expect(big.statusCode).toBe(413);
    expect(errorOf(big)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect(errorOf(big).message).toContain(String(MAX_BYTES));
    const image = pngImage(16, 16, () => [10, 20, 30]);
    const wrong = await infer(trialId, '', { payload: image, type: 'image/png' });
    expect(wrong.statusCode).toBe(400);
    expect(errorOf(wrong).code).toBe('WRONG_INPUT');
    expect(errorOf(wrong).message).toMatch(/\(dcgan\) draws samples from noise and takes no image/);
    const text = await infer(trialId, '', { payload: 'x', type: 'text/csv' });
    expect(text.statusCode).toBe(415);
    expect(errorOf(text).message).toMatch(/send the image as image\/png or image\/jpeg/);
    const cls = await infer(trialId, '?class=1');
    expect(cls.statusCode).toBe(400);
    expect(errorOf(cls).issues?.[0]?.path).toBe('class');
  });

  it('answers 404 for an unknown trial, 400 for a malformed id, 409 for a trial without a checkpoint yet', async () => {
    const unknown = await infer('no-such-sweep-t000');
    expect(unknown.statusCode).toBe(404);
    expect(errorOf(unknown).code).toBe('NOT_FOUND');
    const bad = await infer('..%2Fx');
    expect(bad.statusCode).toBe(400);
    expect(errorOf(bad).issues?.[0]?.path).toBe('id');
    // A sweep cancelled at once: its trial never trained.
    const { id, trialIds } = await coordinator.submit(
      compileSweepSpec({
        name: 'infer-none',
        model: 'dcgan',
        dataset: 'swatches',
        method: 'grid',
        budget: { parallel: 1, steps: 20 },
        health: { eval_every_steps: 0 },
        metric: { name: 'g_loss', goal: 'minimize' },
        parameters: { batch_size: { value: 8 } },
      }),
    );
    await coordinator.scheduler.cancel(id);
    const none = await infer(trialIds[0]!);
    expect(none.statusCode).toBe(409);
    expect(errorOf(none).message).toMatch(/has no committed checkpoint yet/);
  });

  it('answers 503 with Retry-After while its one process is busy, and answers everything else meanwhile', async () => {
    const many = await Promise.all([
      infer(trialId, '?count=64'),
      infer(trialId, '?count=64'),
      coordinator.app.inject({ method: 'GET', url: `/v1/trials/${trialId}` }),
    ]);
    const statuses = many.slice(0, 2).map((r) => r.statusCode);
    expect(statuses.sort()).toEqual([200, 503]);
    const busy = many.find((r) => r.statusCode === 503)!;
    expect(errorOf(busy).code).toBe('INFERENCE_BUSY');
    expect(Number(busy.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(many[2]!.statusCode).toBe(200);
    expect((await coordinator.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  it('gantry infer writes a grid, or one PNG per sample into a folder', async () => {
    const grid = join(work, 'grid.png');
    const a = await run(['infer', trialId, '-o', grid, '--count', '4', '--seed', '5']);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toMatch(/wrote .*grid\.png: a grid of 4 samples of 16x16, step 20, seed 5/);
    const api = await infer(trialId, '?count=4&seed=5');
    expect((await readFile(grid)).equals(api.rawPayload)).toBe(true);
    const dir = join(work, 'samples/');
    const b = await run(['infer', trialId, '-o', dir, '-n', '4', '--seed', '5', '--step', '20']);
    expect(b.code, b.err).toBe(0);
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(['sample-000.png', 'sample-001.png', 'sample-002.png', 'sample-003.png']);
    // Each file is one tile of the grid.
    const whole = PNG.sync.read(api.rawPayload);
    const first = PNG.sync.read(await readFile(join(dir, files[0]!)));
    expect([first.width, first.height]).toEqual([16, 16]);
    expect([...first.data.subarray(0, 4)]).toEqual([
      ...whole.data.subarray((2 * whole.width + 2) * 4, (2 * whole.width + 2) * 4 + 4),
    ]);
    const c = await run(['infer', trialId, '-o', join(work, 'x.png'), '--step', '15']);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/steps with checkpoints: 10, 20 \[NOT_FOUND\]/);
  });
});

describe('warm start (init_from) from the trained trial', () => {
  /** The source trial's spec with `over` on top, as the API takes it. */
  const warmSpec = (name: string, over: Record<string, unknown>) => ({
    name,
    model: 'dcgan',
    dataset: 'swatches',
    method: 'grid',
    seed: 9,
    metric: { name: 'g_loss', goal: 'minimize' },
    budget: { parallel: 1, steps: 1 },
    checkpoint: { every_steps: 1 },
    health: { eval_every_steps: 0 },
    ...over,
  });
  const post = (spec: Record<string, unknown>) =>
    coordinator.app.inject({ method: 'POST', url: '/v1/sweeps', payload: spec });
  const sweepCount = async () =>
    (await coordinator.app.inject({ method: 'GET', url: '/v1/sweeps' })).json().sweeps.length as number;

  it("starts a trial from the source's G: its samples are the source's for the same noise", async () => {
    // A learning rate too small to move float32 weights: step 1's G is the one it started from.
    const res = await post(
      warmSpec('warm-g', {
        init_from: { trial: trialId, nets: ['g'] },
        parameters: {
          batch_size: { value: 8 },
          base_filters: { value: 8 },
          latent_dim: { value: 8 },
          lr_g: { value: 1e-12 },
        },
      }),
    );
    expect(res.statusCode, res.body).toBe(201);
    const body = res.json() as { id: string; trialIds: string[] };
    expect((await waitForSweepEnd(coordinator, body.id, 60_000)).state).toBe('completed');
    const sweep = (await coordinator.app.inject({ method: 'GET', url: `/v1/sweeps/${body.id}` })).json();
    expect(sweep.spec.init_from).toMatchObject({ trial: trialId, step: 20, nets: ['g'] });
    expect(sweep.spec.init_from.source.manifestKey).toMatch(new RegExp(`/trials/${trialId}/checkpoints/20/`));
    const warm = body.trialIds[0]!;
    const trial = (await coordinator.app.inject({ method: 'GET', url: `/v1/trials/${warm}` })).json();
    expect(trial.events.find((e: { event: string }) => e.event === 'init')).toMatchObject({
      event: 'init',
      step: 0,
      initFrom: { trial: trialId, step: 20, nets: ['g'] },
    });
    const mine = PNG.sync.read((await infer(warm, '?count=16&seed=4')).rawPayload);
    const theirs = PNG.sync.read((await infer(trialId, '?count=16&seed=4')).rawPayload);
    const older = PNG.sync.read((await infer(trialId, '?count=16&seed=4&step=10')).rawPayload);
    const maxDiff = (a: PNG, b: PNG) => a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);
    expect(maxDiff(mine, theirs)).toBeLessThanOrEqual(1);
    // What a different G (10 steps less trained) gives: further off.
    expect(maxDiff(older, theirs)).toBeGreaterThan(4);
  }, 90_000);

  it('refuses with 400 a sweep whose networks the checkpoint does not fit, listing the tensors; nothing is queued', async () => {
    const before = await sweepCount();
    const res = await post(
      warmSpec('warm-wide', {
        init_from: { trial: trialId },
        parameters: { batch_size: { value: 8 }, base_filters: { values: [8, 16] }, latent_dim: { value: 8 } },
      }),
    );
    expect(res.statusCode, res.body).toBe(400);
    const err = res.json().error as { code: string; issues: { path: string; message: string }[] };
    expect(err.code).toBe('INVALID_SPEC');
    expect(err.issues.length).toBeGreaterThan(1);
    for (const i of err.issues) {
      expect(i.path).toBe('init_from');
      expect(i.message).toMatch(
        /^[GD] \(trial 1: base_filters 16\): [a-z_]+\/\S+: checkpoint [\dx]+ vs expected [\dx]+$/,
      );
    }
    expect(err.issues.some((i) => i.message.startsWith('G'))).toBe(true);
    expect(err.issues.some((i) => i.message.startsWith('D'))).toBe(true);
    const step = await post(warmSpec('warm-step', { init_from: { trial: trialId, step: 15 } }));
    expect(step.statusCode).toBe(400);
    expect(step.json().error.issues[0]).toEqual({
      path: 'init_from.step',
      message: `trial ${trialId} has no committed checkpoint at step 15; steps with checkpoints: 10, 20`,
    });
    const missing = await post(warmSpec('warm-none', { init_from: { trial: 'no-such-sweep-t000' } }));
    expect(missing.statusCode).toBe(400);
    expect(errorOf(missing).issues?.[0]?.path).toBe('init_from.trial');
    expect(await sweepCount()).toBe(before);
  });
});

describe('gantry export of the trained trial', () => {
  /** Serves `dir` on a loopback port as a static site: how a browser would fetch the export. */
  async function serve(dir: string): Promise<{ url: string; close: () => void }> {
    const server = createServer((req, res) => {
      readFile(join(dir, basename(req.url ?? '')))
        .then((body) => res.writeHead(200).end(body))
        .catch(() => res.writeHead(404).end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
  }

  it("writes a graph model that plain tfjs loads and that reproduces the trial's sample grid for its z", async () => {
    const dir = join(work, 'export-g');
    const a = await run(['export', trialId, '-o', dir]);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toMatch(/wrote 5 files .*the generator of .* at step 20/);
    expect((await readdir(dir)).sort()).toEqual([
      'README.md',
      'example.json',
      'gantry-export.json',
      'model.json',
      'weights.bin',
    ]);
    // The trial's own sample grid of step 20 (64 tiles of 16x16 RGB, 4x, 2 px apart) and its noise.
    const trial = (await coordinator.app.inject({ method: 'GET', url: `/v1/trials/${trialId}` })).json();
    const grid = PNG.sync.read(
      (await coordinator.app.inject({ method: 'GET', url: `/v1/trials/${trialId}/samples/20.png` }))
        .rawPayload,
    );
    const z = new Rng((trial.seed ^ 0x5a5a5a5a) >>> 0).fillNormal(new Float32Array(64 * 8));

    tf.enableProdMode();
    await tf.setBackend('cpu');
    const site = await serve(dir);
    try {
      const model = await tf.loadGraphModel(`${site.url}/model.json`);
      const images = tf.tidy(
        () =>
          (model.execute({ z: tf.tensor2d(z, [64, 8]) }, 'images') as tf.Tensor).dataSync() as Float32Array,
      );
      model.dispose();
      // The worker's own floats for the same z (example.json), to 1e-5; the grid's bytes, to rounding.
      const example = JSON.parse(await readFile(join(dir, 'example.json'), 'utf8'));
      expect(example.inputs.z.data).toEqual(Array.from(z));
      let worst = 0;
      for (let i = 0; i < images.length; i++)
        worst = Math.max(worst, Math.abs(images[i]! - example.output.data[i]));
      expect(images.length).toBe(64 * 16 * 16 * 3);
      expect(worst).toBeLessThanOrEqual(1e-5);
      let off = 0;
      for (let n = 0; n < 64; n++)
        for (let y = 0; y < 16; y++)
          for (let x = 0; x < 16; x++)
            for (let c = 0; c < 3; c++) {
              const gx = 2 + (n % 8) * 66 + 4 * x;
              const gy = 2 + Math.floor(n / 8) * 66 + 4 * y;
              const want = grid.data[(gy * grid.width + gx) * 4 + c]!;
              const got = Math.round(
                (Math.min(1, Math.max(-1, images[((n * 16 + y) * 16 + x) * 3 + c]!)) + 1) * 127.5,
              );
              off = Math.max(off, Math.abs(got - want));
            }
      expect(off).toBeLessThanOrEqual(1);
    } finally {
      site.close();
    }
  });

  it('exports D, and refuses a bad net, step or parameter, a trial without checkpoints and a used folder', async () => {
    const d = await run(['export', trialId, '--net', 'd', '--step', '10', '-o', join(work, 'export-d')]);
    expect(d.code, d.err).toBe(0);
    const meta = JSON.parse(await readFile(join(work, 'export-d', 'gantry-export.json'), 'utf8'));
    expect(meta).toMatchObject({ net: 'd', step: 10, inputs: [{ name: 'images', shape: [-1, 16, 16, 3] }] });

    const post = (q: string) =>
      coordinator.app.inject({ method: 'POST', url: `/v1/trials/${trialId}/export${q}` });
    const badNet = await post('?net=x');
    expect([badNet.statusCode, errorOf(badNet).issues?.[0]?.path]).toEqual([400, 'net']);
    const unknown = await post('?format=onnx');
    expect([unknown.statusCode, errorOf(unknown).issues?.[0]?.path]).toEqual([400, 'format']);
    const noStep = await post('?step=15');
    expect(noStep.statusCode).toBe(404);
    expect(errorOf(noStep).message).toMatch(/steps with checkpoints: 10, 20/);

    const { id, trialIds } = await coordinator.submit(
      compileSweepSpec({
        name: 'export-none',
        model: 'dcgan',
        dataset: 'swatches',
        method: 'grid',
        budget: { parallel: 1, steps: 20 },
        health: { eval_every_steps: 0 },
        metric: { name: 'g_loss', goal: 'minimize' },
        parameters: { batch_size: { value: 8 } },
      }),
    );
    await coordinator.scheduler.cancel(id);
    const none = await coordinator.app.inject({ method: 'POST', url: `/v1/trials/${trialIds[0]}/export` });
    expect([none.statusCode, errorOf(none).code]).toEqual([409, 'CONFLICT']);

    const used = await run(['export', trialId, '-o', join(work, 'export-d')]);
    expect(used.code).toBe(1);
    expect(used.err).toMatch(/is not empty .*--force.* \[OUTPUT_NOT_EMPTY\]/);
    const file = await run(['export', trialId, '-o', join(work, 'export-d', 'model.json')]);
    expect(file.err).toMatch(/is a file.* \[OUTPUT_IS_FILE\]/);
    const forced = await run(['export', trialId, '--force', '-o', join(work, 'export-d')]);
    expect(forced.code, forced.err).toBe(0);
  });
});
