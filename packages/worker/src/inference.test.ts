import {
  BadRequestError,
  type DatasetManifest,
  InferenceError,
  type InferImage,
  MODEL_PARAMS,
  type ModelName,
  type StageSpec,
  type TrialJob,
} from '@gantry/shared';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import type { Checkpoint } from './checkpoint-store.ts';
import type { Dataset } from './data/datasets.ts';
import type { DrawOptions, ImageShape, Trainer } from './families/family.ts';
import { emptyDataset, type InferenceRequest, InferenceSession, prepareInput } from './inference.ts';

function job(model: ModelName, dataset: Partial<TrialJob['dataset']> = {}, extra: Partial<TrialJob> = {}) {
  return {
    v: 2,
    sweepId: 'infer-0a1b2c3d',
    trialId: 'infer-0a1b2c3d-t000',
    index: 0,
    model,
    dataset: { name: 'swatches', version: '0123456789abcdef', image_size: 32, channels: 3, ...dataset },
    seed: 7,
    steps: 40,
    checkpointEvery: 10,
    params: Object.fromEntries(Object.entries(MODEL_PARAMS[model]).map(([k, d]) => [k, d.default])),
    ...extra,
  } as TrialJob;
}

function manifest(fields: Partial<DatasetManifest> = {}): DatasetManifest {
  return { name: 'swatches', classes: [], paired: false, ...fields } as DatasetManifest;
}

const checkpoint = (stage?: number): Checkpoint =>
  ({ step: 20, ...(stage !== undefined ? { stage } : {}) }) as Checkpoint;

interface FakeTrainer extends Trainer {
  imported?: Checkpoint;
  disposed: boolean;
  draws: { count: number; opts: DrawOptions }[];
}

/** A trainer that translates by repeating each input pixel `scale` times (nearest neighbour). */
function translator(j: TrialJob, input: ImageShape, scale: number): FakeTrainer {
  const sampleShape = { height: input.height * scale, width: input.width * scale, channels: input.channels };
  const t = {
    job: j,
    step: 20,
    sampleShape,
    inputShape: input,
    imported: undefined as Checkpoint | undefined,
    disposed: false,
    draws: [],
    importState(s: Checkpoint) {
      t.imported = s;
    },
    dispose() {
      t.disposed = true;
    },
    translate(x: Float32Array, count: number) {
      expect(x.length).toBe(count * input.height * input.width * input.channels);
      const c = input.channels;
      const out = new Float32Array(count * sampleShape.height * sampleShape.width * c);
      for (let y = 0; y < sampleShape.height; y++)
        for (let xx = 0; xx < sampleShape.width; xx++)
          for (let k = 0; k < c; k++)
            out[(y * sampleShape.width + xx) * c + k] =
              x[(Math.floor(y / scale) * input.width + Math.floor(xx / scale)) * c + k]!;
      return out;
    },
  };
  return t as unknown as FakeTrainer;
}

/** A generative trainer whose every sample is one gray level. */
function drawer(j: TrialJob, shape: ImageShape): FakeTrainer {
  const t = {
    job: j,
    step: 20,
    sampleShape: shape,
    imported: undefined as Checkpoint | undefined,
    disposed: false,
    draws: [] as FakeTrainer['draws'],
    importState(s: Checkpoint) {
      t.imported = s;
    },
    dispose() {
      t.disposed = true;
    },
    draw(count: number, opts: DrawOptions) {
      t.draws.push({ count, opts });
      return new Float32Array(count * shape.height * shape.width * shape.channels).fill(0.5);
    },
  };
  return t as unknown as FakeTrainer;
}

/** A session whose trainers come from `make`, with counters of what it read and built. */
function session(make: (j: TrialJob, d: Dataset) => FakeTrainer, m = manifest(), ck = checkpoint()) {
  const seen = { checkpoints: 0, manifests: 0, trainers: [] as FakeTrainer[], jobs: [] as TrialJob[] };
  const s = new InferenceSession({
    readCheckpoint: async () => {
      seen.checkpoints += 1;
      return ck;
    },
    readManifest: async () => {
      seen.manifests += 1;
      return m;
    },
    createTrainer: (j, d) => {
      seen.jobs.push(j);
      const t = make(j, d);
      seen.trainers.push(t);
      return t;
    },
    randomSeed: () => 1234,
  });
  return { s, seen };
}

function request(j: TrialJob, fields: Partial<InferenceRequest> = {}): InferenceRequest {
  return {
    job: j,
    checkpoint: {
      step: 20,
      manifestKey: `sweeps/${j.sweepId}/trials/${j.trialId}/checkpoints/20/w/manifest.json`,
    },
    draw: {},
    ...fields,
  };
}

