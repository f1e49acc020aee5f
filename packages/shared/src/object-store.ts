import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
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
  /** PEM of a CA to trust for an `https://` endpoint with a private certificate (beside the system's). */
  ca?: string;
}

/**
 * How long an operation keeps retrying while the store is unreachable or answers 5xx/429/503. Workers ride
 * out outages of minutes (a checkpoint upload waits for the store to come back); an API request should
 * fail fast instead. Not-found, access-denied and other 4xx answers are never retried.
 */
export interface RetryPolicy {
  /** Give up once this long has passed since the first try. 0: no retries beyond the SDK's own. */
  maxElapsedMs: number;
  /** First pause; doubles per retry up to `maxDelayMs`, with jitter. @default 500 */
  initialDelayMs?: number;
  /** @default 10000 */
  maxDelayMs?: number;
}

export interface ObjectStoreOptions {
  retry?: RetryPolicy;
  /** Called before each pause of a retry: what failed, the attempt that failed, the pause. */
  onRetry?: (info: { op: string; key: string; attempt: number; delayMs: number; error: string }) => void;
}

/**
 * True for errors that may pass if the same request is sent again: no connection, a reset or timed-out
 * socket, a 5xx, 429 or SlowDown. A 404, 403 or 400 is an answer, not an outage.
 */
export function isTransientStoreError(err: unknown): boolean {
  if (err instanceof ObjectNotFoundError) return false;
  const e = err as {
    code?: string;
    name?: string;
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
    cause?: unknown;
  } | null;
  if (!e || typeof e !== 'object') return false;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 429 || status === 408;
  const NETWORK = [
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    'EPIPE',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'EAI_AGAIN',
    'ENOTFOUND',
    'ECONNABORTED',
    'EADDRNOTAVAIL',
  ];
  if (e.code && NETWORK.includes(e.code)) return true;
  if (e.name === 'TimeoutError' || e.name === 'RequestTimeout' || e.$retryable) return true;
  // The SDK answers a socket closed mid-response with a bare Error.
  if (/socket hang up|ECONNRESET|ECONNREFUSED|other side closed/i.test(String((e as Error).message)))
    return true;
  return e.cause !== undefined && e.cause !== err && isTransientStoreError(e.cause);
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
  if (cfg.ca !== undefined) {
    clientConfig.requestHandler = {
      httpsAgent: new HttpsAgent({ keepAlive: true, ca: [...rootCertificates, cfg.ca] }),
    };
  }
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

  readonly #opts: ObjectStoreOptions;

  constructor(cfg: ObjectStoreConfig, opts: ObjectStoreOptions = {}) {
    this.bucket = cfg.bucket;
    this.#client = new S3Client(toS3ClientConfig(cfg));
    this.#opts = opts;
  }

  /** Writes `body` at `key`, replacing any existing object. */
  async put(key: string, body: Uint8Array | string, contentType?: string): Promise<void> {
    await this.#retrying('put', key, () =>
      this.#open().send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
      ),
    );
  }

  /** Reads the whole object. Throws {@link ObjectNotFoundError} when `key` does not exist. */
  async get(key: string): Promise<Buffer> {
    try {
      return await this.#retrying('get', key, async () => {
        const res = await this.#open().send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
        if (res.Body === undefined) return Buffer.alloc(0);
        return Buffer.from(await res.Body.transformToByteArray());
      });
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
      await this.#retrying('head', key, () =>
        this.#open().send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })),
      );
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
      const res = await this.#retrying('list', prefix, () =>
        this.#open().send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            MaxKeys: pageSize,
            ContinuationToken: token,
          }),
        ),
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
      const res = await this.#retrying('delete', batch[0] ?? '', () =>
        this.#open().send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
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

  /** Runs `fn`, again after a backoff pause while it fails transiently and the policy allows. */
  async #retrying<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    const policy = this.#opts.retry;
    const started = Date.now();
    let delay = policy?.initialDelayMs ?? 500;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!policy || this.#state === 'closed' || !isTransientStoreError(err)) throw err;
        const left = policy.maxElapsedMs - (Date.now() - started);
        if (left <= 0) throw err;
        const pause = Math.min(left, delay * (0.5 + Math.random() / 2));
        this.#opts.onRetry?.({
          op,
          key,
          attempt,
          delayMs: Math.round(pause),
          error: describeStoreError(err),
        });
        await new Promise((r) => setTimeout(r, pause));
        delay = Math.min(delay * 2, policy.maxDelayMs ?? 10_000);
      }
    }
  }

  #open(): S3Client {
    if (this.#state === 'closed') throw new Error(`ObjectStore for bucket ${this.bucket} is closed`);
    return this.#client;
  }
}

/** A one-line description of a store error for logs: its code or name and message, never credentials. */
export function describeStoreError(err: unknown): string {
  const e = err as {
    code?: string;
    name?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const status = e?.$metadata?.httpStatusCode;
  const tag = e?.code ?? (status ? `HTTP ${status}` : e?.name) ?? 'Error';
  return `${tag}: ${e?.message ?? String(err)}`;
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
