import type { NamedArray } from './models/param-store.ts';

const MAGIC = 0x47544e50; // 'GTNP'

/**
 * Binary container for named float32 arrays: magic, header length, JSON header ({name, shape, offset,
 * length}[]), then the raw little-endian data, 4-byte aligned. Used for checkpoint objects.
 */
export function packArrays(arrays: readonly NamedArray[]): Uint8Array {
  let offset = 0;
  const entries = arrays.map((a) => {
    const e = { name: a.name, shape: a.shape, offset, length: a.data.length };
    offset += a.data.length;
    return e;
  });
  const header = new TextEncoder().encode(JSON.stringify(entries));
  const headerPadded = Math.ceil(header.length / 4) * 4;
  const out = new Uint8Array(8 + headerPadded + offset * 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, header.length, true);
  out.set(header, 8);
  const body = new Float32Array(out.buffer, 8 + headerPadded, offset);
  entries.forEach((e, i) => {
    body.set(arrays[i]!.data, e.offset);
  });
  return out;
}

/** Inverse of packArrays. @throws Error on a bad magic or a truncated body. */
export function unpackArrays(bytes: Uint8Array): NamedArray[] {
  if (bytes.length < 8) throw new Error('tensor pack truncated');
  const copy = new Uint8Array(bytes); // aligned private buffer
  const view = new DataView(copy.buffer);
  if (view.getUint32(0, true) !== MAGIC) throw new Error('not a tensor pack (bad magic)');
  const headerLen = view.getUint32(4, true);
  const headerPadded = Math.ceil(headerLen / 4) * 4;
  if (8 + headerPadded > copy.length) throw new Error('tensor pack header truncated');
  const entries = JSON.parse(new TextDecoder().decode(copy.subarray(8, 8 + headerLen))) as {
    name: string;
    shape: number[];
    offset: number;
    length: number;
  }[];
  const total = (copy.length - 8 - headerPadded) / 4;
  const body = new Float32Array(copy.buffer, 8 + headerPadded, Math.floor(total));
  return entries.map((e) => {
    if (e.offset + e.length > body.length) throw new Error(`tensor pack body truncated at ${e.name}`);
    return { name: e.name, shape: e.shape, data: body.slice(e.offset, e.offset + e.length) };
  });
}
