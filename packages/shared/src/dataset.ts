import { z } from 'zod';

/**
 * Data sets as versioned objects in S3 (DESIGN.md "Object store layout"): `datasets/<name>/<version>/`
 * holds gzipped shards of packed 8-bit images and a manifest written last. The version is a hash of the
 * content, so a version never changes once its manifest exists and pushing the same images twice is a
 * no-op.
 */
export const DATASET_FORMAT = 'gantry-dataset/1';

/** Lowercase letters, digits and '-', at most 63 characters (an S3 key segment and a label value). */
export const DATASET_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** 16 hex digits of a SHA-256 over the version's content. */
export const DATASET_VERSION_PATTERN = /^[0-9a-f]{16}$/;

export const datasetNameSchema = z
  .string()
  .regex(
    DATASET_NAME_PATTERN,
    "lowercase letters, digits and '-', at most 63, not starting or ending with '-'",
  );
export const datasetVersionSchema = z.string().regex(DATASET_VERSION_PATTERN, 'must be 16 hex digits');

/** Channels an image of a set may have: gray, RGB, or RGBA. */
export const DATASET_CHANNELS = [1, 3, 4] as const;

const shardSchema = z.strictObject({
  /** File name under the version's `shards/`. */
  file: z.string().regex(/^(train|test)-\d{4}\.bin\.gz$/),
  split: z.enum(['train', 'test']),
  count: z.number().int().min(1),
  /** Size of the stored (gzipped) object. */
  bytes: z.number().int().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type DatasetShard = z.infer<typeof shardSchema>;

const countsSchema = z.strictObject({
  train: z.number().int().min(0),
  test: z.number().int().min(0),
  /** Labelled sets: examples per class in each split, indexed like `classes`. */
  per_class: z.strictObject({ train: z.array(z.number().int()), test: z.array(z.number().int()) }).optional(),
});

/** The manifest of one data set version, written last: its presence makes the version exist. */
export const datasetManifestSchema = z.strictObject({
  format: z.literal(DATASET_FORMAT),
  name: datasetNameSchema,
  version: datasetVersionSchema,
  created_at: z.number().int(),
  /** Every image of the set has this size; a paired set's example is two such images (A, then B). */
  image: z.strictObject({
    height: z.number().int().min(1).max(4096),
    width: z.number().int().min(1).max(4096),
    channels: z.union([z.literal(1), z.literal(3), z.literal(4)]),
  }),
  /** Class names, indexed by label; empty for an unlabelled set. */
  classes: z.array(z.string().min(1).max(200)).max(1000),
  /** Each example is an (A, B) pair: image-to-image models translate A into B. */
  paired: z.boolean(),
  counts: countsSchema,
  /** How the held-out test split was chosen. */
  split: z.strictObject({ test_fraction: z.number().min(0).max(0.5), method: z.string() }),
  shards: z.array(shardSchema).min(1),
  /** Where the images came from (for `gantry dataset show`). */
  source: z.strictObject({
    kind: z.string(),
    files: z.number().int().min(0),
    skipped: z.number().int().min(0),
    /** `--size N` given: images were centre-cropped to squares and resized. */
    resized_to: z.number().int().optional(),
    /** Alpha was composited on white to give `image.channels`. */
    alpha: z.enum(['kept', 'composited', 'none']),
  }),
});
export type DatasetManifest = z.infer<typeof datasetManifestSchema>;

/**
 * A spec's data set: a name, or a name with options. The coordinator pins `version` when it resolves the
 * spec, so every trial of a sweep trains on the same images.
 */
export interface DatasetRef {
  name: string;
  /** Omitted: the newest version at submit time. */
  version?: string;
  /** Square side the trainer sees (resized on load); omitted: the set's own. */
  image_size?: number;
  /** 1 or 3 (4 only for sets that have alpha); omitted: the set's own. */
  channels?: number;
  /** Train on the first N examples of each class only (labelled sets). */
  subset_per_class?: number;
}

/** Image sizes a trainer may be asked for: 28, and powers of two from 4 to 256. */
export const TRAIN_IMAGE_SIZES = [4, 8, 16, 28, 32, 64, 128, 256] as const;

/** A spec's `dataset`: a name (shorthand for `{name}`) or a mapping; errors name the field inside. */
export const datasetRefSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { name: v } : v),
  z.strictObject(
    {
      name: datasetNameSchema,
      version: datasetVersionSchema.optional(),
      image_size: z
        .number()
        .int('must be an integer')
        .refine((s) => (TRAIN_IMAGE_SIZES as readonly number[]).includes(s), {
          message: `must be one of ${TRAIN_IMAGE_SIZES.join(', ')}`,
        })
        .optional(),
      channels: z
        .number()
        .refine((c) => c === 1 || c === 3 || c === 4, { message: 'must be 1, 3 or 4' })
        .optional(),
      subset_per_class: z.number().int('must be an integer').min(1, 'must be >= 1').optional(),
    },
    { message: 'must be a data set name or {name, version, image_size, channels, subset_per_class}' },
  ),
);

/** A data set reference as pinned in a job: every field the worker needs resolved. */
export const pinnedDatasetSchema = z.strictObject({
  name: datasetNameSchema,
  version: datasetVersionSchema,
  image_size: z.number().int().min(1).max(4096),
  channels: z.union([z.literal(1), z.literal(3), z.literal(4)]),
  subset_per_class: z.number().int().min(1).optional(),
});
export type PinnedDataset = z.infer<typeof pinnedDatasetSchema>;

/** Object keys of data set versions. */
export const datasetKeys = {
  root: 'datasets/',
  name: (name: string) => `datasets/${name}/`,
  version: (name: string, version: string) => `datasets/${name}/${version}/`,
  manifest: (name: string, version: string) => `datasets/${name}/${version}/manifest.json`,
  shard: (name: string, version: string, file: string) => `datasets/${name}/${version}/shards/${file}`,
  /** Parses `datasets/<name>/<version>/manifest.json`; undefined for any other key. */
  parseManifestKey(key: string): { name: string; version: string } | undefined {
    const m = /^datasets\/([a-z0-9-]+)\/([0-9a-f]{16})\/manifest\.json$/.exec(key);
    return m ? { name: m[1]!, version: m[2]! } : undefined;
  },
};
