import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** An s3rver instance served from this process. */
export interface LocalS3 {
  /** `http://127.0.0.1:<port>`; use with `forcePathStyle: true` and credentials `S3RVER`/`S3RVER`. */
  readonly endpoint: string;
  readonly port: number;
  /** Stops listening, drops open connections and removes the temp directory if one was created. Idempotent. */
  close(): Promise<void>;
}

/** Options for {@link startS3Server}. */
export interface StartS3ServerOptions {
  /** TCP port on 127.0.0.1; 0 or omitted picks a free one. */
  port?: number;
  /** Storage directory; a temp dir (removed on close) by default. */
  dir?: string;
  /** Buckets created before the server starts listening. */
  buckets?: string[];
  /** Serve HTTPS with this key and certificate (PEM) instead of HTTP. */
  tls?: { key: string; cert: string };
}

/** Access key and secret that s3rver accepts (it validates SigV4 signatures against these). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** The slice of s3rver's (untyped, CommonJS) API used here. */
interface S3rverInstance {
  configureBuckets(): Promise<unknown>;
  /** Koa's request handler. */
  callback(): RequestListener;
  /** Winston logger; its exception handlers must be released when the server stops. */
  logger: { exceptions: { unhandle(): void }; close(): void };
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

const HOST = '127.0.0.1';
const requireCjs = createRequire(import.meta.url);

type S3State = 'running' | 'closing' | 'closed';

/**
 * Runs s3rver in this process on 127.0.0.1 (silent, filesystem-backed). The
 * configured buckets exist before this resolves.
 *
 * s3rver's own `run()` never settles when the port is taken, so this creates
 * the HTTP server itself and rejects on listen errors. ListObjectsV2
 * pagination is patched to work on Node >= 17 (see {@link patchListObjectsV2}).
 */
export async function startS3Server(opts: StartS3ServerOptions = {}): Promise<LocalS3> {
  const ownsDir = opts.dir === undefined;
  const directory = opts.dir ?? (await mkdtemp(join(tmpdir(), 'gantry-s3-')));
  if (!ownsDir) await mkdir(directory, { recursive: true });
  // s3rver ships no type declarations; load it through require and type the slice we use.
  const S3rver = requireCjs('s3rver') as S3rverConstructor;
  patchListObjectsV2();
  const app = new S3rver({
    address: HOST,
    port: opts.port ?? 0,
    silent: true,
    directory,
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name })),
  });
  let server: Server;
  try {
    await app.configureBuckets();
    server = await listen(app.callback(), opts.port ?? 0, opts.tls);
  } catch (err) {
    app.logger.exceptions.unhandle();
    app.logger.close();
    if (ownsDir) await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  let state: S3State = 'running';
  let closed: Promise<void> = Promise.resolve();
  const shutdown = async (): Promise<void> => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // SDK clients keep sockets alive; without this close() waits for them to time out.
      server.closeAllConnections();
    });
    app.logger.exceptions.unhandle();
    app.logger.close();
    if (ownsDir) await rm(directory, { recursive: true, force: true });
  };
  const close = (): Promise<void> => {
    if (state === 'running') {
      state = 'closing';
      closed = shutdown().then(() => {
        state = 'closed';
      });
    }
    return closed;
  };

  return { endpoint: `${opts.tls ? 'https' : 'http'}://${HOST}:${port}`, port, close };
}

async function listen(
  handler: RequestListener,
  port: number,
  tls?: { key: string; cert: string },
): Promise<Server> {
  const server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return server;
}

/** The parts of a Koa context that s3rver's `GET /:bucket` handler reads and writes. */
interface ListContext {
  query: Record<string, string | string[] | undefined>;
  store: ListStore;
  body: unknown;
}
interface ListStore {
  listObjects(bucket: string, options: object): Promise<{ isTruncated: boolean }>;
}
interface BucketController {
  getBucket(ctx: ListContext): Promise<void>;
}

const TOKEN_PREFIX = 'gantry-local:';
let listV2Patched = false;

/**
 * s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with DES, which
 * OpenSSL 3 (Node >= 17) no longer provides: every truncated V2 listing
 * answers 500 InternalError (`ERR_OSSL_EVP_UNSUPPORTED`). This wraps the
 * bucket-listing controller (after signature checks, so the signed query is
 * untouched) to hide truncation from s3rver and issue base64url tokens of the
 * last key instead, translated back into `start-after` on the next page.
 * Process-wide and applied once; V1 listings are left alone.
 */
function patchListObjectsV2(): void {
  if (listV2Patched) return;
  listV2Patched = true;
  const controller = requireCjs('s3rver/lib/controllers/bucket.js') as BucketController;
  const original = controller.getBucket;
  controller.getBucket = async function getBucketV2Fixed(ctx: ListContext): Promise<void> {
    if (ctx.query['list-type'] !== '2') return original(ctx);
    const token = ctx.query['continuation-token'];
    const resumeAfter = typeof token === 'string' ? decodeToken(token) : undefined;
    if (resumeAfter !== undefined) {
      const { 'continuation-token': _dropped, ...rest } = ctx.query;
      ctx.query = { ...rest, 'start-after': resumeAfter };
    }
    const store = ctx.store;
    let truncated = false;
    ctx.store = {
      async listObjects(bucket, options) {
        const result = await store.listObjects(bucket, options);
        truncated = result.isTruncated;
        return { ...result, isTruncated: false };
      },
    };
    try {
      await original(ctx);
    } finally {
      ctx.store = store;
    }
    const listing = (ctx.body as { ListBucketResult?: Record<string, unknown> } | undefined)
      ?.ListBucketResult;
    if (listing === undefined) return;
    if (resumeAfter !== undefined) {
      listing.StartAfter = undefined;
      listing.ContinuationToken = token;
    }
    const lastKey = (listing.Contents as { Key: string }[] | undefined)?.at(-1)?.Key;
    if (truncated && lastKey !== undefined) {
      listing.IsTruncated = true;
      listing.NextContinuationToken = Buffer.from(TOKEN_PREFIX + lastKey, 'utf8').toString('base64url');
    }
  };
}

function decodeToken(token: string): string | undefined {
  const decoded = Buffer.from(token, 'base64url').toString('utf8');
  return decoded.startsWith(TOKEN_PREFIX) ? decoded.slice(TOKEN_PREFIX.length) : undefined;
}
