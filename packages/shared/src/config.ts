import { readFileSync } from 'node:fs';
import type { RedisOptions } from 'ioredis';
import { z } from 'zod';
import { type ApiToken, envToken, parseTokenFile } from './auth.ts';
import { ConfigError, type FieldIssue } from './errors.ts';
import { parseRedisConnection, type RedisConnectionConfig } from './redis.ts';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * The deployment prefix by default: a Redis Cluster hash tag, so that every key of a deployment (BullMQ's
 * `{gantry}:trials:*`, Gantry's `{gantry}:trial:*`, leases, locks) lands in one slot, and each Lua script
 * and MULTI, which touch several of them at once, runs on a cluster too.
 */
export const DEFAULT_PREFIX = '{gantry}';
const PREFIX_PATTERN = /^[A-Za-z0-9_-]*(\{[A-Za-z0-9_-]+\})?[A-Za-z0-9_-]*$/;

/** Whether every key under `prefix` hashes to one Redis Cluster slot: the prefix carries a `{hash tag}`. */
export function isClusterSafePrefix(prefix: string): boolean {
  return /\{[^{}]+\}/.test(prefix);
}

const envSchema = z.object({
  // One URL, or a cluster's node URLs separated by commas: parsed by parseRedisConnection.
  REDIS_URL: z.string().default('redis://127.0.0.1:6379'),
  GANTRY_REDIS_CLUSTER: z.enum(['true', 'false']).optional(),
  GANTRY_REDIS_CA_FILE: z.string().min(1).optional(),
  S3_CA_FILE: z.string().min(1).optional(),
  GANTRY_API_TOKEN: z.string().optional(),
  GANTRY_API_TOKENS_FILE: z.string().min(1).optional(),
  GANTRY_RATE_LIMIT: z.coerce.number().int().min(1).max(100_000).default(60),
  GANTRY_IDLE_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  GANTRY_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).max(86_400_000).default(600_000),
  GANTRY_PREFIX: z
    .string()
    .min(1)
    .max(64)
    .regex(PREFIX_PATTERN, 'letters, digits, _ and - only, and at most one non-empty {hash tag}')
    .default(DEFAULT_PREFIX),
  S3_ENDPOINT: z.string().url().optional(),
  S3_BUCKET: z.string().min(3).max(63).default('gantry'),
  S3_REGION: z.string().default('us-east-1'),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('true'),
  GANTRY_S3_RETRY_MS: z.coerce.number().int().min(0).max(86_400_000).default(600_000),
  GANTRY_LEASE_MS: z.coerce.number().int().min(500).max(600_000).default(10_000),
  GANTRY_COORDINATOR_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,128}$/, 'letters, digits, _, . and - only')
    .optional(),
  GANTRY_HOST: z.string().default('127.0.0.1'),
  GANTRY_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  GANTRY_API_URL: z.string().url().default('http://127.0.0.1:8080'),
  GANTRY_BACKEND: z.enum(['tensorflow', 'wasm', 'cpu']).optional(),
  GANTRY_WASM_GEMM: z.enum(['on', 'off']).default('on'),
  GANTRY_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).optional(),
  GANTRY_WORKER_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/)
    .optional(),
  GANTRY_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  GANTRY_FASHION_MNIST_DIR: z.string().optional(),
  GANTRY_CACHE_DIR: z.string().min(1).optional(),
  GANTRY_CACHE_BYTES: z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .default(20 * 1024 ** 3),
  GANTRY_LOCK_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  GANTRY_FAULT_NAN_AT_STEP: z.coerce.number().int().min(1).optional(),
  GANTRY_FAULT_KILL_AT: z
    .string()
    .regex(
      /^(dispatch|result|before-done|search):[1-9][0-9]*$/,
      'must be dispatch:<n>, result:<n>, search:<n> or before-done:<n>',
    )
    .optional(),
  GANTRY_PROGRESS_EVERY: z.coerce.number().int().min(1).max(10_000).default(10),
  GANTRY_INFER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(1),
  GANTRY_INFER_QUEUE: z.coerce.number().int().min(0).max(1000).default(4),
  GANTRY_INFER_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(60_000),
  GANTRY_INFER_IDLE_MS: z.coerce.number().int().min(0).max(86_400_000).default(300_000),
  GANTRY_INFER_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 ** 2)
    .default(4 * 1024 ** 2),
});

/** Where a test makes a process kill itself (GantryConfig.faultKillAt). */
export interface FaultPoint {
  /** `search`: the coordinator recorded a search decision (README, "Adaptive search") and has not acted on it. */
  point: 'dispatch' | 'result' | 'before-done' | 'search';
  n: number;
}

/** Counts arrivals at fault points and SIGKILLs this process at the configured one. */
export class FaultInjector {
  private readonly reached = new Map<string, number>();
  constructor(
    private readonly at: FaultPoint | undefined,
    private readonly onKill?: (point: string) => void,
  ) {}

