import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InvalidDatasetError, resizeSquare } from '@gantry/shared';
import { PNG } from 'pngjs';
import { afterEach, describe, expect, it } from 'vitest';
import { type CollectOptions, collectExamples } from './collect.ts';
import { readSourceFiles } from './source-files.ts';

/** A w x h PNG filled with one RGBA colour (or the per-pixel function). */
function png(w: number, h: number, colour: (x: number, y: number) => number[]): Buffer {
  const img = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) img.data.set(colour(x, y), (y * w + x) * 4);
  return PNG.sync.write(img);
}

let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function folder(files: Record<string, Buffer | string>): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'gantry-collect-'));
  for (const [path, data] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), data);
  }
  return dir;
}

const collect = async (files: Record<string, Buffer | string>, opts: CollectOptions = {}) =>
  collectExamples(readSourceFiles(await folder(files)), 'set', opts);

describe('collectExamples', () => {
  it('takes classes from first-level folders (sorted), under a wrapper folder, skipping other files', async () => {
    const red = png(4, 4, () => [255, 0, 0, 255]);
    const blue = png(4, 4, () => [0, 0, 255, 255]);
    const files: Record<string, Buffer | string> = { 'wrap/README.txt': 'hello' };
    for (let i = 0; i < 5; i++) {
      files[`wrap/zebra/${i}.png`] = red;
      files[`wrap/apple/${i}.png`] = blue;
    }
    const { examples, meta } = await collect(files);
    expect(meta.classes).toEqual(['apple', 'zebra']);
    expect(meta.image).toEqual({ height: 4, width: 4, channels: 3 });
    expect(meta.source).toMatchObject({ files: 11, skipped: 1, alpha: 'none' });
    expect(examples).toHaveLength(10);
    for (const e of examples)
      expect(Array.from(e.pixels.subarray(0, 3))).toEqual(e.label === 0 ? [0, 0, 255] : [255, 0, 0]);
    expect(examples.filter((e) => e.split === 'test')).toHaveLength(2);
  });

  it('stores gray sets with one channel, composites alpha on white unless 4 channels are asked for', async () => {
    const gray = await collect({
      'a.png': png(2, 2, () => [90, 90, 90, 255]),
      'b.png': png(2, 2, () => [10, 10, 10, 255]),
    });
    expect(gray.meta.classes).toEqual([]);
    expect(gray.meta.image.channels).toBe(1);
    expect(gray.examples.map((e) => e.label)).toEqual([undefined, undefined]);
    const seeThrough = { 'a.png': png(2, 2, () => [0, 0, 0, 0]), 'b.png': png(2, 2, () => [0, 0, 200, 255]) };
    const rgb = await collect(seeThrough);
    expect(rgb.meta.source.alpha).toBe('composited');
    expect(Array.from(rgb.examples[0]!.pixels.subarray(0, 3))).toEqual([255, 255, 255]);
    const rgba = await collect(seeThrough, { channels: 4 });
    expect(rgba.meta.source.alpha).toBe('kept');
    expect(Array.from(rgba.examples[0]!.pixels.subarray(0, 4))).toEqual([0, 0, 0, 0]);
  });

  it('crops and resizes every image with size, and refuses mixed or non-square sizes without it', async () => {
    const wide = png(12, 8, (x) => [x * 20, 0, 0, 255]);
    const files = { 'a.png': wide, 'b.png': png(8, 8, () => [0, 0, 0, 255]) };
    const { examples, meta } = await collect(files, { size: 4 });
    expect(meta.image).toEqual({ height: 4, width: 4, channels: 3 });
    expect(meta.source.resized_to).toBe(4);
    const rgba = PNG.sync.read(wide).data;
    const expected = resizeSquare(rgba, 12, 8, 4, 4);
    const red = Array.from({ length: 16 }, (_, p) => expected[p * 4]);
    expect(Array.from({ length: 16 }, (_, p) => examples[0]!.pixels[p * 3])).toEqual(red);
    await expect(collect(files)).rejects.toMatchObject({
      code: 'INVALID_DATASET',
      context: { file: 'set:b.png' },
    });
    await expect(collect({ 'a.png': wide })).rejects.toBeInstanceOf(InvalidDatasetError);
  });

  it('reads the same pairs from A/ and B/ folders as from side-by-side AB images', async () => {
    const a = (v: number) => png(4, 4, () => [v, 0, 0, 255]);
    const b = (v: number) => png(4, 4, () => [0, v, 0, 255]);
    const ab = (v: number) => png(8, 4, (x) => (x < 4 ? [v, 0, 0, 255] : [0, v, 0, 255]));
    const folders = await collect(
      { 'A/1.png': a(10), 'B/1.png': b(10), 'A/2.png': a(20), 'B/2.png': b(20) },
      { paired: 'folders' },
    );
    await rm(dir, { recursive: true, force: true });
    const sideBySide = await collect({ '1.png': ab(10), '2.png': ab(20) }, { paired: 'ab' });
    expect(folders.meta.paired).toBe(true);
    expect(folders.meta.image).toEqual({ height: 4, width: 4, channels: 3 });
    expect(sideBySide.examples.map((e) => Array.from(e.pixels))).toEqual(
      folders.examples.map((e) => Array.from(e.pixels)),
    );
    await expect(collect({ 'A/1.png': a(1), 'B/2.png': b(1) }, { paired: 'folders' })).rejects.toMatchObject({
      context: { file: 'set:A/1.png' },
    });
  });
});
