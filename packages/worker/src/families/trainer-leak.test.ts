import { jobStage, MODEL_NAMES, MODEL_PARAMS, type ModelName, parseTrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { fakeDataset } from '../testing/fake-dataset.ts';
import { familyOf } from './registry.ts';

/**
 * Steps between memory samples: 25, and 10 for the image-conditioned families, whose steps cost ~3x more
 * on a CPU (their 200 steps give the same 20 samples); 3 for transgan, whose steps cost ~7x more. Leaked
 * tensors show in the count at any length. A JS heap or RSS leak shows once it exceeds the limits below
 * between the medians of the run's halves, 9 samples apart: ~225 steps at 500 steps, so 2.5 MB is about
 * 12 KiB a step or more (as 5 MB was at the 1,000 steps, 450 apart, of 50 steps a sample: halving both
 * keeps what is detected). Over three runs of every family here, the halves' medians of the JS heap after
 * GC differed by 0.3 MB at most, RSS's by 2.6 MB: each limit is 7x or more over that.
 */
const sampleEvery = (model: ModelName) =>
  model === 'transgan' ? 3 : model === 'srgan' || model === 'pix2pix' ? 10 : 25;
const stepsOf = (model: ModelName) => 20 * sampleEvery(model);
/** Live JS heap after a full GC (see above: about 12 KiB a step or more exceeds it). */
const HEAP_GROWTH_LIMIT_MB = 2.5;
/** Resident memory wobbles with the allocator; compared as medians of the two halves of the run. */
const RSS_GROWTH_LIMIT_MB = 20;
/**
 * Images a step. A leak grows with the steps, not with the images in them: a tensor or object kept per
 * step is kept at any batch size (a batch's pixels, 6 KiB at 2, 25 KiB at 8, are in tensors, which the
 * count checks exactly). A step of 2 costs a half to two thirds of one of 8.
 */
const BATCH = 2;

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * A small job of `model`: progan trains an 8x8 stage that fades in over the first half of the run, srgan
 * its adversarial stage (7 -> 28 px).
 */
function leakJob(model: ModelName) {
  const STEPS = stepsOf(model);
  const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS[model]).map(([k, d]) => [k, d.default]));
  const params: Record<string, number> = { ...defaults, batch_size: BATCH, base_filters: 4 };
  if ('latent_dim' in defaults) params.latent_dim = 8;
  if (model === 'wgan-gp') params.n_critic = 2;
  if (model === 'srgan') params.blocks = 1;
  if (model === 'pix2pix') params.n_layers = 1;
  if (model === 'transgan') {
    delete params.base_filters;
    Object.assign(params, { g_depth_2: 0, g_depth_3: 0, d_depth: 1, d_embed_dim: 16, n_critic: 1 });
  }
  const staged = model === 'progan' || model === 'srgan';
  const stages =
    model === 'srgan'
      ? [
          { phase: 'pretrain' as const, fade_steps: 0, stable_steps: 1, batch_size: BATCH },
          { phase: 'adversarial' as const, fade_steps: 0, stable_steps: STEPS, batch_size: BATCH },
        ]
      : [
          { resolution: 4, fade_steps: 0, stable_steps: 1, batch_size: BATCH },
          { resolution: 8, fade_steps: STEPS / 2, stable_steps: STEPS / 2, batch_size: BATCH },
        ];
  return parseTrialJob({
    v: 2,
    sweepId: 'leak',
    trialId: 'leak-t000',
    index: 0,
    model,
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: 5,
    steps: staged ? STEPS + 1 : STEPS,
    checkpointEvery: 500,
    params,
    ...(staged ? { stage: jobStage(stages, 1, params) } : {}),
  });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('training does not leak', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it.each(
    MODEL_NAMES,
  )('%s keeps its tensor count constant and resident memory flat over 20 samples of memory', async (model) => {
    const trainer = familyOf(model).createTrainer(leakJob(model), fakeDataset(11, 512, model === 'pix2pix'));
    const first = trainer.step;
    const tensors: number[] = [];
    const rssMb: number[] = [];
    const heapMb: number[] = [];
    const wasmMb: number[] = [];
    const dataIds: number[] = [];
    const backend = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array }; numDataIds(): number };
    const steps = stepsOf(model);
    const every = sampleEvery(model);
    for (let i = 1; i <= steps; i++) {
      trainer.trainStep();
      expect(trainer.step).toBe(first + i);
      // What a worker does around steps: checkpoints and sample grids; also after the first two steps, so
      // that the wasm heap's growth for them falls in the warm-up the comparison below skips (transgan's
      // grows at its first two samples of 16, wider than its steps of 2, and then no more).
      if (i <= 2 || i % (5 * every) === 0) {
        trainer.exportState();
        trainer.sample(16);
      }
      if (i % every === 0) {
        // Yield so the test runner's RPC is answered during this long synchronous loop.
        await new Promise((r) => setImmediate(r));
        gc?.();
        const mem = process.memoryUsage();
        tensors.push(tf.memory().numTensors);
        dataIds.push(backend.numDataIds());
        rssMb.push(mem.rss / 2 ** 20);
        heapMb.push(mem.heapUsed / 2 ** 20);
        wasmMb.push(backend.wasm.HEAPU8.length / 2 ** 20);
      }
    }
    trainer.dispose();
    const fmt = (xs: number[]) => xs.map((m) => m.toFixed(1)).join(', ');
    expect(new Set(tensors).size, `tensor counts every ${every} steps: ${tensors.join(', ')}`).toBe(1);
    // The backend's buffers, tensors or not: a kernel's temporary it makes and does not free shows here.
    expect(new Set(dataIds).size, `wasm buffers every ${every} steps: ${dataIds.join(', ')}`).toBe(1);
    // Skip the first 3 samples (warm-up: kernels, caches, heap sizing), then compare the run's two halves.
    const early = (xs: number[]) => xs.slice(3, 11);
    const late = (xs: number[]) => xs.slice(12);
    // The wasm heap: grown at most once after the warm-up (the matrix product's scratch is sized by the
    // widest product so far and moves when a wider one comes, e.g. a sample grid's: where the heap is
    // fragmented by the trainers before in this process, that can grow it once, early or late - transgan's
    // grew at its 15th sample after the convolutions' temporaries changed). A leak of wasm memory per step
    // grows it again and again; the buffer count above catches any that is not freed at all.
    const growths = wasmMb.slice(3).filter((m, i, xs) => i > 0 && m !== xs[i - 1]).length;
    expect(growths, `wasm heap (MB) every ${every} steps: ${fmt(wasmMb)}`).toBeLessThanOrEqual(1);
    expect(
      median(late(heapMb)) - median(early(heapMb)),
      `JS heap after GC (MB) every ${every} steps: ${fmt(heapMb)}`,
    ).toBeLessThan(gc ? HEAP_GROWTH_LIMIT_MB : 4 * HEAP_GROWTH_LIMIT_MB);
    expect(
      median(late(rssMb)) - median(early(rssMb)),
      `RSS (MB) every ${every} steps: ${fmt(rssMb)}`,
    ).toBeLessThan(RSS_GROWTH_LIMIT_MB);
  }, 240_000);
});
