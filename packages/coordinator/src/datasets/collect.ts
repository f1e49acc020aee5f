import { InvalidDatasetError } from '@gantry/shared';
import { decodeImage, type RgbaImage, resizeSquare, toChannels } from './images.ts';
import type { PackExample, PackMeta } from './pack.ts';
import { testSplit } from './pack.ts';
import type { SourceFile } from './source-files.ts';

/** How a pushed folder or archive is read (`gantry dataset push` flags). */
export interface CollectOptions {
  /** Centre-crop every image to a square and resize it to size x size; without it all must be equal squares. */
  size?: number;
  /** `folders`: `A/` and `B/` hold the same file names; `ab`: each image is A and B side by side. */
  paired?: 'folders' | 'ab';
  /** Channels to store; default 3 for colour images, 1 when every image is gray (alpha composited on white). */
  channels?: 1 | 3 | 4;
  /** @default 0.1 */
  testFraction?: number;
  /** Called every few hundred files while reading. */
  onProgress?: (p: { files: number; images: number; skipped: number }) => void;
}

/** The examples of a pushed set and what the manifest says about them (less the name). */
export interface Collected {
  examples: PackExample[];
  meta: Omit<PackMeta, 'name' | 'source'> & { source: Omit<PackMeta['source'], 'kind'> };
}

/** Largest side accepted without `--size`. */
export const MAX_SIDE = 512;
const IMAGE_EXT = /\.(png|jpe?g)$/i;

interface Item {
  /** Path relative to the set's root, after any common wrapper folder (a pair's: its A side). */
  path: string;
  /** What the test split hashes: the path, or a pair's shared file name. */
  key: string;
  images: RgbaImage[];
}

/**
 * Decodes every image of a pushed source and lays the set out: classes from first-level folders
 * (torchvision's ImageFolder convention; none when all files are at the top), pairs from `A/` and `B/` or
 * from side-by-side images, a held-out test split chosen by file name. Throws InvalidDatasetError naming
 * the file for a corrupt image, mixed sizes without `size`, an empty set or class folder, a pair with one
 * side missing; nothing is written anywhere before it returns.
 */
export async function collectExamples(
  files: AsyncIterable<SourceFile>,
  source: string,
  opts: CollectOptions = {},
): Promise<Collected> {
  const items: Item[] = [];
  const emptyFolders = new Map<string, string>();
  let seen = 0;
  let skipped = 0;
  for await (const f of files) {
    seen += 1;
    if (seen % 250 === 0) opts.onProgress?.({ files: seen, images: items.length, skipped });
    if (!IMAGE_EXT.test(f.path)) {
      skipped += 1;
      const folder = f.path.includes('/') ? f.path.slice(0, f.path.lastIndexOf('/')) : '';
      if (!emptyFolders.has(folder)) emptyFolders.set(folder, f.path);
      continue;
    }
    const name = `${source}:${f.path}`;
    const img = decodeImage(f.data, name);
    // Resized as read, so a folder of large photos never sits in memory at full size.
    const images = opts.paired === 'ab' ? splitAb(img, name) : [img];
    items.push({ path: f.path, key: f.path, images: images.map((i) => fitSize(i, opts.size)) });
  }
  opts.onProgress?.({ files: seen, images: items.length, skipped });
  if (items.length === 0) throw new InvalidDatasetError(source, 'holds no PNG or JPEG images');
  const wrapper = commonWrapper(items.map((i) => i.path));
  for (const it of items) {
    it.path = it.path.slice(wrapper.length);
    it.key = it.path;
  }

  const examples = opts.paired === 'folders' ? pairFolders(items, `${source}:${wrapper}`) : items;
  const labelled = opts.paired === undefined && examples.some((e) => e.path.includes('/'));
  let classes: string[] = [];
  let labels: number[] = examples.map(() => 0);
  if (labelled) {
    const top = examples.find((e) => !e.path.includes('/'));
    if (top)
      throw new InvalidDatasetError(
        `${source}:${wrapper}${top.path}`,
        'is at the top level while other images are in class folders: put every image in a class folder, or none',
      );
    classes = [...new Set(examples.map((e) => e.path.slice(0, e.path.indexOf('/'))))].sort();
    labels = examples.map((e) => classes.indexOf(e.path.slice(0, e.path.indexOf('/'))));
    for (const [folder, file] of emptyFolders) {
      const cls = folder.slice(wrapper.length).split('/')[0];
      if (cls && folder.startsWith(wrapper) && !classes.includes(cls))
        throw new InvalidDatasetError(
          `${source}:${wrapper}${cls}/`,
          `class folder holds no images (${file} is not one)`,
        );
    }
  }

  const sized = examples;
  // The file an image came from, and how to say its size (a side-by-side image is two halves).
  const fileOf = (e: Item, side: number) =>
    `${source}:${wrapper}${side === 1 && opts.paired === 'folders' ? `B/${e.key}` : e.path}`;
  const sizeOf = (img: RgbaImage) =>
    opts.paired === 'ab'
      ? `${img.width * 2}x${img.height} (two ${img.width}x${img.height} halves)`
      : `${img.width}x${img.height}`;
  const first = sized[0]!.images[0]!;
  for (const e of sized) {
    e.images.forEach((img, side) => {
      if (img.width !== first.width || img.height !== first.height)
        throw new InvalidDatasetError(
          fileOf(e, side),
          `is ${sizeOf(img)} while ${wrapper}${sized[0]!.path} is ${sizeOf(first)}: pass --size N to crop and resize every image`,
        );
    });
  }
  if (first.width !== first.height)
    throw new InvalidDatasetError(
      fileOf(sized[0]!, 0),
      `is ${sizeOf(first)}, not square: pass --size N to crop and resize every image`,
    );
  if (first.width > MAX_SIDE)
    throw new InvalidDatasetError(
      fileOf(sized[0]!, 0),
      `is ${sizeOf(first)}, larger than ${MAX_SIDE}: pass --size N`,
    );

  const anyAlpha = sized.some((e) => e.images.some((i) => i.hasAlpha));
  const anyColour = sized.some((e) => e.images.some((i) => !i.gray));
  const channels = opts.channels ?? (anyColour ? 3 : 1);
  const fraction = opts.testFraction ?? 0.1;
  const isTest = testSplit(
    sized.map((e) => e.key),
    labels,
    fraction,
  );
  const packed: PackExample[] = sized.map((e, i) => {
    const parts = e.images.map((img) => toChannels(img, channels));
    const pixels = parts.length === 1 ? parts[0]! : concat(parts);
    return { pixels, split: isTest[i] ? 'test' : 'train', ...(labelled ? { label: labels[i]! } : {}) };
  });
  return {
    examples: packed,
    meta: {
      image: { height: first.height, width: first.width, channels },
      classes,
      paired: opts.paired !== undefined,
      split: { test_fraction: fraction, method: 'per class, by SHA-256 of the file name' },
      source: {
        files: seen,
        skipped,
        ...(opts.size ? { resized_to: opts.size } : {}),
        alpha: !anyAlpha ? 'none' : channels === 4 ? 'kept' : 'composited',
      },
    },
  };
}

