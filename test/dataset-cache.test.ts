import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, datasetKeys, type ObjectStore } from '@gantry/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetStore } from '../packages/coordinator/src/datasets/dataset-store.ts';
import { type PackExample, packDataset } from '../packages/coordinator/src/datasets/pack.ts';
import { CorruptDatasetError, DatasetCache } from '../packages/worker/src/data/dataset-cache.ts';
import { freshStore } from './support/infra.ts';

const log = createLogger('test', 'silent');

/** Pushes an unlabelled set of `n` 16x16 gray images of value `seed`; returns its name and version. */
async function push(
  store: ObjectStore,
  name: string,
  seed: number,
  n = 40,
): Promise<{ name: string; version: string }> {
  const examples: PackExample[] = Array.from({ length: n }, (_, i) => ({
    pixels: new Uint8Array(256).fill((seed * 31 + i) % 256),
    split: i < n - 4 ? 'train' : 'test',
  }));
  const packed = packDataset(examples, {
    name,
    image: { height: 16, width: 16, channels: 1 },
    classes: [],
    paired: false,
    split: { test_fraction: 0.1, method: 'test' },
    source: { kind: 'test', files: n, skipped: 0, alpha: 'none' },
  });
  const { manifest } = await new DatasetStore(store, log).upload(packed);
  return { name, version: manifest.version };
}

describe("a worker node's data set cache", () => {
  let store: ObjectStore;
  let dir: string;
  let a: { name: string; version: string };
  beforeAll(async () => {
    store = await freshStore();
    a = await push(store, 'cached', 1);
  });
  afterAll(async () => {
    await store.close();
  });
  const freshDir = async () => {
    dir = await mkdtemp(join(tmpdir(), 'gantry-cache-'));
    return dir;
  };

  it('fetches a version once for two trainers of one worker, verified, under its final name', async () => {
    const cache = new DatasetCache({ store, log, dir: await freshDir() });
    const [x, y] = await Promise.all([cache.acquire(a.name, a.version), cache.acquire(a.name, a.version)]);
    expect(cache.downloads).toBe(1);
    expect(x.dir).toBe(join(dir, a.name, a.version));
    expect(y.dir).toBe(x.dir);
    expect((await readdir(join(x.dir, 'shards'))).sort()).toEqual(['test-0000.bin.gz', 'train-0000.bin.gz']);
    x.release();
    y.release();
    // Nothing half-written is left next to it.
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
  });

  it('shares one download between worker processes on the node (one cache folder, two caches)', async () => {
    const shared = await freshDir();
    const first = new DatasetCache({ store, log, dir: shared });
    const second = new DatasetCache({ store, log, dir: shared });
    await Promise.all([first.acquire(a.name, a.version), second.acquire(a.name, a.version)]);
    expect(first.downloads + second.downloads).toBe(1);
    const third = new DatasetCache({ store, log, dir: shared });
    await third.acquire(a.name, a.version);
    expect(third.downloads).toBe(0);
  });

  it('takes over a lock left by a process that died mid-download', async () => {
    const cache = new DatasetCache({ store, log, dir: await freshDir() });
    await mkdir(join(dir, '.locks'), { recursive: true });
    // A pid that cannot be alive (above the kernel's maximum).
    await writeFile(join(dir, '.locks', `${a.name}@${a.version}`), '99999999');
    await cache.acquire(a.name, a.version);
    expect(cache.downloads).toBe(1);
  });

  it('never keeps a version whose shard does not match its manifest', async () => {
    const bad = await push(store, 'corrupted', 2);
    const key = datasetKeys.shard(bad.name, bad.version, 'train-0000.bin.gz');
    const data = await store.get(key);
    data[data.length - 20]! ^= 0xff;
    await store.put(key, data);
    const cache = new DatasetCache({ store, log, dir: await freshDir() });
    const err = await cache.acquire(bad.name, bad.version).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptDatasetError);
    expect((err as CorruptDatasetError).code).toBe('CORRUPT_DATASET');
    expect((err as CorruptDatasetError).context.file).toBe('train-0000.bin.gz');
    await expect(stat(join(dir, bad.name, bad.version))).rejects.toThrow();
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
  });

  it('evicts the least recently used versions past its bound, never one in use', async () => {
    const b = await push(store, 'cached-b', 3);
    const c = await push(store, 'cached-c', 4);
    const cache = new DatasetCache({ store, log, dir: await freshDir(), maxBytes: 1 });
    const leaseA = await cache.acquire(a.name, a.version);
    const leaseB = await cache.acquire(b.name, b.version);
    leaseB.release();
    // Both were used an hour ago: old enough to evict.
    const old = new Date(Date.now() - 3_600_000);
    for (const v of [a, b]) await utimes(join(dir, v.name, v.version, '.last-used'), old, old);
    await cache.acquire(c.name, c.version);
    // b was free and old: gone; a is held by a trainer; c was just fetched.
    await expect(stat(join(dir, b.name, b.version))).rejects.toThrow();
    expect((await stat(join(dir, a.name, a.version))).isDirectory()).toBe(true);
    expect((await stat(join(dir, c.name, c.version))).isDirectory()).toBe(true);
    leaseA.release();
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
});
