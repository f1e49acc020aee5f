import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import {
  createRedis,
  duplicateRedis,
  FaultInjector,
  type GantryConfig,
  type Logger,
  ObjectStore,
  type RedisClient,
  redisKeys,
  refuseOpenDoor,
  TokenAuthenticator,
  TRIAL_QUEUE,
  type WorkerInfo,
} from '@gantry/shared';
import { Worker } from 'bullmq';
import { AugmentationConsumer } from './augmentation/augmentation-consumer.ts';
import { type BackendInfo, initBackend } from './backend.ts';
import { DatasetCache } from './data/dataset-cache.ts';
import { DevicePool, defaultConcurrency, detectGpus } from './devices.ts';
import type { TrainerLauncher } from './ipc.ts';
import { WorkerMetrics } from './metrics.ts';
import { type AbortReason, runTrialAttempt, type TrialOutcome } from './trial-runner.ts';

const HEARTBEAT_MS = 5_000;
/** A worker that hit a fault of its node (a full data set cache) takes no jobs for this long. */
const NODE_FAULT_PAUSE_MS = 30_000;

/** Options a worker takes beyond the shared config. */
export interface GantryWorkerOptions {
  /** Trials run at once, each in its own process. @default one per GPU on a GPU backend, else one per core */
  concurrency?: number;
  /** Environment to detect GPUs from (CUDA_VISIBLE_DEVICES). @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Send progress to Redis every this many steps. @default 10 */
  progressEvery?: number;
  /** Starts each attempt's trainer. @default a forked `gantry-trainer` process (the scale bench fakes it) */
  launchTrainer?: TrainerLauncher;
  /** The node's data set cache, when several workers of one process share it (the scale bench). */
  datasets?: DatasetCache;
}

type State = 'created' | 'running' | 'closing' | 'closed';

/**
 * A Gantry worker node: consumes trial jobs from BullMQ, trains each in a child process, serves
 * Prometheus metrics, heartbeats into Redis, and on close() checkpoints running trials and gives
 * their jobs back to the queue.
 */
export class GantryWorker {
  readonly id: string;
  readonly metrics = new WorkerMetrics();
  private state: State = 'created';
  private closing?: Promise<void>;
  private redis?: RedisClient;
  private sub?: RedisClient;
  /** The BullMQ worker's connection (BullMQ does not close connections it is given). */
  private bullRedis?: RedisClient;
  private bull?: Worker;
  /** Augmentation jobs (README, "GAN data augmentation"), one at a time, beside the trials. */
  private augmentations?: AugmentationConsumer;
  private server?: Server;
  private heartbeat?: NodeJS.Timeout;
  /** Set while paused after a node fault. */
  private fault?: string;
  private faultTimer?: NodeJS.Timeout;
  private backend?: BackendInfo;
  private startedAt = Date.now();
  /** Running attempts by job id, with their trial (a staged trial's job id names its stage). */
  private readonly running = new Map<string, { ctrl: AbortController; trialId: string }>();
  private readonly keys;
  private readonly faults: FaultInjector;
  private concurrency = 1;
  private devices = new DevicePool([]);
  /** Fetches data set versions for this node's trainers (S3 client of its own). */
  private readonly objects: ObjectStore;
  readonly datasets: DatasetCache;

  constructor(
    private readonly config: GantryConfig,
    private readonly log: Logger,
    private readonly opts: GantryWorkerOptions = {},
  ) {
    this.id = config.worker.id ?? `${hostname()}-${process.pid}`;
    this.keys = redisKeys(config.prefix);
    this.faults = new FaultInjector(config.faultKillAt, (point) =>
      log.warn({ point }, 'fault injection: killing the worker'),
    );
    // Data set fetches and quality classifiers wait out an outage of the store like the trainers do.
    this.objects = new ObjectStore(config.s3, {
      retry: { maxElapsedMs: config.s3RetryMs, maxDelayMs: 5000 },
      onRetry: (r) =>
        log.warn(
          { op: r.op, key: r.key, attempt: r.attempt, delayMs: r.delayMs, err: r.error },
          'object store unreachable; retrying',
        ),
    });
    this.datasets =
      opts.datasets ??
      new DatasetCache({
        store: this.objects,
        log,
        dir: config.datasets.cacheDir,
        maxBytes: config.datasets.cacheBytes,
        onFetch: (dataset, result) => this.metrics.datasetFetches.inc({ dataset, result }),
      });
  }

