import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  InferenceError,
  jobStage,
  MODEL_PARAMS,
  type ModelName,
  parseTrialJob,
  Rng,
  type StageSpec,
  type TrialJob,
} from '@gantry/shared';
// Stock TF.js, as a user loads the export: tfjs-converter's graph model, on the stock `cpu` backend below.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { padDataset } from '../data/datasets.ts';
import type { GanTrainer } from '../families/dcgan/trainer.ts';
import type { NetName, Trainer } from '../families/family.ts';
import { proganCanvas } from '../families/progan/trainer.ts';
import { familyOf } from '../families/registry.ts';
import { fakeDataset } from '../testing/fake-dataset.ts';
import { EXPORT_FILES, type ExportFile, exportNetwork, graphModelOf } from './export-network.ts';
import { exampleImages } from './network-examples.ts';

const defaults = (m: ModelName) =>
  Object.fromEntries(Object.entries(MODEL_PARAMS[m]).map(([k, d]) => [k, d.default]));

function job(model: ModelName, params: Record<string, number>, stages?: StageSpec[], stage = 0): TrialJob {
  const p = {
    ...defaults(model),
    ...('base_filters' in MODEL_PARAMS[model] ? { base_filters: 8 } : {}),
    ...params,
  };
  return parseTrialJob({
    v: 2,
    sweepId: 'sw',
    trialId: 'sw-t000',
    index: 0,
    model,
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
    seed: 42,
    steps: 100,
    checkpointEvery: 10,
    params: p,
    ...(stages ? { stage: jobStage(stages, stage, p) } : {}),
  });
}

/** Serves the export's files on a loopback port and loads it as a browser does: tf.loadGraphModel(url). */
async function loadOverHttp(files: ExportFile[]): Promise<tf.GraphModel> {
  const byName = new Map(files.map((f) => [`/${f.name}`, f.bytes]));
  const server = createServer((req, res) => {
    const body = byName.get(req.url ?? '');
    res.writeHead(body ? 200 : 404).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    return await tf.loadGraphModel(`http://127.0.0.1:${port}/${EXPORT_FILES.model}`);
  } finally {
    server.close();
  }
}

/**
 * Exports `net` of the trainer (trained on `wasm` with Gantry's kernels), then loads it over HTTP and runs
 * it on tfjs' stock `cpu` backend: `run` gets the model and inputs to feed, and compares.
 */
async function onStockTfjs(
  t: Trainer,
  net: NetName,
  run: (model: tf.GraphModel, feed: (xs: Record<string, [Float32Array, number[]]>) => Float32Array) => void,
): Promise<ExportFile[]> {
  const files = await exportNetwork(t, net, {
    model: t.job.model,
    sweepId: 'sw',
    trialId: 'sw-t000',
    step: t.step,
  });
  await tf.setBackend('cpu');
  try {
    const model = await loadOverHttp(files);
    const out = model.outputs[0]!.name;
    run(model, (xs) =>
      tf.tidy(
        () =>
          (
            model.execute(
              Object.fromEntries(Object.entries(xs).map(([k, [v, s]]) => [k, tf.tensor(v, s)])),
              out,
            ) as tf.Tensor
          ).dataSync() as Float32Array,
      ),
    );
    model.dispose();
  } finally {
    await tf.setBackend('wasm');
  }
  return files;
}

function expectClose(got: Float32Array, want: Float32Array, tol = 1e-5): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst).toBeLessThanOrEqual(tol);
}

/** The sample grid's noise, as GanTrainer.sample and ProganTrainer.sample draw it. */
const gridNoise = (seed: number, count: number, latent: number) =>
  new Rng((seed ^ 0x5a5a5a5a) >>> 0).fillNormal(new Float32Array(count * latent));

function withTrainer<T>(
  j: TrialJob,
  data: Parameters<typeof fakeDataset> | 'progan',
  fn: (t: Trainer) => Promise<T>,
) {
  const d = data === 'progan' ? padDataset(fakeDataset(3, 64), proganCanvas(28)) : fakeDataset(...data);
  const t = familyOf(j.model).createTrainer(j, d);
  return fn(t).finally(() => t.dispose());
}

const GAN = { batch_size: 8, latent_dim: 8 };

beforeAll(async () => {
  await import('@tensorflow/tfjs-backend-cpu');
  await initBackend('wasm');
});
afterAll(async () => {
  await tf.setBackend('wasm');
});

