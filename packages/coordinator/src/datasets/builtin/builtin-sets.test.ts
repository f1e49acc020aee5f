import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PackExample } from '../pack.ts';
import {
  BUILTIN_DATASETS,
  type BuiltinContent,
  DEFAULT_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
} from './builtin-sets.ts';
import { renderFashion } from './fashion-render.ts';

const load = (name: string, opts = {}) => BUILTIN_DATASETS.get(name)!.load(opts);
const split = (c: BuiltinContent, s: 'train' | 'test') => c.examples.filter((e) => e.split === s);

/** Byte sum and position-weighted byte sum (sum of flat index * value) of an example. */
function checksum(e: PackExample): { sum: number; weighted: number } {
  let sum = 0;
  let weighted = 0;
  e.pixels.forEach((v, i) => {
    sum += v;
    weighted += i * v;
  });
  return { sum, weighted };
}

function meanOn01(rows: readonly PackExample[]): number {
  let sum = 0;
  let n = 0;
  for (const r of rows) {
    for (const v of r.pixels) sum += v;
    n += r.pixels.length;
  }
  return sum / n / 255;
}

function perClass(rows: readonly PackExample[], classes: number): number[] {
  const out = new Array<number>(classes).fill(0);
  for (const r of rows) out[r.label!]! += 1;
  return out;
}

describe('fashion-mnist', () => {
  let c: BuiltinContent;
  beforeAll(async () => {
    c = await load('fashion-mnist');
  });

  it("keeps the package's 60,000 / 10,000 split, file order and labels", () => {
    expect(split(c, 'train')).toHaveLength(60_000);
    expect(split(c, 'test')).toHaveLength(10_000);
    expect(c.meta.classes).toEqual(FASHION_MNIST_CLASSES);
    expect(c.meta.image).toEqual({ height: 28, width: 28, channels: 1 });
    expect(
      split(c, 'train')
        .slice(0, 10)
        .map((e) => e.label),
    ).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect(
      split(c, 'test')
        .slice(0, 5)
        .map((e) => e.label),
    ).toEqual([9, 2, 1, 1, 6]);
  });

  it('has the known pixel statistics (byte order intact)', () => {
    expect(meanOn01(split(c, 'train'))).toBeCloseTo(0.28604, 4);
    expect(meanOn01(split(c, 'test'))).toBeCloseTo(0.28685, 4);
    // Reference values from the raw .gz files with an independent reader; the weighted sum changes if rows
    // or columns are transposed or shifted.
    expect(checksum(split(c, 'train')[0]!)).toEqual({ sum: 76247, weighted: 35878026 });
    expect(checksum(split(c, 'test')[0]!).weighted).toBe(15975114);
  });

  it('says how to install the data when files are missing', async () => {
    await expect(load('fashion-mnist', { fashionMnistDir: '/nonexistent/gantry-fm' })).rejects.toThrow(
      /not found: \/nonexistent\/gantry-fm\/train-images-idx3-ubyte\.gz.*dataset-fashion-mnist.*GANTRY_FASHION_MNIST_DIR/,
    );
  });
});

