/**
 * A split of a cached data set version as a job pins it, kept decoded beside the version
 * (`decoded/<split>-<size>x<channels>[-<n>pc].bin`): unpacking, checking and converting Fashion-MNIST's
 * shards takes ~0.5 s of every trainer's start-up, one read of the kept bytes a few ms. Written only from
 * shards that matched their manifest, through a rename (readers see whole files); read back only when its
 * header names the same version, split and pin in this format, decoded by the same sources (their digest),
 * and its length is what that header says.
 * It goes with its version when the cache evicts that. A failed write (full or read-only disk) only costs
 * the next trainer the decoding again.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PinnedDataset } from '@gantry/shared';

/** A split's examples as pinned, before scaling to [-1, 1]: `count * size * size * channels` bytes each. */
export interface DecodedSplit {
  count: number;
  labels: Uint8Array;
  images: Uint8Array;
  imagesB?: Uint8Array;
}

const MAGIC = Buffer.from('GANTRYD\n');
/**
 * Bump when what a split decodes to changes (channel conversion, resizing, subset order): older copies
 * are then not read.
 */
export const DECODED_FORMAT = 1;

/**
 * The sources that decide what a split decodes to (the shard decoder, channel conversion and resizing, the
 * subset order): their digest is in every copy's header, so a change to any of them (a new release on a
 * node) makes older copies unread without anyone bumping DECODED_FORMAT.
 */
const DECODER_SOURCES = [
  new URL('./datasets.ts', import.meta.url),
  new URL('../../../shared/src/dataset-shard.ts', import.meta.url),
  new URL('../../../shared/src/image-ops.ts', import.meta.url),
];
let decoderDigest: Promise<string | undefined> | undefined;
/** The sources' SHA-256, or undefined where they cannot be read (then no copy is written or read). */
function decoder(): Promise<string | undefined> {
  decoderDigest ??= Promise.all(DECODER_SOURCES.map((u) => readFile(u)))
    .then((texts) => {
      const h = createHash('sha256');
      for (const t of texts) h.update(t);
      return h.digest('hex').slice(0, 32);
    })
    .catch(() => undefined);
  return decoderDigest;
}

interface Header {
  format: number;
  decoder: string;
  name: string;
  version: string;
  split: string;
  image_size: number;
  channels: number;
  subset_per_class: number | null;
  paired: boolean;
  count: number;
}

/** The file of a split's decoded copy in version folder `dir`. */
export function decodedCopyFile(dir: string, split: string, want: PinnedDataset): string {
  const subset = want.subset_per_class === undefined ? '' : `-${want.subset_per_class}pc`;
  return join(dir, 'decoded', `${split}-${want.image_size}x${want.channels}${subset}.bin`);
}

function headerOf(
  decoder: string,
  split: string,
  want: PinnedDataset,
  paired: boolean,
  count: number,
): Header {
  return {
    format: DECODED_FORMAT,
    decoder,
    name: want.name,
    version: want.version,
    split,
    image_size: want.image_size,
    channels: want.channels,
    subset_per_class: want.subset_per_class ?? null,
    paired,
    count,
  };
}

/** The kept copy of the split, or undefined when there is none or it is not this pin's whole copy. */
export async function readDecodedCopy(
  dir: string,
  split: string,
  want: PinnedDataset,
  paired: boolean,
): Promise<DecodedSplit | undefined> {
  const digest = await decoder();
  if (digest === undefined) return undefined;
  const raw = await readFile(decodedCopyFile(dir, split, want)).catch(() => undefined);
  if (!raw || raw.length < MAGIC.length + 4 || !raw.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const headerBytes = raw.readUInt32LE(MAGIC.length);
  const body = MAGIC.length + 4 + headerBytes;
  let header: Header;
  try {
    header = JSON.parse(raw.subarray(MAGIC.length + 4, body).toString('utf8')) as Header;
  } catch {
    return undefined;
  }
  const { count } = header;
  if (JSON.stringify(header) !== JSON.stringify(headerOf(digest, split, want, paired, count)))
    return undefined;
  const px = want.image_size * want.image_size * want.channels * count;
  if (raw.length !== body + count + px * (paired ? 2 : 1)) return undefined;
  const at = (offset: number, length: number) =>
    new Uint8Array(raw.buffer, raw.byteOffset + body + offset, length);
  return {
    count,
    labels: at(0, count),
    images: at(count, px),
    ...(paired ? { imagesB: at(count + px, px) } : {}),
  };
}

/** Keeps `d` as the split's copy (best effort: a write that fails leaves nothing behind). */
export async function writeDecodedCopy(
  dir: string,
  split: string,
  want: PinnedDataset,
  d: DecodedSplit,
): Promise<void> {
  const digest = await decoder();
  if (digest === undefined) return;
  const file = decodedCopyFile(dir, split, want);
  const header = Buffer.from(JSON.stringify(headerOf(digest, split, want, d.imagesB !== undefined, d.count)));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(join(dir, 'decoded'), { recursive: true });
    await writeFile(
      tmp,
      Buffer.concat([MAGIC, length, header, d.labels, d.images, ...(d.imagesB ? [d.imagesB] : [])]),
    );
    await rename(tmp, file);
  } catch {
    await rm(tmp, { force: true }).catch(() => {});
  }
}
