/**
 * A built-in data set in memory, read the way a worker reads a pushed version (packed into shards, then
 * unpacked as a job pins it) but without an object store: for the bench, train-classifier and the tests
 * that score real images.
 */
import { BUILTIN_DATASETS } from '../packages/coordinator/src/datasets/builtin/builtin-sets.ts';
import { packDataset } from '../packages/coordinator/src/datasets/pack.ts';
import type { PinnedDataset } from '../packages/shared/src/index.ts';
import { type Dataset, type DatasetSplit, datasetFromShards } from '../packages/worker/src/data/datasets.ts';

const packed = new Map<string, Promise<ReturnType<typeof packDataset>>>();

/** Split `split` of built-in set `name`, at its own size and channels unless `want` says otherwise. */
export async function loadBuiltinSplit(
  name: string,
  split: DatasetSplit,
  want: Partial<Pick<PinnedDataset, 'image_size' | 'channels' | 'subset_per_class'>> = {},
): Promise<Dataset> {
  const set = BUILTIN_DATASETS.get(name);
  if (!set)
    throw new Error(`no built-in data set '${name}'; known: ${[...BUILTIN_DATASETS.keys()].join(', ')}`);
  let p = packed.get(name);
  if (!p) {
    p = set
      .load({ fashionMnistDir: process.env.GANTRY_FASHION_MNIST_DIR })
      .then(({ examples, meta }) => packDataset(examples, { name, ...meta }));
    packed.set(name, p);
  }
  const { manifest, shards } = await p;
  return datasetFromShards(
    manifest,
    split,
    {
      name,
      version: manifest.version,
      image_size: want.image_size ?? manifest.image.height,
      channels: (want.channels ?? manifest.image.channels) as 1 | 3 | 4,
      ...(want.subset_per_class ? { subset_per_class: want.subset_per_class } : {}),
    },
    async (file) => shards.get(file)!,
  );
}
