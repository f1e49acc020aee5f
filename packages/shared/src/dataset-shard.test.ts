import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeShard, encodeShard, exampleBytes } from './dataset-shard.ts';

const pixels = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256);

describe('data set shards', () => {
  it('round-trips a labelled shard: header, labels and pixels', () => {
    const shard = {
      count: 3,
      height: 2,
      width: 2,
      channels: 3,
      paired: false,
      labels: Uint16Array.from([0, 7, 65535]),
    };
    const back = decodeShard(encodeShard({ ...shard, pixels: pixels(3 * 12) }));
    expect({ ...back, pixels: Array.from(back.pixels), labels: Array.from(back.labels!) }).toEqual({
      ...shard,
      labels: [0, 7, 65535],
      pixels: Array.from(pixels(36)),
    });
  });

  it('round-trips an unlabelled paired shard (two images per example)', () => {
    const s = { count: 5, height: 3, width: 3, channels: 1, paired: true };
    expect(exampleBytes(s)).toBe(18);
    const back = decodeShard(encodeShard({ ...s, pixels: pixels(90) }));
    expect(back.labels).toBeUndefined();
    expect(back.paired).toBe(true);
    expect(Array.from(back.pixels)).toEqual(Array.from(pixels(90)));
  });

  it('refuses pixels that do not fill the header, and bytes that are not a shard or are cut short', () => {
    expect(() =>
      encodeShard({ count: 2, height: 2, width: 2, channels: 1, paired: false, pixels: pixels(7) }),
    ).toThrow(/expected 8 bytes/);
    const good = encodeShard({
      count: 2,
      height: 2,
      width: 2,
      channels: 1,
      paired: false,
      pixels: pixels(8),
    });
    expect(() => decodeShard(gzipSync(Buffer.from('GDS0 not a shard at all')))).toThrow(
      /not a Gantry data set shard/,
    );
    expect(() => decodeShard(good.subarray(0, good.length - 4))).toThrow();
    const raw = Buffer.alloc(24 + 7);
    raw.writeUInt32LE(0x31534447, 0);
    raw.writeUInt32LE(2, 4);
    raw.writeUInt32LE(2, 8);
    raw.writeUInt32LE(2, 12);
    raw.writeUInt32LE(1, 16);
    expect(() => decodeShard(gzipSync(raw))).toThrow(/31 bytes, its header says 32/);
  });
});
