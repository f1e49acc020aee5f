import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip, gunzipSync } from 'node:zlib';

const gunzipAsync = promisify(gunzip);

/** IDX type code for unsigned bytes, the only element type MNIST-style files use. */
const IDX_UINT8 = 0x08;

/** A parsed IDX array: its dimensions (outermost first) and its elements in row-major order. */
export interface IdxArray {
  dims: number[];
  /** Row-major uint8 elements; a view into the (decompressed) input buffer. */
  data: Uint8Array;
}

/** True when `buf` starts with the gzip magic bytes 1f 8b. */
export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/**
 * Parses an IDX file (as used by MNIST and Fashion-MNIST), gunzipping it first when it is gzipped.
 * `source` names the file in error messages. Only the unsigned byte element type (0x08) is supported.
 */
export function parseIdx(buf: Uint8Array, source: string): IdxArray {
  let raw = buf;
  if (isGzip(buf)) {
    try {
      raw = gunzipSync(buf);
    } catch (err) {
      throw new Error(`${source}: corrupt gzip data (${(err as Error).message})`, { cause: err });
    }
  }
  return parseRawIdx(raw, source);
}

/** Reads and parses an IDX file (gzipped or not) from disk, decompressing off the main thread. */
export async function readIdxFile(path: string): Promise<IdxArray> {
  const buf = await readFile(path);
  if (!isGzip(buf)) return parseRawIdx(buf, path);
  let raw: Buffer;
  try {
    raw = await gunzipAsync(buf);
  } catch (err) {
    throw new Error(`${path}: corrupt gzip data (${(err as Error).message})`, { cause: err });
  }
  return parseRawIdx(raw, path);
}

function parseRawIdx(buf: Uint8Array, source: string): IdxArray {
  if (buf.length < 4) {
    throw new Error(`${source}: truncated IDX header (${buf.length} bytes, need at least 4)`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const typeCode = view.getUint8(2);
  const ndims = view.getUint8(3);
  if (view.getUint8(0) !== 0 || view.getUint8(1) !== 0) {
    const magic = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new Error(`${source}: bad IDX magic ${magic} (expected 00 00 <type> <ndims>)`);
  }
  if (typeCode !== IDX_UINT8) {
    throw new Error(
      `${source}: unsupported IDX element type 0x${typeCode.toString(16).padStart(2, '0')} (only 0x08, unsigned byte, is supported)`,
    );
  }
  if (ndims === 0) throw new Error(`${source}: IDX header declares 0 dimensions`);
  const headerBytes = 4 + 4 * ndims;
  if (buf.length < headerBytes) {
    throw new Error(
      `${source}: truncated IDX header (${buf.length} bytes, need ${headerBytes} for ${ndims} dimensions)`,
    );
  }
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    size *= d;
  }
  const available = buf.length - headerBytes;
  if (available < size) {
    throw new Error(
      `${source}: truncated IDX data (dims ${dims.join('x')} need ${size} bytes, found ${available})`,
    );
  }
  if (available > size) {
    throw new Error(
      `${source}: ${available - size} unexpected trailing bytes after IDX data (dims ${dims.join('x')})`,
    );
  }
  return { dims, data: buf.subarray(headerBytes, headerBytes + size) };
}