  point(point: FaultPoint['point']): void {
    if (!this.at) return;
    const n = (this.reached.get(point) ?? 0) + 1;
    this.reached.set(point, n);
    if (this.at.point === point && this.at.n === n) {
      this.onKill?.(point);
      process.kill(process.pid, 'SIGKILL');
    }
  }
}

/** Configuration of every Gantry process, read from the environment in one place per process. */
export interface GantryConfig {
  /** Where every Redis client of the process connects, and how: give it to {@link createRedis}. */
  redis: RedisConnectionConfig;
  /**
   * REDIS_URL's first URL; may carry a password (`redis://:<password>@host:6379`); `rediss://` is TLS.
   * Never logged. For one server only: a cluster's clients are made by {@link createRedis}.
   */
  redisUrl: string;
  /** Options a client of {@link redisUrl} is made with (TLS CA from GANTRY_REDIS_CA_FILE). */
  redisOptions: RedisOptions;
  /**
   * Start of every Redis key of the deployment, BullMQ's included. @default '{gantry}'
   * ({@link DEFAULT_PREFIX}); on a Redis Cluster it must carry a hash tag.
   */
  prefix: string;
  s3: {
    endpoint?: string;
    bucket: string;
    region: string;
    accessKeyId?: string;
    secretAccessKey?: string;
    forcePathStyle: boolean;
    /** PEM of the CA that signed the store's TLS certificate (S3_CA_FILE), beside the system's. */
    ca?: string;
  };
  /** How long a worker's object-store operations retry through an outage before the attempt fails. */
  s3RetryMs: number;
  /** Several coordinators: only the leader lease's holder schedules (README, "Scale"). */
  coordinator: {
    /** A dead leader holds scheduling up at most this long. */
    leaseMs: number;
    /**
     * Names this coordinator in the lease; one restarted under the same id (a pod's container) takes its
     * lease back at once. @default `<hostname>-<pid>-<random>`
     */
    id?: string;
  };
  api: {
    host: string;
    port: number;
    url: string;
    /** Bearer tokens the API (and the workers' /metrics) accept; none: open, allowed on loopback only. */
    tokens: ApiToken[];
    /** Write requests (submit, cancel, push) per minute and token; more get 429. */
    rateLimitPerMinute: number;
    /** A connection silent this long (headers included) is closed. */
    idleTimeoutMs: number;
    /** A request not received whole in this long gets 408. */
    requestTimeoutMs: number;
  };
  worker: {
    backend?: 'tensorflow' | 'wasm' | 'cpu';
    /** On `wasm`: Gantry's matrix product (true) or XNNPACK's (false). */
    wasmGemm: boolean;
    concurrency?: number;
    id?: string;
    metricsPort: number;
    lockMs: number;
    /**
     * Fault injection for tests: real batches turn to NaN from this step on, so the divergence path runs
     * for real (detection in the trainer, `diverged` state, no retries). Never set in production.
     */
    faultNanAtStep?: number;
    /** Progress reports to Redis every this many steps. */
    progressEvery: number;
  };
  /**
   * Fault injection for tests: the process SIGKILLs itself the n-th time it reaches a point. Coordinator:
   * `dispatch` (a job queued, the trial not yet marked), `result` (a result recorded, the sweep not yet
   * updated). Worker: `before-done` (a trial's final checkpoint committed, its completion not yet
   * recorded). Never set in production.
   */
  faultKillAt?: FaultPoint;
  datasets: {
    /** Where the coordinator reads Fashion-MNIST to push it on first use (Debian's package by default). */
    fashionMnistDir?: string;
    /** A worker node's local copies of data set versions. @default <home>/.cache/gantry/datasets */
    cacheDir?: string;
    /** Bound of that cache; least recently used versions are evicted past it. @default 20 GiB */
    cacheBytes: number;
  };
  /** `POST /v1/trials/:id/infer`: the coordinator's inference processes (README, "Using a trained model"). */
  infer: {
    /** Inference processes, each answering one request at a time. */
    concurrency: number;
    /** Requests that may wait for a busy process; more get 503 with Retry-After. */
    queue: number;
    /** An inference (its process' start included) not answered in this long gets 504; its process is killed. */
    timeoutMs: number;
    /** An inference process idle this long exits (the next request starts one again); 0: after each. */
    idleMs: number;
    /** Largest image body; more gets 413. */
    maxBytes: number;
  };
  logLevel: (typeof LOG_LEVELS)[number];
}

