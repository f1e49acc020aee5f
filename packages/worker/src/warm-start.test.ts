import { type JobInitFrom, type ObjectStore, parseTrialJob, type TrialJob } from '@gantry/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshStore } from '../../../test/support/infra.ts';
import { initBackend } from './backend.ts';
import { CheckpointStore } from './checkpoint-store.ts';
import type { Trainer, TrainerState } from './families/family.ts';
import { familyOf } from './families/registry.ts';
import { fakeDataset } from './testing/fake-dataset.ts';
import { WarmStartError, warmStart, warmState } from './warm-start.ts';

const SOURCE = { sweepId: 'src-0a1b2c3d', trialId: 'src-0a1b2c3d-t000' };

function job(sweepId: string, seed: number): TrialJob {
  return parseTrialJob({
    v: 2,
    sweepId,
    trialId: `${sweepId}-t000`,
    index: 0,
    model: 'dcgan',
    dataset: { name: 'fake', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed,
    steps: 100,
    checkpointEvery: 10,
    params: {
      lr_g: 2e-3,
      lr_d: 2e-3,
      beta1: 0.5,
      beta2: 0.999,
      batch_size: 8,
      latent_dim: 8,
      base_filters: 8,
    },
  });
}

const data = fakeDataset();

/** One trainer at a time (tfjs variable names are process-global), disposed after `fn`. */
async function withTrainer<T>(j: TrialJob, fn: (t: Trainer) => Promise<T> | T): Promise<T> {
  const trainer = familyOf(j.model).createTrainer(j, data);
  try {
    return await fn(trainer);
  } finally {
    trainer.dispose();
  }
}

const sameArrays = (a: TrainerState['g'], b: TrainerState['g']) =>
  a.length === b.length &&
  a.every((x, i) => x.name === b[i]!.name && x.data.every((v, k) => v === b[i]!.data[k]));

let store: ObjectStore;
let source: TrainerState;
let sourceDraw: Float32Array;
let init: JobInitFrom;

beforeAll(async () => {
  await initBackend('wasm');
  store = await freshStore();
  // The source: a few steps of training, so that its weights are neither initial nor anyone else's.
  await withTrainer(job(SOURCE.sweepId, 1), async (t) => {
    for (let i = 0; i < 3; i++) t.trainStep();
    source = t.exportState();
    sourceDraw = t.draw!(4, { seed: 9 });
    const manifestKey = await new CheckpointStore(store, SOURCE.sweepId, SOURCE.trialId).write(source, 'w1');
    init = { ...SOURCE, step: 3, manifestKey, nets: ['g'] };
  });
}, 60_000);

afterAll(async () => {
  await store?.close();
});

describe('warmStart', () => {
  it("gives a fresh trainer the source's G (identical outputs for the same noise), its own D, step, Rng and optimizers", async () => {
    await withTrainer(job('dst-0a1b2c3d', 2), async (t) => {
      const fresh = t.exportState();
      expect(sameArrays(fresh.g, source.g)).toBe(false);
      expect(Array.from(t.draw!(4, { seed: 9 }))).not.toEqual(Array.from(sourceDraw));
      await warmStart(t, store, init);
      const after = t.exportState();
      expect(Array.from(t.draw!(4, { seed: 9 }))).toEqual(Array.from(sourceDraw));
      expect(sameArrays(after.g, source.g)).toBe(true);
      expect(sameArrays(after.d, fresh.d)).toBe(true);
      expect(sameArrays(after.d, source.d)).toBe(false);
      expect(after.step).toBe(0);
      expect(after.rng).toEqual(fresh.rng);
      expect(after.optG).toEqual(fresh.optG);
      expect(after.optD).toEqual(fresh.optD);
      // It trains on from there: one step moves G away from the source's.
      t.trainStep();
      expect(sameArrays(t.exportState().g, source.g)).toBe(false);
    });
  });

  it('takes both networks when asked, and D alone leaves G as initialised', async () => {
    await withTrainer(job('dst-0a1b2c3d', 2), async (t) => {
      await warmStart(t, store, { ...init, nets: ['g', 'd'] });
      expect(sameArrays(t.exportState().d, source.d)).toBe(true);
      expect(sameArrays(t.exportState().g, source.g)).toBe(true);
    });
    await withTrainer(job('dst-0a1b2c3d', 2), async (t) => {
      const fresh = t.exportState();
      await warmStart(t, store, { ...init, nets: ['d'] });
      expect(sameArrays(t.exportState().d, source.d)).toBe(true);
      expect(sameArrays(t.exportState().g, fresh.g)).toBe(true);
    });
  });

  it("fails for good, naming the key, when the checkpoint is gone or is not that trial's", async () => {
    await withTrainer(job('dst-0a1b2c3d', 2), async (t) => {
      const gone = init.manifestKey.replace('/3/', '/4/');
      const err = await warmStart(t, store, { ...init, manifestKey: gone }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WarmStartError);
      expect((err as WarmStartError).code).toBe('INIT_FROM_UNAVAILABLE');
      expect((err as Error).message).toContain(gone);
      expect((err as Error).message).toContain('is no longer in the object store');
      const other = await warmStart(t, store, { ...init, trialId: 'src-0a1b2c3d-t001' }).catch(
        (e: unknown) => e,
      );
      expect(other).toBeInstanceOf(WarmStartError);
      expect((other as Error).message).toMatch(/cannot be used/);
    });
  });
});

describe('warmState', () => {
  const arr = (name: string, v: number) => ({ name, shape: [1], data: Float32Array.of(v) });
  const state = (v: number, extra: Partial<TrainerState> = {}): TrainerState => ({
    step: v,
    rng: [v],
    g: [arr('g/w', v)],
    d: [arr('d/w', v)],
    optG: { t: v, arrays: [] },
    optD: { t: v, arrays: [] },
    ...extra,
  });

  it("brings G's moving average and batch-norm statistics with G; an average the source lacks starts at G", () => {
    const fresh = state(0, { ema: [arr('g_ema/w', 0)], stats: [arr('g/bn/mean', 0)], stage: 0 });
    const withBoth = state(5, { ema: [arr('g_ema/w', 7)], stats: [arr('g/bn/mean', 5)], stage: 2 });
    expect(warmState(fresh, withBoth, ['g'])).toEqual({
      ...fresh,
      g: withBoth.g,
      ema: withBoth.ema,
      stats: withBoth.stats,
    });
    expect(warmState(fresh, state(5), ['g']).ema).toEqual([arr('g_ema/w', 5)]);
    expect(warmState(fresh, state(5), ['g']).stats).toEqual(fresh.stats);
    expect(warmState(fresh, withBoth, ['d'])).toEqual({ ...fresh, d: withBoth.d });
  });
});
