import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { datasetKeys, type ObjectStore, type PinnedDataset, qualityClassifierName } from '@gantry/shared';
import type { Dataset } from '../data/datasets.ts';
import {
  CLASSIFIER_DIR,
  type ClassifierManifest,
  LEGACY_CLASSIFIER_INPUT,
  loadClassifier,
} from './classifier.ts';
import { QualityEvaluator } from './evaluator.ts';
import { firstUseRecipe, trainClassifier } from './train-classifier.ts';

/** Where a version's classifier for one image size and channel count is kept, beside the version. */
export function qualityPrefix(
  d: Pick<PinnedDataset, 'name' | 'version' | 'image_size' | 'channels'>,
): string {
  return `${datasetKeys.version(d.name, d.version)}quality/${d.image_size}x${d.image_size}x${d.channels}/`;
}

export interface QualitySourceOptions {
  /** The job's data set as pinned. */
  dataset: PinnedDataset;
  /**
   * Its train and test splits at the pinned size and channels (all of each: no subset), for training; of a
   * paired set, its B images (the domain translations are judged in).
   */
  splits: () => Promise<{ train: Dataset; test: Dataset }>;
  store: ObjectStore;
  /** Committed classifiers (packages/worker/assets/classifiers by default). */
  assetsDir?: string;
  /** Progress of a classifier trained here. */
  say: (line: string) => void;
}

/**
 * The quality evaluator of a job's images, from the first place that has a classifier for them: the
 * project's committed classifier of the set (when it reads this size and channel count), the one kept
 * beside the version in the object store, or one trained here on first use (on the set's classes, or on
 * rotation prediction for a set without classes, Gidaris et al. 2018) and then stored beside the version
 * for every later trial. Trainers that miss it at the same moment each train one; training is seeded, so
 * they store the same network.
 */
export async function qualityEvaluator(opts: QualitySourceOptions): Promise<QualityEvaluator> {
  const d = opts.dataset;
  if (await committedReads(d, opts.assetsDir)) {
    const { classifier, manifest } = await loadClassifier(qualityClassifierName(d.name), opts.assetsDir);
    return new QualityEvaluator(classifier, manifest);
  }
  const prefix = qualityPrefix(d);
  const dir = await mkdtemp(join(tmpdir(), 'gantry-quality-'));
  try {
    const files = [`${d.name}.json`, `${d.name}.bin`];
    const stored = await Promise.all(files.map((f) => opts.store.get(prefix + f).catch(() => undefined)));
    if (stored.every((b) => b !== undefined)) {
      await Promise.all(files.map((f, i) => writeFile(join(dir, f), stored[i]!)));
    } else {
      const { train, test } = await opts.splits();
      opts.say(
        `no quality classifier for ${d.name}@${d.version} at ${d.image_size}x${d.image_size}x${d.channels}: training one`,
      );
      await trainClassifier({
        ...firstUseRecipe(train),
        labels: train.numClasses >= 2 ? 'classes' : 'rotation',
        dataset: d.name,
        train,
        // A split too small to hold out anything is scored on its train images (its manifest says so).
        test: test.count > 0 ? test : train,
        out: dir,
        say: opts.say,
      });
      // The weights before the manifest: a reader takes the pair only when both are there.
      await opts.store.put(
        prefix + files[1],
        await readFile(join(dir, files[1]!)),
        'application/octet-stream',
      );
      await opts.store.put(prefix + files[0], await readFile(join(dir, files[0]!)), 'application/json');
    }
    const { classifier, manifest } = await loadClassifier(d.name, dir);
    return new QualityEvaluator(classifier, manifest);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** True when the project's committed classifier of the set reads the pinned images (its manifest says so). */
export async function committedReads(
  d: Pick<PinnedDataset, 'name' | 'image_size' | 'channels'>,
  dir: string = CLASSIFIER_DIR,
): Promise<boolean> {
  try {
    const name = qualityClassifierName(d.name);
    const m = JSON.parse(await readFile(join(dir, `${name}.json`), 'utf8')) as ClassifierManifest;
    const input = m.input ?? LEGACY_CLASSIFIER_INPUT;
    return input.size === d.image_size && input.channels === d.channels;
  } catch {
    return false;
  }
}
