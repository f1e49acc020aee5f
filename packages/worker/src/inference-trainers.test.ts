import {
  type DatasetManifest,
  jobStage,
  MODEL_PARAMS,
  type ModelName,
  parseTrialJob,
  type StageSpec,
  type TrialJob,
} from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.ts';
import type { Checkpoint } from './checkpoint-store.ts';
import { familyOf } from './families/registry.ts';
import { emptyDataset, InferenceSession } from './inference.ts';
import { encodeImageGrid } from './sample-grid.ts';
import { fakeDataset } from './testing/fake-dataset.ts';

const STAGES: StageSpec[] = [
  { resolution: 4, fade_steps: 0, stable_steps: 2, batch_size: 4 },
  { resolution: 8, fade_steps: 2, stable_steps: 2, batch_size: 4 },
];

function job(model: ModelName, stage?: number): TrialJob {
  const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS[model]).map(([k, d]) => [k, d.default]));
  const params = { ...defaults, batch_size: 4, base_filters: 8, latent_dim: 8 };
  return parseTrialJob({
    v: 2,
    sweepId: 'inf',
    trialId: 'inf-t000',
    index: 0,
    model,
    dataset: { name: 'fake', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: 9,
    steps: 6,
    checkpointEvery: 2,
    params,
    ...(stage !== undefined ? { stage: jobStage(STAGES, stage, params) } : {}),
  });
}

const manifest = {
  name: 'fake',
  classes: Array.from({ length: 10 }, (_, i) => `class ${i}`),
  paired: false,
} as DatasetManifest;

/** Trains `steps` steps of `j` on fake data and returns its state and what it draws for `seed`. */
function trained(j: TrialJob, steps: number, count: number, seed: number) {
  const trainer = familyOf(j.model).createTrainer(j, fakeDataset(3, 32));
  try {
    for (let i = 0; i < steps; i++) trainer.trainStep();
    const { height, width, channels } = trainer.sampleShape;
    const images = trainer.draw!(count, { seed });
    const cols = Math.ceil(Math.sqrt(count));
    const png = encodeImageGrid(images, { count, height, width, channels: 1, cols, padding: 2 });
    return { state: trainer.exportState() as Checkpoint, png, side: height, channels };
  } finally {
    trainer.dispose();
  }
}

function session(state: Checkpoint) {
  return new InferenceSession({
    readCheckpoint: async () => state,
    readManifest: async () => manifest,
    createTrainer: (j, d) => familyOf(j.model).createTrainer(j, d),
  });
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe("inference with the families' own trainers", () => {
  it('draws from a restored dcgan exactly what the trained one drew', async () => {
    const j = job('dcgan');
    const { state, png } = trained(j, 2, 4, 17);
    const s = session(state);
    try {
      const out = await s.run({
        job: j,
        checkpoint: { step: 2, manifestKey: 'k' },
        draw: { count: 4, seed: 17 },
      });
      expect(Buffer.from(out.png).equals(png)).toBe(true);
    } finally {
      s.dispose();
    }
  });

  it("draws a progan checkpoint at its own stage's resolution, given the trial's first-stage job", async () => {
    const second = job('progan', 1);
    const { state, png, side } = trained(second, 1, 4, 5);
    expect(state.stage).toBe(1);
    expect(side).toBe(8);
    const s = session(state);
    try {
      const out = await s.run({
        job: job('progan', 0),
        stages: STAGES,
        checkpoint: { step: 3, manifestKey: 'k' },
        draw: { count: 4, seed: 5 },
      });
      expect(out.tile).toEqual({ width: 8, height: 8 });
      expect(Buffer.from(out.png).equals(png)).toBe(true);
    } finally {
      s.dispose();
    }
  });

  it('builds every family on an empty data set without touching images', () => {
    for (const model of ['dcgan', 'cgan', 'wgan-gp'] as const) {
      const j = job(model);
      const t = familyOf(model).createTrainer(j, emptyDataset(j, manifest));
      expect(t.sampleShape).toEqual({ height: 28, width: 28, channels: 1 });
      t.dispose();
    }
  });
});