/** An RGBA image of one colour. */
function image(width: number, height: number, rgba: [number, number, number, number]): InferImage {
  const data = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) data.set(rgba, p * 4);
  const [r, g, b, a] = rgba;
  return { width, height, gray: r === g && g === b, hasAlpha: a < 255, rgba: data };
}

async function rejection(p: Promise<unknown>): Promise<InferenceError | BadRequestError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeDefined();
  return err as InferenceError;
}

describe('image-conditioned inference (translate)', () => {
  const pix = job('pix2pix', { image_size: 16 });
  const rgb16 = { height: 16, width: 16, channels: 3 };

  it('translates an image of the trained size and answers a PNG at the sample shape', async () => {
    const { s, seen } = session((j) => translator(j, { height: 8, width: 8, channels: 3 }, 2));
    const out = await s.run(
      request(job('pix2pix', { image_size: 16 }), { input: image(8, 8, [255, 0, 0, 255]) }),
    );
    const png = PNG.sync.read(Buffer.from(out.png));
    expect([png.width, png.height]).toEqual([16, 16]);
    expect([...png.data.subarray(0, 4)]).toEqual([255, 0, 0, 255]);
    expect(out).toMatchObject({ step: 20, count: 1, cols: 1, tile: { width: 16, height: 16 }, padding: 0 });
    expect(out.seed).toBeUndefined();
    expect(seen.trainers[0]!.imported).toBeDefined();
  });

  it('refuses an image of another size, naming the size the trial takes and why', async () => {
    const { s } = session((j) => translator(j, { height: 8, width: 8, channels: 3 }, 4));
    const err = await rejection(
      s.run(request(job('pix2pix', { image_size: 32 }), { input: image(32, 32, [0, 0, 0, 255]) })),
    );
    expect(err).toBeInstanceOf(InferenceError);
    expect(err.code).toBe('WRONG_IMAGE_SIZE');
    expect(err.status).toBe(400);
    expect(err.message).toContain('takes 8x8 images (its image_size 32 / 4); this one is 32x32');
  });

  it('refuses an image too large to have been decoded as the wrong size', async () => {
    const { s } = session((j) => translator(j, rgb16, 1));
    const err = await rejection(
      s.run(request(pix, { input: { width: 2000, height: 1000, gray: false, hasAlpha: false } })),
    );
    expect(err.code).toBe('WRONG_IMAGE_SIZE');
    expect(err.message).toContain('takes 16x16 images (its image_size); this one is 2000x1000');
  });

  it('refuses a colour image for a gray model, and no image at all, saying what the trial takes', async () => {
    const gray = job('pix2pix', { image_size: 16, channels: 1 });
    const { s } = session((j) => translator(j, { height: 16, width: 16, channels: 1 }, 1));
    const colour = await rejection(s.run(request(gray, { input: image(16, 16, [200, 10, 10, 255]) })));
    expect(colour.code).toBe('WRONG_IMAGE_CHANNELS');
    expect(colour.message).toMatch(/takes gray \(1-channel\) images; this one is in colour \(RGB\)/);
    const none = await rejection(s.run(request(gray)));
    expect(none.code).toBe('WRONG_INPUT');
    expect(none.message).toMatch(/translates an image: send a 16x16 gray PNG or JPEG/);
    // A gray image for the gray model is fine.
    const ok = await s.run(request(gray, { input: image(16, 16, [90, 90, 90, 255]) }));
    const png = PNG.sync.read(Buffer.from(ok.png));
    expect(png.data[0]).toBe(90);
  });

  it('refuses count, class and seed, which only generative trials take', async () => {
    const { s } = session((j) => translator(j, rgb16, 1));
    const err = await rejection(
      s.run(request(pix, { input: image(16, 16, [0, 0, 0, 255]), draw: { label: 1 } })),
    );
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).issues[0]!.path).toBe('class');
  });

  it('converts channels where nothing is guessed: gray repeated for RGB, alpha composited on white', () => {
    const j = job('pix2pix', { image_size: 2 });
    const want = { height: 2, width: 2, channels: 3 };
    expect([...prepareInput(image(2, 2, [0, 0, 0, 255]), want, j)]).toEqual(Array(12).fill(-1));
    // Fully transparent: white.
    expect([...prepareInput(image(2, 2, [0, 0, 0, 0]), want, j)]).toEqual(Array(12).fill(1));
    // RGBA models get an opaque alpha added to an RGB image.
    const rgba = prepareInput(image(2, 2, [255, 0, 0, 255]), { ...want, channels: 4 }, j);
    expect([...rgba.subarray(0, 4)]).toEqual([1, -1, -1, 1]);
  });
});