  get metricsUrl(): string {
    const addr = this.server?.address() as AddressInfo | null;
    return addr ? `http://127.0.0.1:${addr.port}/metrics` : '';
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`worker ${this.id} already ${this.state}`);
    this.state = 'running';
    this.backend = await initBackend(this.config.worker.backend, { wasmGemm: this.config.worker.wasmGemm });
    const onGpu = this.backend.backend === 'tensorflow' && this.backend.device === 'gpu';
    const gpus = onGpu ? detectGpus(this.opts.env ?? process.env) : [];
    this.devices = new DevicePool(gpus);
    this.concurrency =
      this.opts.concurrency ?? this.config.worker.concurrency ?? defaultConcurrency(onGpu, gpus);
    if (gpus.length > 0)
      this.backend = { ...this.backend, device: `gpu x${gpus.length} (${gpus.join(',')})` };
    this.log.info({ workerId: this.id, ...this.backend, concurrency: this.concurrency }, 'backend selected');
    this.metrics.info.set({ worker: this.id, backend: this.backend.backend, device: this.backend.device }, 1);
    this.metrics.capacity.set(this.concurrency);
    refuseOpenDoor(this.config.api.host, this.config.api.tokens.length, 'the worker metrics endpoint');
    this.server = await this.serveMetrics(this.config.worker.metricsPort);

    this.redis = createRedis(this.config);
    this.sub = createRedis(this.config);
    await this.sub.subscribe(this.keys.control);
    this.sub.on('message', (_channel, message) => this.onControl(message));

