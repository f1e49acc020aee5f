import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  convertChannels,
  type DatasetManifest,
  encodeShard,
  type PinnedDataset,
  resizeSquare,
} from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { datasetFromShards, padDataset, readDatasetVersion } from './datasets.ts';

/**
 * A 3-class set of `n` 8x8 RGB images, one shard per split: byte 10 * example + channel, or for a paired
 * set byte i of the shard's pixels (A then B per example) = 7 i mod 251.
 */
function version(n = 9, paired = false): { manifest: DatasetManifest; shards: Map<string, Buffer> } {
  const px = 8 * 8 * 3 * (paired ? 2 : 1);
  const shards = new Map<string, Buffer>();
  const entries: DatasetManifest['shards'] = [];
  for (const split of ['train', 'test'] as const) {
    const count = split === 'train' ? n : 2;
    const pixels = Uint8Array.from({ length: count * px }, (_, i) =>
      paired ? (i * 7) % 251 : (10 * Math.floor(i / px) + (i % 3)) % 256,
    );
    const labels = Uint16Array.from({ length: count }, (_, i) => i % 3);
    const data = encodeShard({ count, height: 8, width: 8, channels: 3, paired, labels, pixels });
    const file = `${split}-0000.bin.gz`;
    shards.set(file, data);
    entries.push({
      file,
      split,
      count,
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
    });
  }
  return {
    shards,
    manifest: {
      format: 'gantry-dataset/1',
      name: 'toy',
      version: '0123456789abcdef',
      created_at: 0,
      image: { height: 8, width: 8, channels: 3 },
      classes: ['x', 'y', 'z'],
      paired,
      counts: { train: n, test: 2 },
      split: { test_fraction: 0.1, method: 'x' },
      shards: entries,
      source: { kind: 'directory', files: n + 2, skipped: 0, alpha: 'none' },
    },
  };
}

const pin = (over: Partial<PinnedDataset> = {}): PinnedDataset => ({
  name: 'toy',
  version: '0123456789abcdef',
  image_size: 8,
  channels: 3,
  ...over,
});

async function read(v: ReturnType<typeof version>, want: PinnedDataset, split: 'train' | 'test' = 'train') {
  return datasetFromShards(v.manifest, split, want, async (f) => v.shards.get(f)!);
}

describe('reading a data set version', () => {
  it("maps bytes to [-1, 1] NHWC at the set's own size, with labels and class names", async () => {
    const ds = await read(version(), pin());
    expect([ds.count, ds.height, ds.width, ds.channels, ds.numClasses]).toEqual([9, 8, 8, 3, 3]);
    expect(ds.classNames).toEqual(['x', 'y', 'z']);
    expect(Array.from(ds.labels)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
    // Example 4, pixel 0: bytes 40, 41, 42.
    expect(Array.from(ds.images.subarray(4 * 192, 4 * 192 + 3))).toEqual(
      [40, 41, 42].map((b) => Math.fround(b / 127.5 - 1)),
    );
    expect((await read(version(), pin(), 'test')).count).toBe(2);
  });

  it('converts channels and resizes as the job pins, with the same pixel operations as a push', async () => {
    const v = version();
    const gray = await read(v, pin({ channels: 1, image_size: 4 }));
    expect([gray.height, gray.channels]).toEqual([4, 1]);
    const src = Uint8Array.from({ length: 192 }, (_, i) => (10 + (i % 3)) % 256);
    const want = resizeSquare(convertChannels(src, 64, 3, 1), 8, 8, 1, 4);
    expect(Array.from(gray.images.subarray(16, 32))).toEqual(
      Array.from(want, (b) => Math.fround(b / 127.5 - 1)),
    );
  });

  it('keeps only the first N examples of each class with subset_per_class', async () => {
    const ds = await read(version(9), pin({ subset_per_class: 2 }));
    expect(Array.from(ds.labels)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(ds.images[3 * 192]).toBe(Math.fround(30 / 127.5 - 1));
  });

  it('gives a paired set its B images alongside the A images', async () => {
    const ds = await read(version(3, true), pin());
    expect(ds.imagesB).toHaveLength(ds.images.length);
    // Example 1 spans shard bytes [384, 768): A is its first 192, B the next.
    const unit = (i: number) => Math.fround(((i * 7) % 251) / 127.5 - 1);
    expect([ds.images[192 + 5], ds.imagesB![192 + 5]]).toEqual([unit(384 + 5), unit(576 + 5)]);
  });

  it('refuses a shard that does not match its manifest, and a manifest of another version', async () => {
    const v = version();
    const bad = Buffer.from(v.shards.get('train-0000.bin.gz')!);
    bad[bad.length - 10]! ^= 0xff;
    await expect(datasetFromShards(v.manifest, 'train', pin(), async () => bad)).rejects.toThrow(
      /toy@0123456789abcdef: shard train-0000\.bin\.gz does not match its manifest/,
    );
    await expect(read(v, pin({ version: 'ffffffffffffffff' }))).rejects.toThrow(
      /read for toy@ffffffffffffffff/,
    );
  });

  it('reads a cached version folder (manifest.json and shards/)', async () => {
    const v = version();
    const dir = await mkdtemp(join(tmpdir(), 'gantry-ds-'));
    try {
      await mkdir(join(dir, 'shards'));
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(v.manifest));
      for (const [f, data] of v.shards) await writeFile(join(dir, 'shards', f), data);
      expect((await readDatasetVersion(dir, 'test', pin())).count).toBe(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pads a set onto a larger canvas of background', async () => {
    const ds = await read(version(3), pin({ image_size: 4, channels: 1 }));
    const padded = padDataset(ds, 8);
    expect([padded.height, padded.count]).toEqual([8, 3]);
    expect(padded.images[0]).toBe(-1);
    expect(padded.images[2 * 8 + 2]).toBe(ds.images[0]);
  });
});
