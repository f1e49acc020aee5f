import { type FileHandle, open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { InvalidDatasetError } from '@gantry/shared';

/** One zip member as listed in the central directory; `read()` inflates it, capped at its declared size. */
export interface ZipMember {
  name: string;
  type: 'file' | 'directory' | 'link' | 'other';
  size: number;
  read(): Promise<Buffer>;
}

interface CentralEntry {
  label: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const READ_CHUNK = 1 << 16;
const WINDOW = 1 << 20;
const S_IFMT = 0o170000;

/** Node >= 20.15 has a native CRC-32; older 20.x get the table-driven one below. */
const crc32: (data: Buffer) => number =
  typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) : crc32Table;

/** Reads a zip through its central directory with positioned reads, yielding members one at a time. */
export async function* readZipMembers(path: string): AsyncGenerator<ZipMember> {
  const handle = await open(path, 'r');
  try {
    const { size: fileSize } = await handle.stat();
    const end = await findEndOfCentralDirectory(handle, fileSize, path);
    const central = windowOver(handle, end.offset + end.size);
    let pos = end.offset;
    for (let i = 0; i < end.entries; i++) {
      const fixed = await central(pos, CENTRAL_SIZE);
      if (fixed?.readUInt32LE(0) !== CENTRAL_SIG)
        throw new InvalidDatasetError(path, 'corrupt central directory');
      const nameBytes = await central(pos + CENTRAL_SIZE, fixed.readUInt16LE(28));
      if (nameBytes === undefined) throw new InvalidDatasetError(path, 'corrupt central directory');
      const name = nameBytes.toString('utf8');
      pos += CENTRAL_SIZE + nameBytes.length + fixed.readUInt16LE(30) + fixed.readUInt16LE(32);
      const entry: CentralEntry = {
        label: `${path}:${name}`,
        method: fixed.readUInt16LE(10),
        crc: fixed.readUInt32LE(16),
        compressedSize: fixed.readUInt32LE(20),
        size: fixed.readUInt32LE(24),
        localOffset: fixed.readUInt32LE(42),
      };
      // Bit 0: traditional or AES encryption; bit 6: strong encryption.
      if (fixed.readUInt16LE(8) & 0x41)
        throw new InvalidDatasetError(entry.label, 'encrypted entries are not supported');
      if ([entry.compressedSize, entry.size, entry.localOffset].includes(0xffffffff)) {
        throw new InvalidDatasetError(entry.label, 'zip64 entries are not supported');
      }
      const type = memberType(name, fixed.readUInt16LE(4) >> 8, fixed.readUInt32LE(38));
      yield { name, type, size: entry.size, read: () => readEntry(handle, entry, end.offset) };
    }
  } finally {
    await handle.close();
  }
}

async function findEndOfCentralDirectory(
  handle: FileHandle,
  fileSize: number,
  path: string,
): Promise<{ entries: number; offset: number; size: number }> {
  const tailStart = Math.max(0, fileSize - EOCD_SIZE - 0xffff);
  const tail = await readAt(handle, tailStart, fileSize - tailStart);
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== EOCD_SIG || i + EOCD_SIZE + tail.readUInt16LE(i + 20) > tail.length)
      continue;
    const entries = tail.readUInt16LE(i + 10);
    const size = tail.readUInt32LE(i + 12);
    const offset = tail.readUInt32LE(i + 16);
    const zip64Locator = i >= 20 && tail.readUInt32LE(i - 20) === ZIP64_LOCATOR_SIG;
    if (zip64Locator || entries === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
      throw new InvalidDatasetError(path, 'zip64 archives are not supported');
    }
    if (
      tail.readUInt16LE(i + 4) !== 0 ||
      tail.readUInt16LE(i + 6) !== 0 ||
      tail.readUInt16LE(i + 8) !== entries
    ) {
      throw new InvalidDatasetError(path, 'multi-part zip archives are not supported');
    }
    if (offset + size > tailStart + i) {
      throw new InvalidDatasetError(path, 'truncated archive: the central directory is missing');
    }
    return { entries, offset, size };
  }
  throw new InvalidDatasetError(path, 'truncated archive: no end of central directory record');
}