    this.bullRedis = duplicateRedis(this.redis);
    this.bull = new Worker(
      TRIAL_QUEUE,
      async (job, token, bullSignal) => {
        const ctrl = new AbortController();
        const jobId = job.id ?? '';
        const trialId = typeof job.data?.trialId === 'string' ? job.data.trialId : jobId;
        this.running.set(jobId, { ctrl, trialId });
        bullSignal?.addEventListener('abort', () => ctrl.abort('cancel' satisfies AbortReason), {
          once: true,
        });
        this.metrics.busy.set(this.running.size);
        await this.beat();
        const gpu = this.devices.acquire();
        try {
          const outcome: TrialOutcome = await runTrialAttempt(job, token ?? '', ctrl.signal, {
            redis: this.redis!,
            keys: this.keys,
            store: this.config.s3,
            workerId: this.id,
            backend: this.backend?.backend,
            wasmGemm: this.config.worker.wasmGemm,
            datasets: this.datasets,
            objectStore: this.objects,
            metrics: this.metrics,
            log: this.log,
            progressEvery: this.opts.progressEvery ?? this.config.worker.progressEvery,
            faultNanAtStep: this.config.worker.faultNanAtStep,
            storeRetryMs: this.config.s3RetryMs,
            onNodeFault: (reason) => this.pauseForFault(reason),
            faults: this.faults,
            gpu,
            launchTrainer: this.opts.launchTrainer,
          });
          this.metrics.outcomes.inc({ outcome: outcome.state });
          return outcome;
        } catch (err) {
          this.metrics.outcomes.inc({
            outcome: (err as Error).name === 'WaitingError' ? 'requeued' : 'error',
          });
          throw err;
        } finally {
          this.devices.release(gpu);
          this.running.delete(jobId);
          this.metrics.busy.set(this.running.size);
          void this.beat().catch(() => {});
        }
      },
      {
        connection: this.bullRedis,
        prefix: this.config.prefix,
        concurrency: this.concurrency,
        lockDuration: this.config.worker.lockMs,
        stalledInterval: this.config.worker.lockMs,
        maxStalledCount: 5,
        autorun: true,
      },
    );
    this.bull.on('failed', (job, err) =>
      this.log.warn({ jobId: job?.id, err: err.message }, 'trial attempt failed'),
    );
    this.bull.on('error', (err) => this.log.error({ err }, 'queue error'));
    this.augmentations = new AugmentationConsumer({
      redis: this.redis,
      prefix: this.config.prefix,
      lockMs: this.config.worker.lockMs,
      store: this.config.s3,
      storeRetryMs: this.config.s3RetryMs,
      backend: this.backend.backend,
      wasmGemm: this.config.worker.wasmGemm,
      datasets: this.datasets,
      workerId: this.id,
      log: this.log.child({ consumer: 'augmentations' }),
    });
    await this.beat();
    this.heartbeat = setInterval(
      () => void this.beat().catch((err) => this.log.warn({ err }, 'heartbeat failed')),
      HEARTBEAT_MS,
    );
    this.log.info({ workerId: this.id, metricsUrl: this.metricsUrl }, 'worker started');
  }

  /** Stops taking jobs for a while after a node fault; the heartbeat says why. */
  private pauseForFault(reason: string): void {
    this.fault = reason;
    this.log.warn({ reason, pauseMs: NODE_FAULT_PAUSE_MS }, 'node fault: taking no jobs for a while');
    if (this.faultTimer) return;
    void this.bull?.pause(true);
    this.faultTimer = setTimeout(() => {
      this.faultTimer = undefined;
      this.fault = undefined;
      if (this.state === 'running') this.bull?.resume();
    }, NODE_FAULT_PAUSE_MS);
    this.faultTimer.unref();
  }

  private onControl(message: string): void {
    let msg: { type?: string; trialIds?: unknown };
    try {
      msg = JSON.parse(message) as typeof msg;
    } catch {
      return;
    }
    if (msg.type !== 'cancel' || !Array.isArray(msg.trialIds)) return;
    const ids = new Set(msg.trialIds);
    for (const { ctrl, trialId } of this.running.values()) {
      if (ids.has(trialId) && !ctrl.signal.aborted) ctrl.abort('cancel' satisfies AbortReason);
    }
  }

  private async beat(): Promise<void> {
    if (!this.redis || this.state === 'closed') return;
    const info: WorkerInfo = {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      backend: this.backend?.backend ?? 'unknown',
      device: this.backend?.device ?? 'unknown',
      concurrency: this.concurrency,
      busyTrials: [...this.running.values()].map((r) => r.trialId),
      metricsUrl: this.metricsUrl,
      lastHeartbeat: Date.now(),
      startedAt: this.startedAt,
      ...(this.fault ? { fault: this.fault } : {}),
    };
    await this.redis.hset(this.keys.workers, this.id, JSON.stringify(info));
  }

  private serveMetrics(port: number): Promise<Server> {
    const auth = new TokenAuthenticator(this.config.api.tokens);
    const server = createServer((req, res) => {
      if (req.url === '/metrics' && auth.enabled) {
        // Scraped with a token of the read role (or admin), like the coordinator's /metrics.
        const r = auth.authenticate(req.headers.authorization);
        if (!r.ok) {
          res.writeHead(401, {
            'content-type': 'application/json',
            'www-authenticate': 'Bearer realm="gantry"',
          });
          res.end(JSON.stringify({ error: { code: r.code, message: r.message } }));
          return;
        }
      }
      if (req.url === '/metrics') {
        this.metrics.registry.metrics().then(
          (body) => {
            res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
            res.end(body);
          },
          (err: Error) => {
            res.writeHead(500);
            res.end(err.message);
          },
        );
      } else if (req.url === '/healthz') {
        res.writeHead(this.state === 'running' ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: this.state === 'running', id: this.id }));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.config.api.host, () => resolve(server));
    });
  }

  /** Checkpoints running trials, gives their jobs back, deregisters. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closing';
      this.log.info({ running: this.running.size }, 'worker shutting down: checkpointing running trials');
      for (const { ctrl } of this.running.values()) ctrl.abort('shutdown' satisfies AbortReason);
      if (this.heartbeat) clearInterval(this.heartbeat);
      await this.bull?.close();
      await this.augmentations?.close();
      await this.redis?.hdel(this.keys.workers, this.id).catch(() => {});
      await this.sub?.quit().catch(() => {});
      await this.bullRedis?.quit().catch(() => {});
      await this.redis?.quit().catch(() => {});
      await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
      await this.objects.close();
      this.state = 'closed';
      this.log.info('worker stopped');
    })();
    return this.closing;
  }
}
