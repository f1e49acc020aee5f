import { decodeShard } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { type PackExample, type PackMeta, packDataset, SHARD_RAW_BYTES, testSplit } from './pack.ts';

const meta: PackMeta = {
  name: 'tiny',
  image: { height: 2, width: 2, channels: 1 },
  classes: ['a', 'b'],
  paired: false,
  split: { test_fraction: 0.25, method: 'test' },
  source: { kind: 'directory', files: 4, skipped: 0, alpha: 'none' },
};

function examples(): PackExample[] {
  return [0, 1, 2, 3].map((i) => ({
    pixels: Uint8Array.from([i, i + 1, i + 2, i + 3]),
    label: i % 2,
    split: i === 3 ? 'test' : 'train',
  }));
}

describe('packDataset', () => {
  it('writes train then test shards whose contents, counts and hashes the manifest records', () => {
    const { manifest, shards } = packDataset(examples(), meta, 5);
    expect(manifest.counts).toEqual({ train: 3, test: 1, per_class: { train: [2, 1], test: [0, 1] } });
    expect(manifest.shards.map((s) => [s.file, s.split, s.count])).toEqual([
      ['train-0000.bin.gz', 'train', 3],
      ['test-0000.bin.gz', 'test', 1],
    ]);
    const train = decodeShard(shards.get('train-0000.bin.gz')!);
    expect(Array.from(train.labels!)).toEqual([0, 1, 0]);
    expect(Array.from(train.pixels)).toEqual([0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5]);
    expect(manifest.shards[0]!.bytes).toBe(shards.get('train-0000.bin.gz')!.length);
    expect(manifest.created_at).toBe(5);
  });

  it('gives equal content an equal version whenever it is packed, and any change a new one', () => {
    const v = packDataset(examples(), meta, 1).manifest.version;
    expect(v).toMatch(/^[0-9a-f]{16}$/);
    expect(packDataset(examples(), meta, 2).manifest.version).toBe(v);
    expect(packDataset(examples(), { ...meta, name: 'renamed' }).manifest.version).toBe(v);
    const pixel = examples();
    pixel[2]!.pixels[0] = 9;
    const label = examples();
    label[0]!.label = 1;
    const split = examples();
    split[0]!.split = 'test';
    const variants = [
      packDataset(pixel, meta),
      packDataset(label, meta),
      packDataset(split, meta),
      packDataset(examples(), { ...meta, classes: ['a', 'c'] }),
    ].map((p) => p.manifest.version);
    expect(new Set([v, ...variants]).size).toBe(5);
  });

  it('splits a split into shards of at most SHARD_RAW_BYTES of pixels', () => {
    const big: PackMeta = { ...meta, image: { height: 512, width: 512, channels: 4 }, classes: [] };
    const px = 512 * 512 * 4;
    const perShard = Math.floor(SHARD_RAW_BYTES / px);
    const rows = Array.from(
      { length: perShard + 1 },
      (): PackExample => ({ pixels: new Uint8Array(px), split: 'train' }),
    );
    const { manifest } = packDataset(rows, big);
    expect(manifest.shards.map((s) => s.count)).toEqual([perShard, 1]);
  });

  it('refuses examples of the wrong size or a label outside the classes', () => {
    expect(() => packDataset([{ pixels: new Uint8Array(3), label: 0, split: 'train' }], meta)).toThrow(
      /expected 4 bytes/,
    );
    expect(() => packDataset([{ pixels: new Uint8Array(4), label: 2, split: 'train' }], meta)).toThrow(
      /label 2/,
    );
  });
});

describe('testSplit', () => {
  it('holds out the rounded fraction of each group by name, whatever the order', () => {
    const keys = Array.from({ length: 40 }, (_, i) => `img-${i}.png`);
    const groups = keys.map((_, i) => (i < 30 ? 0 : 1));
    const test = testSplit(keys, groups, 0.2);
    expect(test.filter((t, i) => t && groups[i] === 0)).toHaveLength(6);
    expect(test.filter((t, i) => t && groups[i] === 1)).toHaveLength(2);
    const order = keys.map((_, i) => i).reverse();
    const again = testSplit(
      order.map((i) => keys[i]!),
      order.map((i) => groups[i]!),
      0.2,
    );
    expect(
      order
        .map((i, j) => [keys[i], again[j]])
        .filter(([, t]) => t)
        .map(([k]) => k)
        .sort(),
    ).toEqual(keys.filter((_, i) => test[i]).sort());
  });

  it('keeps groups of one for training and always leaves one training example', () => {
    expect(testSplit(['a'], [0], 0.5)).toEqual([false]);
    expect(testSplit(['a', 'b'], [0, 0], 0.5).filter(Boolean)).toHaveLength(1);
    expect(testSplit(['a', 'b'], [0, 0], 0.9).filter(Boolean)).toHaveLength(1);
  });
});
