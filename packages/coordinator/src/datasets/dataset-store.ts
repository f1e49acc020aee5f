import {
  ConflictError,
  type DatasetManifest,
  type DatasetRef,
  datasetKeys,
  datasetManifestSchema,
  type Logger,
  NotFoundError,
  type ObjectStore,
} from '@gantry/shared';
import { BUILTIN_DATASETS, type BuiltinOptions } from './builtin/builtin-sets.ts';
import { type PackedDataset, packDataset } from './pack.ts';

/** A set's versions, newest first, and whether Gantry builds it itself. */
export interface DatasetSummary {
  name: string;
  builtin: boolean;
  description?: string;
  versions: DatasetManifest[];
}

/** What an upload did: `created` false when the same content was already there under that version. */
export interface UploadResult {
  manifest: DatasetManifest;
  created: boolean;
  bytes: number;
}

const UPLOAD_CONCURRENCY = 4;

/**
 * Data set versions in the object store: upload (shards first, the manifest last, and nothing left behind
 * when an upload fails), listing, lookup, and resolving a spec's reference to a version, building a
 * built-in set the first time it is asked for.
 */
export class DatasetStore {
  private readonly building = new Map<string, Promise<DatasetManifest>>();

  constructor(
    private readonly objects: ObjectStore,
    private readonly log: Logger,
    private readonly builtinOptions: BuiltinOptions = {},
  ) {}

  /** True for the names of built-in sets, which pushes may not use. */
  static isBuiltin(name: string): boolean {
    return BUILTIN_DATASETS.has(name);
  }

  /**
   * Writes a packed version: its shards, then its manifest. A version whose manifest exists is left as it
   * is (same content, same version). On failure the objects this call wrote are deleted.
   */
  async upload(
    packed: PackedDataset,
    onProgress?: (done: number, total: number) => void,
  ): Promise<UploadResult> {
    const { manifest } = packed;
    const bytes = manifest.shards.reduce((n, s) => n + s.bytes, 0);
    const manifestKey = datasetKeys.manifest(manifest.name, manifest.version);
    if (await this.objects.exists(manifestKey)) {
      return { manifest: await this.manifest(manifest.name, manifest.version), created: false, bytes };
    }
    const written: string[] = [];
    try {
      const files = [...packed.shards];
      let next = 0;
      let done = 0;
      const lane = async () => {
        while (next < files.length) {
          const [file, data] = files[next++]!;
          const key = datasetKeys.shard(manifest.name, manifest.version, file);
          written.push(key);
          await this.objects.put(key, data, 'application/gzip');
          done += 1;
          onProgress?.(done, files.length);
        }
      };
      await Promise.all(Array.from({ length: UPLOAD_CONCURRENCY }, lane));
      written.push(manifestKey);
      await this.objects.put(manifestKey, `${JSON.stringify(manifest, null, 1)}\n`, 'application/json');
    } catch (err) {
      await this.objects
        .deleteMany(written)
        .catch((e: unknown) =>
          this.log.error({ err: e, keys: written.length }, 'could not remove a failed upload'),
        );
      throw err;
    }
    this.log.info({ dataset: manifest.name, version: manifest.version, bytes }, 'data set version pushed');
    return { manifest, created: true, bytes };
  }

  /** The manifest of one version. @throws NotFoundError */
  async manifest(name: string, version: string): Promise<DatasetManifest> {
    const key = datasetKeys.manifest(name, version);
    if (!(await this.objects.exists(key))) throw new NotFoundError('dataset', `${name}@${version}`);
    return datasetManifestSchema.parse(await this.objects.getJson(key));
  }

  /** Every set in the store, and the built-in sets not pushed yet, by name. */
  async list(): Promise<DatasetSummary[]> {
    const byName = new Map<string, DatasetManifest[]>();
    const keys = (await this.objects.list(datasetKeys.root)).flatMap(
      (k) => datasetKeys.parseManifestKey(k) ?? [],
    );
    const manifests = await Promise.all(keys.map((k) => this.manifest(k.name, k.version)));
    for (const m of manifests) {
      const versions = byName.get(m.name);
      if (versions) versions.push(m);
      else byName.set(m.name, [m]);
    }
    for (const name of BUILTIN_DATASETS.keys()) if (!byName.has(name)) byName.set(name, []);
    return [...byName]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, versions]) => this.summary(name, versions));
  }

  /** One set's versions, newest first. @throws NotFoundError for a name that is neither pushed nor built in */
  async show(name: string): Promise<DatasetSummary> {
    const keys = (await this.objects.list(datasetKeys.name(name))).flatMap(
      (k) => datasetKeys.parseManifestKey(k) ?? [],
    );
    const versions = await Promise.all(
      keys.filter((k) => k.name === name).map((k) => this.manifest(k.name, k.version)),
    );
    if (versions.length === 0 && !BUILTIN_DATASETS.has(name)) throw new NotFoundError('dataset', name);
    return this.summary(name, versions);
  }

  /**
   * The version a spec's reference names: the given one, or the newest. A built-in set with no version
   * in the store is built and pushed first (once per process, however many ask at the same time).
   * @throws NotFoundError for a set or version that does not exist
   */
  async resolve(ref: DatasetRef): Promise<DatasetManifest> {
    if (ref.version) return this.manifest(ref.name, ref.version);
    const { versions } = await this.show(ref.name);
    if (versions[0]) return versions[0];
    return this.pushBuiltin(ref.name);
  }

  /** Builds and uploads a built-in set (a no-op when the same version is already stored). */
  pushBuiltin(name: string): Promise<DatasetManifest> {
    const set = BUILTIN_DATASETS.get(name);
    if (!set) throw new NotFoundError('dataset', name);
    let pending = this.building.get(name);
    if (!pending) {
      pending = (async () => {
        const t0 = performance.now();
        this.log.info({ dataset: name }, 'building built-in data set on first use');
        const { examples, meta } = await set.load(this.builtinOptions);
        const result = await this.upload(packDataset(examples, { name, ...meta }));
        this.log.info(
          { dataset: name, version: result.manifest.version, seconds: (performance.now() - t0) / 1000 },
          'built-in data set ready',
        );
        return result.manifest;
      })();
      this.building.set(name, pending);
      pending.then(
        () => this.building.delete(name),
        () => this.building.delete(name),
      );
    }
    return pending;
  }

  /** Refuses a push under a built-in set's name. */
  static checkPushName(name: string): void {
    if (DatasetStore.isBuiltin(name))
      throw new ConflictError(`data set name '${name}' is taken by a built-in set; choose another --name`, {
        name,
      });
  }

  private summary(name: string, versions: DatasetManifest[]): DatasetSummary {
    const builtin = BUILTIN_DATASETS.get(name);
    return {
      name,
      builtin: builtin !== undefined,
      ...(builtin ? { description: builtin.description } : {}),
      versions: versions.sort((a, b) => b.created_at - a.created_at),
    };
  }
}
