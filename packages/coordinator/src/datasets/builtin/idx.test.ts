import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parseIdx, readIdxFile } from './idx.ts';

/** Builds an uncompressed uint8 IDX file. */
function idx(dims: number[], data: number[]): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt8(0x08, 2);
  header.writeUInt8(dims.length, 3);
  dims.forEach((d, i) => {
    header.writeUInt32BE(d, 4 + 4 * i);
  });
  return Buffer.concat([header, Buffer.from(data)]);
}

describe('parseIdx', () => {
  const data = Array.from({ length: 12 }, (_, i) => i * 20);

  it('parses dims and row-major uint8 data', () => {
    const parsed = parseIdx(idx([2, 2, 3], data), 'hand.idx');
    expect(parsed.dims).toEqual([2, 2, 3]);
    expect(Array.from(parsed.data)).toEqual(data);
  });

  it('gunzips gzipped input', () => {
    const parsed = parseIdx(gzipSync(idx([12], data)), 'hand.idx.gz');
    expect(parsed.dims).toEqual([12]);
    expect(Array.from(parsed.data)).toEqual(data);
  });

  it('reads gzipped and plain files from disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gantry-idx-'));
    try {
      await writeFile(join(dir, 'a.gz'), gzipSync(idx([3, 4], data)));
      await writeFile(join(dir, 'b'), idx([4, 3], data));
      expect((await readIdxFile(join(dir, 'a.gz'))).dims).toEqual([3, 4]);
      expect(Array.from((await readIdxFile(join(dir, 'b'))).data)).toEqual(data);
      await writeFile(join(dir, 'c.gz'), gzipSync(idx([3, 4], data)).subarray(0, 20));
      await expect(readIdxFile(join(dir, 'c.gz'))).rejects.toThrow(/c\.gz: corrupt gzip data/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad magic, naming the file', () => {
    const buf = idx([12], data);
    buf[0] = 0x42;
    expect(() => parseIdx(buf, 'x.idx')).toThrow(/^x\.idx: bad IDX magic 42 00 08 01/);
  });

  it('rejects element types other than uint8', () => {
    const buf = idx([12], data);
    buf[2] = 0x0d;
    expect(() => parseIdx(buf, 'f.idx')).toThrow(/f\.idx: unsupported IDX element type 0x0d/);
  });

  it('rejects zero dimensions', () => {
    expect(() => parseIdx(Buffer.from([0, 0, 8, 0]), 'z.idx')).toThrow(/z\.idx: .*0 dimensions/);
  });

  it('rejects truncated headers', () => {
    expect(() => parseIdx(Buffer.from([0, 0]), 'h.idx')).toThrow(/h\.idx: truncated IDX header/);
    const buf = idx([2, 2, 3], data).subarray(0, 10);
    expect(() => parseIdx(buf, 'h.idx')).toThrow(/h\.idx: truncated IDX header \(10 bytes, need 16/);
  });

  it('rejects truncated data and trailing bytes', () => {
    const buf = idx([2, 2, 3], data);
    expect(() => parseIdx(buf.subarray(0, buf.length - 1), 't.idx')).toThrow(
      /t\.idx: truncated IDX data \(dims 2x2x3 need 12 bytes, found 11\)/,
    );
    expect(() => parseIdx(Buffer.concat([buf, Buffer.from([1, 2])]), 't.idx')).toThrow(
      /t\.idx: 2 unexpected trailing bytes/,
    );
  });

  it('rejects corrupt gzip data', () => {
    const gz = gzipSync(idx([12], data));
    expect(() => parseIdx(gz.subarray(0, gz.length - 6), 'g.gz')).toThrow(/g\.gz: corrupt gzip data/);
  });
});
