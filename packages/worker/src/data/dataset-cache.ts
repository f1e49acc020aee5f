import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type DatasetManifest,
  datasetKeys,
  datasetManifestSchema,
  GantryError,
  type Logger,
  type ObjectStore,
} from '@gantry/shared';

/** Thrown when a downloaded data set does not match its manifest; the download is discarded. */
export class CorruptDatasetError extends GantryError {
  constructor(name: string, version: string, file: string, why: string) {
    super('CORRUPT_DATASET', 500, `data set ${name}@${version}: ${file} ${why}`, {
      context: { name, version, file },
    });
  }
}

/**
 * Thrown when the cache's disk has no room for a version even after evicting every version not in use: a
 * fault of this node, not of the trial (its job goes back to the queue for another worker).
 */
export class CacheFullError extends GantryError {
  constructor(dir: string, id: string, bytes: number, cause: unknown) {
    super(
      'CACHE_FULL',
      507,
      `data set cache ${dir} is full (no space left on device): ${id} needs ${(bytes / 1024 ** 2).toFixed(1)} MiB; free space there or set GANTRY_CACHE_DIR to a larger disk`,
      { cause, context: { dir, id, bytes } },
    );
  }
}

export interface DatasetCacheOptions {
  store: ObjectStore;
  log: Logger;
  /** @default <home>/.cache/gantry/datasets */
  dir?: string;
  /** Versions are evicted, least recently used first, while the cache holds more. @default 20 GiB */
  maxBytes?: number;
  /** Told of every fetch (concurrent acquires in one process share one): downloaded here, or found on disk. */
  onFetch?: (dataset: string, result: 'downloaded' | 'cached') => void;
}

/** Marks when a cached version was last used (its mtime), for eviction. */
const STAMP = '.last-used';
/** A lock whose holder has not touched it for this long is taken as abandoned. */
const STALE_LOCK_MS = 10 * 60_000;
/** Versions used this recently are never evicted (a trainer of another worker may be reading them). */
const RECENT_MS = 5 * 60_000;

/**
 * A worker node's copies of data set versions on local disk, each fetched once and verified against its
 * manifest (size and SHA-256 of every shard) before it appears under its final name: a version's folder
 * exists only complete. Every trainer on the node reads the same copy; concurrent requests in one process
 * share one download, and worker processes sharing the folder take turns through a lock file.
 */
export class DatasetCache {
  readonly dir: string;
  private readonly maxBytes: number;
  private readonly pending = new Map<string, Promise<string>>();
  private readonly inUse = new Map<string, number>();
  /** Downloads this cache made (for tests and metrics). */
  downloads = 0;

  constructor(private readonly opts: DatasetCacheOptions) {
    this.dir = opts.dir ?? join(homedir(), '.cache', 'gantry', 'datasets');
    this.maxBytes = opts.maxBytes ?? 20 * 1024 ** 3;
  }

  /** The folder of a version (manifest.json and shards/), downloading it first if it is not here. */
  versionDir(name: string, version: string): string {
    return join(this.dir, name, version);
  }