describe.skipIf(!existsSync(DEFAULT_FASHION_MNIST_DIR))('fashion-mnist-render2photo', () => {
  let photos: BuiltinContent;
  let pairs: BuiltinContent;
  beforeAll(async () => {
    [photos, pairs] = await Promise.all([load('fashion-mnist'), load('fashion-mnist-render2photo')]);
  }, 60_000);

  it('takes the first 12,000 train and 2,000 test photos with their labels, near balanced', () => {
    expect(split(pairs, 'train')).toHaveLength(12_000);
    expect(split(pairs, 'test')).toHaveLength(2_000);
    expect(pairs.meta.paired).toBe(true);
    expect(pairs.meta.classes).toEqual(FASHION_MNIST_CLASSES);
    expect(pairs.meta.image).toEqual({ height: 28, width: 28, channels: 1 });
    expect(perClass(split(pairs, 'train'), 10)).toEqual([
      1122, 1220, 1201, 1212, 1181, 1204, 1244, 1192, 1195, 1229,
    ]);
    expect(perClass(split(pairs, 'test'), 10)).toEqual([200, 203, 214, 190, 219, 195, 197, 200, 194, 188]);
    for (const s of ['train', 'test'] as const) {
      const n = split(pairs, s).length;
      expect(split(pairs, s).map((e) => e.label)).toEqual(
        split(photos, s)
          .slice(0, n)
          .map((e) => e.label),
      );
    }
  });

  it('lays each pair out as A (the render of the photo) then B (the photo, bytes as stored)', () => {
    for (const s of ['train', 'test'] as const) {
      const want = split(photos, s);
      split(pairs, s).forEach((e, i) => {
        expect(e.pixels).toHaveLength(2 * 784);
        const [a, b] = [e.pixels.subarray(0, 784), e.pixels.subarray(784)];
        if (!Buffer.from(b).equals(Buffer.from(want[i]!.pixels)))
          expect.fail(`${s} ${i}: B is not the photo`);
        if (!Buffer.from(a).equals(Buffer.from(renderFashion(b))))
          expect.fail(`${s} ${i}: A is not its render`);
        // Flat: the garment takes the fill and the line level only, on a 0 background.
        if (new Set(a).size > 3) expect.fail(`${s} ${i}: A has ${new Set(a).size} levels`);
      });
    }
  });
});

describe('mnist', () => {
  let c: BuiltinContent;
  beforeAll(async () => {
    c = await load('mnist');
  });

  it('splits the 10,000 bundled digits 8,000 / 2,000, stratified by class, classes interleaved', () => {
    expect(split(c, 'train')).toHaveLength(8000);
    expect(perClass(split(c, 'test'), 10)).toEqual([200, 225, 198, 206, 196, 173, 203, 214, 189, 196]);
    expect(
      split(c, 'train')
        .slice(0, 10)
        .map((e) => e.label),
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(
      split(c, 'test')
        .slice(0, 10)
        .map((e) => e.label),
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('has the known pixel statistics (values in [0, 1] stored as round(v * 255))', () => {
    expect(meanOn01(split(c, 'train'))).toBeCloseTo(0.1309, 3);
    // First '0' of the package and its 802nd '0' (first test row), summed from the JSON on the [0, 1] scale;
    // storing bytes moves each value by at most 0.0005 (the JSON has 3 decimals), hence the tolerances.
    expect(checksum(split(c, 'train')[0]!).sum / 255).toBeCloseTo(121.921, 0);
    expect(checksum(split(c, 'test')[0]!).weighted / 255).toBeCloseTo(45770.317, -2);
  });
});

describe('emoji', () => {
  let google: BuiltinContent;
  let pair: BuiltinContent;
  beforeAll(async () => {
    [google, pair] = await Promise.all([load('emoji'), load('emoji-google2twitter')]);
  }, 120_000);

  it("holds the package's 3,786 drawings as 64x64 RGB on white, in 10 categories, 10% of each held out", () => {
    expect(google.examples).toHaveLength(3786);
    expect(google.meta.image).toEqual({ height: 64, width: 64, channels: 3 });
    expect(google.meta.classes).toHaveLength(10);
    expect(google.meta.classes).toContain('Smileys & Emotion');
    const all = perClass(google.examples, 10);
    const test = perClass(split(google, 'test'), 10);
    expect(test).toEqual(all.map((n) => (n < 2 ? 0 : Math.min(n - 1, Math.round(n * 0.1)))));
    // Corners of a drawing are transparent in the PNG: white once composited.
    const first = google.examples[0]!.pixels;
    expect([first[0], first[1], first[2]]).toEqual([255, 255, 255]);
    expect(first.some((v) => v < 128)).toBe(true);
  });

  it('pairs each Google drawing with the Twitter one of the same emoji', () => {
    expect(pair.examples).toHaveLength(3786);
    expect(pair.meta.paired).toBe(true);
    expect(pair.meta.classes).toEqual([]);
    const px = 64 * 64 * 3;
    const [a, b] = [pair.examples[0]!.pixels.subarray(0, px), pair.examples[0]!.pixels.subarray(px)];
    expect(b).toHaveLength(px);
    // The A side is the Google drawing itself; the B side another drawing of the same emoji.
    expect(Buffer.from(a).equals(Buffer.from(google.examples[0]!.pixels))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });
});
