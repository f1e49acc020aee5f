import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { Classifier, loadClassifier, saveClassifier } from './classifier.ts';

beforeAll(async () => {
  await initBackend('wasm');
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
