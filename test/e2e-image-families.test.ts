import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator } from '@gantry/coordinator';
import { compileSweepSpec, createLogger, loadConfig, ObjectStore } from '@gantry/shared';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { runGantry } from './support/cli.ts';
import { pngImage } from './support/image-sets.ts';
import { testEnv } from './support/infra.ts';
import { waitFor, waitForSweepEnd } from './support/wait-for.ts';

const env = testEnv({ GANTRY_LOCK_MS: '4000' });
const config = loadConfig(env);
let coordinator: Coordinator;
let apiUrl: string;
let work: string;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gantry-e2e-image-'));
  coordinator = new Coordinator(config, createLogger('e2e-image', 'silent'), { schedulerIntervalMs: 250 });
  apiUrl = (await coordinator.start({ host: '127.0.0.1', port: 0 }))!;
  workers.push(await spawnWorker('w1', env, work), await spawnWorker('w2', env, work));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => stopWorker(w, 10_000)));
  await coordinator?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** `gantry <args>` against this test's coordinator. */
const gantry = (args: string[]) => runGantry({ ...env, GANTRY_API_URL: apiUrl }, args);

const size = (png: Buffer) => {
  const p = PNG.sync.read(png);
  return [p.width, p.height];
};

describe('image-conditioned families end to end', () => {
  it('srgan x4 on emoji (16 -> 64): MSE pretraining then adversarial as two jobs, stage 2 resumed on the other worker after a SIGKILL', async () => {
    const spec = compileSweepSpec({
      name: 'e2e-srgan',
      model: 'srgan',
      dataset: 'emoji',
      seed: 5,
      budget: { trials: 1, parallel: 1 },
      checkpoint: { every_steps: 10 },
      metric: { name: 'psnr', goal: 'maximize' },
      parameters: { blocks: { value: 1 }, base_filters: { value: 8 }, scale: { value: 4 } },
      // Batches of 2: the stages, the hand-over and the scores are the point, and a step of 64 px outputs
      // costs about its images.
      stages: [
        { phase: 'pretrain', steps: 30, batch_size: 2 },
        { phase: 'adversarial', steps: 40, batch_size: 2 },
      ],
      // One evaluation at the end of each stage, on 64 held-out emoji.
      health: { eval_every_steps: 1000, eval_samples: 64 },
    });
    const { id: sweepId, trialIds } = await coordinator.submit(spec);
    const trialId = trialIds[0]!;

    const victim = await waitFor(
      'the adversarial stage running past a checkpoint of its own',
      async () => {
        const t = await coordinator.store.trial(trialId);
        const ck = t?.latestCheckpoint;
        if (t?.state === 'running' && t.stage?.index === 1 && ck && ck.step > 30 && t.step < 60) return t;
        return undefined;
      },
      300_000,
    );
    const killedAt = victim.latestCheckpoint!.step;
    const killed = workers.find((w) => w.id === victim.worker)!;
    const survivor = workers.find((w) => w !== killed)!;
    killed.child.kill('SIGKILL');
    await killed.exited;
    workers.splice(workers.indexOf(killed), 1);

    const sweep = await waitForSweepEnd(coordinator, sweepId, 300_000);
    const trial = (await coordinator.store.trial(trialId))!;
    expect(sweep.state, trial.reason).toBe('completed');
    expect(trial.step).toBe(70);
    expect(trial.stage).toEqual({ index: 1, count: 2, phase: 'adversarial', alpha: 1, done: 2 });
    const events = await coordinator.store.stageEvents(trialId);
    expect(events.filter((e) => e.event === 'done').map((e) => [e.stage, e.phase, e.step])).toEqual([
      [0, 'pretrain', 30],
      [1, 'adversarial', 70],
    ]);
    const starts = events.filter((e) => e.event === 'start' && e.stage === 1);
    expect(starts.map((e) => e.step)).toEqual([30, killedAt]);
    expect(starts[1]!.worker).toBe(survivor.id);
    // Each stage was scored on the held-out split against bicubic upsampling of the same inputs.
    const pretrained = events.find((e) => e.event === 'done' && e.stage === 0)!.quality!;
    for (const q of [pretrained, trial.quality!]) {
      expect(q.psnr).toBeGreaterThan(5);
      expect(q.ssim).toBeGreaterThan(0);
      expect(q.psnr_bicubic).toBeGreaterThan(15);
      expect(q.fld).toBeGreaterThan(0);
    }
    expect(trial.result).toBe(trial.quality!.psnr);
    // The grid shows LR | bicubic | SR | HR, 64 px tiles, 8 to a row.
    const samples = await coordinator.store.samples(trialId);
    const grid = await new ObjectStore(config.s3).get(samples.at(-1)!.key);
    expect(size(grid)).toEqual([8 * 64 + 9 * 2, 8 * 64 + 9 * 2]);

    // Use it: a 16x16 image in, its 64x64 super-resolution out (API and CLI); bad input gets clear errors.
    const lr = pngImage(16, 16, (x, y) => [x * 16, y * 16, 128]);
    const res = await coordinator.app.inject({
      method: 'POST',
      url: `/v1/trials/${trialId}/infer`,
      headers: { 'content-type': 'image/png' },
      payload: lr,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(size(res.rawPayload)).toEqual([64, 64]);
    const wrong = await coordinator.app.inject({
      method: 'POST',
      url: `/v1/trials/${trialId}/infer`,
      headers: { 'content-type': 'image/png' },
      payload: pngImage(64, 64, () => [0, 0, 0]),
    });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.body).toMatch(/16x16/);
    const noImage = await coordinator.app.inject({ method: 'POST', url: `/v1/trials/${trialId}/infer` });
    expect(noImage.statusCode).toBe(400);
    const step = await coordinator.app.inject({
      method: 'POST',
      url: `/v1/trials/${trialId}/infer?step=7`,
      headers: { 'content-type': 'image/png' },
      payload: lr,
    });
    expect(step.statusCode).toBe(404);
    await writeFile(join(work, 'lr.png'), lr);
    const cli = await gantry([
      'infer',
      trialId,
      join(work, 'lr.png'),
      '-o',
      join(work, 'sr.png'),
      '--step',
      '30',
    ]);
    expect(cli.code, cli.err).toBe(0);
    expect(size(await readFile(join(work, 'sr.png')))).toEqual([64, 64]);
  }, 600_000);

  it('pix2pix on emoji-google2twitter completes, is scored against B, and translates a 64x64 image', async () => {
    const spec = compileSweepSpec({
      name: 'e2e-pix2pix',
      model: 'pix2pix',
      dataset: 'emoji-google2twitter',
      seed: 6,
      budget: { trials: 1, parallel: 1, steps: 20 },
      checkpoint: { every_steps: 10 },
      metric: { name: 'l1', goal: 'minimize' },
      parameters: { base_filters: { value: 8 }, batch_size: { value: 2 } },
      health: { eval_every_steps: 1000, eval_samples: 64 },
    });
    const { id: sweepId, trialIds } = await coordinator.submit(spec);
    const sweep = await waitForSweepEnd(coordinator, sweepId, 300_000);
    const trial = (await coordinator.store.trial(trialIds[0]!))!;
    expect(sweep.state, trial.reason).toBe('completed');
    const q = trial.quality!;
    expect(q.l1).toBeGreaterThan(0);
    expect(q.l1).toBeLessThan(2);
    expect(q.psnr).toBeGreaterThan(0);
    expect(q.fld).toBeGreaterThan(0);
    // No classes in this set: no class accuracy.
    expect(q.class_accuracy).toBeUndefined();
    expect(trial.result).toBe(q.l1);
    const samples = await coordinator.store.samples(trial.id);
    const grid = await new ObjectStore(config.s3).get(samples.at(-1)!.key);
    // A | G(A) | B, two examples to a row of 6, 8 rows.
    expect(size(grid)).toEqual([6 * 64 + 7 * 2, 8 * 64 + 9 * 2]);

    const a = pngImage(64, 64, (x, y) => [x * 4, 255 - y * 4, 90]);
    const res = await coordinator.app.inject({
      method: 'POST',
      url: `/v1/trials/${trial.id}/infer`,
      headers: { 'content-type': 'image/png' },
      payload: a,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(size(res.rawPayload)).toEqual([64, 64]);
    await writeFile(join(work, 'a.png'), a);
    const cli = await gantry(['infer', trial.id, join(work, 'a.png'), '-o', join(work, 'b.png')]);
    expect(cli.code, cli.err).toBe(0);
    expect(size(await readFile(join(work, 'b.png')))).toEqual([64, 64]);
    // Asking a translator for samples is refused, saying what it takes.
    const draw = await coordinator.app.inject({
      method: 'POST',
      url: `/v1/trials/${trial.id}/infer?count=4`,
    });
    expect(draw.statusCode).toBe(400);
  }, 600_000);
});

describe('a transformer GAN end to end', () => {
  it('a transgan trial with DiffAugment completes on Fashion-MNIST with its FLD measured', async () => {
    const spec = compileSweepSpec({
      name: 'e2e-transgan',
      model: 'transgan',
      dataset: 'fashion-mnist',
      seed: 8,
      budget: { trials: 1, parallel: 1, steps: 10 },
      checkpoint: { every_steps: 10 },
      metric: { name: 'fld', goal: 'minimize' },
      // Small networks, one critic update a step: the path, not the quality. (D keeps its default width: a
      // 16-wide critic's penalty spikes past the divergence bound on blank, cut-out patches.)
      parameters: {
        batch_size: { value: 8 },
        latent_dim: { value: 16 },
        g_depth_2: { value: 0 },
        g_depth_3: { value: 0 },
        d_depth: { value: 1 },
        heads: { value: 2 },
        n_critic: { value: 1 },
      },
      augment: { policy: ['translation', 'cutout'], p: 1 },
      health: { eval_every_steps: 10, eval_samples: 64 },
    });
    const { id: sweepId, trialIds } = await coordinator.submit(spec);
    const sweep = await waitForSweepEnd(coordinator, sweepId, 300_000);
    const trial = (await coordinator.store.trial(trialIds[0]!))!;
    expect(sweep.state, trial.reason).toBe('completed');
    expect(trial.step).toBe(10);
    const view = (await coordinator.app.inject({ method: 'GET', url: `/v1/trials/${trial.id}` })).json() as {
      quality?: { fld?: number };
      result?: number;
    };
    expect(view.quality?.fld).toBeGreaterThan(0);
    expect(Number.isFinite(view.quality!.fld)).toBe(true);
    expect(view.result).toBe(view.quality!.fld);
    // Every step trained with DiffAugment at p = 1.
    const history = await coordinator.store.history(trial.id);
    expect(history.length).toBeGreaterThan(0);
    for (const p of history) expect(p.augment_p).toBe(1);
    // Its generator draws samples for `gantry infer` like the other generative families'.
    const draw = await coordinator.app.inject({
      method: 'POST',
      url: `/v1/trials/${trial.id}/infer?count=4`,
    });
    expect(draw.statusCode, draw.body).toBe(200);
    expect(size(draw.rawPayload)).toEqual([2 * 28 + 3 * 2, 2 * 28 + 3 * 2]);
  }, 300_000);
});
