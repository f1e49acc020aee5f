import { crc32 } from 'node:zlib';
import { InvalidDatasetError } from '@gantry/shared';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { decodeImage, type RgbaImage, resizeSquare, toChannels } from './images.ts';

/** RGBA bytes of a `width x height` image whose pixel (x, y) is `pixel(x, y)`. */
function rgba(width: number, height: number, pixel: (x: number, y: number) => number[]): Uint8Array {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 4);
  return data;
}

function png(width: number, height: number, data: Uint8Array, colorType: 0 | 2 | 6 = 6): Uint8Array {
  return PNG.sync.write({ width, height, data: Buffer.from(data) } as PNG, { colorType, inputColorType: 6 });
}

function jpeg(width: number, height: number, data: Uint8Array): Uint8Array {
  return encodeJpeg({ width, height, data }, 95).data;
}

function indexOf(data: Uint8Array, bytes: number[]): number {
  const at = Buffer.from(data).indexOf(Buffer.from(bytes));
  if (at < 0) throw new Error(`bytes ${bytes} not found`);
  return at;
}

/** Offset of a PNG chunk's type field; its data starts 4 bytes later, its length is the 4 bytes before. */
function chunkAt(file: Uint8Array, type: string): number {
  return indexOf(file, [...Buffer.from(type, 'latin1')]);
}

