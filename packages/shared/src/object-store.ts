import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';

/** Where and how to reach the bucket. Credentials fall back to the SDK's default chain when omitted. */
export interface ObjectStoreConfig {
  /** e.g. `http://127.0.0.1:4568` for s3rver/MinIO; omit for AWS. */
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** `true` for s3rver and MinIO (`http://host/bucket/key` instead of `http://bucket.host/key`). */
  forcePathStyle: boolean;
}

/** Thrown by {@link ObjectStore.get} and {@link ObjectStore.getJson} when the key does not exist. */
export class ObjectNotFoundError extends Error {
  readonly code = 'OBJECT_NOT_FOUND' as const;
  readonly key: string;

  constructor(key: string, options?: ErrorOptions) {
    super(`object not found: ${key}`, options);
    this.name = 'ObjectNotFoundError';
    this.key = key;
  }
}

/** DeleteObjects accepts at most this many keys per request. */
const DELETE_BATCH = 1000;

type ObjectStoreState = 'open' | 'closed';

/**
 * The S3 client settings {@link ObjectStore} uses, for code that needs a raw
 * client on the same store (multipart `Upload`, presigned URLs).
 *
 * `requestChecksumCalculation` and `responseChecksumValidation` are
 * `'WHEN_REQUIRED'` (the SDK's behaviour before 3.729). With the newer default
 * (`WHEN_SUPPORTED`) the SDK sends streaming bodies as `aws-chunked` with an
 * `x-amz-checksum-crc32` trailer, which s3rver 3.7.1 (like some other
 * S3-compatible stores) saves verbatim, chunk framing included, so the object
 * is silently corrupted. Checksums an operation requires (DeleteObjects) are
 * still sent.
 */
export function toS3ClientConfig(cfg: ObjectStoreConfig): S3ClientConfig {
  const clientConfig: S3ClientConfig = {
    region: cfg.region,
    forcePathStyle: cfg.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  if (cfg.endpoint !== undefined) clientConfig.endpoint = cfg.endpoint;
  if (cfg.accessKeyId !== undefined && cfg.secretAccessKey !== undefined) {
    clientConfig.credentials = { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey };
  }
  return clientConfig;
}

/**
 * A thin wrapper over one S3 bucket: checkpoints and sample images from
 * workers, sample serving in the coordinator. Client settings: see
 * {@link toS3ClientConfig}.
 */
export class ObjectStore {
  readonly bucket: string;
  readonly #client: S3Client;
  #state: ObjectStoreState = 'open';
  readonly #closed: Promise<void> = Promise.resolve();

  constructor(cfg: ObjectStoreConfig) {
    this.bucket = cfg.bucket;
    this.#client = new S3Client(toS3ClientConfig(cfg));
  }

  /** Writes `body` at `key`, replacing any existing object. */
  async put(key: string, body: Uint8Array | string, contentType?: string): Promise<void> {
    await this.#open().send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
    );
  }

  /** Reads the whole object. Throws {@link ObjectNotFoundError} when `key` does not exist. */
  async get(key: string): Promise<Buffer> {
    try {
      const res = await this.#open().send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (res.Body === undefined) return Buffer.alloc(0);
      return Buffer.from(await res.Body.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key, { cause: err });
      throw err;
    }
  }

  /** Reads and parses a UTF-8 JSON object. The result is not validated; parse it with a schema if needed. */
  async getJson<T>(key: string): Promise<T> {
    return JSON.parse((await this.get(key)).toString('utf8')) as T;
  }

  /** True when `key` exists (HEAD). */
  async exists(key: string): Promise<boolean> {
    try {
      await this.#open().send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * All keys starting with `prefix`, in S3's lexicographic order, following
   * continuation tokens. `pageSize` (at most 1000) bounds each request.
   */
  async list(prefix: string, pageSize = 1000): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.#open().send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          MaxKeys: pageSize,
          ContinuationToken: token,
        }),
      );
      for (const obj of res.Contents ?? []) {
        if (obj.Key !== undefined) keys.push(obj.Key);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys;
  }

  /** Deletes `keys` in batches of 1000; missing keys are not an error. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const res = await this.#open().send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      const failed = res.Errors ?? [];
      if (failed.length > 0) {
        const detail = failed.map((e) => `${e.Key ?? '?'}: ${e.Code ?? 'Error'}`).join(', ');
        throw new Error(`failed to delete ${failed.length} object(s) from ${this.bucket}: ${detail}`);
      }
    }
  }

  /** Creates the bucket if it does not exist; a bucket that already exists and is accessible is fine. */
  async ensureBucket(): Promise<void> {
    if (await this.#bucketAccessible()) return;
    try {
      await this.#open().send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const name = errorName(err);
      // s3rver answers BucketAlreadyExists for its own buckets; on AWS that means "owned by someone else",
      // which the HEAD below then rejects.
      if (name === 'BucketAlreadyOwnedByYou') return;
      if (name === 'BucketAlreadyExists' && (await this.#bucketAccessible())) return;
      throw err;
    }
  }

  /** Destroys the underlying client (its sockets). Idempotent; later calls to other methods throw. */
  close(): Promise<void> {
    if (this.#state === 'open') {
      this.#state = 'closed';
      this.#client.destroy();
    }
    return this.#closed;
  }

  async #bucketAccessible(): Promise<boolean> {
    try {
      await this.#open().send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  #open(): S3Client {
    if (this.#state === 'closed') throw new Error(`ObjectStore for bucket ${this.bucket} is closed`);
    return this.#client;
  }
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

/** HEAD responses carry no body, so the SDK names them `NotFound`; GET gives `NoSuchKey`/`NoSuchBucket`. */
function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  if (name === 'NoSuchKey' || name === 'NotFound') return true;
  const status = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return status === 404 && name !== 'NoSuchBucket';
}
