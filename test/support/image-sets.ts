import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import * as jpegJs from 'jpeg-js';
import { PNG } from 'pngjs';

/** An 8-bit RGB colour. */
export type Rgb = readonly [number, number, number];

/** A data set's files by path inside it, in the order an archive lists them. */
export type SetFiles = Record<string, Buffer | string>;

function rgba(width: number, height: number, colour: (x: number, y: number) => Rgb): Buffer {
  const data = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = colour(x, y);
      data.set([r, g, b, 255], (y * width + x) * 4);
    }
  }
  return data;
}

/** An opaque RGB PNG, written by pngjs. */
export function pngImage(width: number, height: number, colour: (x: number, y: number) => Rgb): Buffer {
  const png = new PNG({ width, height });
  rgba(width, height, colour).copy(png.data);
  return PNG.sync.write(png);
}

/** A JPEG, written by jpeg-js at quality 90. */
export function jpegImage(width: number, height: number, colour: (x: number, y: number) => Rgb): Buffer {
  return jpegJs.encode({ width, height, data: rgba(width, height, colour) }, 90).data;
}

/** The PNG with one byte of its first IDAT chunk's data flipped (its CRC no longer matches). */
export function flipIdatByte(png: Buffer): Buffer {
  const at = png.indexOf('IDAT', 8, 'latin1');
  if (at < 0) throw new Error('no IDAT chunk');
  const out = Buffer.from(png);
  out[at + 6] = out[at + 6]! ^ 0xff;
  return out;
}

/**
 * A labelled set: `perClass` PNGs per class folder, `class/<i>.png`, each class a colour of its own and each
 * image a little different from the others.
 */
export function labelledSet(colours: Record<string, Rgb>, perClass: number, side = 16): SetFiles {
  const files: SetFiles = {};
  for (const [name, [r, g, b]] of Object.entries(colours)) {
    for (let i = 0; i < perClass; i++) {
      files[`${name}/${String(i).padStart(2, '0')}.png`] = pngImage(side, side, (x, y) => [
        r,
        g,
        b - ((x + y + i) % 8),
      ]);
    }
  }
  return files;
}

/** Writes `files` under `dir`, creating folders as needed. */
export async function writeSet(dir: string, files: SetFiles): Promise<void> {
  for (const [path, data] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), data);
  }
}

function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name over 100 bytes: ${name}`);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('0', 156);
  header.write('ustar\x0000', 257, 'latin1');
  header.fill(0x20, 148, 156);
  const sum = header.reduce((total, byte) => total + byte, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

/** A ustar archive of `files` as regular members, names written as given (`../x` included). */
export function tarOf(files: SetFiles): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    blocks.push(tarHeader(name, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A zip member: stored unless `deflate`; `declaredSize` makes the directory lie about the inflated size. */
export interface ZipEntry {
  name: string;
  data: Buffer | string;
  deflate?: boolean;
  declaredSize?: number;
}

/** A single-disk zip (no zip64, no extra fields) written by hand. */
export function zipOf(entries: readonly ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const data = Buffer.from(entry.data);
    const stored = entry.deflate ? deflateRawSync(data) : data;
    const name = Buffer.from(entry.name, 'utf8');
    const fields = {
      method: entry.deflate ? 8 : 0,
      crc: crc32(data),
      compressed: stored.length,
      size: entry.declaredSize ?? data.length,
    };
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(fields.method, 8);
    local.writeUInt32LE(fields.crc, 14);
    local.writeUInt32LE(fields.compressed, 18);
    local.writeUInt32LE(fields.size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(fields.method, 10);
    central.writeUInt32LE(fields.crc, 16);
    central.writeUInt32LE(fields.compressed, 20);
    central.writeUInt32LE(fields.size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, stored);
    centrals.push(central, name);
    offset += local.length + name.length + stored.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
