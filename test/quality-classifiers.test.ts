/**
 * The committed quality classifiers against real test images, read through the same packing a pushed
 * version goes through (shards, then unpacked as a job pins them).
 */
import { QUALITY_CLASSIFIERS } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../packages/worker/src/backend.ts';
import { FEATURE_DIM, loadClassifier } from '../packages/worker/src/quality/classifier.ts';
import { frechetDistance, gaussianStats } from '../packages/worker/src/quality/frechet.ts';
import { realGaussian } from '../packages/worker/src/quality/scores.ts';
import { loadBuiltinSplit } from '../scripts/builtin-dataset.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

/**
 * The accuracy README states for each committed classifier, and the bar the project set for it; for emoji
 * (60% of its test images are People & Body) also a bar on balanced accuracy, the mean per-class recall.
 */
const BARS = {
  'fashion-mnist': { accuracy: 0.9 },
  mnist: { accuracy: 0.98 },
  emoji: { accuracy: 0.78, balanced: 0.5 },
  'emoji-twitter': { accuracy: 0.78, balanced: 0.5 },
} as const satisfies Record<string, { accuracy: number; balanced?: number }>;

/** The evaluation size whose floor is checked: 512, or the whole test split where it is smaller (emoji: 379). */
const FLOOR_SAMPLES = 512;

describe('the committed quality classifiers', () => {
  it('read the images QUALITY_CLASSIFIERS tells the coordinator they read', async () => {
    for (const [dataset, input] of Object.entries(QUALITY_CLASSIFIERS)) {
      const { classifier, manifest } = await loadClassifier(dataset);
      classifier.dispose();
      expect({ dataset, input: manifest.input ?? { size: 28, channels: 1 } }).toEqual({ dataset, input });
      expect(classifier.input).toEqual(input);
    }
  });

  for (const dataset of ['mnist', 'fashion-mnist', 'emoji', 'emoji-twitter'] as const) {
    const bar: { accuracy: number; balanced?: number } = BARS[dataset];
    it(`${dataset}: reproduces its recorded test accuracy (>= ${bar.accuracy}) and FLD floor`, async () => {
      const { classifier, manifest } = await loadClassifier(dataset);
      try {
        const test = await loadBuiltinSplit(dataset, 'test');
        expect(test.height * test.width * test.channels).toBe(
          (manifest.input?.size ?? 28) ** 2 * (manifest.input?.channels ?? 1),
        );
        const { features, predictions } = classifier.describe(test.images, test.count);
        const hits = new Array<number>(test.numClasses).fill(0);
        const seen = new Array<number>(test.numClasses).fill(0);
        for (let i = 0; i < test.count; i++) {
          const label = test.labels[i]!;
          seen[label]! += 1;
          if (predictions[i] === label) hits[label]! += 1;
        }
        const accuracy = hits.reduce((a, b) => a + b, 0) / test.count;
        expect(accuracy).toBeCloseTo(manifest.testAccuracy, 3);
        expect(accuracy).toBeGreaterThanOrEqual(bar.accuracy);
        if (bar.balanced !== undefined) {
          const recalls = seen.flatMap((n, k) => (n === 0 ? [] : [hits[k]! / n]));
          const balanced = recalls.reduce((a, b) => a + b, 0) / recalls.length;
          expect(balanced).toBeCloseTo(manifest.testBalancedAccuracy!, 3);
          expect(balanced).toBeGreaterThanOrEqual(bar.balanced);
        }
        // The floor: the mean over the first (up to) 4 disjoint chunks of the test split.
        const samples = Math.min(FLOOR_SAMPLES, test.count);
        const runs: number[] = [];
        for (let o = 0; o + samples <= test.count && runs.length < 4; o += samples) {
          const chunk = features.subarray(o * FEATURE_DIM, (o + samples) * FEATURE_DIM);
          runs.push(frechetDistance(gaussianStats(chunk, FEATURE_DIM), realGaussian(manifest.stats)));
        }
        const floor = manifest.fldFloor.find((f) => f.samples === samples)!.fld;
        // MNIST's JSON values (3 decimals) reach the classifier through stored bytes, round(v * 255), since
        // data sets are packed versions: each pixel moves by up to 0.0005, the floor by ~0.01 (14.012 -> 14.004).
        expect(runs.reduce((a, b) => a + b, 0) / runs.length).toBeCloseTo(floor, dataset === 'mnist' ? 1 : 2);
      } finally {
        classifier.dispose();
      }
    }, 120_000);
  }
});
