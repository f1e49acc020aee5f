import { createReadStream } from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InvalidDatasetError } from '@gantry/shared';

/** One tar member as stored: its raw name, what it is, and its data (read at most once, before the next). */
export interface TarMember {
  name: string;
  type: 'file' | 'directory' | 'link' | 'other';
  size: number;
  read(): Promise<Buffer>;
}

const BLOCK = 512;
/** Cap on a pax or GNU long-name record, which is read whole into memory. */
const MAX_META_BYTES = 1 << 20;
/** Cap on metadata headers in a row before a real member; a real archive has two or three. */
const MAX_META_IN_A_ROW = 16;
/** How far past the end-of-archive block a tar.gz is read, for gunzip to verify its trailer. */
const MAX_TRAILER_BYTES = 1 << 20;

const TYPES: Record<string, TarMember['type'] | 'meta'> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'link',
  '5': 'directory',
  D: 'directory',
  '3': 'other',
  '4': 'other',
  '6': 'other',
  x: 'meta',
  g: 'meta',
  L: 'meta',
  K: 'meta',
};

/** True when a 512-byte block is a tar header: its stored checksum matches (unsigned or signed sum). */
export function hasValidTarChecksum(block: Buffer): boolean {
  const stored = parseNumber(block.subarray(148, 156));
  if (stored === undefined || block.length < BLOCK) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** Reads a tar (or, with `gzip`, a tar.gz) as a stream, yielding its members with pax / GNU names applied. */
export async function* readTarMembers(path: string, options: { gzip: boolean }): AsyncGenerator<TarMember> {
  const file = createReadStream(path);
  const stream: Readable = options.gzip ? pipeline(file, createGunzip(), () => {}) : file;
  const bytes = new ByteReader(stream);
  let current = '';
  const refuse = (reason: string, cause?: unknown): InvalidDatasetError =>
    new InvalidDatasetError(current === '' ? path : `${path}:${current}`, reason, { cause });
  const guard = <T>(io: Promise<T>): Promise<T> =>
    io.catch((err: unknown) => {
      throw options.gzip && isZlibError(err) ? refuse('corrupt gzip data', err) : err;
    });
  const readExactly = async (n: number, what: string): Promise<Buffer> => {
    const data = await guard(bytes.read(n));
    if (data.length < n) throw refuse(`truncated archive: ${what} ends early`);
    return data;
  };
  try {
    const pending = new Map<string, string>();
    let metaInARow = 0;
    for (;;) {
      const block = await guard(bytes.read(BLOCK));
      if (block.length === 0) throw refuse('truncated archive: no end-of-archive marker');
      if (block.length < BLOCK) throw refuse('truncated archive: header ends early');
      if (block.every((b) => b === 0)) {
        // Read on a little so that gunzip checks its trailer (CRC-32 and length) in the usual case.
        if (options.gzip) await guard(bytes.skip(MAX_TRAILER_BYTES));
        return;
      }
      current = cString(block.subarray(0, 100));
      if (!hasValidTarChecksum(block)) throw refuse('bad tar header checksum');
      const header = parseHeader(block);
      const kind = TYPES[header.type];
      if (kind === 'meta') {
        current = header.name;
        if (++metaInARow > MAX_META_IN_A_ROW) throw refuse('too many metadata headers in a row');
        if (header.size < 0 || header.size > MAX_META_BYTES) throw refuse('bad metadata record size');
        const data = await readExactly(header.size + padTo(header.size), 'metadata record');
        const record = data.subarray(0, header.size);
        if (header.type === 'x') for (const [k, v] of parsePax(record, refuse)) pending.set(k, v);
        if (header.type === 'L') pending.set('path', cString(record));
        current = '';
        continue;
      }
      current = pending.get('path') ?? header.name;
      if (kind === undefined) throw refuse(`unsupported tar entry type '${header.type}'`);
      const size = pending.has('size') ? Number(pending.get('size')) : header.size;
      if (!Number.isSafeInteger(size) || size < 0) throw refuse('bad member size');
      const padding = padTo(size);
      metaInARow = 0;
      pending.clear();
      const type = kind === 'file' && current.endsWith('/') ? 'directory' : kind;
      let consumed = false;
      yield {
        name: current,
        type,
        size,
        read: async () => {
          consumed = true;
          const data = await readExactly(size, 'member data');
          await readExactly(padding, 'member padding');
          return data;
        },
      };
      if (!consumed && (await guard(bytes.skip(size + padding))) < size + padding) {
        throw refuse('truncated archive: member data ends early');
      }
      current = '';
    }
  } finally {
    stream.destroy();
  }
}

function parseHeader(block: Buffer): { name: string; type: string; size: number } {
  const name = cString(block.subarray(0, 100));
  // POSIX ustar ("ustar\0") splits long names into prefix + name; GNU ("ustar  ") uses that space otherwise.
  const posix = block.toString('latin1', 257, 263) === 'ustar\0';
  const prefix = posix ? cString(block.subarray(345, 500)) : '';
  return {
    name: prefix === '' ? name : `${prefix}/${name}`,
    type: String.fromCharCode(block[156]!),
    size: parseNumber(block.subarray(124, 136)) ?? -1,
  };
}

function isZlibError(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code?.startsWith('Z_') === true;
}

function padTo(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end === -1 ? bytes.length : end);
}

/** Octal ASCII (NUL- or space-terminated), or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(field: Buffer): number | undefined {
  if (field.length > 0 && field[0]! & 0x80) {
    if (field[0] !== 0x80) return undefined;
    let value = 0;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return Number.isSafeInteger(value) ? value : undefined;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  return /^[0-7]*$/.test(text) ? Number.parseInt(text || '0', 8) : undefined;
}

/** Parses pax records (`"<len> <key>=<value>\n"`, len in bytes and counting itself). */
function parsePax(data: Buffer, refuse: (reason: string) => Error): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < data.length && data[pos] !== 0) {
    const space = data.indexOf(0x20, pos);
    const length = space === -1 ? Number.NaN : Number(data.toString('latin1', pos, space));
    const end = pos + length;
    if (!Number.isInteger(length) || end <= space || end > data.length || data[end - 1] !== 0x0a) {
      throw refuse('malformed pax header');
    }
    const record = data.toString('utf8', space + 1, end - 1);
    const eq = record.indexOf('=');
    if (eq === -1) throw refuse('malformed pax header');
    records.set(record.slice(0, eq), record.slice(eq + 1));
    pos = end;
  }
  return records;
}

/** Exact-length reads over a stream of chunks; a short result means the stream ended. */
class ByteReader {
  readonly #chunks: AsyncIterator<Buffer>;
  #head: Buffer = Buffer.alloc(0);

  constructor(source: AsyncIterable<Buffer>) {
    this.#chunks = source[Symbol.asyncIterator]();
  }

  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    const got = await this.#take(n, (part) => parts.push(part));
    return Buffer.concat(parts, got);
  }

  skip(n: number): Promise<number> {
    return this.#take(n, () => {});
  }

  async #take(n: number, use: (part: Buffer) => void): Promise<number> {
    let got = 0;
    while (got < n) {
      if (this.#head.length === 0) {
        const next = await this.#chunks.next();
        if (next.done) break;
        this.#head = next.value;
        continue;
      }
      const part = this.#head.subarray(0, n - got);
      this.#head = this.#head.subarray(part.length);
      use(part);
      got += part.length;
    }
    return got;
  }
}