describe('generative inference (draw)', () => {
  const gray28 = { height: 28, width: 28, channels: 1 };

  it('draws count samples into a padded grid, with a random seed it reports, and the seed asked for', async () => {
    const { s, seen } = session((j) => drawer(j, gray28));
    const dc = job('dcgan', { image_size: 28, channels: 1 });
    const out = await s.run(request(dc, { draw: { count: 6 } }));
    // 3 columns, 2 rows of 28 px with 2 px gaps around every tile.
    const png = PNG.sync.read(Buffer.from(out.png));
    expect([png.width, png.height]).toEqual([3 * 28 + 4 * 2, 2 * 28 + 3 * 2]);
    expect(out).toMatchObject({ count: 6, cols: 3, padding: 2, seed: 1234, tile: { width: 28, height: 28 } });
    await s.run(request(dc, { draw: { count: 1, seed: 99 } }));
    expect(seen.trainers[0]!.draws.map((d) => d.opts)).toEqual([{ seed: 1234 }, { seed: 99 }]);
    const one = await s.run(request(dc, { draw: { count: 1, seed: 99 } }));
    expect(PNG.sync.read(Buffer.from(one.png)).width).toBe(28);
  });

  it('refuses an image, and a class for a family that is not conditional', async () => {
    const { s } = session((j) => drawer(j, gray28));
    const dc = job('dcgan', { image_size: 28, channels: 1 });
    const img = await rejection(s.run(request(dc, { input: image(28, 28, [0, 0, 0, 255]) })));
    expect(img.code).toBe('WRONG_INPUT');
    expect(img.message).toMatch(/draws samples from noise and takes no image: send no body/);
    const cls = await rejection(s.run(request(dc, { draw: { label: 2 } })));
    expect(cls).toBeInstanceOf(BadRequestError);
    expect(cls.message).toMatch(/^class: .* is not conditional/);
  });

  it('draws one class of a conditional family, refuses a class the set lacks, and without one gives each class a column', async () => {
    const m = manifest({ classes: ['red', 'green', 'blue'] });
    const { s, seen } = session((j) => drawer(j, { height: 16, width: 16, channels: 3 }), m);
    const cg = job('cgan', { image_size: 16 });
    await s.run(request(cg, { draw: { count: 4, label: 2, seed: 5 } }));
    expect(seen.trainers[0]!.draws[0]!.opts).toEqual({ seed: 5, label: 2 });
    const bad = await rejection(s.run(request(cg, { draw: { label: 3 } })));
    expect(bad.message).toBe('class: must be 0..2 (0 red, 1 green, 2 blue)');
    const all = await s.run(request(cg, { draw: { count: 9 } }));
    expect(all.cols).toBe(3);
  });
});

describe('loading checkpoints', () => {
  it('keeps the last checkpoint loaded, and disposes it for another', async () => {
    const { s, seen } = session((j) => drawer(j, { height: 8, width: 8, channels: 1 }));
    const dc = job('dcgan', { image_size: 8, channels: 1 });
    await s.run(request(dc));
    await s.run(request(dc));
    expect(seen.checkpoints).toBe(1);
    expect(seen.trainers).toHaveLength(1);
    await s.run(request(dc, { checkpoint: { step: 10, manifestKey: 'other' } }));
    expect(seen.trainers).toHaveLength(2);
    expect(seen.trainers[0]!.disposed).toBe(true);
    // The data set manifest is read once per version.
    expect(seen.manifests).toBe(1);
    s.dispose();
    expect(seen.trainers[1]!.disposed).toBe(true);
  });

  it("builds a staged trial's trainer for the stage its checkpoint was trained in", async () => {
    const stages: StageSpec[] = [
      { resolution: 4, fade_steps: 0, stable_steps: 10, batch_size: 0 },
      { resolution: 8, fade_steps: 10, stable_steps: 10, batch_size: 4 },
    ];
    const first = job(
      'progan',
      { image_size: 8, channels: 1 },
      {
        steps: 30,
        stage: {
          index: 0,
          count: 2,
          resolution: 4,
          fade_steps: 0,
          stable_steps: 10,
          batch_size: 64,
          start_step: 0,
        },
      },
    );
    const { s, seen } = session(
      (j) => drawer(j, { height: 8, width: 8, channels: 1 }),
      manifest(),
      checkpoint(1),
    );
    await s.run(request(first, { stages }));
    expect(seen.jobs[0]!.stage).toMatchObject({ index: 1, resolution: 8, start_step: 10, batch_size: 4 });
  });

  it('builds trainers on an empty data set of the pinned shape, with the manifest classes and pairing', () => {
    const d = emptyDataset(
      job('pix2pix', { image_size: 64, channels: 1 }),
      manifest({ paired: true, classes: ['a'] }),
    );
    expect(d).toMatchObject({
      count: 0,
      height: 64,
      width: 64,
      channels: 1,
      numClasses: 1,
      classNames: ['a'],
    });
    expect(d.images.length).toBe(0);
    expect(d.imagesB?.length).toBe(0);
  });
});
