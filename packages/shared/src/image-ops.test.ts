import { describe, expect, it } from 'vitest';
import { convertChannels } from './image-ops.ts';

describe('convertChannels', () => {
  it('composites alpha on white and takes the luma for gray', () => {
    // Opaque red, half-transparent (128) blue, fully transparent green.
    const rgba = Uint8Array.from([255, 0, 0, 255, 0, 0, 255, 128, 0, 255, 0, 0]);
    const a = 128 / 255;
    const blueOnWhite = [(1 - a) * 255, (1 - a) * 255, a * 255 + (1 - a) * 255];
    expect(Array.from(convertChannels(rgba, 3, 4, 3))).toEqual([
      255,
      0,
      0,
      ...blueOnWhite.map(Math.round),
      255,
      255,
      255,
    ]);
    const luma = (r: number, g: number, b: number) => Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    expect(Array.from(convertChannels(rgba, 3, 4, 1))).toEqual([
      luma(255, 0, 0),
      luma(blueOnWhite[0]!, blueOnWhite[1]!, blueOnWhite[2]!),
      255,
    ]);
  });

  it('repeats gray into colour, adds opaque alpha, copies a kept channel count', () => {
    const gray = Uint8Array.from([0, 100, 255]);
    expect(Array.from(convertChannels(gray, 3, 1, 3))).toEqual([0, 0, 0, 100, 100, 100, 255, 255, 255]);
    expect(Array.from(convertChannels(gray, 3, 1, 4))).toEqual([
      0, 0, 0, 255, 100, 100, 100, 255, 255, 255, 255, 255,
    ]);
    const copy = convertChannels(gray, 3, 1, 1);
    expect(copy).not.toBe(gray);
    expect(Array.from(copy)).toEqual([0, 100, 255]);
    expect(Array.from(convertChannels(Uint8Array.from([10, 20, 30]), 1, 3, 1))).toEqual([luma(10, 20, 30)]);
    expect(() => convertChannels(gray, 2, 1, 3)).toThrow(RangeError);
  });
});

function luma(r: number, g: number, b: number): number {
  return Math.round(0.299 * r + 0.587 * g + 0.114 * b);
}
