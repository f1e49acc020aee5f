import { createHash } from 'node:crypto';
import {
  DATASET_FORMAT,
  type DatasetManifest,
  type DatasetShard,
  encodeShard,
  exampleBytes,
} from '@gantry/shared';

/** One example ready to pack: its pixels at the set's size and channels (a pair's: A then B), label, split. */
export interface PackExample {
  pixels: Uint8Array;
  /** Index into the set's classes; absent for an unlabelled set. */
  label?: number;
  split: 'train' | 'test';
}

/** What a version is made of besides its examples. */
export interface PackMeta {
  name: string;
  image: DatasetManifest['image'];
  classes: string[];
  paired: boolean;
  split: DatasetManifest['split'];
  source: DatasetManifest['source'];
}

/** A packed version: its manifest and the shards' bytes, keyed by file name. */
export interface PackedDataset {
  manifest: DatasetManifest;
  shards: Map<string, Buffer>;
}

/** Raw bytes per shard before gzip; a shard holds at least one example. */
export const SHARD_RAW_BYTES = 32 * 1024 * 1024;

/**
 * Packs examples into gzipped shards (train first, then test, each in the given order) and computes the
 * content-addressed version: the first 16 hex digits of a SHA-256 over everything a trainer reads (format,
 * image shape, classes, pairing, split, and each shard's hash), so equal content gives an equal version.
 */
export function packDataset(
  examples: readonly PackExample[],
  meta: PackMeta,
  now = Date.now(),
): PackedDataset {
  const { height, width, channels } = meta.image;
  const perExample = exampleBytes({ height, width, channels, paired: meta.paired });
  const perShard = Math.max(1, Math.floor(SHARD_RAW_BYTES / perExample));
  const labelled = meta.classes.length > 0;
  const shards = new Map<string, Buffer>();
  const entries: DatasetShard[] = [];
  const perClass = { train: meta.classes.map(() => 0), test: meta.classes.map(() => 0) };
  for (const split of ['train', 'test'] as const) {
    const rows = examples.filter((e) => e.split === split);
    for (let s = 0; s * perShard < rows.length; s++) {
      const chunk = rows.slice(s * perShard, (s + 1) * perShard);
      const pixels = new Uint8Array(chunk.length * perExample);
      const labels = labelled ? new Uint16Array(chunk.length) : undefined;
      chunk.forEach((e, i) => {
        if (e.pixels.length !== perExample)
          throw new Error(`example pixels: expected ${perExample} bytes, got ${e.pixels.length}`);
        pixels.set(e.pixels, i * perExample);
        if (labels) {
          const label = e.label ?? -1;
          if (!(label >= 0 && label < meta.classes.length)) throw new Error(`label ${e.label} out of range`);
          labels[i] = label;
          perClass[split][label]! += 1;
        }
      });
      const data = encodeShard({
        count: chunk.length,
        height,
        width,
        channels,
        paired: meta.paired,
        labels,
        pixels,
      });
      const file = `${split}-${String(s).padStart(4, '0')}.bin.gz`;
      shards.set(file, data);
      entries.push({
        file,
        split,
        count: chunk.length,
        bytes: data.length,
        sha256: createHash('sha256').update(data).digest('hex'),
      });
    }
  }
  const counts = {
    train: examples.filter((e) => e.split === 'train').length,
    test: examples.filter((e) => e.split === 'test').length,
    ...(labelled ? { per_class: perClass } : {}),
  };
  const addressed = {
    format: DATASET_FORMAT,
    image: meta.image,
    classes: meta.classes,
    paired: meta.paired,
    split: meta.split,
    shards: entries.map((e) => [e.file, e.split, e.count, e.sha256]),
  };
  const version = createHash('sha256').update(JSON.stringify(addressed)).digest('hex').slice(0, 16);
  const manifest: DatasetManifest = {
    format: DATASET_FORMAT,
    name: meta.name,
    version,
    created_at: now,
    image: meta.image,
    classes: meta.classes,
    paired: meta.paired,
    counts,
    split: meta.split,
    shards: entries,
    source: meta.source,
  };
  return { manifest, shards };
}

/**
 * The held-out test split of `n` items identified by `keys` (file names): per group, the items whose
 * SHA-256 of their key sorts in the first `fraction` (rounded; groups of fewer than 2 keep all for
 * training). Depends only on the names, never on the order files were read in.
 */
export function testSplit(keys: readonly string[], groups: readonly number[], fraction: number): boolean[] {
  const test = keys.map(() => false);
  const byGroup = new Map<number, number[]>();
  groups.forEach((g, i) => {
    const idx = byGroup.get(g);
    if (idx) idx.push(i);
    else byGroup.set(g, [i]);
  });
  for (const idx of byGroup.values()) {
    if (idx.length < 2) continue;
    const hashed = idx
      .map((i) => ({ i, h: createHash('sha256').update(keys[i]!).digest('hex') }))
      .sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : a.i - b.i));
    const nTest = Math.min(idx.length - 1, Math.round(idx.length * fraction));
    for (const { i } of hashed.slice(0, nTest)) test[i] = true;
  }
  return test;
}