  /**
   * Makes sure a version is on disk and holds it against eviction until `release` is called.
   * @throws CorruptDatasetError when what the store holds does not match its manifest (not cached)
   */
  async acquire(name: string, version: string): Promise<{ dir: string; release: () => void }> {
    const id = `${name}@${version}`;
    this.inUse.set(id, (this.inUse.get(id) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (this.inUse.get(id) ?? 1) - 1;
      if (n > 0) this.inUse.set(id, n);
      else this.inUse.delete(id);
    };
    try {
      let p = this.pending.get(id);
      if (!p) {
        p = this.ensure(name, version);
        this.pending.set(id, p);
        p.then(
          () => this.pending.delete(id),
          () => this.pending.delete(id),
        );
      }
      return { dir: await p, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  private async ensure(name: string, version: string): Promise<string> {
    const final = this.versionDir(name, version);
    const downloaded = await this.fetch(name, version, final);
    this.opts.onFetch?.(`${name}@${version}`, downloaded ? 'downloaded' : 'cached');
    return final;
  }

  /** Brings a version to `final` unless it is there; true when this call downloaded it. */
  private async fetch(name: string, version: string, final: string): Promise<boolean> {
    if (await this.complete(final)) return false;
    await mkdir(join(this.dir, '.locks'), { recursive: true });
    const lock = join(this.dir, '.locks', `${name}@${version}`);
    for (;;) {
      const handle = await open(lock, 'wx').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') return undefined;
        throw err;
      });
      if (handle) {
        try {
          await handle.writeFile(String(process.pid));
          await handle.close();
          if (await this.complete(final)) return false;
          await this.downloadMakingRoom(name, version, final);
          await this.evict(`${name}@${version}`);
          return true;
        } finally {
          await rm(lock, { force: true });
        }
      }
      // Another process is fetching it: wait for the folder, or take over an abandoned lock.
      if (await this.complete(final)) return false;
      if (await abandoned(lock)) await rm(lock, { force: true });
      else await sleep(200);
    }
  }

  /** True when `dir` is a finished version; marks it used. */
  private async complete(dir: string): Promise<boolean> {
    try {
      await stat(join(dir, 'manifest.json'));
    } catch {
      return false;
    }
    const now = new Date();
    await utimes(join(dir, STAMP), now, now).catch(() => writeFile(join(dir, STAMP), ''));
    return true;
  }

  /** Downloads; when the disk is full, evicts every version not in use and tries once more. */
  private async downloadMakingRoom(name: string, version: string, final: string): Promise<void> {
    try {
      await this.download(name, version, final);
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      const id = `${name}@${version}`;
      this.opts.log.warn(
        { dataset: id, dir: this.dir },
        'data set cache disk full: evicting unused versions',
      );
      // Versions used lately stay: another worker process on this node may be training on one.
      await this.evict(id, 0);
      try {
        await this.download(name, version, final);
      } catch (again) {
        if (!isDiskFull(again)) throw again;
        const m = parseManifest(
          await this.opts.store.get(datasetKeys.manifest(name, version)),
          name,
          version,
        );
        throw new CacheFullError(
          this.dir,
          id,
          m.shards.reduce((n, s) => n + s.bytes, 0),
          again,
        );
      }
    }
  }

  private async download(name: string, version: string, final: string): Promise<void> {
    const t0 = performance.now();
    const log = this.opts.log.child({ dataset: name, version });
    const raw = await this.opts.store.get(datasetKeys.manifest(name, version));
    const manifest = parseManifest(raw, name, version);
    const tmp = join(this.dir, '.tmp', `${name}@${version}-${process.pid}-${randomBytes(3).toString('hex')}`);
    await mkdir(join(tmp, 'shards'), { recursive: true });
    try {
      let bytes = 0;
      for (const shard of manifest.shards) {
        const data = await this.opts.store.get(datasetKeys.shard(name, version, shard.file));
        if (data.length !== shard.bytes)
          throw new CorruptDatasetError(
            name,
            version,
            shard.file,
            `is ${data.length} bytes, its manifest says ${shard.bytes}`,
          );
        const sha = createHash('sha256').update(data).digest('hex');
        if (sha !== shard.sha256)
          throw new CorruptDatasetError(
            name,
            version,
            shard.file,
            `has SHA-256 ${sha}, its manifest says ${shard.sha256}`,
          );
        await writeFile(join(tmp, 'shards', shard.file), data);
        bytes += data.length;
      }
      await writeFile(join(tmp, STAMP), '');
      await writeFile(join(tmp, 'manifest.json'), raw);
      await mkdir(join(this.dir, name), { recursive: true });
      await rename(tmp, final);
      this.downloads += 1;
      log.info({ bytes, seconds: (performance.now() - t0) / 1000 }, 'data set version cached');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * Removes least recently used versions while the cache holds more than `bound`; keeps `keep`, versions in
   * use here and versions used in the last minutes.
   */
  private async evict(keep: string, bound = this.maxBytes): Promise<void> {
    const entries: { id: string; dir: string; bytes: number; used: number }[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name.startsWith('.')) continue;
      for (const version of await readdir(join(this.dir, name)).catch(() => [] as string[])) {
        const dir = join(this.dir, name, version);
        try {
          const m = parseManifest(await readFile(join(dir, 'manifest.json')), name, version);
          const used = (await stat(join(dir, STAMP))).mtimeMs;
          // Its shards and the decoded copies kept beside them (data/decoded-copy.ts: ~the raw pixels each).
          let decoded = 0;
          for (const f of await readdir(join(dir, 'decoded')).catch(() => [] as string[]))
            decoded += (await stat(join(dir, 'decoded', f)).catch(() => undefined))?.size ?? 0;
          entries.push({
            id: `${name}@${version}`,
            dir,
            bytes: m.shards.reduce((n, s) => n + s.bytes, 0) + decoded,
            used,
          });
        } catch {
          // not a finished version (or one being removed): not counted
        }
      }
    }
    let total = entries.reduce((n, e) => n + e.bytes, 0);
    const now = Date.now();
    for (const e of entries.sort((a, b) => a.used - b.used)) {
      if (total <= bound) break;
      if (e.id === keep || this.inUse.has(e.id) || now - e.used < RECENT_MS) continue;
      await rm(e.dir, { recursive: true, force: true });
      total -= e.bytes;
      this.opts.log.info({ dataset: e.id, bytes: e.bytes }, 'evicted data set version from the cache');
    }
  }
}

function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function parseManifest(raw: Buffer, name: string, version: string): DatasetManifest {
  let m: DatasetManifest;
  try {
    m = datasetManifestSchema.parse(JSON.parse(raw.toString('utf8')));
  } catch (err) {
    throw new CorruptDatasetError(
      name,
      version,
      'manifest.json',
      `is not a valid manifest (${(err as Error).message})`,
    );
  }
  if (m.name !== name || m.version !== version)
    throw new CorruptDatasetError(name, version, 'manifest.json', `names ${m.name}@${m.version}`);
  return m;
}

async function abandoned(lock: string): Promise<boolean> {
  try {
    const [s, pid] = await Promise.all([stat(lock), readFile(lock, 'utf8')]);
    if (Date.now() - s.mtimeMs > STALE_LOCK_MS) return true;
    const holder = Number(pid);
    if (!Number.isInteger(holder) || holder <= 0) return Date.now() - s.mtimeMs > 5_000;
    try {
      process.kill(holder, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  } catch {
    return false; // gone already: the next open takes it
  }
}
