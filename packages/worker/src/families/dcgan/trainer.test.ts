import { parseTrialJob, type TrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import type { Dataset } from '../../data/datasets.ts';
import { fakeDataset } from '../../testing/fake-dataset.ts';
import type { StepStats, TrainerState } from '../family.ts';
import { familyOf } from '../registry.ts';
import type { GanTrainer } from './trainer.ts';

function job(overrides: Partial<Pick<TrialJob, 'seed' | 'model'>> = {}): TrialJob {
  return parseTrialJob({
    v: 2,
    sweepId: 'sw',
    trialId: 'sw-t000',
    index: 0,
    model: overrides.model ?? 'dcgan',
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: overrides.seed ?? 42,
    steps: 100,
    checkpointEvery: 10,
    // A large learning rate so that every step moves the weights visibly.
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

/**
 * Runs `fn` with a fresh trainer and disposes it. Variable names are process-global in tfjs, so (as in the
 * worker's trainer process) only one trainer may exist at a time.
 */
function withTrainer<T>(j: TrialJob, fn: (t: GanTrainer) => T): T {
  const trainer = familyOf(j.model).createTrainer(j, data) as GanTrainer;
  try {
    return fn(trainer);
  } finally {
    trainer.dispose();
  }
}

function steps(t: GanTrainer, n: number): StepStats[] {
  return Array.from({ length: n }, () => t.trainStep());
}

const losses = (s: readonly StepStats[]) => s.map(({ d_loss, g_loss }) => [d_loss, g_loss]);

function expectFiniteStats(s: readonly StepStats[]): void {
  for (const x of s) {
    for (const v of [x.d_loss, x.g_loss, x.d_real, x.d_fake])
      expect(Number.isFinite(v), JSON.stringify(x)).toBe(true);
    expect(x.d_real).toBeGreaterThan(0);
    expect(x.d_real).toBeLessThan(1);
  }
}

/** Weights and optimizer moments as plain arrays, for exact comparison. */
function weights(s: TrainerState) {
  const flat = (xs: TrainerState['g']) => xs.map((a) => [a.name, a.shape, Array.from(a.data)]);
  return {
    g: flat(s.g),
    d: flat(s.d),
    optG: flat(s.optG.arrays),
    optD: flat(s.optD.arrays),
    t: [s.optG.t, s.optD.t],
  };
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('GanTrainer', () => {
  it('gives identical losses for the same job seed and different ones for another seed', () => {
    const a = withTrainer(job(), (t) => steps(t, 3));
    const b = withTrainer(job(), (t) => steps(t, 3));
    expectFiniteStats(a);
    expect(a.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(b).toEqual(a);
    // Training moves: the losses are not constant from step to step.
    expect(new Set(a.map((s) => s.g_loss)).size).toBe(3);
    const other = withTrainer(job({ seed: 43 }), (t) => steps(t, 3));
    expect(losses(other)).not.toEqual(losses(a));
  });

  it('resumes exactly: 3 steps, export, import into a fresh trainer, 3 more equal 6 uninterrupted', () => {
    const uninterrupted = withTrainer(job(), (t) => ({ stats: steps(t, 6), state: t.exportState() }));
    const saved = withTrainer(job(), (t) => {
      steps(t, 3);
      return t.exportState();
    });
    expect(saved.step).toBe(3);
    expect(saved.optG.t).toBe(3);
    expect(saved.optD.t).toBe(3);
    // Through JSON as far as the scalars go: a checkpoint manifest stores step and rng that way.
    const restoredScalars = JSON.parse(JSON.stringify({ step: saved.step, rng: saved.rng })) as Pick<
      TrainerState,
      'step' | 'rng'
    >;
    const resumed = withTrainer(job(), (t) => {
      t.importState({ ...saved, ...restoredScalars });
      expect(t.step).toBe(3);
      return { stats: steps(t, 3), state: t.exportState() };
    });
    expect(resumed.stats).toEqual(uninterrupted.stats.slice(3));
    expect(weights(resumed.state)).toEqual(weights(uninterrupted.state));
    expect(resumed.state.rng).toEqual(uninterrupted.state.rng);
    expect(resumed.state.step).toBe(6);
  });

  it('does not resume exactly when the rng state is not restored (the check above has teeth)', () => {
    const uninterrupted = withTrainer(job(), (t) => steps(t, 4));
    const saved = withTrainer(job(), (t) => {
      steps(t, 3);
      return t.exportState();
    });
    const fresh = withTrainer(job(), (t) => t.exportState());
    const resumed = withTrainer(job(), (t) => {
      t.importState({ ...saved, rng: fresh.rng });
      return steps(t, 1);
    });
    expect(losses(resumed)).not.toEqual(losses(uninterrupted.slice(3)));
  });

  it('keeps the number of live tensors constant from step to step', () => {
    withTrainer(job(), (t) => {
      steps(t, 2);
      const after2 = tf.memory().numTensors;
      steps(t, 8);
      expect(tf.memory().numTensors).toBe(after2);
      t.sample(4);
      t.exportState();
      expect(tf.memory().numTensors).toBe(after2);
    });
  });

  it('samples images in [-1, 1] without disturbing the training stream', () => {
    const plain = withTrainer(job(), (t) => steps(t, 4));
    const { stats, first, again } = withTrainer(job(), (t) => {
      const s = steps(t, 2);
      const first = t.sample(16);
      const again = t.sample(16);
      return { stats: [...s, ...steps(t, 2)], first, again };
    });
    expect(first).toHaveLength(16 * 28 * 28);
    let min = Infinity;
    let max = -Infinity;
    for (const v of first) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(min).toBeGreaterThanOrEqual(-1);
    expect(max).toBeLessThanOrEqual(1);
    expect(max).toBeGreaterThan(min);
    // Fixed sampling noise: the same weights give the same images.
    expect(Array.from(again)).toEqual(Array.from(first));
    expect(stats).toEqual(plain);
  });

  it('trains a cGAN: finite, reproducible from a checkpoint, and distinct from the DCGAN of the same seed', () => {
    const cgan = job({ model: 'cgan' });
    const a = withTrainer(cgan, (t) => {
      expect(t.nets.d.get('embed').shape).toEqual([10, 7 * 7 * 16]);
      return { stats: steps(t, 4), sample: t.sample(16) };
    });
    expectFiniteStats(a.stats);
    expect(a.sample).toHaveLength(16 * 784);
    for (const v of a.sample) expect(Math.abs(v)).toBeLessThanOrEqual(1);
    const saved = withTrainer(cgan, (t) => {
      steps(t, 2);
      return t.exportState();
    });
    const resumed = withTrainer(cgan, (t) => {
      t.importState(saved);
      return steps(t, 2);
    });
    expect(resumed).toEqual(a.stats.slice(2));
    // Same seed, unconditional model: a different network, so different losses.
    const dcgan = withTrainer(job(), (t) => steps(t, 1));
    expect(losses(dcgan)).not.toEqual(losses(a.stats.slice(0, 1)));
  });

  it('reports finite positive gradient norms that are the L2 norms of the applied update directions', () => {
    withTrainer(job(), (t) => {
      const [s] = steps(t, 1);
      expect(s!.g_grad_norm).toBeGreaterThan(0);
      expect(s!.d_grad_norm).toBeGreaterThan(0);
      expect(Number.isFinite(s!.g_grad_norm + s!.d_grad_norm)).toBe(true);
    });
    // Reference: the same first step's gradients by tf.grads on the same weights and batch. Adam's first
    // update is -lr * g / (|g| + eps) per element, so the weights alone cannot give the norm back; compute
    // D's gradient directly instead, with the trainer's own networks and data stream.
    withTrainer(job(), (t) => {
      const before = t.exportState();
      const [s] = steps(t, 1);
      t.importState(before);
      const dNorm = tf.tidy(() => {
        const real = (t as unknown as { realBatch(): { x: tf.Tensor4D } }).realBatch();
        const fake = t.nets.generate((t as unknown as { noise(): tf.Tensor2D }).noise());
        const { grads } = tf.variableGrads(() => {
          const r = t.nets.discriminate(real.x);
          const f = t.nets.discriminate(fake);
          return tf.add(tf.mean(tf.softplus(tf.neg(r))), tf.mean(tf.softplus(f))) as tf.Scalar;
        }, t.nets.d.vars);
        return Math.sqrt(
          t.nets.d.vars.reduce((a, v) => a + (tf.sum(tf.square(grads[v.name]!)).dataSync()[0] as number), 0),
        );
      });
      expect(dNorm).toBeCloseTo(s!.d_grad_norm, 3);
    });
  });

  it('scales learning rates on a restart, and keeps restarts and rates through export and import', () => {
    withTrainer(job(), (t) => {
      expect(t.health).toEqual({ restarts: 0, lrScale: { g: 1, d: 1 } });
      t.applyRestart({ g: 10, d: 0.5 });
      t.applyRestart({ g: 0.5, d: 0.5 });
      expect(t.health).toEqual({ restarts: 2, lrScale: { g: 5, d: 0.25 } });
      const state = t.exportState();
      expect(state.health).toEqual({ restarts: 2, lrScale: { g: 5, d: 0.25 } });
      t.importState({ ...state, health: undefined });
      expect(t.health).toEqual({ restarts: 0, lrScale: { g: 1, d: 1 } });
      t.importState(state);
      expect(t.health.lrScale).toEqual({ g: 5, d: 0.25 });
    });
    // A smaller learning rate moves the weights less: the multiplier reaches the optimiser.
    const moved = (scale: number) =>
      withTrainer(job(), (t) => {
        t.applyRestart({ g: scale, d: scale });
        const w0 = t.exportState().d[0]!.data.slice();
        steps(t, 1);
        const w1 = t.exportState().d[0]!.data;
        return w1.reduce((a, x, i) => a + Math.abs(x - (w0[i] as number)), 0);
      });
    expect(moved(0.01)).toBeLessThan(moved(1) * 0.05);
  });

  it('generates the same evaluation samples every time, without disturbing training', () => {
    const run = (evaluate: boolean) =>
      withTrainer(job({ model: 'cgan' }), (t) => {
        steps(t, 2);
        const samples = evaluate ? [t.evalSamples(20, 8), t.evalSamples(20, 8)] : [];
        return { samples, next: steps(t, 2) };
      });
    const a = run(true);
    expect(a.samples[0]!.images).toEqual(a.samples[1]!.images);
    expect(Array.from(a.samples[0]!.labels!)).toEqual(Array.from({ length: 20 }, (_, i) => i % 10));
    expect(a.samples[0]!.images.length).toBe(20 * 28 * 28);
    expect(run(false).next).toEqual(a.next);
  });

  it('refuses a checkpoint of the other model', () => {
    const dcganState = withTrainer(job(), (t) => t.exportState());
    withTrainer(job({ model: 'cgan' }), (t) => {
      expect(() => t.importState(dcganState)).toThrow(/g\/fc\/w|embed/);
    });
  });
});

describe('GanTrainer at other sizes', () => {
  /** 16x16 RGB: an orange disk of varying radius on white, in [-1, 1]. */
  function disks(count: number): Dataset {
    const images = new Float32Array(count * 768);
    for (let i = 0; i < count; i++) {
      const r = 3 + (i % 4);
      for (let y = 0; y < 16; y++)
        for (let x = 0; x < 16; x++) {
          const inside = (x - 7.5) ** 2 + (y - 7.5) ** 2 < r * r;
          images.set(inside ? [0.9, -0.1, -0.7] : [1, 1, 1], i * 768 + (y * 16 + x) * 3);
        }
    }
    return { ...fakeDataset(), name: 'disks', images, count, height: 16, width: 16, channels: 3 };
  }
  const meanImage = (images: Float32Array, n: number) => {
    const m = new Float64Array(768);
    for (let i = 0; i < n; i++) for (let p = 0; p < 768; p++) m[p]! += images[i * 768 + p]! / n;
    return m;
  };
  const mse = (a: Float64Array, b: Float64Array) => a.reduce((s, v, p) => s + (v - b[p]!) ** 2, 0) / a.length;

  it('learns a 16x16 RGB set in a short run: its samples move from gray noise to white with a coloured disk', () => {
    const set = disks(64);
    const target = meanImage(set.images, set.count);
    const j: TrialJob = { ...job({ seed: 3 }), dataset: { ...job().dataset, image_size: 16, channels: 3 } };
    const trainer = familyOf('dcgan').createTrainer(
      { ...j, params: { ...j.params, lr_g: 1e-3, lr_d: 4e-4 } },
      set,
    );
    try {
      expect(trainer.sampleShape).toEqual({ height: 16, width: 16, channels: 3 });
      const before = mse(meanImage(trainer.sample(64), 64), target);
      for (let s = 0; s < 150; s++) trainer.trainStep();
      const samples = trainer.sample(64);
      const after = mse(meanImage(samples, 64), target);
      // A frozen or broken G stays near its initial gray output (about the distance to white, ~0.8).
      expect(before).toBeGreaterThan(0.5);
      expect(after).toBeLessThan(0.25 * before);
      // The corners are background (white) and the centre is the disk's orange, in most samples.
      const m = meanImage(samples, 64);
      expect(m[0]).toBeGreaterThan(0.5);
      expect(m[(8 * 16 + 8) * 3 + 2]!).toBeLessThan(m[0]! - 0.5);
    } finally {
      trainer.dispose();
    }
  });
});
