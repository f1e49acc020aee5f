import { open, readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { InvalidDatasetError } from '@gantry/shared';
import { hasValidTarChecksum, readTarMembers } from './tar-reader.ts';
import { readZipMembers } from './zip-reader.ts';

/** One regular file of a data set; `path` is POSIX, relative and normalised (no `./`, no `..`). */
export interface SourceFile {
  path: string;
  data: Buffer;
}

/** Bounds on what one data set may hold, against archive bombs. */
export interface SourceLimits {
  /** Entries seen (files, folders, links, skipped ones included). @default 1_000_000 */
  maxFiles?: number;
  /** Sum of uncompressed member sizes. @default 8 GiB */
  maxTotalBytes?: number;
  /** @default 64 MiB */
  maxFileBytes?: number;
}

/** Where a data set's files come from, as detected from the path's content. */
export type SourceKind = 'directory' | 'tar' | 'tar.gz' | 'zip';

type CompiledSourceLimits = Required<SourceLimits>;

/** A member as an archive reader yields it: raw name, and data to read (at most once) before the next. */
interface ArchiveMember {
  name: string;
  type: 'file' | 'directory' | 'link' | 'other';
  size: number;
  read(): Promise<Buffer>;
}

const NOT_AN_ARCHIVE = 'not a directory, tar, tar.gz or zip archive';

function compileSourceLimits(limits: SourceLimits): CompiledSourceLimits {
  const compiled = {
    maxFiles: limits.maxFiles ?? 1_000_000,
    maxTotalBytes: limits.maxTotalBytes ?? 8 * 2 ** 30,
    maxFileBytes: limits.maxFileBytes ?? 64 * 2 ** 20,
  };
  for (const [name, value] of Object.entries(compiled)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  }
  return compiled;
}

/** Detects a directory by `stat`, an archive by its magic bytes (never by extension). */
export async function detectSourceKind(path: string): Promise<SourceKind> {
  const info = await stat(path).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new InvalidDatasetError(path, 'does not exist', { cause: err });
    throw err;
  });
  if (info.isDirectory()) return 'directory';
  if (!info.isFile()) throw new InvalidDatasetError(path, NOT_AN_ARCHIVE);
  const head = Buffer.alloc(512);
  const handle = await open(path, 'r');
  const { bytesRead } = await handle.read(head, 0, head.length, 0).finally(() => handle.close());
  const magic = head.toString('latin1', 0, 4);
  if (head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  if (magic === 'PK\x03\x04' || magic === 'PK\x05\x06') return 'zip';
  if (bytesRead === 512 && (head.toString('latin1', 257, 262) === 'ustar' || hasValidTarChecksum(head)))
    return 'tar';
  throw new InvalidDatasetError(path, NOT_AN_ARCHIVE);
}

/**
 * Yields a data set's regular files one at a time (tar and tar.gz streamed, zip by positioned reads, a
 * directory sorted by path), skipping folders, hidden entries and `__MACOSX/`; refuses unsafe or oversized ones.
 */
export async function* readSourceFiles(path: string, limits: SourceLimits = {}): AsyncIterable<SourceFile> {
  const compiled = compileSourceLimits(limits);
  const kind = await detectSourceKind(path);
  if (kind === 'directory') {
    yield* readDirectory(path, compiled);
    return;
  }
  const members = kind === 'zip' ? readZipMembers(path) : readTarMembers(path, { gzip: kind === 'tar.gz' });
  yield* checkMembers(path, members, compiled);
}

async function* checkMembers(
  archive: string,
  members: AsyncIterable<ArchiveMember>,
  limits: CompiledSourceLimits,
): AsyncGenerator<SourceFile> {
  const seen = new Set<string>();
  let count = 0;
  let total = 0;
  for await (const member of members) {
    const file = `${archive}:${member.name}`;
    if (++count > limits.maxFiles)
      throw new InvalidDatasetError(file, `more than ${limits.maxFiles} entries`);
    const path = normaliseMemberPath(file, member.name);
    if (member.type === 'file') {
      total += member.size;
      if (total > limits.maxTotalBytes) throw tooLarge(file, 'the data set', limits.maxTotalBytes);
    }
    if (member.type === 'directory' || path === '' || isSkipped(path)) continue;
    if (member.type === 'link') throw new InvalidDatasetError(file, 'links are not allowed');
    if (member.type !== 'file') continue;
    if (member.size > limits.maxFileBytes) throw tooLarge(file, 'the file', limits.maxFileBytes);
    if (seen.has(path)) throw new InvalidDatasetError(file, 'appears twice in the archive');
    seen.add(path);
    yield { path, data: await member.read() };
  }
}

/** Refuses names that could escape the data set; returns the POSIX path without `.` or empty parts. */
function normaliseMemberPath(file: string, name: string): string {
  if (name.includes('\\')) throw new InvalidDatasetError(file, 'backslashes are not allowed in member names');
  if (name.includes('\0')) throw new InvalidDatasetError(file, 'NUL bytes are not allowed in member names');
  if (name.startsWith('/')) throw new InvalidDatasetError(file, 'absolute paths are not allowed');
  if (/^[A-Za-z]:/.test(name)) throw new InvalidDatasetError(file, 'drive letters are not allowed');
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new InvalidDatasetError(file, "'..' path components are not allowed");
  return parts.join('/');
}

function isSkipped(path: string): boolean {
  return path.split('/').some((part) => part.startsWith('.') || part === '__MACOSX');
}

function tooLarge(file: string, what: string, limit: number): InvalidDatasetError {
  return new InvalidDatasetError(file, `${what} is larger than the limit of ${limit} bytes`);
}

/** Lists every file first (so limits fail before any read, and order is by full path), then reads each. */
async function* readDirectory(root: string, limits: CompiledSourceLimits): AsyncGenerator<SourceFile> {
  const realRoot = await realpath(root);
  const files: string[] = [];
  const folders = [''];
  let count = 0;
  let total = 0;
  for (let folder = folders.pop(); folder !== undefined; folder = folders.pop()) {
    for (const entry of await readdir(join(root, folder), { withFileTypes: true })) {
      const path = folder === '' ? entry.name : `${folder}/${entry.name}`;
      const file = join(root, path);
      if (++count > limits.maxFiles)
        throw new InvalidDatasetError(file, `more than ${limits.maxFiles} entries`);
      if (isSkipped(entry.name)) continue;
      if (entry.isSymbolicLink()) await refuseOutsideLink(realRoot, folder, file);
      else if (entry.isDirectory()) folders.push(path);
      else if (entry.isFile()) {
        const { size } = await stat(file);
        if (size > limits.maxFileBytes) throw tooLarge(file, 'the file', limits.maxFileBytes);
        total += size;
        if (total > limits.maxTotalBytes) throw tooLarge(file, 'the data set', limits.maxTotalBytes);
        files.push(path);
      }
    }
  }
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const path of files) {
    const data = await readFile(join(root, path));
    if (data.length > limits.maxFileBytes) throw tooLarge(join(root, path), 'the file', limits.maxFileBytes);
    yield { path, data };
  }
}

/** Symlinks are never followed; one that points outside the data set is refused, the others skipped. */
async function refuseOutsideLink(realRoot: string, folder: string, file: string): Promise<void> {
  // A dangling link has no real path: judge where it points instead.
  const target = await realpath(file).catch(async () => resolve(realRoot, folder, await readlink(file)));
  const rel = relative(realRoot, target);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new InvalidDatasetError(file, 'symlink points outside the data set');
  }
}