describe('exportNetwork on stock tfjs', () => {
  for (const model of ['dcgan', 'cgan', 'wgan-gp'] as const) {
    it(`${model}: G reproduces the trial's sample grid for its z, and D its logits`, async () => {
      await withTrainer(job(model, GAN), [7, 64], async (t) => {
        for (let i = 0; i < 2; i++) t.trainStep();
        const grid = t.sample(64);
        const five = t.sample(5);
        const conditional = model === 'cgan';
        const labels = (n: number) => {
          // One class per row of the grid (8 columns at 64, 3 at 5), as the trainer draws them.
          const cols = Math.ceil(Math.sqrt(n));
          const y = new Float32Array(n * 10);
          for (let i = 0; i < n; i++) y[i * 10 + (Math.floor(i / cols) % 10)] = 1;
          return y;
        };
        const feeds = (n: number): Record<string, [Float32Array, number[]]> => ({
          z: [gridNoise(42, n, 8), [n, 8]],
          ...(conditional ? { labels: [labels(n), [n, 10]] as [Float32Array, number[]] } : {}),
        });
        const files = await onStockTfjs(t, 'g', (_, feed) => {
          expectClose(feed(feeds(64)), grid);
          // A batch size it was not traced at.
          expectClose(feed(feeds(5)), five);
        });
        const example = JSON.parse(
          new TextDecoder().decode(files.find((f) => f.name === 'example.json')!.bytes),
        );
        expect(example.inputs.z.data.slice(0, 16)).toEqual(Array.from(gridNoise(42, 2, 8)));

        const nets = (t as GanTrainer).nets;
        const images = exampleImages(6, { height: 28, width: 28, channels: 1 });
        const want = tf.tidy(
          () =>
            nets
              .discriminate(
                tf.tensor4d(images, [6, 28, 28, 1]),
                conditional ? tf.tensor2d(labels(6), [6, 10]) : undefined,
              )
              .dataSync() as Float32Array,
        );
        await onStockTfjs(t, 'd', (model, feed) => {
          expect(model.inputs.map((i) => i.name)).toEqual(conditional ? ['images', 'labels'] : ['images']);
          expectClose(
            feed({
              images: [images, [6, 28, 28, 1]],
              ...(conditional ? { labels: [labels(6), [6, 10]] as [Float32Array, number[]] } : {}),
            }),
            want,
          );
        });
      });
    });
  }

  it('srgan: G super-resolves as translate does (running statistics), D scores as in training', async () => {
    const stages: StageSpec[] = [
      { phase: 'pretrain', fade_steps: 0, stable_steps: 2, batch_size: 4 },
      { phase: 'adversarial', fade_steps: 0, stable_steps: 2, batch_size: 4 },
    ];
    await withTrainer(job('srgan', { blocks: 1, scale: 4 }, stages, 1), [7, 16], async (t) => {
      for (let i = 0; i < 2; i++) t.trainStep();
      const lr = exampleImages(5, t.inputShape!, 3);
      const sr = t.translate!(lr, 5);
      await onStockTfjs(t, 'g', (_, feed) => expectClose(feed({ lr: [lr, [5, 7, 7, 1]] }), sr));
      await onStockTfjs(t, 'd', (model) => expect(model.inputs.map((i) => i.name)).toEqual(['images']));
    });
  });

  it('pix2pix: G translates as translate does, its inference dropout masks in the graph', async () => {
    await withTrainer(job('pix2pix', { batch_size: 4, n_layers: 2 }), [7, 16, true], async (t) => {
      for (let i = 0; i < 2; i++) t.trainStep();
      const a = exampleImages(3, t.inputShape!, 5);
      const b = t.translate!(a, 3);
      await onStockTfjs(t, 'g', (_, feed) => expectClose(feed({ a: [a, [3, 28, 28, 1]] }), b));
      await onStockTfjs(t, 'd', (model, feed) => {
        const out = feed({ a: [a, [3, 28, 28, 1]], b: [b, [3, 28, 28, 1]] });
        expect(out.length % 3).toBe(0);
        expect(model.inputs.map((i) => i.name)).toEqual(['a', 'b']);
      });
    });
  });

  it('transgan: the transformer G reproduces its sample grid, the ViT critic (class token) its scores', async () => {
    const small = { ...GAN, batch_size: 4, g_embed_dim: 128, d_embed_dim: 16, heads: 2, d_depth: 1 };
    const p = { ...small, g_depth_1: 1, g_depth_2: 1, g_depth_3: 1 };
    await withTrainer(job('transgan', p), [7, 16], async (t) => {
      t.trainStep();
      const grid = t.sample(6);
      await onStockTfjs(t, 'g', (_, feed) => expectClose(feed({ z: [gridNoise(42, 6, 8), [6, 8]] }), grid));
      const images = exampleImages(5, { height: 28, width: 28, channels: 1 });
      const want = tf.tidy(
        () =>
          (t as GanTrainer).nets.discriminate(tf.tensor4d(images, [5, 28, 28, 1])).dataSync() as Float32Array,
      );
      await onStockTfjs(t, 'd', (_, feed) => expectClose(feed({ images: [images, [5, 28, 28, 1]] }), want));
    });
  });

  it("progan: the EMA generator at the stage's fade-in reproduces its sample grid", async () => {
    const stages: StageSpec[] = [
      { resolution: 4, fade_steps: 0, stable_steps: 2, batch_size: 4 },
      { resolution: 8, fade_steps: 4, stable_steps: 2, batch_size: 4 },
    ];
    await withTrainer(job('progan', { latent_dim: 8 }, stages, 1), 'progan', async (t) => {
      t.trainStep();
      expect(t.alpha).toBeGreaterThan(0);
      expect(t.alpha).toBeLessThan(1);
      const grid = t.sample(16);
      // The trainer's 3x3 convs are Winograd F(4x4, 3x3) on wasm (kernels/winograd.ts), whose float32
      // rounding differs from stock tfjs' direct convolution by ~2e-5 on these [-1, 1] images (an 8-bit
      // image step is 4e-3).
      await onStockTfjs(t, 'g', (_, feed) =>
        expectClose(feed({ z: [gridNoise(42, 16, 8), [16, 8]] }), grid, 1e-4),
      );
    });
  });
});