/**
 * Reads and validates configuration from an environment map.
 * @throws ConfigError naming each bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv): GantryConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  const e = parsed.data;
  const issues: FieldIssue[] = [];
  // A file a variable names (token file, CA): its text, or an issue naming the variable.
  const readText = (path: string, variable: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      issues.push({ path: variable, message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code}` });
      return undefined;
    }
  };
  const tokens: ApiToken[] = [];
  if (e.GANTRY_API_TOKEN !== undefined && e.GANTRY_API_TOKEN !== '') {
    const t = envToken(e.GANTRY_API_TOKEN);
    if ('sha256' in t) tokens.push(t);
    else issues.push(t);
  }
  if (e.GANTRY_API_TOKENS_FILE) {
    const text = readText(e.GANTRY_API_TOKENS_FILE, 'GANTRY_API_TOKENS_FILE');
    if (text !== undefined) {
      const parsedFile = parseTokenFile(text, e.GANTRY_API_TOKENS_FILE);
      tokens.push(...parsedFile.tokens);
      issues.push(...parsedFile.issues);
    }
  }
  const redisCa = e.GANTRY_REDIS_CA_FILE
    ? readText(e.GANTRY_REDIS_CA_FILE, 'GANTRY_REDIS_CA_FILE')
    : undefined;
  const s3Ca = e.S3_CA_FILE ? readText(e.S3_CA_FILE, 'S3_CA_FILE') : undefined;
  const redis = parseRedisConnection({
    url: e.REDIS_URL,
    ...(e.GANTRY_REDIS_CLUSTER ? { cluster: e.GANTRY_REDIS_CLUSTER === 'true' } : {}),
    ...(redisCa !== undefined ? { ca: redisCa } : {}),
  });
  if (Array.isArray(redis)) issues.push(...redis);
  else if (redis.cluster && !isClusterSafePrefix(e.GANTRY_PREFIX)) {
    issues.push({
      path: 'GANTRY_PREFIX',
      message: `'${e.GANTRY_PREFIX}' has no hash tag, which a Redis Cluster needs: BullMQ's scripts and Gantry's fenced writes each touch several keys, and a cluster refuses (CROSSSLOT) those of different slots; write '{${e.GANTRY_PREFIX}}' (or leave the default '${DEFAULT_PREFIX}')`,
    });
  }
  if (issues.length > 0 || Array.isArray(redis)) throw new ConfigError(issues);
  return {
    redis,
    redisUrl: e.REDIS_URL.split(',')[0]!.trim(),
    redisOptions: { maxRetriesPerRequest: null, ...(redisCa ? { tls: { ca: redisCa } } : {}) },
    prefix: e.GANTRY_PREFIX,
    s3: {
      endpoint: e.S3_ENDPOINT,
      bucket: e.S3_BUCKET,
      region: e.S3_REGION,
      accessKeyId: e.AWS_ACCESS_KEY_ID,
      secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
      forcePathStyle: e.S3_FORCE_PATH_STYLE === 'true',
      ...(s3Ca ? { ca: s3Ca } : {}),
    },
    s3RetryMs: e.GANTRY_S3_RETRY_MS,
    coordinator: {
      leaseMs: e.GANTRY_LEASE_MS,
      ...(e.GANTRY_COORDINATOR_ID ? { id: e.GANTRY_COORDINATOR_ID } : {}),
    },
    api: {
      host: e.GANTRY_HOST,
      port: e.GANTRY_PORT,
      url: e.GANTRY_API_URL,
      tokens,
      rateLimitPerMinute: e.GANTRY_RATE_LIMIT,
      idleTimeoutMs: e.GANTRY_IDLE_TIMEOUT_MS,
      requestTimeoutMs: e.GANTRY_REQUEST_TIMEOUT_MS,
    },
    worker: {
      backend: e.GANTRY_BACKEND,
      wasmGemm: e.GANTRY_WASM_GEMM === 'on',
      concurrency: e.GANTRY_WORKER_CONCURRENCY,
      id: e.GANTRY_WORKER_ID,
      metricsPort: e.GANTRY_METRICS_PORT,
      lockMs: e.GANTRY_LOCK_MS,
      faultNanAtStep: e.GANTRY_FAULT_NAN_AT_STEP,
      progressEvery: e.GANTRY_PROGRESS_EVERY,
    },
    faultKillAt: e.GANTRY_FAULT_KILL_AT
      ? {
          point: e.GANTRY_FAULT_KILL_AT.split(':')[0] as FaultPoint['point'],
          n: Number(e.GANTRY_FAULT_KILL_AT.split(':')[1]),
        }
      : undefined,
    datasets: {
      fashionMnistDir: e.GANTRY_FASHION_MNIST_DIR,
      cacheDir: e.GANTRY_CACHE_DIR,
      cacheBytes: e.GANTRY_CACHE_BYTES,
    },
    infer: {
      concurrency: e.GANTRY_INFER_CONCURRENCY,
      queue: e.GANTRY_INFER_QUEUE,
      timeoutMs: e.GANTRY_INFER_TIMEOUT_MS,
      idleMs: e.GANTRY_INFER_IDLE_MS,
      maxBytes: e.GANTRY_INFER_MAX_BYTES,
    },
    logLevel: e.LOG_LEVEL,
  };
}
