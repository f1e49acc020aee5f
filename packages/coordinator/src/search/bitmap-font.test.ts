import { describe, expect, it } from 'vitest';
import { drawText, GLYPH_HEIGHT, GLYPH_WIDTH, glyph, textWidth } from './bitmap-font.ts';

const CHARS = [...'abcdefghijklmnopqrstuvwxyz0123456789.-_+:<>() ,/=%'];

describe('bitmap font', () => {
  it('has a 5x7 glyph for every character the plots write, each different (space blank)', () => {
    const seen = new Map<string, string>();
    for (const ch of CHARS) {
      const rows = glyph(ch);
      expect(rows, ch).toHaveLength(GLYPH_HEIGHT);
      for (const r of rows) expect(r, ch).toMatch(new RegExp(`^[.#]{${GLYPH_WIDTH}}$`));
      const key = rows.join('');
      expect(seen.get(key), `${ch} looks like ${seen.get(key)}`).toBeUndefined();
      seen.set(key, ch);
      expect(key.includes('#')).toBe(ch !== ' ');
    }
    // Uppercase is drawn as lowercase; anything else as '?'.
    expect(glyph('F')).toEqual(glyph('f'));
    expect(glyph('€')).toEqual(glyph('?'));
  });

  it("draws each glyph's ink cells as scale x scale squares, one blank column apart", () => {
    // '1' has 1 + 2 + 1 + 1 + 1 + 1 + 3 = 10 ink cells: 40 pixels at scale 2.
    const width = textWidth('11', 2);
    expect(width).toBe((2 * 6 - 1) * 2);
    const img = { width, height: 14, data: new Uint8Array(width * 14 * 4) };
    drawText(img, '11', 0, 0, [1, 2, 3], 2);
    const ink = (x: number, y: number) => img.data[(y * width + x) * 4 + 3] === 255;
    let count = 0;
    for (let y = 0; y < 14; y++) for (let x = 0; x < width; x++) count += ink(x, y) ? 1 : 0;
    expect(count).toBe(80);
    // Row 0 of '1' is '..#..': columns 4-5 of the first, 16-17 of the second (12 px on); row 6 '.###.'.
    expect([3, 4, 5, 6].map((x) => ink(x, 0))).toEqual([false, true, true, false]);
    expect([15, 16, 17, 18].map((x) => ink(x, 1))).toEqual([false, true, true, false]);
    expect([1, 2, 7, 8].map((x) => ink(x, 13))).toEqual([false, true, true, false]);
    expect(img.data.subarray(0, 3)).toEqual(new Uint8Array([0, 0, 0]));
    const i = (0 * width + 4) * 4;
    expect([...img.data.subarray(i, i + 4)]).toEqual([1, 2, 3, 255]);
  });
});
