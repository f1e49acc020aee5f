import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createLogger, type GantryConfig, type Logger, loadConfig, redactUrl } from '@gantry/shared';
import { Coordinator } from '../coordinator.ts';
import { isRedisReachable, type LocalRedis, startRedisServer } from './redis-server.ts';
import { type LocalS3, S3RVER_CREDENTIALS, startS3Server } from './s3-server.ts';
import { type WorkerExit, type WorkerProcess, WorkerSupervisor } from './worker-processes.ts';

export interface LocalStackOptions {
  /** Worker processes to start. @default 1 */
  workers?: number;
  /** Where Redis AOF, S3 objects and worker logs live. @default '.gantry' */
  dataDir?: string;
  /** Environment to read config from and pass to workers. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Keep Redis and S3 data in dataDir across runs. @default true */
  persist?: boolean;
  /** Logger for the in-process coordinator. */
  log?: Logger;
  schedulerIntervalMs?: number;
  /** Told when a worker process dies; the stack starts it again (WorkerSupervisor). */
  onWorkerExit?: (e: WorkerExit) => void;
}

type State = 'created' | 'starting' | 'running' | 'closing' | 'closed';

/**
 * The whole system on one machine, as `gantry up` runs it: Redis (reused when REDIS_URL answers, else a
 * `redis-server` child), S3 (S3_ENDPOINT when set, else embedded s3rver), the coordinator in this process
 * and N worker processes.
 */
export class LocalStack {
  coordinator?: Coordinator;
  apiUrl = '';
  config?: GantryConfig;
  private redis?: LocalRedis;
  private s3?: LocalS3;
  private state: State = 'created';
  private closing?: Promise<void>;
  private supervisor?: WorkerSupervisor;
  private nextWorker = 0;
  readonly notes: string[] = [];

  constructor(private readonly opts: LocalStackOptions = {}) {}

  /** The worker processes running now (one that died is restarted under its id). */
  get workers(): WorkerProcess[] {
    return this.supervisor?.workers ?? [];
  }

  get dataDir(): string {
    return this.opts.dataDir ?? '.gantry';
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`local stack already ${this.state}`);
    this.state = 'starting';
    const env: NodeJS.ProcessEnv = { ...(this.opts.env ?? process.env) };
    const persist = this.opts.persist ?? true;
    const base = loadConfig(env);
    if (await isRedisReachable(base.redisUrl)) {
      this.notes.push(`redis: reusing ${redactUrl(base.redisUrl)}`);
    } else {
      this.redis = await startRedisServer(
        persist ? { dir: join(this.dataDir, 'redis'), appendOnly: true } : {},
      );
      env.REDIS_URL = this.redis.url;
      this.notes.push(`redis: started redis-server at ${this.redis.url}`);
    }
    if (base.s3.endpoint) {
      this.notes.push(`s3: using ${base.s3.endpoint} bucket ${base.s3.bucket}`);
    } else {
      this.s3 = await startS3Server({
        dir: persist ? join(this.dataDir, 's3') : undefined,
        buckets: [base.s3.bucket],
      });
      env.S3_ENDPOINT = this.s3.endpoint;
      env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
      env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
      this.notes.push(
        `s3: embedded s3rver at ${this.s3.endpoint} bucket ${base.s3.bucket} (data in ${join(this.dataDir, 's3')})`,
      );
    }
    // Workers of the local stack share one data set cache, kept with the rest of the stack's data.
    env.GANTRY_CACHE_DIR ??= join(this.dataDir, 'cache');
    this.config = loadConfig(env);
    const log = this.opts.log ?? createLogger('gantry-coordinator', 'silent');
    this.coordinator = new Coordinator(this.config, log, {
      schedulerIntervalMs: this.opts.schedulerIntervalMs,
    });
    this.apiUrl =
      (await this.coordinator.start({ host: this.config.api.host, port: this.config.api.port })) ?? '';
    const workerEnv: NodeJS.ProcessEnv = { ...env, GANTRY_API_URL: this.apiUrl };
    // N workers share this machine: split its cores between them unless told otherwise.
    const n = this.opts.workers ?? 1;
    workerEnv.GANTRY_WORKER_CONCURRENCY ??= String(Math.max(1, Math.floor(availableParallelism() / n)));
    this.supervisor = new WorkerSupervisor({
      env: workerEnv,
      logDir: join(this.dataDir, 'logs'),
      onExit: this.opts.onWorkerExit,
    });
    for (let i = 0; i < (this.opts.workers ?? 1); i++) await this.addWorker();
    this.state = 'running';
  }

  /** Starts one more worker process; returns it. */
  async addWorker(): Promise<WorkerProcess> {
    if (!this.supervisor) throw new Error('the local stack has not started');
    return this.supervisor.add(`worker-${++this.nextWorker}`);
  }

  /** Workers first (they checkpoint), then the coordinator, then S3 and Redis. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closing';
      await this.supervisor?.stop();
      await this.coordinator?.close();
      await this.s3?.close();
      await this.redis?.close();
      this.state = 'closed';
    })();
    return this.closing;
  }
}