describe('the batch dimension', () => {
  it('stays free where a constant is tiled to the batch (a class token) and a reshape scales with it', async () => {
    const token = tf.tensor2d([[0.5, -1, 2]]);
    const forward = ([x]: tf.Tensor[]) => {
      const n = x!.shape[0]!;
      const rows = tf.reshape(tf.concat([tf.tile(token, [n, 1]), x!], 1), [n * 2, 3]);
      return tf.reshape(tf.tanh(rows), [n, 6]);
    };
    const net = {
      inputs: [{ name: 'x', shape: [3], description: 'x' }],
      output: { name: 'y', shape: [6], description: 'y' },
      notes: [],
      forward,
      example: () => ({ inputs: [], output: new Float32Array() }),
    };
    const files = graphModelOf(net);
    const w = files.weights;
    const model = await tf.loadGraphModel(
      tf.io.fromMemory({
        modelTopology: files.modelJson.modelTopology,
        weightSpecs: files.modelJson.weightsManifest[0]!.weights as tf.io.WeightsManifestEntry[],
        weightData: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer,
      }),
    );
    const x = tf.tensor2d(new Rng(3).fillNormal(new Float32Array(15)), [5, 3]);
    expectClose(
      (model.execute({ x }, 'y') as tf.Tensor).dataSync() as Float32Array,
      forward([x]).dataSync() as Float32Array,
    );
    model.dispose();
  });
});

describe('what cannot be exported', () => {
  const one = { name: 'x', shape: [4], description: 'x' };
  const network = (forward: (xs: tf.Tensor[]) => tf.Tensor) => ({
    inputs: [one],
    output: one,
    notes: [],
    forward,
    example: () => ({ inputs: [], output: new Float32Array() }),
  });
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return err instanceof InferenceError ? err.code : String(err);
    }
    return 'no error';
  };

  it('refuses a kernel with no TensorFlow op, naming it', () => {
    expect(code(() => graphModelOf(network(([x]) => tf.cumsum(x!, 1))))).toBe('NOT_EXPORTABLE');
    expect(() => graphModelOf(network(([x]) => tf.cumsum(x!, 1)))).toThrow(/Cumsum/);
  });

  it('refuses a network whose constants depend on the batch other than in proportion', () => {
    const square = ([x]: tf.Tensor[]) => tf.reshape(tf.tile(x!, [x!.shape[0]! ** 2, 1]), [-1]);
    expect(code(() => graphModelOf(network(square)))).toBe('NOT_EXPORTABLE');
  });

  it('refuses a trainer without exportable networks', async () => {
    const t = { job: { model: 'dcgan' } } as unknown as Trainer;
    await expect(
      exportNetwork(t, 'g', { model: 'x', sweepId: 's', trialId: 't', step: 0 }),
    ).rejects.toMatchObject({
      code: 'NOT_EXPORTABLE',
    });
  });
});
