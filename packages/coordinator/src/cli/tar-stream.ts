import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

/** A file of a folder being sent as a tar archive. */
interface TarMember {
  path: string;
  abs: string;
  size: number;
}

/** Every regular file under `dir` (hidden ones left out, symlinks not followed), sorted by path. */
export async function folderFiles(dir: string): Promise<TarMember[]> {
  const out: TarMember[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const abs = join(d, e.name);
      if (e.isDirectory()) await walk(abs);
      else if (e.isFile())
        out.push({ path: relative(dir, abs).split(sep).join('/'), abs, size: (await stat(abs)).size });
    }
  };
  await walk(dir);
  return out;
}

function header(name: string, size: number, type: '0' | 'x'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** A pax record `<len> path=<name>\n`, whose length counts its own digits. */
function paxPath(name: string): Buffer {
  const body = ` path=${name}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len += 1;
  return Buffer.from(`${len}${body}`);
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** Bytes the tar of `files` takes, for progress. */
export function tarSize(files: readonly TarMember[]): number {
  let n = 1024;
  for (const f of files) {
    if (Buffer.byteLength(f.path) > 100) n += 512 + 512 * Math.ceil(paxPath(f.path).length / 512);
    n += 512 + 512 * Math.ceil(f.size / 512);
  }
  return n;
}

/** Streams `files` as a POSIX tar (pax headers for names over 100 bytes), one file open at a time. */
export async function* tarStream(files: readonly TarMember[]): AsyncGenerator<Buffer> {
  for (const f of files) {
    if (Buffer.byteLength(f.path) > 100) {
      const rec = paxPath(f.path);
      yield header('PaxHeader', rec.length, 'x');
      yield Buffer.concat([rec, pad(rec.length)]);
    }
    yield header(f.path, f.size, '0');
    let sent = 0;
    for await (const chunk of createReadStream(f.abs)) {
      sent += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (sent !== f.size) throw new Error(`${f.abs} changed size while it was being sent`);
    yield pad(f.size);
  }
  yield Buffer.alloc(1024);
}
