import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { type DatasetName, loadDataset } from '../data/datasets.ts';
import { Classifier, FEATURE_DIM, loadClassifier, saveClassifier } from './classifier.ts';
import { frechetDistance, gaussianStats } from './frechet.ts';
import { realGaussian } from './scores.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

/** The accuracy README states for each committed classifier, and the bar the project set for it. */
const BARS: Record<DatasetName, number> = { 'fashion-mnist': 0.9, mnist: 0.98 };

describe('the committed quality classifiers', () => {
  for (const dataset of ['mnist', 'fashion-mnist'] as const) {
    it(`${dataset}: reproduces its recorded test accuracy (>= ${BARS[dataset]}) and FLD floor`, async () => {
      const { classifier, manifest } = await loadClassifier(dataset);
      try {
        const test = await loadDataset(dataset, 'test');
        const { features, predictions } = classifier.describe(test.images, test.count);
        let hits = 0;
        for (let i = 0; i < test.count; i++) if (predictions[i] === test.labels[i]) hits += 1;
        const accuracy = hits / test.count;
        expect(accuracy).toBeCloseTo(manifest.testAccuracy, 3);
        expect(accuracy).toBeGreaterThanOrEqual(BARS[dataset]);
        // The floor at 512 samples: the mean over the first (up to) 4 disjoint chunks of the test split.
        const runs: number[] = [];
        for (let o = 0; o + 512 <= test.count && runs.length < 4; o += 512) {
          const chunk = features.subarray(o * FEATURE_DIM, (o + 512) * FEATURE_DIM);
          runs.push(frechetDistance(gaussianStats(chunk, FEATURE_DIM), realGaussian(manifest.stats)));
        }
        const floor = manifest.fldFloor.find((f) => f.samples === 512)!.fld;
        expect(runs.reduce((a, b) => a + b, 0) / runs.length).toBeCloseTo(floor, 2);
      } finally {
        classifier.dispose();
      }
    }, 120_000);
  }
});

describe('classifier files', () => {
  it('round-trips weights and manifest, and names the training command when a file is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gantry-cls-'));
    try {
      const a = new Classifier(10, new Rng(1));
      const stats = { count: 2, mean: [], cov: [], classShare: new Array(10).fill(0.1), diversity: 1 };
      await saveClassifier(dir, a, {
        dataset: 'mnist',
        testAccuracy: 0.5,
        fldFloor: [],
        stats,
        training: {},
      });
      const weights = a.params.export();
      // Variable names are process-global in tfjs: one classifier at a time.
      a.dispose();
      const { classifier: b, manifest } = await loadClassifier('mnist', dir);
      expect(manifest.testAccuracy).toBe(0.5);
      expect(b.params.export()).toEqual(weights);
      b.dispose();
      await expect(loadClassifier('fashion-mnist', dir)).rejects.toThrow(
        /npm run train-classifier -- --dataset fashion-mnist/,
      );
      await writeFile(join(dir, 'mnist.json'), JSON.stringify({ ...manifest, architecture: 'other' }));
      await expect(loadClassifier('mnist', dir)).rejects.toThrow(/architecture other/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