/** Unix mode in the high 16 bits of the external attributes when made on Unix (3) or macOS (19). */
function memberType(name: string, madeBy: number, external: number): ZipMember['type'] {
  const format = madeBy === 3 || madeBy === 19 ? (external >>> 16) & S_IFMT : 0;
  if (format === 0o120000) return 'link';
  if (name.endsWith('/') || format === 0o040000 || external & 0x10) return 'directory';
  return format === 0 || format === 0o100000 ? 'file' : 'other';
}

async function readEntry(handle: FileHandle, entry: CentralEntry, centralStart: number): Promise<Buffer> {
  const { label, method, compressedSize, size } = entry;
  if (method !== 0 && method !== 8) {
    throw new InvalidDatasetError(
      label,
      `unsupported compression method ${method} (only stored and deflate)`,
    );
  }
  const local = await readAt(handle, entry.localOffset, LOCAL_SIZE);
  if (local.length < LOCAL_SIZE || local.readUInt32LE(0) !== LOCAL_SIG) {
    throw new InvalidDatasetError(label, 'corrupt local header');
  }
  const dataStart = entry.localOffset + LOCAL_SIZE + local.readUInt16LE(26) + local.readUInt16LE(28);
  if (dataStart + compressedSize > centralStart) {
    throw new InvalidDatasetError(label, 'truncated archive: member data runs into the central directory');
  }
  if (method === 0 && compressedSize !== size) {
    throw new InvalidDatasetError(label, 'stored member whose size differs from its declared size');
  }
  const data = method === 0 ? await readAt(handle, dataStart, size) : await inflate(handle, dataStart, entry);
  if (crc32(data) !== entry.crc) throw new InvalidDatasetError(label, 'CRC-32 mismatch');
  return data;
}

/**
 * Inflates a member, stopping as soon as the output passes its declared size (which the caller has already
 * held to maxFileBytes): a member that lies about its size never inflates further than that into memory.
 */
async function inflate(handle: FileHandle, start: number, entry: CentralEntry): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    await pipeline(
      chunksOf(handle, start, entry.compressedSize),
      zlib.createInflateRaw(),
      async (inflated) => {
        for await (const chunk of inflated as AsyncIterable<Buffer>) {
          got += chunk.length;
          if (got > entry.size) {
            throw new InvalidDatasetError(
              entry.label,
              `inflates past its declared size of ${entry.size} bytes`,
            );
          }
          chunks.push(chunk);
        }
      },
    );
  } catch (err) {
    if (!(err as NodeJS.ErrnoException).code?.startsWith('Z_')) throw err;
    throw new InvalidDatasetError(entry.label, 'corrupt deflate data', { cause: err });
  }
  if (got !== entry.size) {
    throw new InvalidDatasetError(entry.label, `inflates to ${got} bytes, not the declared ${entry.size}`);
  }
  return Buffer.concat(chunks, got);
}

async function* chunksOf(handle: FileHandle, start: number, length: number): AsyncGenerator<Buffer> {
  for (let pos = start; pos < start + length; pos += READ_CHUNK) {
    yield await readAt(handle, pos, Math.min(READ_CHUNK, start + length - pos));
  }
}

/** Positioned read of up to `length` bytes; shorter only at the end of the file. */
async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buffer.subarray(0, got);
}

/** Reads [pos, pos + length) below `end` through a 1 MiB window; undefined when the range passes `end`. */
function windowOver(
  handle: FileHandle,
  end: number,
): (pos: number, length: number) => Promise<Buffer | undefined> {
  let window: Buffer = Buffer.alloc(0);
  let windowStart = 0;
  return async (pos, length) => {
    if (pos + length > end) return undefined;
    if (pos < windowStart || pos + length > windowStart + window.length) {
      windowStart = pos;
      window = await readAt(handle, pos, Math.min(end - pos, Math.max(length, WINDOW)));
      if (window.length < length) return undefined;
    }
    return window.subarray(pos - windowStart, pos - windowStart + length);
  };
}

let crcTable: Uint32Array | undefined;

function crc32Table(data: Buffer): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  let crc = 0xffffffff;
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