/** The folders every path starts with (e.g. the one folder a tar wraps its files in), with a final '/'. */
function commonWrapper(paths: readonly string[]): string {
  let prefix = '';
  for (;;) {
    const rest = paths.map((p) => p.slice(prefix.length));
    const head = rest[0]!.split('/')[0]!;
    if (rest.some((p) => !p.includes('/') || p.split('/')[0] !== head)) return prefix;
    if (head === 'A' || head === 'B') return prefix;
    prefix += `${head}/`;
  }
}

/**
 * `A/<name>` and `B/<name>` as one example per name (its path is `A/<name>`, for messages); refuses anything
 * else or a missing side. `where` prefixes the files named in errors.
 */
function pairFolders(items: readonly Item[], where: string): Item[] {
  const sides = { A: new Map<string, RgbaImage>(), B: new Map<string, RgbaImage>() };
  for (const it of items) {
    const side = it.path.slice(0, 2);
    if (side !== 'A/' && side !== 'B/')
      throw new InvalidDatasetError(`${where}${it.path}`, 'a paired set holds its images in A/ and B/ only');
    sides[side[0] as 'A' | 'B'].set(it.path.slice(2), it.images[0]!);
  }
  const pairs: Item[] = [];
  for (const [name, a] of [...sides.A].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const b = sides.B.get(name);
    if (!b) throw new InvalidDatasetError(`${where}A/${name}`, `has no pair: B/${name} is missing`);
    pairs.push({ path: `A/${name}`, key: name, images: [a, b] });
  }
  for (const name of sides.B.keys())
    if (!sides.A.has(name))
      throw new InvalidDatasetError(`${where}B/${name}`, `has no pair: A/${name} is missing`);
  return pairs;
}

/** A side-by-side AB image (pix2pix's sets) as its two halves. */
function splitAb(img: RgbaImage, file: string): RgbaImage[] {
  if (img.width % 2 !== 0)
    throw new InvalidDatasetError(file, `is ${img.width} wide: a side-by-side AB image has an even width`);
  const w = img.width / 2;
  const half = (x0: number): RgbaImage => {
    const data = new Uint8Array(w * img.height * 4);
    for (let y = 0; y < img.height; y++)
      data.set(img.data.subarray((y * img.width + x0) * 4, (y * img.width + x0 + w) * 4), y * w * 4);
    return { ...img, width: w, data };
  };
  return [half(0), half(w)];
}

function fitSize(img: RgbaImage, size: number | undefined): RgbaImage {
  if (size === undefined || (img.width === size && img.height === size)) return img;
  return { ...img, width: size, height: size, data: resizeSquare(img.data, img.width, img.height, 4, size) };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
