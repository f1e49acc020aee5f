import { MODEL_PARAMS, parseTrialJob, Rng, type TrialJob } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import type { Dataset } from '../../data/datasets.ts';
import { imagePairScores } from '../../quality/image-metrics.ts';
import { expectSameArrays } from '../../testing/same-state.ts';
import { Pix2pixTrainer, pix2pixCanvas } from './trainer.ts';

/**
 * Paired `side` x `side` gray images: A a bright square on mid-gray at a random place, B the same square
 * dark with a white outline (what no copy of A gets right). The background is 0, where a fresh tanh
 * generator starts, so that a short run is spent on the translation itself.
 */
function squares(seed: number, count: number, side = 28): Dataset {
  const rng = new Rng(seed);
  const px = side * side;
  const a = new Float32Array(count * px);
  const b = new Float32Array(count * px);
  for (let n = 0; n < count; n++) {
    const size = 4 + rng.int(side / 2 - 2);
    const y0 = rng.int(side - size);
    const x0 = rng.int(side - size);
    for (let y = y0; y < y0 + size; y++)
      for (let x = x0; x < x0 + size; x++) {
        a[n * px + y * side + x] = 0.8;
        const edge = y === y0 || x === x0 || y === y0 + size - 1 || x === x0 + size - 1;
        b[n * px + y * side + x] = edge ? 1 : -0.8;
      }
  }
  return {
    name: 'squares',
    images: a,
    imagesB: b,
    labels: new Uint8Array(count),
    count,
    height: side,
    width: side,
    channels: 1,
    numClasses: 0,
    classNames: [],
  };
}

const PARAMS: Record<string, number> = {
  ...Object.fromEntries(Object.entries(MODEL_PARAMS.pix2pix).map(([k, d]) => [k, d.default])),
  base_filters: 8,
  batch_size: 8,
  n_layers: 2,
  lr_g: 2e-3,
};

function job(params = PARAMS, side = 28): TrialJob {
  return parseTrialJob({
    v: 2,
    sweepId: 'p2p',
    trialId: 'p2p-t000',
    index: 0,
    model: 'pix2pix',
    dataset: { name: 'squares', version: '0123456789abcdef', image_size: side, channels: 1 },
    seed: 9,
    steps: 200,
    checkpointEvery: 50,
    params,
  });
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('pix2pix trainer', () => {
  it('pads 28 px images to a 32 px canvas and gives back 28 px translations', () => {
    expect(pix2pixCanvas(28)).toBe(32);
    expect(pix2pixCanvas(64)).toBe(64);
    const t = new Pix2pixTrainer(job(), squares(1, 8));
    try {
      expect(t.translate(squares(2, 3).images, 3).length).toBe(3 * 784);
      expect(t.lossBound).toBe(200);
      expect(() => t.translate(new Float32Array(10), 1)).toThrow(/expected 1 images of 28x28x1/);
    } finally {
      t.dispose();
    }
  });

  it('learns the translation in a short run: held-out L1 to B falls well below a copy of A', async () => {
    const train = squares(3, 256, 16);
    const test = squares(4, 64, 16);
    // No dropout here: at 16 px it would drop half of every decoder block but the outermost.
    const t = new Pix2pixTrainer(job({ ...PARAMS, dropout: 0 }, 16), train, { heldOut: test });
    try {
      const { inputs, targets, count } = t.imageTask.pairs(test, 64);
      const shape = { count, ...t.sampleShape };
      const copy = imagePairScores(inputs, targets, shape, { yChannel: false }).l1;
      const before = imagePairScores(t.translate(inputs, count), targets, shape, { yChannel: false }).l1;
      while (t.step < 200) {
        t.trainStep();
        // Lets the test runner's RPC through this long synchronous loop.
        if (t.step % 25 === 0) await new Promise((r) => setImmediate(r));
      }
      const after = imagePairScores(t.translate(inputs, count), targets, shape, { yChannel: false }).l1;
      expect(after, `L1 before ${before.toFixed(3)}, copy of A ${copy.toFixed(3)}`).toBeLessThan(0.5 * copy);
      expect(after).toBeLessThan(0.5 * before);
    } finally {
      t.dispose();
    }
  });

  it('resumes exactly (dropout drawn from the trial Rng) and translates repeatably', () => {
    const data = squares(5, 32);
    const t = new Pix2pixTrainer(job({ ...PARAMS, batch_size: 4 }), data);
    try {
      t.trainStep();
      const mid = t.exportState();
      const rest = [t.trainStep(), t.trainStep()];
      const end = t.exportState();
      t.importState(mid);
      expect([t.trainStep(), t.trainStep()]).toEqual(rest);
      const again = t.exportState();
      for (const k of ['g', 'd', 'stats'] as const) expectSameArrays(again[k]!, end[k]!);
      const x = data.images.subarray(0, 2 * 784);
      const both = t.translate(x, 2);
      expect(Array.from(t.translate(x, 2))).toEqual(Array.from(both));
      // An image's translation does not depend on the images sent with it.
      const second = t.translate(data.images.subarray(784, 2 * 784), 1);
      expect(Array.from(second)).toEqual(Array.from(both.subarray(784)));
      expect(() => t.importState({ ...end, stats: undefined })).toThrow(/batch-norm statistics/);
    } finally {
      t.dispose();
    }
  });

  it('shows A | G(A) | B per example, two to a row of six', () => {
    const test = squares(7, 20);
    const t = new Pix2pixTrainer(job(), squares(6, 8), { heldOut: test });
    try {
      const tiles = t.sample();
      expect(t.sampleGrid).toEqual({ count: 48, cols: 6 });
      expect(Array.from(tiles.subarray(0, 784))).toEqual(Array.from(test.images.subarray(0, 784)));
      expect(Array.from(tiles.subarray(2 * 784, 3 * 784))).toEqual(
        Array.from(test.imagesB!.subarray(0, 784)),
      );
      expect(Array.from(tiles.subarray(5 * 784, 6 * 784))).toEqual(
        Array.from(test.imagesB!.subarray(784, 2 * 784)),
      );
    } finally {
      t.dispose();
    }
  });
});
