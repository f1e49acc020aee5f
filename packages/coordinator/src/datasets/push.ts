import { basename } from 'node:path';
import {
  BadRequestError,
  DATASET_NAME_PATTERN,
  type DatasetManifest,
  InvalidDatasetError,
} from '@gantry/shared';
import { type CollectOptions, collectExamples } from './collect.ts';
import { DatasetStore } from './dataset-store.ts';
import { packDataset } from './pack.ts';
import { detectSourceKind, readSourceFiles, type SourceLimits } from './source-files.ts';

/** A step of a push, for progress output. */
export type PushProgress =
  | { phase: 'read'; files: number; images: number; skipped: number }
  | { phase: 'pack'; images: number }
  | { phase: 'upload'; shards: number; total: number };

export interface PushOptions extends Omit<CollectOptions, 'onProgress'> {
  name: string;
  limits?: SourceLimits;
  /** What to call the source in errors and the manifest. @default the path's base name */
  label?: string;
  onProgress?: (p: PushProgress) => void;
}

/** What `gantry dataset push` prints at the end. */
export interface PushSummary {
  manifest: DatasetManifest;
  /** False when the same content was already stored as this version. */
  created: boolean;
  bytes: number;
  seconds: number;
  imagesPerSec: number;
}

/**
 * Pushes the images under `path` (a folder, .tar, .tar.gz or .zip) as a new version of data set `name`:
 * reads and checks every file, packs the set, writes its shards and then its manifest. A bad file stops
 * the push before anything is written; a failed upload removes what it wrote.
 * @throws InvalidDatasetError naming the file; ConflictError for a built-in set's name
 */
export async function pushDataset(
  store: DatasetStore,
  path: string,
  opts: PushOptions,
): Promise<PushSummary> {
  if (!DATASET_NAME_PATTERN.test(opts.name))
    throw new BadRequestError('name', "lowercase letters, digits and '-', at most 63 characters");
  DatasetStore.checkPushName(opts.name);
  const t0 = performance.now();
  const label = opts.label ?? basename(path);
  const collected = await (async () => {
    const kind = await detectSourceKind(path);
    const c = await collectExamples(readSourceFiles(path, opts.limits), label, {
      ...opts,
      onProgress: (p) => opts.onProgress?.({ phase: 'read', ...p }),
    });
    return { ...c, kind };
  })().catch((err: unknown) => {
    throw relabel(err, path, label);
  });
  const { kind } = collected;
  opts.onProgress?.({ phase: 'pack', images: collected.examples.length });
  const { meta } = collected;
  const packed = packDataset(collected.examples, {
    ...meta,
    name: opts.name,
    source: { kind, ...meta.source },
  });
  const result = await store.upload(packed, (shards, total) =>
    opts.onProgress?.({ phase: 'upload', shards, total }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const images = collected.examples.length * (meta.paired ? 2 : 1);
  return { ...result, seconds, imagesPerSec: images / seconds };
}

/**
 * The source readers name what they read by its path on this machine (for an API push, a spool file):
 * errors name it `<label>:<member>` instead, as the images' own errors do.
 */
function relabel(err: unknown, path: string, label: string): unknown {
  if (!(err instanceof InvalidDatasetError)) return err;
  const file = String(err.context.file);
  const reason = String(err.context.reason);
  if (file === path) return new InvalidDatasetError(label, reason, { cause: err });
  for (const sep of [':', '/'])
    if (file.startsWith(path + sep))
      return new InvalidDatasetError(`${label}:${file.slice(path.length + 1)}`, reason, { cause: err });
  return err;
}
