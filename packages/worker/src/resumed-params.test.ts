import { parseTrialJob, type TrialJob } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.ts';
import type { Trainer, TrainerState } from './families/family.ts';
import { familyOf } from './families/registry.ts';
import type { NamedArray } from './models/param-store.ts';
import { fakeDataset } from './testing/fake-dataset.ts';

/**
 * A trial resumed under new parameters (PBT's explore, a pbt-replay segment) trains with the job's
 * parameters on the checkpoint's weights, moments and step: Ray's PBT once restored the old
 * hyperparameters with the state (ray-project/ray PR 28509); here nothing of the optimizer's settings
 * lives in a checkpoint.
 */

type Params = Record<string, number>;

const A: Params = {
  lr_g: 2e-3,
  lr_d: 1e-3,
  beta1: 0.5,
  beta2: 0.999,
  batch_size: 8,
  latent_dim: 8,
  base_filters: 8,
};
const B: Params = { ...A, lr_g: 5e-4, lr_d: 3e-3, beta1: 0.2, beta2: 0.95, batch_size: 4 };
/** The health restart taken under A: its multipliers go on under B. */
const SCALE = { g: 0.5, d: 0.25 };

function job(params: Params): TrialJob {
  return parseTrialJob({
    v: 2,
    sweepId: 'sw',
    trialId: 'sw-t000',
    index: 0,
    model: 'dcgan',
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: 42,
    steps: 100,
    checkpointEvery: 10,
    params,
  });
}

const data = fakeDataset();

/** Runs `fn` with a fresh trainer and disposes it (tfjs variable names are global: one at a time). */
function withTrainer<T>(params: Params, fn: (t: Trainer) => T): T {
  const trainer = familyOf('dcgan').createTrainer(job(params), data);
  try {
    return fn(trainer);
  } finally {
    trainer.dispose();
  }
}

/** A state copied out of the backend's memory (exported arrays may be views of it). */
function copied(s: TrainerState): TrainerState {
  const copy = (xs: NamedArray[]) => xs.map((a) => ({ ...a, data: a.data.slice() }));
  return {
    ...s,
    g: copy(s.g),
    d: copy(s.d),
    optG: { t: s.optG.t, arrays: copy(s.optG.arrays) },
    optD: { t: s.optD.t, arrays: copy(s.optD.arrays) },
  };
}

const plain = (xs: readonly NamedArray[]) => xs.map((a) => [a.name, a.shape, Array.from(a.data)]);

interface Adam {
  lr: number;
  beta1: number;
  beta2: number;
}

/**
 * How far one network's change over one step is from a single Adam update (Kingma & Ba 2015) with `adam`
 * from the moments and weights `before` to `after`: with g = (m1 - beta1 m0) / (1 - beta1), the update
 * must give v1 = beta2 v0 + (1 - beta2) g^2 and x0 - x1 = lr sqrt(1 - beta2^t) / (1 - beta1^t)
 * m1 / (sqrt(v1) + 1e-8). Returns the relative residuals (norm of the misfit over the norm of the value)
 * of both equations, over all the network's variables.
 */
function adamResidual(
  net: 'g' | 'd',
  before: TrainerState,
  after: TrainerState,
  adam: Adam,
): { v: number; step: number } {
  const opt = net === 'g' ? 'optG' : 'optD';
  const moments = (s: TrainerState) => new Map(s[opt].arrays.map((a) => [a.name, a.data]));
  const [m0s, m1s] = [moments(before), moments(after)];
  const t = after[opt].t;
  expect(t).toBe(before[opt].t + 1);
  const alpha = (adam.lr * Math.sqrt(1 - adam.beta2 ** t)) / (1 - adam.beta1 ** t);
  const sums = { v: 0, vNorm: 0, step: 0, stepNorm: 0 };
  before[net].forEach((x0, i) => {
    const x1 = after[net][i]!;
    expect(x1.name).toBe(x0.name);
    const [m0, v0] = [m0s.get(`${x0.name}/adam_m`)!, m0s.get(`${x0.name}/adam_v`)!];
    const [m1, v1] = [m1s.get(`${x0.name}/adam_m`)!, m1s.get(`${x0.name}/adam_v`)!];
    for (let j = 0; j < x0.data.length; j++) {
      const g = (m1[j]! - adam.beta1 * m0[j]!) / (1 - adam.beta1);
      const v = adam.beta2 * v0[j]! + (1 - adam.beta2) * g * g;
      sums.v += (v1[j]! - v) ** 2;
      sums.vNorm += v1[j]! ** 2;
      const delta = x0.data[j]! - x1.data[j]!;
      sums.step += (delta - (alpha * m1[j]!) / (Math.sqrt(v1[j]!) + 1e-8)) ** 2;
      sums.stepNorm += delta ** 2;
    }
  });
  return { v: Math.sqrt(sums.v / sums.vNorm), step: Math.sqrt(sums.step / sums.stepNorm) };
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('a trial resumed under new parameters', () => {
  it("trains with the job's learning rates, betas and batch size on the checkpoint's weights, moments and step", () => {
    const { state, flopsA } = withTrainer(A, (t) => {
      for (let i = 0; i < 3; i++) t.trainStep();
      t.applyRestart(SCALE);
      return { state: copied(t.exportState()), flopsA: t.flopsPerStep() };
    });
    expect(state.step).toBe(3);

    const { imported, after, flopsB } = withTrainer(B, (t) => {
      t.importState(state);
      const imported = copied(t.exportState());
      t.trainStep();
      return { imported, after: copied(t.exportState()), flopsB: t.flopsPerStep() };
    });
    // A's weights, moments, step and health; nothing of B's initialisation.
    expect(imported.step).toBe(3);
    expect(plain(imported.g)).toEqual(plain(state.g));
    expect(plain(imported.d)).toEqual(plain(state.d));
    expect(plain(imported.optG.arrays)).toEqual(plain(state.optG.arrays));
    expect(plain(imported.optD.arrays)).toEqual(plain(state.optD.arrays));
    expect([imported.optG.t, imported.optD.t]).toEqual([3, 3]);
    expect(imported.health).toEqual({ restarts: 1, lrScale: SCALE });
    expect(imported.rng).toEqual(state.rng);

    // The first step after the import is one Adam update per network with B's settings (its learning
    // rates times A's restart multipliers) on A's moments...
    const withB = (net: 'g' | 'd') => ({
      lr: (net === 'g' ? B.lr_g! * SCALE.g : B.lr_d! * SCALE.d) as number,
      beta1: B.beta1!,
      beta2: B.beta2!,
    });
    for (const net of ['g', 'd'] as const) {
      const r = adamResidual(net, state, after, withB(net));
      expect(r.v, `${net}: v`).toBeLessThan(1e-4);
      expect(r.step, `${net}: step`).toBeLessThan(1e-4);
    }
    // ...and not with A's (the check tells them apart).
    for (const net of ['g', 'd'] as const) {
      const withA = {
        lr: net === 'g' ? A.lr_g! * SCALE.g : A.lr_d! * SCALE.d,
        beta1: A.beta1!,
        beta2: A.beta2!,
      };
      const r = adamResidual(net, state, after, withA);
      expect(Math.max(r.v, r.step), net).toBeGreaterThan(0.1);
      // B's betas with A's rate: the step size alone is told apart too.
      expect(adamResidual(net, state, after, { ...withB(net), lr: withA.lr }).step, net).toBeGreaterThan(0.1);
    }
    // B's batch: a step costs half of A's (same networks, half the images).
    expect(flopsB / flopsA).toBeCloseTo(B.batch_size! / A.batch_size!, 10);
  });
});
