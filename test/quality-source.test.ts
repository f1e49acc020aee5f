import { datasetKeys, type ObjectStore, type PinnedDataset, Rng } from '@gantry/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../packages/worker/src/data/datasets.ts';
import { qualityEvaluator, qualityPrefix } from '../packages/worker/src/quality/quality-source.ts';
import { freshStore } from './support/infra.ts';

/** `n` 16x16 RGB images per class: class k a flat colour of its own with noise, on [-1, 1]. */
function swatches(n: number, seed: number): Dataset {
  const colours = [
    [0.8, -0.6, -0.6],
    [-0.6, 0.8, -0.6],
    [-0.6, -0.6, 0.8],
  ];
  const rng = new Rng(seed);
  const count = n * colours.length;
  const images = new Float32Array(count * 768);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % 3;
    for (let p = 0; p < 256; p++)
      for (let c = 0; c < 3; c++)
        images[i * 768 + p * 3 + c] = colours[i % 3]![c]! + 0.3 * (rng.uniform() - 0.5);
  }
  return {
    name: 'swatches',
    images,
    labels,
    count,
    height: 16,
    width: 16,
    channels: 3,
    numClasses: 3,
    classNames: ['r', 'g', 'b'],
  };
}

/** `n` unlabelled 16x16 gray images with a bright blob in the top-left quarter: their rotation shows. */
function blobs(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const images = new Float32Array(n * 256).fill(-1);
  for (let i = 0; i < n; i++) {
    const cy = 2 + rng.int(3);
    const cx = 2 + rng.int(3);
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++) if ((y - cy) ** 2 + (x - cx) ** 2 <= 4) images[i * 256 + y * 16 + x] = 1;
    // A thin bar along the bottom edge too, so that every turn looks different.
    for (let x = 0; x < 16; x++) images[i * 256 + 15 * 16 + x] = 0.5;
  }
  return {
    name: 'blobs',
    images,
    labels: new Uint8Array(n),
    count: n,
    height: 16,
    width: 16,
    channels: 1,
    numClasses: 0,
    classNames: [],
  };
}

const pinned = (name: string, channels: 1 | 3): PinnedDataset => ({
  name,
  version: '00aa11bb22cc33dd',
  image_size: 16,
  channels,
});

describe('quality classifiers trained on first use', () => {
  let store: ObjectStore;
  beforeAll(async () => {
    store = await freshStore();
  });
  afterAll(async () => {
    await store.close();
  });

  it("trains a pushed set's classifier on its classes once, keeps it beside the version, and learns the classes", async () => {
    const lines: string[] = [];
    const splits = async () => ({ train: swatches(30, 1), test: swatches(6, 2) });
    const first = await qualityEvaluator({
      dataset: pinned('swatches', 3),
      splits,
      store,
      say: (l) => lines.push(l),
    });
    expect(lines.join('\n')).toMatch(/training one/);
    expect(first.manifest.labels).toBe('classes');
    expect(first.manifest.input).toEqual({ size: 16, channels: 3 });
    // Chance is 1/3: flat colours are easy.
    expect(first.manifest.testAccuracy).toBeGreaterThan(0.9);
    first.dispose();
    const keys = await store.list(datasetKeys.version('swatches', '00aa11bb22cc33dd'));
    const prefix = qualityPrefix(pinned('swatches', 3));
    expect(keys.sort()).toEqual([`${prefix}swatches.bin`, `${prefix}swatches.json`]);
    // The next trial finds it: no training, and the splits are never read.
    const again: string[] = [];
    const second = await qualityEvaluator({
      dataset: pinned('swatches', 3),
      splits: () => Promise.reject(new Error('splits read')),
      store,
      say: (l) => again.push(l),
    });
    expect(again).toEqual([]);
    expect(second.manifest.testAccuracy).toBe(first.manifest.testAccuracy);
    // Real images score near the floor and cover every class; a constant "generator" covers one.
    const real = swatches(10, 3);
    const scores = second.evaluate({ evalSamples: () => ({ images: real.images }) }, real.count);
    expect(scores.class_coverage).toBe(1);
    const collapsed = swatches(10, 4);
    for (let i = 1; i < collapsed.count; i++) collapsed.images.copyWithin(i * 768, 0, 768);
    const bad = second.evaluate({ evalSamples: () => ({ images: collapsed.images }) }, collapsed.count);
    expect(bad.class_coverage).toBeCloseTo(1 / 3, 5);
    expect(bad.fld).toBeGreaterThan(scores.fld);
    second.dispose();
  }, 120_000);

  it('gives a set without classes a rotation-prediction network, scored without class scores', async () => {
    const splits = async () => ({ train: blobs(120, 5), test: blobs(40, 6) });
    const ev = await qualityEvaluator({ dataset: pinned('blobs', 1), splits, store, say: () => {} });
    expect(ev.manifest.labels).toBe('rotation');
    expect(ev.manifest.numClasses).toBe(4);
    // Chance is 1/4 on the test images each turned by i mod 4.
    expect(ev.manifest.testAccuracy).toBeGreaterThan(0.6);
    const real = blobs(64, 7);
    const s = ev.evaluate({ evalSamples: () => ({ images: real.images }) }, real.count);
    expect(s.class_coverage).toBeUndefined();
    expect(s.class_kl).toBeUndefined();
    expect(s.diversity_ratio).toBeGreaterThan(0);
    // Noise is far from blobs in the rotation network's features.
    const rng = new Rng(9);
    const noise = Float32Array.from({ length: 64 * 256 }, () => rng.uniform() * 2 - 1);
    expect(ev.evaluate({ evalSamples: () => ({ images: noise }) }, 64).fld).toBeGreaterThan(s.fld * 2);
    ev.dispose();
  }, 120_000);

  it("uses the project's committed classifier where it reads the job's images", async () => {
    const ev = await qualityEvaluator({
      dataset: { name: 'mnist', version: '0000000000000000', image_size: 28, channels: 1 },
      splits: () => Promise.reject(new Error('splits read')),
      store,
      say: () => {
        throw new Error('trained one');
      },
    });
    expect(ev.manifest.dataset).toBe('mnist');
    expect(await store.list('datasets/mnist/')).toEqual([]);
    ev.dispose();
  });
});
