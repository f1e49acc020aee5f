import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { encodeImageGrid } from './sample-grid.ts';

/** RGBA of pixel (x, y) of a decoded PNG. */
function rgba(png: PNG, x: number, y: number): number[] {
  const i = (y * png.width + x) * 4;
  return Array.from(png.data.subarray(i, i + 4));
}

const gray = (v: number): number[] => [v, v, v, 255];

describe('encodeImageGrid', () => {
  // Three 2x3 (HxW) grayscale images: all -1, all +1, and a gradient with out-of-range values.
  const gradient = [-1, 0, 1, 0.5, -0.5, 2];
  const images = Float32Array.from([...Array(6).fill(-1), ...Array(6).fill(1), ...gradient]);

  it('tiles grayscale images with padding and upscaling', () => {
    const buf = encodeImageGrid(images, { count: 3, height: 2, width: 3, channels: 1, padding: 1, scale: 2 });
    const png = PNG.sync.read(buf);
    // cols = ceil(sqrt(3)) = 2, rows = 2; tiles are 6x4 after scaling, with 1px gaps and border.
    expect([png.width, png.height]).toEqual([2 * 6 + 3, 2 * 4 + 3]);
    expect(png.colorType).toBe(0);

    const tile = (n: number): [number, number] => [1 + (n % 2) * 7, 1 + Math.floor(n / 2) * 5];
    const [x0, y0] = tile(0);
    const [x1, y1] = tile(1);
    const [x2, y2] = tile(2);
    for (let dy = 0; dy < 4; dy++) {
      for (let dx = 0; dx < 6; dx++) {
        expect(rgba(png, x0 + dx, y0 + dy)).toEqual(gray(0));
        expect(rgba(png, x1 + dx, y1 + dy)).toEqual(gray(255));
        const v = gradient[Math.floor(dy / 2) * 3 + Math.floor(dx / 2)]!;
        const expected = v >= 1 ? 255 : Math.round((v + 1) * 127.5);
        expect(rgba(png, x2 + dx, y2 + dy)).toEqual(gray(expected));
      }
    }
    // Gradient spot checks: -1 → 0, 0 → 128, 1 → 255, 0.5 → 191, -0.5 → 64, 2 (clamped) → 255.
    expect([0, 2, 4].map((dx) => rgba(png, x2 + dx, y2)[0])).toEqual([0, 128, 255]);
    expect([0, 2, 4].map((dx) => rgba(png, x2 + dx, y2 + 3)[0])).toEqual([191, 64, 255]);
    // Border, gaps and the unused fourth cell are mid gray.
    expect(rgba(png, 0, 0)).toEqual(gray(128));
    expect(rgba(png, 7, 2)).toEqual(gray(128));
    expect(rgba(png, 3, 5)).toEqual(gray(128));
    expect(rgba(png, 10, 7)).toEqual(gray(128));
  });

  it('defaults to no padding, scale 1 and a square-ish grid', () => {
    const png = PNG.sync.read(encodeImageGrid(images, { count: 3, height: 2, width: 3, channels: 1 }));
    expect([png.width, png.height]).toEqual([6, 4]);
    expect(rgba(png, 0, 0)).toEqual(gray(0));
    expect(rgba(png, 3, 0)).toEqual(gray(255));
    expect(rgba(png, 1, 2)).toEqual(gray(128));
  });

  it('honours cols', () => {
    const png = PNG.sync.read(
      encodeImageGrid(images, { count: 3, height: 2, width: 3, channels: 1, cols: 3 }),
    );
    expect([png.width, png.height]).toEqual([9, 2]);
    expect(rgba(png, 8, 1)).toEqual(gray(255));
  });

  it('writes RGB images channel by channel, mapping NaN to 0', () => {
    const rgb = Float32Array.from([1, -1, -1, -1, -1, 1, 0, Number.NaN, 1]);
    const png = PNG.sync.read(encodeImageGrid(rgb, { count: 1, height: 1, width: 3, channels: 3 }));
    expect(png.colorType).toBe(2);
    expect([rgba(png, 0, 0), rgba(png, 1, 0), rgba(png, 2, 0)]).toEqual([
      [255, 0, 0, 255],
      [0, 0, 255, 255],
      [128, 0, 255, 255],
    ]);
  });

  it('composites RGBA images on white into an RGB grid', () => {
    // Opaque red, fully transparent blue (shows white), half-transparent black (alpha 0 -> byte 128).
    const rgbaImages = Float32Array.from([1, -1, -1, 1, -1, -1, 1, -1, -1, -1, -1, 0]);
    const png = PNG.sync.read(encodeImageGrid(rgbaImages, { count: 1, height: 1, width: 3, channels: 4 }));
    expect([rgba(png, 0, 0), rgba(png, 1, 0), rgba(png, 2, 0)]).toEqual([
      [255, 0, 0, 255],
      [255, 255, 255, 255],
      [127, 127, 127, 255],
    ]);
  });

  it('rejects inconsistent sizes and non-integer options', () => {
    expect(() => encodeImageGrid(images, { count: 2, height: 2, width: 3, channels: 1 })).toThrow(RangeError);
    expect(() => encodeImageGrid(images, { count: 3, height: 2, width: 3, channels: 3 })).toThrow(
      /expected 3x2x3x3 = 54 values, got 18/,
    );
    expect(() => encodeImageGrid(images, { count: 3, height: 2, width: 3, channels: 1, scale: 1.5 })).toThrow(
      /scale must be an integer >= 1/,
    );
    expect(() =>
      encodeImageGrid(new Float32Array(0), { count: 0, height: 2, width: 3, channels: 1 }),
    ).toThrow(/count must be an integer >= 1/);
  });
});
