import { PNG } from 'pngjs';

/** Layout of the images passed to {@link encodeImageGrid}. */
export interface ImageGridOptions {
  /** Number of images; `images.length` must equal `count * height * width * channels`. */
  count: number;
  height: number;
  width: number;
  /** 4: RGBA, shown composited on white (the grid itself is RGB). */
  channels: 1 | 3 | 4;
  /** Tiles per row; defaults to `ceil(sqrt(count))`. */
  cols?: number;
  /** Gap in output pixels between tiles and around the edge; defaults to 0. */
  padding?: number;
  /** Integer upscaling factor applied to every image pixel (nearest neighbour); defaults to 1. */
  scale?: number;
}

/** Gray level of padding and of unused cells in the last row. */
const BACKGROUND = 128;

/**
 * Tiles NHWC images with values in [-1, 1] into one PNG (grayscale for 1 channel, RGB for 3, and RGBA
 * composited on white for 4).
 * Values are clamped to [-1, 1] and mapped linearly to 0..255 (-1 → 0, +1 → 255); NaN maps to 0.
 * Tiles fill rows left to right; padding and empty cells are mid gray.
 */
export function encodeImageGrid(images: Float32Array, opts: ImageGridOptions): Buffer {
  const { count, height, width, channels } = opts;
  const cols = opts.cols ?? Math.ceil(Math.sqrt(count));
  const padding = opts.padding ?? 0;
  const scale = opts.scale ?? 1;
  for (const [key, value, min] of [
    ['count', count, 1],
    ['height', height, 1],
    ['width', width, 1],
    ['cols', cols, 1],
    ['padding', padding, 0],
    ['scale', scale, 1],
  ] as const) {
    if (!Number.isInteger(value) || value < min) {
      throw new RangeError(`encodeImageGrid: ${key} must be an integer >= ${min}, got ${value}`);
    }
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new RangeError(`encodeImageGrid: channels must be 1, 3 or 4, got ${String(channels)}`);
  }
  const outC = channels === 1 ? 1 : 3;
  const imageSize = height * width * channels;
  if (images.length !== count * imageSize) {
    throw new RangeError(
      `encodeImageGrid: expected ${count}x${height}x${width}x${channels} = ${count * imageSize} values, got ${images.length}`,
    );
  }

  const rows = Math.ceil(count / cols);
  const tileW = width * scale;
  const tileH = height * scale;
  const outW = cols * tileW + (cols + 1) * padding;
  const outH = rows * tileH + (rows + 1) * padding;
  const out = Buffer.alloc(outW * outH * outC, BACKGROUND);

  for (let n = 0; n < count; n++) {
    const x0 = padding + (n % cols) * (tileW + padding);
    const y0 = padding + Math.floor(n / cols) * (tileH + padding);
    for (let y = 0; y < tileH; y++) {
      const srcRow = n * imageSize + Math.floor(y / scale) * width * channels;
      let dst = ((y0 + y) * outW + x0) * outC;
      for (let x = 0; x < tileW; x++) {
        const src = srcRow + Math.floor(x / scale) * channels;
        if (channels === 4) {
          const a = toByte(images[src + 3]!) / 255;
          for (let c = 0; c < 3; c++) out[dst++] = Math.round(a * toByte(images[src + c]!) + (1 - a) * 255);
        } else for (let c = 0; c < channels; c++) out[dst++] = toByte(images[src + c]!);
      }
    }
  }

  const colorType = outC === 1 ? 0 : 2;
  const png = new PNG({ width: 0, height: 0 });
  png.width = outW;
  png.height = outH;
  png.data = out;
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8 });
}

function toByte(v: number): number {
  if (!(v > -1)) return 0;
  if (v >= 1) return 255;
  return Math.round((v + 1) * 127.5);
}
