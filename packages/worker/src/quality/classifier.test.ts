import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@gantry/shared';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import {
  Classifier,
  type ClassifierManifest,
  FEATURE_DIM,
  loadClassifier,
  saveClassifier,
} from './classifier.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gantry-cls-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const stats = { count: 2, mean: [], cov: [], classShare: new Array(10).fill(0.1), diversity: 1 };
const save = (classifier: Classifier, dataset: string) =>
  saveClassifier(dir, classifier, { dataset, testAccuracy: 0.5, fldFloor: [], stats, training: {} });

/** `count` images of `px` values each in [-1, 1]. */
const images = (count: number, px: number) =>
  Float32Array.from({ length: count * px }, (_, i) => Math.sin(i * 0.37));

describe('classifier files', () => {
  it('round-trips weights and manifest, and names the training command when a file is missing', async () => {
    const a = new Classifier(10, { rng: new Rng(1) });
    await save(a, 'mnist');
    const weights = a.params.export();
    // Variable names are process-global in tfjs: one classifier at a time.
    a.dispose();
    const { classifier: b, manifest } = await loadClassifier('mnist', dir);
    expect(manifest.testAccuracy).toBe(0.5);
    expect(manifest.input).toEqual({ size: 28, channels: 1 });
    expect(b.params.export()).toEqual(weights);
    b.dispose();
    await expect(loadClassifier('fashion-mnist', dir)).rejects.toThrow(
      /npm run train-classifier -- --dataset fashion-mnist/,
    );
    await writeFile(join(dir, 'mnist.json'), JSON.stringify({ ...manifest, architecture: 'other' }));
    await expect(loadClassifier('mnist', dir)).rejects.toThrow(/architecture other/);
  });

  it('round-trips a 64x64x3 classifier, which reads and describes 64x64 RGB images', async () => {
    const a = new Classifier(10, { input: { size: 64, channels: 3 }, rng: new Rng(2) });
    // The v2 stack plus one stride-2 convolution (8x8 -> 4x4) before the same 4x4x128 flatten.
    expect(a.params.vars.map((v) => [v.name, v.shape])).toEqual([
      ['cls/c1/w', [3, 3, 3, 32]],
      ['cls/c1/b', [32]],
      ['cls/c2/w', [3, 3, 32, 64]],
      ['cls/c2/b', [64]],
      ['cls/c3/w', [3, 3, 64, 64]],
      ['cls/c3/b', [64]],
      ['cls/c4/w', [3, 3, 64, 128]],
      ['cls/c4/b', [128]],
      ['cls/c5/w', [3, 3, 128, 128]],
      ['cls/c5/b', [128]],
      ['cls/fc1/w', [4 * 4 * 128, FEATURE_DIM]],
      ['cls/fc1/b', [FEATURE_DIM]],
      ['cls/fc2/w', [FEATURE_DIM, 10]],
      ['cls/fc2/b', [10]],
    ]);
    const x = images(5, 64 * 64 * 3);
    const before = a.describe(x, 5, 2);
    expect(before.features).toHaveLength(5 * FEATURE_DIM);
    await save(a, 'emoji');
    const weights = a.params.export();
    a.dispose();
    const { classifier: b, manifest } = await loadClassifier('emoji', dir);
    try {
      expect(manifest.input).toEqual({ size: 64, channels: 3 });
      expect(b.input).toEqual({ size: 64, channels: 3 });
      expect(b.params.export()).toEqual(weights);
      expect(b.describe(x, 5, 2)).toEqual(before);
      // 28x28x1 images are too few values for five 64x64x3 ones.
      expect(() => b.describe(images(5, 28 * 28), 5)).toThrow(RangeError);
    } finally {
      b.dispose();
    }
  });

  it('loads a manifest without `input` (written before inputs were recorded) as 28x28x1', async () => {
    const a = new Classifier(10, { rng: new Rng(3) });
    await save(a, 'mnist');
    const weights = a.params.export();
    const before = a.describe(images(3, 28 * 28), 3);
    a.dispose();
    const path = join(dir, 'mnist.json');
    const { input: _, ...old } = JSON.parse(await readFile(path, 'utf8')) as ClassifierManifest;
    await writeFile(path, JSON.stringify(old));
    const { classifier: b, manifest } = await loadClassifier('mnist', dir);
    try {
      expect(manifest.input).toBeUndefined();
      expect(b.input).toEqual({ size: 28, channels: 1 });
      expect(b.params.export()).toEqual(weights);
      expect(b.describe(images(3, 28 * 28), 3)).toEqual(before);
    } finally {
      b.dispose();
    }
  });

  it('loads the committed MNIST classifier, whose manifest predates `input`, as 28x28x1', async () => {
    const { classifier, manifest } = await loadClassifier('mnist');
    try {
      expect(manifest.input).toBeUndefined();
      expect(classifier.input).toEqual({ size: 28, channels: 1 });
    } finally {
      classifier.dispose();
    }
  });

  it('refuses a manifest whose weights are for another input, naming the training command', async () => {
    const a = new Classifier(10, { input: { size: 64, channels: 3 }, rng: new Rng(4) });
    await save(a, 'emoji');
    a.dispose();
    const path = join(dir, 'emoji.json');
    const { input: _, ...old } = JSON.parse(await readFile(path, 'utf8')) as ClassifierManifest;
    await writeFile(path, JSON.stringify(old));
    await expect(loadClassifier('emoji', dir)).rejects.toThrow(/npm run train-classifier -- --dataset emoji/);
  });

  it('refuses inputs it cannot read', () => {
    expect(() => new Classifier(10, { input: { size: 4, channels: 1 } })).toThrow(RangeError);
    expect(() => new Classifier(10, { input: { size: 64, channels: 0 } })).toThrow(RangeError);
  });
});
