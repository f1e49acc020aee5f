import { describe, expect, it } from 'vitest';
import type { NamedArray } from './models/param-store.ts';
import { packArrays, unpackArrays } from './tensor-pack.ts';

function arr(name: string, shape: number[], fill: (i: number) => number): NamedArray {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, shape, data: Float32Array.from({ length: n }, (_, i) => fill(i)) };
}

const headerLength = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);

describe('tensor pack', () => {
  it('round-trips several named arrays exactly, including special float values', () => {
    const arrays = [
      arr('g/fc/w', [3, 4], (i) => (i - 5) / 7),
      arr('g/bn0/gamma', [4], (i) => 1 + i * 1e-7),
      arr('d/fc/b', [1], () => -0),
      arr('weird', [2, 2], (i) => [Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity][i]!),
      arr('nan', [1], () => Number.NaN),
      // Multi-byte UTF-8: the header length is counted in bytes, not characters.
      arr('g/écart-σ', [3], (i) => i / 3),
    ];
    const out = unpackArrays(packArrays(arrays));
    expect(out.map((a) => a.name)).toEqual(arrays.map((a) => a.name));
    expect(out.map((a) => a.shape)).toEqual(arrays.map((a) => a.shape));
    out.forEach((a, i) => {
      expect(a.data).toBeInstanceOf(Float32Array);
      // Bit-for-bit, so -0 and NaN count too.
      expect(new Uint32Array(a.data.buffer, a.data.byteOffset, a.data.length)).toEqual(
        new Uint32Array(arrays[i]!.data.buffer),
      );
    });
  });

  it('round-trips whatever the header length modulo 4 (the body is padded to alignment)', () => {
    const seen = new Set<number>();
    for (let k = 0; k < 8; k++) {
      const arrays = [arr('x'.repeat(k + 1), [5], (i) => i + k), arr('y', [2], (i) => -i)];
      const bytes = packArrays(arrays);
      seen.add(headerLength(bytes) % 4);
      expect((bytes.length - 8) % 4).toBe(0);
      const out = unpackArrays(bytes);
      expect(out.map((a) => Array.from(a.data))).toEqual(arrays.map((a) => Array.from(a.data)));
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });

  it('round-trips an empty array and an empty list', () => {
    const out = unpackArrays(packArrays([arr('empty', [0, 3], () => 0), arr('after', [2], (i) => i + 0.5)]));
    expect(out[0]).toEqual({ name: 'empty', shape: [0, 3], data: new Float32Array(0) });
    expect(Array.from(out[1]!.data)).toEqual([0.5, 1.5]);
    expect(unpackArrays(packArrays([]))).toEqual([]);
  });

  it('reads a pack that sits at an unaligned offset of a larger buffer', () => {
    const bytes = packArrays([arr('a', [3], (i) => i * 1.25)]);
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 3);
    expect(Array.from(unpackArrays(big.subarray(3))[0]!.data)).toEqual([0, 1.25, 2.5]);
  });

  it('returns arrays that do not alias the input bytes', () => {
    const bytes = packArrays([arr('a', [2], () => 1)]);
    const out = unpackArrays(bytes);
    bytes.fill(0xff, 8);
    expect(Array.from(out[0]!.data)).toEqual([1, 1]);
  });

  it('rejects a bad magic', () => {
    const bytes = packArrays([arr('a', [2], () => 1)]);
    bytes[0] = bytes[0]! ^ 0xff;
    expect(() => unpackArrays(bytes)).toThrow(/magic/);
    expect(() => unpackArrays(new TextEncoder().encode('{"name":"not a pack"}'))).toThrow(/magic/);
  });

  it('rejects truncated input: shorter than the preamble, the header or the body', () => {
    const bytes = packArrays([arr('first', [4], (i) => i), arr('second', [8], (i) => i)]);
    expect(() => unpackArrays(bytes.subarray(0, 5))).toThrow(/truncated/);
    expect(() => unpackArrays(bytes.subarray(0, 8 + headerLength(bytes) - 1))).toThrow(/truncated/);
    // Cutting into the second array's data, even mid-float.
    expect(() => unpackArrays(bytes.subarray(0, bytes.length - 4))).toThrow(/second/);
    expect(() => unpackArrays(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/);
    expect(() => unpackArrays(bytes.subarray(0, bytes.length - 8 * 4 - 1))).toThrow(/first/);
  });
});
