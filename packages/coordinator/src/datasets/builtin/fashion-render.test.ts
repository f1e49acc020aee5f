import { describe, expect, it } from 'vitest';
import { RENDER_EDGE_THRESHOLD, RENDER_MASK_THRESHOLD, renderFashion } from './fashion-render.ts';

const SIDE = 28;

/** A black 28x28 image with the rectangle [y0, y1) x [x0, x1) set to `v`, on top of `base` when given. */
function rect(y0: number, y1: number, x0: number, x1: number, v: number, base?: Uint8Array): Uint8Array {
  const img = base ? Uint8Array.from(base) : new Uint8Array(SIDE * SIDE);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) img[y * SIDE + x] = v;
  return img;
}

/** The rendered image as rows of numbers, for exact comparisons with readable failures. */
function rows(img: Uint8Array, y0 = 0, y1 = SIDE, x0 = 0, x1 = SIDE): number[][] {
  const out: number[][] = [];
  for (let y = y0; y < y1; y++) out.push([...img.subarray(y * SIDE + x0, y * SIDE + x1)]);
  return out;
}

/** The expected render of the square [8, 20)^2: flat `fill` inside a one-pixel `line` ring, 0 around it. */
function squareRender(fill: number, line: number): Uint8Array {
  return rect(9, 19, 9, 19, fill, rect(8, 20, 8, 20, line));
}

describe('renderFashion', () => {
  it('renders a filled square as its flat fill inside an outline ring at half the fill, background 0', () => {
    const a = renderFashion(rect(8, 20, 8, 20, 200));
    expect(rows(a)).toEqual(rows(squareRender(200, 100)));
  });

  it('fills the silhouette with the rounded mean of its photo pixels; dim pixels stay 0', () => {
    // Left half 100, right half 141: a step of 41 (Sobel 164) is no edge; mean 120.5 rounds to 121.
    let photo = rect(8, 20, 14, 20, 141, rect(8, 20, 8, 14, 100));
    photo = rect(2, 4, 2, 6, RENDER_MASK_THRESHOLD, photo);
    const a = renderFashion(photo);
    expect(rows(a)).toEqual(rows(squareRender(121, 61)));
  });

  it('drops single-pixel specks and fills single-pixel holes before measuring the fill', () => {
    let photo = rect(8, 20, 8, 20, 200);
    photo = rect(3, 4, 3, 4, 255, photo); // a speck on the background
    photo = rect(13, 14, 13, 14, 0, photo); // a pinhole in the garment: Sobel 0 by symmetry
    const a = renderFashion(photo);
    // The hole counts in the mean: (143 * 200 + 0) / 144 = 198.6 -> 199; its line 99.5 -> 100.
    expect(rows(a)).toEqual(rows(squareRender(199, 100)));
  });

  it('keeps a two-pixel shape, all outline', () => {
    const a = renderFashion(rect(5, 6, 5, 7, 90));
    expect(rows(a, 4, 7, 4, 8)).toEqual([
      [0, 0, 0, 0],
      [0, 45, 45, 0],
      [0, 0, 0, 0],
    ]);
  });

  it('draws a strong internal edge (Sobel above the threshold) as a line on both sides of the step', () => {
    // A 100 -> 250 step between rows 13 and 14: Sobel 4 * 150 = 600 on rows 13 and 14 (> 400), 0 elsewhere.
    expect(4 * 150).toBeGreaterThan(RENDER_EDGE_THRESHOLD);
    const photo = rect(14, 20, 8, 20, 250, rect(8, 20, 8, 20, 100));
    const a = renderFashion(photo);
    const fill = Math.round((6 * 12 * 100 + 6 * 12 * 250) / 144); // 175
    const line = Math.round(fill / 2); // 88
    expect(rows(a)).toEqual(rows(rect(13, 15, 9, 19, line, squareRender(fill, line))));
  });

  it('ignores an internal step just below the threshold', () => {
    // 100 -> 199: Sobel 396 <= 400.
    const photo = rect(14, 20, 8, 20, 199, rect(8, 20, 8, 20, 100));
    const a = renderFashion(photo);
    expect(rows(a)).toEqual(rows(squareRender(150, 75)));
  });

  it('treats the image border as outside the silhouette', () => {
    const a = renderFashion(new Uint8Array(SIDE * SIDE).fill(60));
    const want = rect(1, SIDE - 1, 1, SIDE - 1, 60, new Uint8Array(SIDE * SIDE).fill(30));
    expect(rows(a)).toEqual(rows(want));
  });

  it('renders an image with no garment pixel as all 0', () => {
    expect(renderFashion(new Uint8Array(SIDE * SIDE).fill(RENDER_MASK_THRESHOLD)).every((v) => v === 0)).toBe(
      true,
    );
  });

  it('is deterministic and leaves its input alone', () => {
    const photo = new Uint8Array(SIDE * SIDE);
    let s = 12345;
    for (let i = 0; i < photo.length; i++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      photo[i] = s % 256;
    }
    const copy = Uint8Array.from(photo);
    const a = renderFashion(photo);
    expect(renderFashion(photo)).toEqual(a);
    expect(photo).toEqual(copy);
  });

  it('refuses an image that is not side x side', () => {
    expect(() => renderFashion(new Uint8Array(100))).toThrow(RangeError);
    expect(renderFashion(new Uint8Array(100), 10)).toHaveLength(100);
  });
});
