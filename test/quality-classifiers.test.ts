/**
 * The committed quality classifiers against real test images, read through the same packing a pushed
 * version goes through (shards, then unpacked as a job pins them).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../packages/worker/src/backend.ts';
import { FEATURE_DIM, loadClassifier } from '../packages/worker/src/quality/classifier.ts';
import { frechetDistance, gaussianStats } from '../packages/worker/src/quality/frechet.ts';
import { realGaussian } from '../packages/worker/src/quality/scores.ts';
import { loadBuiltinSplit } from '../scripts/builtin-dataset.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

/** The accuracy README states for each committed classifier, and the bar the project set for it. */
const BARS = { 'fashion-mnist': 0.9, mnist: 0.98 } as const;

describe('the committed quality classifiers', () => {
  for (const dataset of ['mnist', 'fashion-mnist'] as const) {
    it(`${dataset}: reproduces its recorded test accuracy (>= ${BARS[dataset]}) and FLD floor`, async () => {
      const { classifier, manifest } = await loadClassifier(dataset);
      try {
        const test = await loadBuiltinSplit(dataset, 'test');
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
        // MNIST's JSON values (3 decimals) reach the classifier through stored bytes, round(v * 255), since
        // data sets are packed versions: each pixel moves by up to 0.0005, the floor by ~0.01 (14.012 -> 14.004).
        expect(runs.reduce((a, b) => a + b, 0) / runs.length).toBeCloseTo(floor, dataset === 'mnist' ? 1 : 2);
      } finally {
        classifier.dispose();
      }
    }, 120_000);
  }
});
