import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DatasetManifest, encodeShard, type PinnedDataset } from '@gantry/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { readDatasetVersion } from './datasets.ts';
import { decodedCopyFile } from './decoded-copy.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A version folder of a 3-class set of 8x8 RGB images (A and B when paired), one shard per split. */
async function versionDir(paired: boolean): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gantry-decoded-'));
  dirs.push(dir);
  await mkdir(join(dir, 'shards'));
  const px = 8 * 8 * 3 * (paired ? 2 : 1);
  const shards: DatasetManifest['shards'] = [];
  for (const split of ['train', 'test'] as const) {
    const count = split === 'train' ? 9 : 3;
    const data = encodeShard({
      count,
      height: 8,
      width: 8,
      channels: 3,
      paired,
      labels: Uint16Array.from({ length: count }, (_, i) => i % 3),
      pixels: Uint8Array.from({ length: count * px }, (_, i) => (i * 7) % 251),
    });
    const file = `${split}-0000.bin.gz`;
    await writeFile(join(dir, 'shards', file), data);
    shards.push({
      file,
      split,
      count,
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
    });
  }
  const manifest: DatasetManifest = {
    format: 'gantry-dataset/1',
    name: 'toy',
    version: '0123456789abcdef',
    created_at: 0,
    image: { height: 8, width: 8, channels: 3 },
    classes: ['x', 'y', 'z'],
    paired,
    counts: { train: 9, test: 3 },
    split: { test_fraction: 0.25, method: 'x' },
    shards,
    source: { kind: 'directory', files: 12, skipped: 0, alpha: 'none' },
  };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

const pin = (over: Partial<PinnedDataset> = {}): PinnedDataset => ({
  name: 'toy',
  version: '0123456789abcdef',
  image_size: 8,
  channels: 3,
  ...over,
});

/** Flips a byte of the train shard: reading the shards again now fails. */
async function corruptShard(dir: string): Promise<void> {
  const file = join(dir, 'shards', 'train-0000.bin.gz');
  const bytes = await readFile(file);
  bytes[bytes.length - 10]! ^= 0xff;
  await writeFile(file, bytes);
}

describe('the decoded copy of a data set version', () => {
  it('is what a later read of the same pin returns, equal to decoding the shards', async () => {
    for (const [paired, want] of [
      [false, pin({ image_size: 4, channels: 1, subset_per_class: 2 })],
      [true, pin()],
    ] as const) {
      const dir = await versionDir(paired);
      const first = await readDatasetVersion(dir, 'train', want);
      await corruptShard(dir); // not read again: the copy is
      const again = await readDatasetVersion(dir, 'train', want);
      expect(again).toEqual(first);
      expect(again.count).toBe(paired ? 9 : 6);
      // Another pin has a copy of its own: decoded from the (now corrupt) shards, so refused.
      await expect(readDatasetVersion(dir, 'train', pin({ image_size: 4 }))).rejects.toThrow(
        /shard train-0000\.bin\.gz does not match its manifest/,
      );
    }
  });

  it('is not read when it is cut short or its header is of another format, decoder, version or pin', async () => {
    const dir = await versionDir(false);
    const want = pin();
    const ds = await readDatasetVersion(dir, 'train', want);
    const file = decodedCopyFile(dir, 'train', want);
    const whole = await readFile(file);
    const stale = [
      whole.subarray(0, whole.length - 1),
      Buffer.from(whole.toString('latin1').replace('"format":1', '"format":9'), 'latin1'),
      // decoded by other sources (another release of the decoder)
      Buffer.from(
        whole.toString('latin1').replace(/"decoder":"[0-9a-f]{32}"/, `"decoder":"${'0'.repeat(32)}"`),
        'latin1',
      ),
      Buffer.from(whole.toString('latin1').replace('"split":"train"', '"split":"test!"'), 'latin1'),
      Buffer.from(whole.toString('latin1').replace('0123456789abcdef', '0123456789abcdee'), 'latin1'),
    ];
    await corruptShard(dir);
    for (const bytes of stale) {
      await writeFile(file, bytes);
      await expect(readDatasetVersion(dir, 'train', want)).rejects.toThrow(/does not match its manifest/);
    }
    await writeFile(file, whole);
    expect(await readDatasetVersion(dir, 'train', want)).toEqual(ds);
  });

  it('reads the shards as before when the copy cannot be written', async () => {
    const dir = await versionDir(false);
    await writeFile(join(dir, 'decoded'), 'not a folder');
    const ds = await readDatasetVersion(dir, 'test', pin());
    expect(ds.count).toBe(3);
    expect(Array.from(ds.labels)).toEqual([0, 1, 2]);
  });
});