function expectRefused(data: Uint8Array, file: string, opts?: { maxPixels?: number }): InvalidDatasetError {
  let error: unknown;
  try {
    decodeImage(data, file, opts);
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(InvalidDatasetError);
  const refusal = error as InvalidDatasetError;
  expect(refusal.code).toBe('INVALID_DATASET');
  expect(refusal.context.file).toBe(file);
  return refusal;
}

const gradient = rgba(16, 12, (x, y) => [x * 16, y * 20, 255 - x * 8, 255]);

describe('decodeImage', () => {
  it('round-trips an RGBA PNG exactly and flags its alpha', () => {
    const data = rgba(3, 2, (x, y) => [x * 80, y * 200, 7, x === 1 && y === 1 ? 128 : 255]);
    const img = decodeImage(png(3, 2, data), 'a.png');
    expect(img).toMatchObject({ width: 3, height: 2, hasAlpha: true, gray: false });
    expect([...img.data]).toEqual([...data]);
  });

  it('expands a gray PNG to RGBA with R = G = B and no alpha', () => {
    const data = rgba(4, 3, (x, y) => [x * 60 + y, x * 60 + y, x * 60 + y, 255]);
    const img = decodeImage(png(4, 3, data, 0), 'g.png');
    expect(img).toMatchObject({ width: 4, height: 3, hasAlpha: false, gray: true });
    expect([...img.data]).toEqual([...data]);
  });

  it('reads an RGB PNG as opaque, not gray', () => {
    const img = decodeImage(png(16, 12, gradient, 2), 'rgb.png');
    expect(img).toMatchObject({ hasAlpha: false, gray: false });
    expect([...img.data]).toEqual([...gradient]);
  });

  it('scales a 16-bit PNG down to 8 bits', () => {
    const samples = new Uint16Array([65535, 0, 32896, 65535, 257, 514, 771, 65535]);
    const file = PNG.sync.write({ width: 2, height: 1, data: Buffer.from(samples.buffer) } as PNG, {
      bitDepth: 16,
      colorType: 6,
      inputColorType: 6,
    });
    expect([...decodeImage(file, 'deep.png').data]).toEqual([255, 0, 128, 255, 1, 2, 3, 255]);
  });

  it('decodes an RGB JPEG close to its source, opaque', () => {
    const img = decodeImage(jpeg(16, 12, gradient), 'photo.jpg');
    expect(img).toMatchObject({ width: 16, height: 12, hasAlpha: false, gray: false });
    const worst = Math.max(...img.data.map((v, i) => Math.abs(v - gradient[i]!)));
    expect(worst).toBeLessThanOrEqual(12);
  });

  it('tells the format by its magic bytes, not the name, and accepts zero padding after a JPEG', () => {
    const padded = new Uint8Array([...jpeg(16, 12, gradient), 0, 0, 0]);
    expect(decodeImage(padded, 'really-a-jpeg.png').width).toBe(16);
    expect(decodeImage(png(16, 12, gradient), 'really-a-png.jpg').width).toBe(16);
  });

  it('refuses a PNG with one byte flipped inside IDAT (CRC)', () => {
    const file = png(16, 12, gradient);
    file[chunkAt(file, 'IDAT') + 6]! ^= 0x01;
    expectRefused(file, 'flipped.png');
  });

  it('refuses a PNG truncated mid-IDAT or inside its header', () => {
    const file = png(16, 12, gradient);
    const idat = chunkAt(file, 'IDAT');
    const length = Buffer.from(file).readUInt32BE(idat - 4);
    expectRefused(file.subarray(0, idat + 4 + Math.floor(length / 2)), 'cut.png');
    expectRefused(file.subarray(0, 20), 'header.png');
  });

  it('refuses a JPEG truncated mid-scan or with a broken marker', () => {
    const file = jpeg(16, 12, gradient);
    const scan = indexOf(file, [0xff, 0xda]);
    expectRefused(file.subarray(0, scan + Math.floor((file.length - scan) / 2)), 'cut.jpg');
    const broken = file.slice();
    broken[indexOf(broken, [0xff, 0xdb])] = 0x00;
    expectRefused(broken, 'marker.jpg');
  });

  it('refuses GIF, BMP, unknown and empty data', () => {
    expectRefused(new Uint8Array([...Buffer.from('GIF89a'), 1, 0, 1, 0, 0, 0, 0]), 'anim.gif');
    expectRefused(new Uint8Array([...Buffer.from('BM'), 0x3a, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0]), 'x.bmp');
    expectRefused(new Uint8Array([1, 2, 3]), 'junk.png');
    expectRefused(new Uint8Array(0), 'empty.png');
  });

  it('refuses a PNG whose (CRC-valid) header claims 100000x100000 before decoding it', () => {
    const file = png(1, 1, new Uint8Array([0, 0, 0, 255])).slice();
    const ihdr = chunkAt(file, 'IHDR');
    const view = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
    view.writeUInt32BE(100_000, ihdr + 4);
    view.writeUInt32BE(100_000, ihdr + 8);
    view.writeUInt32BE(crc32(file.subarray(ihdr, ihdr + 17)), ihdr + 17);
    // No cause: refused by the header check, not by the codec failing to allocate.
    expect(expectRefused(file, 'bomb.png').cause).toBeUndefined();
  });

  it('refuses a JPEG whose frame header claims 65535x65535 (its largest) before decoding it', () => {
    const file = jpeg(16, 12, gradient).slice();
    file.set([0xff, 0xff, 0xff, 0xff], indexOf(file, [0xff, 0xc0]) + 5);
    expect(expectRefused(file, 'bomb.jpg').cause).toBeUndefined();
  });

  it('applies maxPixels to both formats, inclusive', () => {
    for (const [name, file] of [
      ['p.png', png(16, 12, gradient)],
      ['j.jpg', jpeg(16, 12, gradient)],
    ] as const) {
      expect(decodeImage(file, name, { maxPixels: 192 }).height).toBe(12);
      expectRefused(file, name, { maxPixels: 191 });
    }
  });
});

const image = (width: number, height: number, data: Uint8Array): RgbaImage => ({
  width,
  height,
  data,
  hasAlpha: true,
  gray: false,
});

describe('toChannels', () => {
  // Opaque, half-transparent (128/255) and fully transparent pixels.
  const img = image(3, 1, new Uint8Array([10, 20, 30, 255, 200, 100, 50, 128, 9, 9, 9, 0]));

  it('composites on white for RGB', () => {
    // 128/255 * 200 + 127/255 * 255 = 227.39; * 100 -> 177.20; * 50 -> 152.10
    expect([...toChannels(img, 3)]).toEqual([10, 20, 30, 227, 177, 152, 255, 255, 255]);
  });

  it('takes the luma of the composited colour for gray', () => {
    // 0.299*10 + 0.587*20 + 0.114*30 = 18.15; 0.299*227.39 + 0.587*177.20 + 0.114*152.10 = 189.34
    expect([...toChannels(img, 1)]).toEqual([18, 189, 255]);
  });

  it('keeps alpha with 4 channels, in a copy', () => {
    const out = toChannels(img, 4);
    expect([...out]).toEqual([...img.data]);
    expect(out).not.toBe(img.data);
  });
});

describe('resizeSquare', () => {
  it('box-averages a 4x4 down to 2x2 exactly', () => {
    // biome-ignore format: a pixel grid
    const src = new Uint8Array([
      0, 10, 100, 101,
      20, 30, 102, 103,
      7, 7, 255, 255,
      7, 8, 255, 254,
    ]);
    expect([...resizeSquare(src, 4, 4, 1, 2)]).toEqual([15, 102 /* 101.5 */, 7 /* 7.25 */, 255 /* 254.75 */]);
  });

  it('weights a 3x3 -> 2x2 by fractional areas (2/3, 1/3 per axis)', () => {
    // One impulse of 180 per channel: at the corner (0,0), the centre (1,1) and the top middle (1,0).
    const src = new Uint8Array(27);
    src[0] = 180;
    src[(1 * 3 + 1) * 3 + 1] = 180;
    src[(0 * 3 + 1) * 3 + 2] = 180;
    // corner: 4/9 of (0,0); centre: 1/9 everywhere; top middle: 2/3 * 1/3 = 2/9 of the top row.
    expect([...resizeSquare(src, 3, 3, 3, 2)]).toEqual([80, 20, 40, 0, 20, 40, 0, 20, 0, 0, 20, 0]);
  });

  it('keeps a constant image constant at any size', () => {
    const src = rgba(5, 7, () => [13, 200, 77, 201]);
    for (let size = 1; size <= 11; size++) {
      const out = resizeSquare(src, 5, 7, 4, size);
      expect([...out]).toEqual([...rgba(size, size, () => [13, 200, 77, 201])]);
      const gray = resizeSquare(new Uint8Array(35).fill(99), 5, 7, 1, size);
      expect([...gray]).toEqual(new Array(size * size).fill(99));
    }
  });

  it('enlarges a 2x2 bilinearly with pixel centres aligned and edges clamped', () => {
    // Source coordinates of the 4 outputs: -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1), so each
    // axis weighs the far pixel 0, 1/4, 3/4, 1 and only p(1,1) = 160 contributes 160 * wx * wy.
    const out = resizeSquare(new Uint8Array([0, 0, 0, 160]), 2, 2, 1, 4);
    // biome-ignore format: a pixel grid
    expect([...out]).toEqual([
      0, 0, 0, 0,
      0, 10, 30, 40,
      0, 30, 90, 120,
      0, 40, 120, 160,
    ]);
  });

  it('centre-crops a wide 6x4 to its middle 4x4 and a tall 4x6 likewise', () => {
    const ramp = Uint8Array.from({ length: 24 }, (_, i) => i);
    expect([...resizeSquare(ramp, 6, 4, 1, 4)]).toEqual([
      1, 2, 3, 4, 7, 8, 9, 10, 13, 14, 15, 16, 19, 20, 21, 22,
    ]);
    expect([...resizeSquare(ramp, 4, 6, 1, 4)]).toEqual([...Array(16).keys()].map((i) => i + 4));
  });

  it('averages a transparent red pixel and an opaque blue one to blue at alpha 128, not purple', () => {
    const src = rgba(2, 2, (x) => (x === 0 ? [255, 0, 0, 0] : [0, 0, 255, 255]));
    expect([...resizeSquare(src, 2, 2, 4, 1)]).toEqual([0, 0, 255, 128]);
  });

  it('rejects pixel data of the wrong length', () => {
    expect(() => resizeSquare(new Uint8Array(5), 2, 2, 1, 1)).toThrow(RangeError);
  });
});
