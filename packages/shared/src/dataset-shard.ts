import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * One shard of a data set version: `count` examples packed as 8-bit pixels, gzipped. Layout before gzip,
 * little-endian: "GDS1", then u32 count, height, width, channels, flags (bit 0 labelled, bit 1 paired),
 * then `count` u16 labels (labelled sets; padded to 4 bytes), then the pixels: per example one image
 * (a paired set's: image A, then image B), each height x width x channels, row-major, channels last.
 */
export interface ShardData {
  count: number;
  height: number;
  width: number;
  channels: number;
  paired: boolean;
  /** One label per example, or undefined for an unlabelled set. */
  labels?: Uint16Array;
  pixels: Uint8Array;
}

const MAGIC = 0x31534447; // "GDS1" read as little-endian u32
const HEADER = 24;

/** Bytes of one example's pixels (both images of a pair). */
export function exampleBytes(s: Pick<ShardData, 'height' | 'width' | 'channels' | 'paired'>): number {
  return s.height * s.width * s.channels * (s.paired ? 2 : 1);
}

/** Packs and gzips a shard. */
export function encodeShard(s: ShardData): Buffer {
  const px = exampleBytes(s) * s.count;
  if (s.pixels.length !== px) throw new Error(`shard pixels: expected ${px} bytes, got ${s.pixels.length}`);
  if (s.labels && s.labels.length !== s.count) throw new Error('shard labels: one per example');
  const labelBytes = s.labels ? Math.ceil((s.count * 2) / 4) * 4 : 0;
  const raw = Buffer.alloc(HEADER + labelBytes + px);
  raw.writeUInt32LE(MAGIC, 0);
  raw.writeUInt32LE(s.count, 4);
  raw.writeUInt32LE(s.height, 8);
  raw.writeUInt32LE(s.width, 12);
  raw.writeUInt32LE(s.channels, 16);
  raw.writeUInt32LE((s.labels ? 1 : 0) | (s.paired ? 2 : 0), 20);
  if (s.labels) for (let i = 0; i < s.count; i++) raw.writeUInt16LE(s.labels[i]!, HEADER + 2 * i);
  raw.set(s.pixels, HEADER + labelBytes);
  return gzipSync(raw, { level: 6 });
}

/** Unpacks a shard. Throws when the bytes are not a shard or are cut short. */
export function decodeShard(gz: Uint8Array): ShardData {
  const raw = gunzipSync(gz);
  if (raw.length < HEADER || raw.readUInt32LE(0) !== MAGIC) throw new Error('not a Gantry data set shard');
  const count = raw.readUInt32LE(4);
  const height = raw.readUInt32LE(8);
  const width = raw.readUInt32LE(12);
  const channels = raw.readUInt32LE(16);
  const flags = raw.readUInt32LE(20);
  const labelled = (flags & 1) !== 0;
  const paired = (flags & 2) !== 0;
  const labelBytes = labelled ? Math.ceil((count * 2) / 4) * 4 : 0;
  const px = exampleBytes({ height, width, channels, paired }) * count;
  if (raw.length !== HEADER + labelBytes + px)
    throw new Error(`shard is ${raw.length} bytes, its header says ${HEADER + labelBytes + px}`);
  let labels: Uint16Array | undefined;
  if (labelled) {
    labels = new Uint16Array(count);
    for (let i = 0; i < count; i++) labels[i] = raw.readUInt16LE(HEADER + 2 * i);
  }
  const pixels = new Uint8Array(raw.buffer, raw.byteOffset + HEADER + labelBytes, px);
  return { count, height, width, channels, paired, labels, pixels };
}
