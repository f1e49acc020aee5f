import { convertChannels, InvalidDatasetError } from '@gantry/shared';
import { decode as decodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';

export { resizeSquare } from '@gantry/shared';

/** A decoded image: 8-bit RGBA, row-major. */
export interface RgbaImage {
  width: number;
  height: number;
  /** `width * height * 4` bytes, R G B A per pixel. */
  data: Uint8Array;
  /** Some pixel has alpha < 255. */
  hasAlpha: boolean;
  /** Every pixel has R = G = B. */
  gray: boolean;
}

/** Options of {@link decodeImage}. */
export interface DecodeImageOptions {
  /**
   * Largest `width * height` accepted, checked against the file's header before anything is decoded (a
   * decompression bomb guard).
   * @default 4096 * 4096
   */
  maxPixels?: number;
}

/** What a codec hands back, before the flags are computed. */
type Pixels = Pick<RgbaImage, 'width' | 'height' | 'data'>;

const DEFAULT_MAX_PIXELS = 4096 * 4096;
/** jpeg-js's working memory per pixel is about 20 bytes for 4:2:0 (measured); this leaves room for 4:4:4. */
const JPEG_BYTES_PER_PIXEL = 32;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_SOI = [0xff, 0xd8, 0xff];

/**
 * Decodes a PNG or JPEG, told apart by its magic bytes (not its name), into 8-bit RGBA. Throws
 * {@link InvalidDatasetError} naming `file` for any other format, for corrupt or truncated data, and for an
 * image whose header claims more than `maxPixels` pixels (refused before decoding).
 */
export function decodeImage(data: Uint8Array, file: string, opts: DecodeImageOptions = {}): RgbaImage {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(maxPixels > 0)) throw new RangeError(`maxPixels must be positive, got ${maxPixels}`);
  let rgba: Pixels;
  if (startsWith(data, PNG_SIGNATURE)) rgba = readPng(data, file, maxPixels);
  else if (startsWith(data, JPEG_SOI)) rgba = readJpeg(data, file, maxPixels);
  else throw new InvalidDatasetError(file, data.length === 0 ? 'empty file' : 'not a PNG or JPEG image');
  if (rgba.data.length !== rgba.width * rgba.height * 4) {
    throw new InvalidDatasetError(file, 'decoded pixel data does not match the image size');
  }
  return { ...rgba, ...scanPixels(rgba.data) };
}

/**
 * The width and height a PNG's or JPEG's header claims, read without decoding anything; undefined for
 * anything else (or a header that cannot be read, which {@link decodeImage} refuses with the reason).
 */
export function imageSize(data: Uint8Array): { width: number; height: number } | undefined {
  if (startsWith(data, PNG_SIGNATURE)) {
    if (data.length < 24 || String.fromCharCode(...data.subarray(12, 16)) !== 'IHDR') return undefined;
    return { width: readUint32(data, 16), height: readUint32(data, 20) };
  }
  return startsWith(data, JPEG_SOI) ? jpegFrameSize(data) : undefined;
}

function readPng(data: Uint8Array, file: string, maxPixels: number): Pixels {
  // The IHDR chunk must come first: length (4), type (4), width (4), height (4), ...
  if (data.length < 24 || String.fromCharCode(...data.subarray(12, 16)) !== 'IHDR') {
    throw new InvalidDatasetError(file, 'PNG without an IHDR header');
  }
  checkSize(file, readUint32(data, 16), readUint32(data, 20), maxPixels);
  try {
    // pngjs checks every chunk's CRC, expands palette / gray / 16-bit to 8-bit RGBA, and throws on a
    // stream that ends early.
    const png = PNG.sync.read(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { checkCRC: true });
    const rgba = new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength);
    return { width: png.width, height: png.height, data: rgba };
  } catch (cause) {
    throw new InvalidDatasetError(file, `corrupt PNG: ${messageOf(cause)}`, { cause });
  }
}

function readJpeg(data: Uint8Array, file: string, maxPixels: number): Pixels {
  const size = jpegFrameSize(data);
  if (!size) throw new InvalidDatasetError(file, 'JPEG without a frame header before its scan');
  checkSize(file, size.width, size.height, maxPixels);
  // jpeg-js may decode a truncated scan into garbage without complaint, so insist on the EOI marker.
  let end = data.length;
  while (end > 0 && data[end - 1] === 0) end--;
  if (end < 4 || data[end - 2] !== 0xff || data[end - 1] !== 0xd9) {
    throw new InvalidDatasetError(file, 'truncated JPEG (no end-of-image marker)');
  }
  try {
    const jpeg = decodeJpeg(data, {
      useTArray: true,
      formatAsRGBA: true,
      tolerantDecoding: false,
      maxResolutionInMP: maxPixels / 1e6,
      maxMemoryUsageInMB: Math.ceil((maxPixels * JPEG_BYTES_PER_PIXEL) / 2 ** 20) + 16,
    });
    return { width: jpeg.width, height: jpeg.height, data: jpeg.data };
  } catch (cause) {
    throw new InvalidDatasetError(file, `corrupt JPEG: ${messageOf(cause)}`, { cause });
  }
}

/** Width and height from the first SOFn segment, walking the segments that precede it; undefined if none. */
function jpegFrameSize(data: Uint8Array): { width: number; height: number } | undefined {
  let at = 2;
  while (at + 4 <= data.length) {
    if (data[at] !== 0xff) return undefined;
    const marker = data[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0xda) return undefined; // start of scan
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (at + 9 > data.length) return undefined;
      return { height: readUint16(data, at + 5), width: readUint16(data, at + 7) };
    }
    at += 2 + readUint16(data, at + 2);
  }
  return undefined;
}

function checkSize(file: string, width: number, height: number, maxPixels: number): void {
  if (width === 0 || height === 0) throw new InvalidDatasetError(file, `image is ${width}x${height}`);
  if (width * height > maxPixels) {
    throw new InvalidDatasetError(file, `image is ${width}x${height}, more than ${maxPixels} pixels`);
  }
}

function scanPixels(data: Uint8Array): { hasAlpha: boolean; gray: boolean } {
  let hasAlpha = false;
  let gray = true;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3]! < 255) hasAlpha = true;
    if (data[i] !== data[i + 1] || data[i] !== data[i + 2]) gray = false;
  }
  return { hasAlpha, gray };
}

/**
 * Converts an image to `channels` bytes per pixel. For 1 and 3 channels, transparent pixels are composited
 * on white (`a * c + (1 - a) * 255`, rounded); 1 channel is the luma `0.299 R + 0.587 G + 0.114 B` of the
 * (unrounded) composited colour, rounded once. 4 channels is a copy of the RGBA data, alpha kept.
 */
export function toChannels(img: RgbaImage, channels: 1 | 3 | 4): Uint8Array {
  return convertChannels(img.data, img.width * img.height, 4, channels);
}

function startsWith(data: Uint8Array, prefix: readonly number[]): boolean {
  return data.length >= prefix.length && prefix.every((byte, i) => data[i] === byte);
}

function readUint16(data: Uint8Array, at: number): number {
  return ((data[at] ?? 0) << 8) | (data[at + 1] ?? 0);
}

function readUint32(data: Uint8Array, at: number): number {
  return readUint16(data, at) * 0x10000 + readUint16(data, at + 2);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
