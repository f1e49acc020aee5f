import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleBatch } from './batch-sampler.ts';
import { type Dataset, FASHION_MNIST_CLASSES, loadDataset } from './datasets.ts';
import { parseIdx, readIdxFile } from './idx.ts';

/** Builds an uncompressed uint8 IDX file. */
function idx(dims: number[], data: number[]): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt8(0x08, 2);
  header.writeUInt8(dims.length, 3);
  dims.forEach((d, i) => {
    header.writeUInt32BE(d, 4 + 4 * i);
  });
  return Buffer.concat([header, Buffer.from(data)]);
}

/** Pixel sum and position-weighted sum (sum of flat index * value) of image `n`, on the [0, 1] scale. */
function checksum(ds: Dataset, n: number): { sum: number; weighted: number } {
  const size = ds.height * ds.width * ds.channels;
  let sum = 0;
  let weighted = 0;
  for (let i = 0; i < size; i++) {
    const v = (ds.images[n * size + i]! + 1) / 2;
    sum += v;
    weighted += i * v;
  }
  return { sum, weighted };
}

function expectWellFormed(ds: Dataset, count: number): void {
  expect(ds.count).toBe(count);
  expect(ds.labels).toHaveLength(count);
  expect(ds.images).toHaveLength(count * 28 * 28);
  expect([ds.height, ds.width, ds.channels, ds.numClasses]).toEqual([28, 28, 1, 10]);
  expect(ds.classNames).toHaveLength(10);
  let min = Infinity;
  let max = -Infinity;
  const { images } = ds;
  for (let i = 0; i < images.length; i++) {
    const v = images[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  expect(min).toBe(-1);
  expect(max).toBe(1);
  const perClass = new Array<number>(10).fill(0);
  for (const l of ds.labels) perClass[l] = (perClass[l] ?? 0) + 1;
  expect(perClass).toHaveLength(10);
  for (const c of perClass) expect(c).toBeGreaterThan(0);
}

function meanOn01(ds: Dataset): number {
  const { images } = ds;
  let sum = 0;
  for (let i = 0; i < images.length; i++) sum += images[i]!;
  return (sum / images.length + 1) / 2;
}

describe('parseIdx', () => {
  const data = Array.from({ length: 12 }, (_, i) => i * 20);

  it('parses dims and row-major uint8 data', () => {
    const parsed = parseIdx(idx([2, 2, 3], data), 'hand.idx');
    expect(parsed.dims).toEqual([2, 2, 3]);
    expect(Array.from(parsed.data)).toEqual(data);
  });

  it('gunzips gzipped input', () => {
    const parsed = parseIdx(gzipSync(idx([12], data)), 'hand.idx.gz');
    expect(parsed.dims).toEqual([12]);
    expect(Array.from(parsed.data)).toEqual(data);
  });

  it('reads gzipped and plain files from disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gantry-idx-'));
    try {
      await writeFile(join(dir, 'a.gz'), gzipSync(idx([3, 4], data)));
      await writeFile(join(dir, 'b'), idx([4, 3], data));
      expect((await readIdxFile(join(dir, 'a.gz'))).dims).toEqual([3, 4]);
      expect(Array.from((await readIdxFile(join(dir, 'b'))).data)).toEqual(data);
      await writeFile(join(dir, 'c.gz'), gzipSync(idx([3, 4], data)).subarray(0, 20));
      await expect(readIdxFile(join(dir, 'c.gz'))).rejects.toThrow(/c\.gz: corrupt gzip data/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad magic, naming the file', () => {
    const buf = idx([12], data);
    buf[0] = 0x42;
    expect(() => parseIdx(buf, 'x.idx')).toThrow(/^x\.idx: bad IDX magic 42 00 08 01/);
  });

  it('rejects element types other than uint8', () => {
    const buf = idx([12], data);
    buf[2] = 0x0d;
    expect(() => parseIdx(buf, 'f.idx')).toThrow(/f\.idx: unsupported IDX element type 0x0d/);
  });

  it('rejects zero dimensions', () => {
    expect(() => parseIdx(Buffer.from([0, 0, 8, 0]), 'z.idx')).toThrow(/z\.idx: .*0 dimensions/);
  });

  it('rejects truncated headers', () => {
    expect(() => parseIdx(Buffer.from([0, 0]), 'h.idx')).toThrow(/h\.idx: truncated IDX header/);
    const buf = idx([2, 2, 3], data).subarray(0, 10);
    expect(() => parseIdx(buf, 'h.idx')).toThrow(/h\.idx: truncated IDX header \(10 bytes, need 16/);
  });

  it('rejects truncated data and trailing bytes', () => {
    const buf = idx([2, 2, 3], data);
    expect(() => parseIdx(buf.subarray(0, buf.length - 1), 't.idx')).toThrow(
      /t\.idx: truncated IDX data \(dims 2x2x3 need 12 bytes, found 11\)/,
    );
    expect(() => parseIdx(Buffer.concat([buf, Buffer.from([1, 2])]), 't.idx')).toThrow(
      /t\.idx: 2 unexpected trailing bytes/,
    );
  });

  it('rejects corrupt gzip data', () => {
    const gz = gzipSync(idx([12], data));
    expect(() => parseIdx(gz.subarray(0, gz.length - 6), 'g.gz')).toThrow(/g\.gz: corrupt gzip data/);
  });
});

describe('fashion-mnist', () => {
  let train: Dataset;
  let test: Dataset;
  beforeAll(async () => {
    [train, test] = await Promise.all([
      loadDataset('fashion-mnist', 'train'),
      loadDataset('fashion-mnist', 'test'),
    ]);
  });

  it('has 60000 train and 10000 test images in [-1, 1] covering all classes', () => {
    expectWellFormed(train, 60000);
    expectWellFormed(test, 10000);
    expect(train.name).toBe('fashion-mnist');
    expect(train.classNames).toBe(FASHION_MNIST_CLASSES);
  });

  it('keeps file order: known first labels', () => {
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect(train.classNames[train.labels[0]!]).toBe('Ankle boot');
    expect(Array.from(test.labels.subarray(0, 5))).toEqual([9, 2, 1, 1, 6]);
  });

  it('has the known pixel statistics (byte order intact)', () => {
    expect(meanOn01(train)).toBeCloseTo(0.28604, 4);
    expect(meanOn01(test)).toBeCloseTo(0.28685, 4);
    // Reference values computed from the raw .gz files with an independent reader; the weighted sum
    // changes if rows/columns are transposed or shifted.
    const first = checksum(train, 0);
    expect(Math.round(first.sum * 255)).toBe(76247);
    expect(Math.round(first.weighted * 255)).toBe(35878026);
    expect(Math.round(checksum(test, 0).weighted * 255)).toBe(15975114);
  });

  it('is cached per process', async () => {
    expect(await loadDataset('fashion-mnist', 'train')).toBe(train);
  });

  it('says how to install the data when files are missing', async () => {
    await expect(loadDataset('fashion-mnist', 'test', { dir: '/nonexistent/gantry-fm' })).rejects.toThrow(
      /not found: \/nonexistent\/gantry-fm\/t10k-images-idx3-ubyte\.gz.*dataset-fashion-mnist.*GANTRY_FASHION_MNIST_DIR/,
    );
  });
});

describe('mnist', () => {
  let train: Dataset;
  let test: Dataset;
  beforeAll(async () => {
    train = await loadDataset('mnist', 'train');
    test = await loadDataset('mnist', 'test');
  });

  it('splits the 10000 bundled digits 8000/2000, stratified by class', () => {
    expectWellFormed(train, 8000);
    expectWellFormed(test, 2000);
    expect(train.name).toBe('mnist');
    const testPerClass = new Array<number>(10).fill(0);
    for (const l of test.labels) testPerClass[l] = (testPerClass[l] ?? 0) + 1;
    expect(testPerClass).toEqual([200, 225, 198, 206, 196, 173, 203, 214, 189, 196]);
  });

  it('interleaves classes deterministically', () => {
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('has the known pixel statistics (byte order intact)', () => {
    expect(meanOn01(train)).toBeCloseTo(0.1309, 3);
    expect(meanOn01(test)).toBeCloseTo(0.132, 3);
    // First '0' of the package (train row 0) and its 802nd '0' (first test row), summed from the JSON.
    expect(checksum(train, 0).sum).toBeCloseTo(121.921, 2);
    expect(checksum(train, 0).weighted).toBeCloseTo(47986.877, 0);
    expect(checksum(test, 0).weighted).toBeCloseTo(45770.317, 0);
  });

  it('is cached per process', async () => {
    expect(await loadDataset('mnist', 'test')).toBe(test);
  });
});

describe('sampleBatch', () => {
  const ds: Dataset = {
    name: 'mnist',
    images: Float32Array.from({ length: 3 * 784 }, (_, i) => Math.floor(i / 784) / 10),
    labels: Uint8Array.from([7, 8, 9]),
    count: 3,
    height: 28,
    width: 28,
    channels: 1,
    numClasses: 10,
    classNames: [],
  };

  it('copies the requested rows in order', () => {
    const batch = sampleBatch(ds, Uint32Array.from([2, 0, 2]));
    expect(Array.from(batch.labels)).toEqual([9, 7, 9]);
    expect(batch.labels).toBeInstanceOf(Int32Array);
    expect(batch.images).toHaveLength(3 * 784);
    expect([batch.images[0], batch.images[784 + 783], batch.images[2 * 784]]).toEqual([
      Math.fround(0.2),
      0,
      Math.fround(0.2),
    ]);
    batch.images[0] = 5;
    expect(ds.images[2 * 784]).toBe(Math.fround(0.2));
  });

  it('rejects out-of-range indices', () => {
    expect(() => sampleBatch(ds, [0, 3])).toThrow(RangeError);
    expect(() => sampleBatch(ds, [-1])).toThrow(/batch index -1/);
    expect(() => sampleBatch(ds, [1.5])).toThrow(RangeError);
  });

  it('returns empty arrays for no indices', () => {
    expect(sampleBatch(ds, []).images).toHaveLength(0);
  });
});
