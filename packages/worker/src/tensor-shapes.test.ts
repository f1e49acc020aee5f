import { MODEL_PARAMS, type ModelName, type TrialJob } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.ts';
import type { Checkpoint } from './checkpoint-store.ts';
import { familyOf } from './families/registry.ts';
import { answerShapes, type ShapesDeps } from './tensor-shapes.ts';

const params = (model: ModelName, over: Record<string, number>) => ({
  ...Object.fromEntries(Object.entries(MODEL_PARAMS[model]).map(([n, d]) => [n, d.default])),
  ...over,
});

const dataset = { name: 'swatches', version: '0123456789abcdef', image_size: 16, channels: 3 as const };

function deps(built: TrialJob[]): ShapesDeps {
  return {
    readManifest: async () =>
      ({ name: 'swatches', classes: ['red', 'blue'] }) as Awaited<ReturnType<ShapesDeps['readManifest']>>,
    // Building two trainers at once would fail (tfjs variable names are global): each is disposed first.
    createTrainer: (job, data) => {
      built.push(job);
      return familyOf(job.model).createTrainer(job, data);
    },
    readCheckpoint: async (_sweep, _trial, key) =>
      ({
        step: 20,
        stage: 0,
        g: [{ name: 'g/fc/w', shape: [8, 2], data: new Float32Array(16) }],
        d: [],
        key,
      }) as unknown as Checkpoint,
  };
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('answerShapes', () => {
  it("lists each parameter set's tensors as its family builds them, and a checkpoint's", async () => {
    const built: TrialJob[] = [];
    const res = await answerShapes(
      {
        model: 'dcgan',
        dataset,
        params: [
          params('dcgan', { base_filters: 8, latent_dim: 8 }),
          params('dcgan', { base_filters: 16, latent_dim: 8 }),
        ],
        checkpoint: { sweepId: 's', trialId: 's-t000', manifestKey: 'k' },
      },
      deps(built),
    );
    expect(built.map((j) => j.params.base_filters)).toEqual([8, 16]);
    const [narrow, wide] = res.nets;
    expect(narrow!.g.map((t) => t.name)).toEqual(wide!.g.map((t) => t.name));
    const shape = (n: typeof narrow, name: string) => n!.d.find((t) => t.name === name)?.shape;
    // 16x16 RGB: D's first convolution maps 3 channels to base_filters.
    expect(shape(narrow, 'd/c1/w')).toEqual([4, 4, 3, 8]);
    expect(shape(wide, 'd/c1/w')).toEqual([4, 4, 3, 16]);
    expect(res.checkpoint).toEqual({ g: [{ name: 'g/fc/w', shape: [8, 2] }], d: [], step: 20, stage: 0 });
  });

  it("builds a staged model's first stage", async () => {
    const built: TrialJob[] = [];
    const res = await answerShapes(
      {
        model: 'progan',
        dataset,
        params: [params('progan', { base_filters: 8, latent_dim: 8 })],
        stages: [
          { resolution: 4, fade_steps: 0, stable_steps: 5, batch_size: 0 },
          { resolution: 8, fade_steps: 5, stable_steps: 5, batch_size: 0 },
        ],
      },
      deps(built),
    );
    expect(built[0]!.stage).toMatchObject({ index: 0, resolution: 4 });
    expect(res.checkpoint).toBeUndefined();
    expect(res.nets[0]!.g.length).toBeGreaterThan(0);
  });
});
