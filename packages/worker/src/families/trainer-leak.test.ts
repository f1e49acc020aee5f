import { jobStage, MODEL_NAMES, MODEL_PARAMS, type ModelName, parseTrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { fakeDataset } from '../testing/fake-dataset.ts';
import { familyOf } from './registry.ts';

const STEPS = 2000;
/** Live JS heap after a full GC: a leak of one small object per step would exceed this. */
const HEAP_GROWTH_LIMIT_MB = 5;
/** Resident memory wobbles with the allocator; compared as medians of the two halves of the run. */
const RSS_GROWTH_LIMIT_MB = 40;

const gc = (globalThis as { gc?: () => void }).gc;

/** A small job of `model`: progan trains an 8x8 stage that fades in over the first half of the run. */
function leakJob(model: ModelName) {
  const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS[model]).map(([k, d]) => [k, d.default]));
  const params: Record<string, number> = { ...defaults, batch_size: 8, latent_dim: 8, base_filters: 4 };
  if (model === 'wgan-gp') params.n_critic = 2;
  const stages = [
    { resolution: 4, fade_steps: 0, stable_steps: 1, batch_size: 8 },
    { resolution: 8, fade_steps: STEPS / 2, stable_steps: STEPS / 2, batch_size: 8 },
  ];
  return parseTrialJob({
    v: 2,
    sweepId: 'leak',
    trialId: 'leak-t000',
    index: 0,
    model,
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: 5,
    steps: model === 'progan' ? STEPS + 1 : STEPS,
    checkpointEvery: 500,
    params,
    ...(model === 'progan' ? { stage: jobStage(stages, 1, params) } : {}),
  });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('training does not leak', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it.each(
    MODEL_NAMES,
  )('%s keeps its tensor count constant and resident memory flat over 2,000 steps', async (model) => {
    const trainer = familyOf(model).createTrainer(leakJob(model), fakeDataset(11, 512));
    const first = trainer.step;
    const tensors: number[] = [];
    const rssMb: number[] = [];
    const heapMb: number[] = [];
    const wasmMb: number[] = [];
    const backend = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } };
    for (let i = 1; i <= STEPS; i++) {
      trainer.trainStep();
      expect(trainer.step).toBe(first + i);
      // What a worker does around steps: checkpoints and sample grids.
      if (i % 500 === 0) {
        trainer.exportState();
        trainer.sample(16);
      }
      if (i % 100 === 0) {
        // Yield so the test runner's RPC is answered during this long synchronous loop.
        await new Promise((r) => setImmediate(r));
        gc?.();
        const mem = process.memoryUsage();
        tensors.push(tf.memory().numTensors);
        rssMb.push(mem.rss / 2 ** 20);
        heapMb.push(mem.heapUsed / 2 ** 20);
        wasmMb.push(backend.wasm.HEAPU8.length / 2 ** 20);
      }
    }
    trainer.dispose();
    const fmt = (xs: number[]) => xs.map((m) => m.toFixed(1)).join(', ');
    expect(new Set(tensors).size, `tensor counts every 100 steps: ${tensors.join(', ')}`).toBe(1);
    // Skip the first 300 steps (warm-up: kernels, caches, heap sizing), then compare the run's two halves.
    const early = (xs: number[]) => xs.slice(3, 11);
    const late = (xs: number[]) => xs.slice(12);
    expect(wasmMb.at(-1), `wasm heap (MB) every 100 steps: ${fmt(wasmMb)}`).toBe(wasmMb[3]);
    expect(
      median(late(heapMb)) - median(early(heapMb)),
      `JS heap after GC (MB) every 100 steps: ${fmt(heapMb)}`,
    ).toBeLessThan(gc ? HEAP_GROWTH_LIMIT_MB : 4 * HEAP_GROWTH_LIMIT_MB);
    expect(
      median(late(rssMb)) - median(early(rssMb)),
      `RSS (MB) every 100 steps: ${fmt(rssMb)}`,
    ).toBeLessThan(RSS_GROWTH_LIMIT_MB);
  }, 240_000);
});
