import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  convertChannels,
  type DatasetManifest,
  datasetManifestSchema,
  decodeShard,
  type PinnedDataset,
  resizeSquare,
} from '@gantry/shared';
import { type DecodedSplit, readDecodedCopy, writeDecodedCopy } from './decoded-copy.ts';

/** Which part of a data set to load. */
export type DatasetSplit = 'train' | 'test';

/**
 * A data set version in memory, as a trainer sees it: images at the size and channels its job asked for.
 * Instances may be shared: treat the arrays as read-only.
 */
export interface Dataset {
  readonly name: string;
  /** `count * height * width * channels` pixels, NHWC, scaled to [-1, 1]. */
  readonly images: Float32Array;
  /** Paired sets: the B image of each example (A is `images`), laid out the same. */
  readonly imagesB?: Float32Array;
  /** One class index (0..numClasses-1) per image; all 0 in an unlabelled set. */
  readonly labels: Uint8Array;
  readonly count: number;
  /** The job's image size; 32 after {@link padDataset} of a 28x28 set. */
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** 0 for an unlabelled set. */
  readonly numClasses: number;
  /** Human-readable name of each class, indexed by label. */
  readonly classNames: readonly string[];
}

/** byte b -> b / 127.5 - 1 */
const TO_UNIT = Float32Array.from({ length: 256 }, (_, b) => b / 127.5 - 1);

/**
 * Reads split `split` of the cached version in `dir` (manifest.json and shards/, see DatasetCache) as the
 * job pins it: each shard checked against the manifest's SHA-256, images converted to the pinned channels
 * and resized to the pinned square size when they differ from the set's, and with `subset_per_class` only
 * the first N examples of each class (in stored order) kept. The result's bytes are kept beside the version
 * (decoded-copy.ts) and read back in one go by later trainers of the node that pin the same.
 * @throws Error naming the shard when it does not match the manifest
 */
export async function readDatasetVersion(
  dir: string,
  split: DatasetSplit,
  want: PinnedDataset,
): Promise<Dataset> {
  const manifest = datasetManifestSchema.parse(
    JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')),
  );
  checkPin(manifest, want);
  const kept = await readDecodedCopy(dir, split, want, manifest.paired);
  if (kept) return toDataset(manifest, kept, want);
  const decoded = await decodeShards(manifest, split, want, (file) => readFile(join(dir, 'shards', file)));
  await writeDecodedCopy(dir, split, want, decoded);
  return toDataset(manifest, decoded, want);
}

/**
 * A split of a version from its manifest and a way to read its shards (from the cache, or from memory for
 * a set packed in this process), each checked against the manifest's SHA-256 and converted as pinned.
 */
export async function datasetFromShards(
  manifest: DatasetManifest,
  split: DatasetSplit,
  want: PinnedDataset,
  readShard: (file: string) => Promise<Uint8Array>,
): Promise<Dataset> {
  checkPin(manifest, want);
  return toDataset(manifest, await decodeShards(manifest, split, want, readShard), want);
}

function checkPin(manifest: DatasetManifest, want: PinnedDataset): void {
  if (manifest.name !== want.name || manifest.version !== want.version)
    throw new Error(`manifest of ${manifest.name}@${manifest.version} read for ${want.name}@${want.version}`);
}

/** The split's examples as pinned, as bytes: checked, unpacked, converted, resized and subset. */
async function decodeShards(
  m: DatasetManifest,
  split: DatasetSplit,
  want: PinnedDataset,
  readShard: (file: string) => Promise<Uint8Array>,
): Promise<DecodedSplit> {
  const shards = await Promise.all(
    m.shards
      .filter((s) => s.split === split)
      .map(async (s) => {
        const data = await readShard(s.file);
        if (createHash('sha256').update(data).digest('hex') !== s.sha256)
          throw new Error(`${want.name}@${want.version}: shard ${s.file} does not match its manifest`);
        return decodeShard(data);
      }),
  );
  const { height: h, width: w, channels: c } = m.image;
  const size = want.image_size;
  const out = want.channels;
  const inPx = h * w * c;
  const outPx = size * size * out;
  const sides = m.paired ? 2 : 1;
  const perClass = new Map<number, number>();
  const keep: { shard: number; row: number }[] = [];
  shards.forEach((s, si) => {
    for (let r = 0; r < s.count; r++) {
      const label = s.labels?.[r] ?? 0;
      const n = perClass.get(label) ?? 0;
      if (want.subset_per_class !== undefined && n >= want.subset_per_class) continue;
      perClass.set(label, n + 1);
      keep.push({ shard: si, row: r });
    }
  });
  const images = new Uint8Array(keep.length * outPx);
  const imagesB = m.paired ? new Uint8Array(keep.length * outPx) : undefined;
  const labels = new Uint8Array(keep.length);
  keep.forEach(({ shard, row }, i) => {
    const s = shards[shard]!;
    labels[i] = s.labels?.[row] ?? 0;
    for (let side = 0; side < sides; side++) {
      const from = (row * sides + side) * inPx;
      let px = s.pixels.subarray(from, from + inPx);
      if (out !== c) px = convertChannels(px, h * w, c, out);
      if (size !== h || size !== w) px = resizeSquare(px, w, h, out, size);
      (side === 0 ? images : imagesB!).set(px, i * outPx);
    }
  });
  return { count: keep.length, labels, images, ...(imagesB ? { imagesB } : {}) };
}

/** byte b -> b / 127.5 - 1, one pass over a whole split. */
function toUnit(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = TO_UNIT[bytes[i]!]!;
  return out;
}

function toDataset(m: DatasetManifest, d: DecodedSplit, want: PinnedDataset): Dataset {
  return {
    name: m.name,
    images: toUnit(d.images),
    ...(d.imagesB ? { imagesB: toUnit(d.imagesB) } : {}),
    labels: d.labels,
    count: d.count,
    height: want.image_size,
    width: want.image_size,
    channels: want.channels,
    numClasses: m.classes.length,
    classNames: m.classes,
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
