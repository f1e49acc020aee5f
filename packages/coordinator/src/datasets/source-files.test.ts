import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { InvalidDatasetError } from '@gantry/shared';
import { afterAll, describe, expect, it } from 'vitest';
import { detectSourceKind, readSourceFiles, type SourceFile, type SourceLimits } from './source-files.ts';

const root = mkdtempSync(join(tmpdir(), 'gantry-source-files-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let written = 0;
/** Writes `data` under a fresh name in the temp dir (extension chosen by the test, never trusted). */
function save(name: string, data: Buffer): string {
  const path = join(root, `${written++}-${name}`);
  writeFileSync(path, data);
  return path;
}

interface TarEntry {
  name: string;
  data?: string | Buffer;
  type?: string;
  linkname?: string;
  prefix?: string;
  /** Header size when it should differ from the data's length. */
  size?: number;
  ustar?: boolean;
}

function tarHeader(entry: TarEntry, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(entry.name, 0, 100);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write(entry.type ?? '0', 156);
  header.write(entry.linkname ?? '', 157, 100);
  if (entry.ustar !== false) header.write('ustar\x0000', 257, 'latin1');
  header.write(entry.prefix ?? '', 345, 155);
  header.fill(0x20, 148, 156);
  const sum = header.reduce((total, byte) => total + byte, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

function tar(entries: TarEntry[], { end = true } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    blocks.push(
      tarHeader(entry, entry.size ?? data.length),
      data,
      Buffer.alloc((512 - (data.length % 512)) % 512),
    );
  }
  if (end) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A pax extended header's records; each length counts its own digits. */
function pax(records: Record<string, string>): Buffer {
  const lines = Object.entries(records).map(([key, value]) => {
    const body = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(body) + 1;
    while (String(length).length + Buffer.byteLength(body) !== length) length++;
    return `${length}${body}`;
  });
  return Buffer.from(lines.join(''));
}

interface ZipEntry {
  name: string;
  data?: string | Buffer;
  method?: number;
  /** Stored bytes when they should not be the deflated `data` (a bomb, a corrupt stream). */
  compressed?: Buffer;
  size?: number;
  crc?: number;
  unixMode?: number;
  flags?: number;
}

function zip(entries: ZipEntry[], eocd: { entries?: number; cdOffset?: number } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    const method = entry.method ?? 8;
    const stored = entry.compressed ?? (method === 8 ? deflateRawSync(data) : data);
    const name = Buffer.from(entry.name);
    const fields = {
      crc: entry.crc ?? crc32(data),
      compressed: stored.length,
      size: entry.size ?? data.length,
    };
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(entry.flags ?? 0, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(fields.crc, 14);
    local.writeUInt32LE(fields.compressed, 18);
    local.writeUInt32LE(fields.size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(entry.flags ?? 0, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(fields.crc, 16);
    central.writeUInt32LE(fields.compressed, 20);
    central.writeUInt32LE(fields.size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((entry.unixMode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, stored);
    centrals.push(central, name);
    offset += local.length + name.length + stored.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(eocd.entries ?? entries.length, 8);
  end.writeUInt16LE(eocd.entries ?? entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(eocd.cdOffset ?? offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

async function collect(path: string, limits?: SourceLimits): Promise<SourceFile[]> {
  const files: SourceFile[] = [];
  for await (const file of readSourceFiles(path, limits)) files.push(file);
  return files;
}

/** Reads `path` to the end and returns the refusal, asserting its class and code. */
async function refusal(path: string, limits?: SourceLimits): Promise<InvalidDatasetError> {
  const error = await collect(path, limits).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(InvalidDatasetError);
  expect((error as InvalidDatasetError).code).toBe('INVALID_DATASET');
  return error as InvalidDatasetError;
}

const asText = (files: SourceFile[]) => files.map((f) => [f.path, f.data.toString()]);
const sorted = (files: SourceFile[]) => asText(files).sort(([a], [b]) => (a! < b! ? -1 : 1));

const IMAGES: Record<string, string> = {
  'cats/a.png': 'A',
  'cats/b.png': 'B',
  'dogs/c.png': 'C',
  'top.png': 'T',
};
const NOISE: Record<string, string> = {
  '.DS_Store': 'x',
  'cats/.hidden.png': 'x',
  '.git/config': 'x',
  '__MACOSX/cats/._a.png': 'x',
};

describe('readSourceFiles', () => {
  it('yields the same files from a directory, a tar, a tar.gz and a zip, skipping folders and hidden entries', async () => {
    const all = { ...IMAGES, ...NOISE };
    const folder = join(root, 'same');
    for (const [name, data] of Object.entries(all)) {
      mkdirSync(dirname(join(folder, name)), { recursive: true });
      writeFileSync(join(folder, name), data);
    }
    const tarEntries: TarEntry[] = [
      { name: './cats/', type: '5' },
      ...Object.entries(all).map(([name, data]) => ({ name: `./${name}`, data })),
    ];
    const tarFile = tar(tarEntries);
    const zipFile = zip([
      { name: 'cats/', unixMode: 0o40755 },
      ...Object.entries(all).map(([name, data]) => ({ name, data })),
    ]);
    const expected = Object.entries(IMAGES);

    expect(asText(await collect(folder))).toEqual(expected);
    for (const path of [save('a.tar', tarFile), save('a.tgz', gzipSync(tarFile)), save('a.zip', zipFile)]) {
      expect(sorted(await collect(path))).toEqual(expected);
    }
  });

  it('lists a directory in sorted path order', async () => {
    const folder = join(root, 'order');
    for (const name of ['b.png', 'a/z.png', 'a-c.png', 'a/b/c.png']) {
      mkdirSync(dirname(join(folder, name)), { recursive: true });
      writeFileSync(join(folder, name), name);
    }
    expect((await collect(folder)).map((f) => f.path)).toEqual(['a-c.png', 'a/b/c.png', 'a/z.png', 'b.png']);
  });

  it('detects the kind by magic bytes, not by extension', async () => {
    const one = [{ name: 'x.png', data: 'X' }];
    expect(await detectSourceKind(save('x.tar', zip(one)))).toBe('zip');
    expect(await detectSourceKind(save('x.zip', tar(one)))).toBe('tar');
    expect(await detectSourceKind(save('x.bin', gzipSync(tar(one))))).toBe('tar.gz');
    expect(await detectSourceKind(root)).toBe('directory');
    const oldStyle = save('old', tar([{ name: 'x.png', data: 'X', ustar: false }]));
    expect(await detectSourceKind(oldStyle)).toBe('tar');
    expect(asText(await collect(oldStyle))).toEqual([['x.png', 'X']]);
    const emptyZip = save('empty.zip', zip([]));
    expect(await detectSourceKind(emptyZip)).toBe('zip');
    expect(await collect(emptyZip)).toEqual([]);
  });

  it('refuses a path that is not a directory or archive, or does not exist', async () => {
    const text = save('notes.zip', Buffer.from('just some text, not an archive'.repeat(40)));
    expect((await refusal(text)).context.file).toBe(text);
    const missing = join(root, 'missing.tar');
    expect((await refusal(missing)).context.file).toBe(missing);
  });

  it('honours pax path records, GNU long names and ustar prefixes, and skips global headers', async () => {
    const long = `${'deep/'.repeat(30)}cat.png`;
    const file = save(
      'long.tar',
      tar([
        { name: 'pax_global_header', type: 'g', data: pax({ comment: 'made by hand' }) },
        { name: 'PaxHeaders/cat.png', type: 'x', data: pax({ path: `pax/${long}` }) },
        { name: 'truncated-name.png', data: 'P' },
        { name: '././@LongLink', type: 'L', data: `gnu/${long}\0` },
        { name: 'truncated-name.png', data: 'G' },
        { name: 'cat.png', prefix: 'ustar/prefix', data: 'U' },
      ]),
    );
    expect(asText(await collect(file))).toEqual([
      [`pax/${long}`, 'P'],
      [`gnu/${long}`, 'G'],
      ['ustar/prefix/cat.png', 'U'],
    ]);
  });

  const formats = {
    tar: (entries: TarEntry[]) => save('m.tar', tar(entries)),
    zip: (entries: TarEntry[]) => save('m.zip', zip(entries)),
  };

  describe.each(Object.entries(formats))('in a %s', (_, write) => {
    it.each([
      'cats/../../etc/passwd',
      '../escape.png',
      '/etc/passwd',
      'C:/windows/cat.png',
      'cats\\..\\..\\cat.png',
    ])('refuses the member path %s', async (name) => {
      const path = write([
        { name: 'ok.png', data: 'ok' },
        { name, data: 'evil' },
      ]);
      expect((await refusal(path)).context.file).toBe(`${path}:${name}`);
    });

    it('refuses more members than maxFiles, a member over maxFileBytes and a total over maxTotalBytes', async () => {
      const three = write(['a.png', 'b.png', 'c.png'].map((name) => ({ name, data: 'x'.repeat(10) })));
      expect((await refusal(three, { maxFiles: 2 })).context.file).toBe(`${three}:c.png`);
      expect((await refusal(three, { maxTotalBytes: 25 })).context.file).toBe(`${three}:c.png`);
      const big = write([{ name: 'big.png', data: 'x'.repeat(2000) }]);
      expect((await refusal(big, { maxFileBytes: 1000 })).context.file).toBe(`${big}:big.png`);
      expect(await collect(three, { maxFiles: 3, maxTotalBytes: 30, maxFileBytes: 10 })).toHaveLength(3);
    });

    it('refuses a member appearing twice', async () => {
      const path = write([
        { name: 'a.png', data: '1' },
        { name: './a.png', data: '2' },
      ]);
      expect((await refusal(path)).context.file).toBe(`${path}:./a.png`);
    });
  });

  it('refuses links in a tar and a zip', async () => {
    for (const type of ['1', '2']) {
      const path = save('link.tar', tar([{ name: 'cat.png', type, linkname: '/etc/passwd' }]));
      expect((await refusal(path)).context.file).toBe(`${path}:cat.png`);
    }
    const path = save('link.zip', zip([{ name: 'cat.png', data: '/etc/passwd', unixMode: 0o120777 }]));
    expect((await refusal(path)).context.file).toBe(`${path}:cat.png`);
  });

  it('skips a directory symlink pointing inside and refuses one pointing outside', async () => {
    const folder = join(root, 'links');
    mkdirSync(join(folder, 'cats'), { recursive: true });
    writeFileSync(join(folder, 'cats', 'a.png'), 'A');
    symlinkSync(join(folder, 'cats', 'a.png'), join(folder, 'inside.png'));
    symlinkSync('cats', join(folder, 'inside-dir'));
    expect(asText(await collect(folder))).toEqual([['cats/a.png', 'A']]);
    symlinkSync('../../../etc/passwd', join(folder, 'cats', 'outside.png'));
    expect((await refusal(folder)).context.file).toBe(join(folder, 'cats', 'outside.png'));
  });

  it('applies the limits to a directory', async () => {
    const folder = join(root, 'limits');
    mkdirSync(folder);
    for (const name of ['a.png', 'b.png', 'c.png']) writeFileSync(join(folder, name), 'x'.repeat(10));
    expect((await refusal(folder, { maxFiles: 2 })).context.file).toMatch(/[abc]\.png$/);
    expect((await refusal(folder, { maxTotalBytes: 25 })).context.file).toMatch(/[abc]\.png$/);
    expect((await refusal(folder, { maxFileBytes: 9 })).context.file).toMatch(/[abc]\.png$/);
  });

  it.each([
    ['a small size', 100],
    ['exactly maxFileBytes', 1 << 20],
  ])('refuses a zip bomb declaring %s quickly, without inflating it', async (_, size) => {
    const bomb = deflateRawSync(Buffer.alloc(64 << 20));
    const path = save('bomb.zip', zip([{ name: 'bomb.png', compressed: bomb, size, crc: 0 }]));
    globalThis.gc?.();
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }, 1);
    const started = performance.now();
    const error = await refusal(path, { maxFileBytes: 1 << 20 }).finally(() => clearInterval(sampler));
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    expect(error.context.file).toBe(`${path}:bomb.png`);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(peak - before).toBeLessThan(16 << 20);
  });

  it('refuses unreadable tar and tar.gz archives', async () => {
    const good = tar([
      { name: 'a.png', data: 'A'.repeat(600) },
      { name: 'b.png', data: 'B' },
    ]);
    const truncated = save('cut.tar', good.subarray(0, 512 + 300));
    expect((await refusal(truncated)).context.file).toBe(`${truncated}:a.png`);
    const unterminated = save('unterminated.tar', tar([{ name: 'a.png', data: 'A' }], { end: false }));
    expect((await refusal(unterminated)).context.file).toBe(unterminated);
    const badSum = Buffer.from(good);
    badSum[1536 + 120] = 0x31; // inside b.png's header (after a.png's 512 + 1024 bytes), not its checksum
    const badSumPath = save('sum.tar', badSum);
    expect((await refusal(badSumPath)).context.file).toBe(`${badSumPath}:b.png`);
    const unknownType = save('sparse.tar', tar([{ name: 'a.png', type: 'S', data: 'A' }]));
    expect((await refusal(unknownType)).context.file).toBe(`${unknownType}:a.png`);
    const gz = gzipSync(tar([{ name: 'a.png', data: Buffer.alloc(100_000, 7) }]));
    const cutGz = save('cut.tgz', gz.subarray(0, gz.length - 40));
    expect((await refusal(cutGz)).context.file).toContain(cutGz);
    const garbled = Buffer.from(gz);
    garbled.fill(0xff, 20, 60);
    const garbledPath = save('garbled.tgz', garbled);
    expect((await refusal(garbledPath)).context.file).toContain(garbledPath);
  });

  it('refuses unreadable, zip64 and encrypted zip archives', async () => {
    const member = (entry: Partial<ZipEntry>) =>
      save('bad.zip', zip([{ name: 'a.png', data: 'AAAA', ...entry }]));
    for (const entry of [{ method: 12 }, { crc: 1234 }, { size: 0xffffffff }, { flags: 1 }, { size: 3 }]) {
      const path = member(entry);
      expect((await refusal(path)).context.file).toBe(`${path}:a.png`);
    }
    const corrupt = member({ compressed: Buffer.from([0xff, 0xff, 0xff]) });
    expect((await refusal(corrupt)).context.file).toBe(`${corrupt}:a.png`);
    const good = zip([{ name: 'a.png', data: 'A' }]);
    const archiveLevel = [
      good.subarray(0, good.length - 10), // truncated: no end record
      zip([{ name: 'a.png', data: 'A' }], { cdOffset: 5000 }), // central directory missing
      zip([{ name: 'a.png', data: 'A' }], { entries: 0xffff }), // zip64 marker
    ];
    for (const bytes of archiveLevel) {
      const path = save('bad.zip', bytes);
      expect((await refusal(path)).context.file).toBe(path);
    }
  });

  it('stops reading cleanly when the caller stops early', async () => {
    const path = save(
      'many.tgz',
      gzipSync(tar(['a.png', 'b.png', 'c.png'].map((name) => ({ name, data: name })))),
    );
    for await (const file of readSourceFiles(path)) {
      expect(file.path).toBe('a.png');
      break;
    }
  });
});
