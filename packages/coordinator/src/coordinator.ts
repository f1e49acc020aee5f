import type { AddressInfo } from 'node:net';
import {
  AUGMENTATION_QUEUE,
  AugmentationStore,
  createRedis,
  duplicateRedis,
  FaultInjector,
  fitDataset,
  type GantryConfig,
  type Logger,
  NotFoundError,
  ObjectStore,
  type RedisClient,
  refuseOpenDoor,
  SpecValidationError,
  type SweepSpec,
  TokenAuthenticator,
  TRIAL_QUEUE,
  type TrialRecord,
  type WorkerInfo,
} from '@gantry/shared';
import { Queue, QueueEvents } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { buildApi } from './api/app.ts';
import { DatasetStore } from './datasets/dataset-store.ts';
import { InferencePool } from './inference/inference-pool.ts';
import { LeaderLease } from './leader-lease.ts';
import { coordinatorMetrics } from './metrics.ts';
import { resolveInitFrom } from './planner/init-from.ts';
import { planSweep } from './planner/plan-sweep.ts';
import { resolveSearch } from './planner/search-submit.ts';
import { Scheduler } from './scheduler.ts';
import { SearchEngine } from './search/engine.ts';
import { type StoredSweep, SweepStore } from './sweep-store.ts';

/** A worker whose last heartbeat is older than this is not listed. */
const WORKER_TTL_MS = 30_000;

export interface CoordinatorOptions {
  /** Scheduler pass interval. @default 1000 */
  schedulerIntervalMs?: number;
  /** The leader lease (only its holder schedules). @default config.coordinator.leaseMs */
  leaseMs?: number;
}

type State = 'created' | 'running' | 'closing' | 'closed';

/**
 * The coordinator process: HTTP API, sweep planning, the scheduler that feeds BullMQ, and metrics.
 * All state is in Redis, so any number of restarts carry on where the last one stopped.
 */
export class Coordinator {
  readonly redis: RedisClient;
  /** BullMQ does not close connections it is given, so the queue's own is kept here to close. */
  private readonly queueRedis: RedisClient;
  /** The queue events' blocking connection. */
  private readonly eventsRedis: RedisClient;
  /** Job completions and failures, which wake the scheduler. */
  private readonly queueEvents: QueueEvents;
  /** Several coordinators may run; the lease's holder schedules, every one serves the API. */
  readonly lease: LeaderLease;
  readonly store: SweepStore;
  readonly queue: Queue;
  /** Augmentation jobs (README, "GAN data augmentation"), on the trial queue's connection. */
  readonly augmentQueue: Queue;
  readonly objects: ObjectStore;
  readonly datasets: DatasetStore;
  readonly scheduler: Scheduler;
  /** Schedulers' decisions and TPE's suggestions, made in the scheduler's passes. */
  readonly search: SearchEngine;
  readonly app: FastifyInstance;
  /** Runs trials' generators for the API's inference requests, in processes of their own. */
  readonly inference: InferencePool;
  private state: State = 'created';
  private closing?: Promise<void>;

  constructor(
    readonly config: GantryConfig,
    private readonly log: Logger,
    opts: CoordinatorOptions = {},
  ) {
    this.redis = createRedis(config);
    this.store = new SweepStore(this.redis, config.prefix);
    this.queueRedis = duplicateRedis(this.redis);
    this.queue = new Queue(TRIAL_QUEUE, { connection: this.queueRedis, prefix: config.prefix });
    this.augmentQueue = new Queue(AUGMENTATION_QUEUE, { connection: this.queueRedis, prefix: config.prefix });
    this.objects = new ObjectStore(config.s3);
    this.datasets = new DatasetStore(this.objects, log, { fashionMnistDir: config.datasets.fashionMnistDir });
    const faults = new FaultInjector(config.faultKillAt, (point) =>
      log.warn({ point }, 'fault injection: killing the coordinator'),
    );
    this.search = new SearchEngine({
      store: this.store,
      queue: this.queue,
      objects: this.objects,
      log,
      faults,
      liveWorkers: async () => new Set((await this.workers()).map((w) => w.id)),
    });
    this.eventsRedis = duplicateRedis(this.redis);
    this.queueEvents = new QueueEvents(TRIAL_QUEUE, {
      connection: this.eventsRedis,
      prefix: config.prefix,
      autorun: false,
    });
    this.lease = new LeaderLease(this.redis, this.store.keys, {
      leaseMs: opts.leaseMs ?? config.coordinator.leaseMs,
      ...(config.coordinator.id ? { id: config.coordinator.id } : {}),
      log,
    });
    this.scheduler = new Scheduler(this.store, this.queue, log, {
      intervalMs: opts.schedulerIntervalMs,
      faults,
      search: this.search,
      lease: this.lease,
      events: this.queueEvents,
    });
    this.inference = new InferencePool({
      init: { store: config.s3, backend: config.worker.backend, wasmGemm: config.worker.wasmGemm },
      log,
      concurrency: config.infer.concurrency,
      queue: config.infer.queue,
      timeoutMs: config.infer.timeoutMs,
      idleMs: config.infer.idleMs,
    });
    this.app = buildApi({
      store: this.store,
      scheduler: this.scheduler,
      objects: this.objects,
      datasets: this.datasets,
      metrics: coordinatorMetrics(
        this.store,
        this.queue,
        async () => (await this.workers()).length,
        this.scheduler,
      ),
      inference: this.inference,
      augmentations: {
        records: new AugmentationStore(this.redis, config.prefix),
        queue: this.augmentQueue,
      },
      inferMaxBytes: config.infer.maxBytes,
      submit: (spec) => this.submit(spec),
      workers: () => this.workers(),
      ready: async () => this.state === 'running' && (await this.redis.ping()) === 'PONG',
      auth: new TokenAuthenticator(config.api.tokens),
      rateLimitPerMinute: config.api.rateLimitPerMinute,
      idleTimeoutMs: config.api.idleTimeoutMs,
      requestTimeoutMs: config.api.requestTimeoutMs,
    });
  }

  /**
   * Resolves the spec's data set to a version (pushing a built-in set on first use), checks that it suits
   * the model, pins it, then plans the sweep, pins and checks a warm start's checkpoint against every
   * trial's networks (init_from), and stores the sweep; answers then, while the scheduler's pass it starts
   * queues the first trials. Nothing is written for an invalid spec. @throws SpecValidationError naming the field
   */
  async submit(spec: SweepSpec): Promise<{
    id: string;
    trialIds: string[];
    warnings: string[];
    sweep: StoredSweep;
    trials: TrialRecord[];
  }> {
    const began = performance.now();
    const pinned = await this.pinDataset(spec);
    const searched = await resolveSearch(pinned.spec, this.store);
    const planning = performance.now();
    const plan = planSweep(searched);
    const planMs = performance.now() - planning;
    const resolved = await resolveInitFrom(searched, plan, {
      trial: (id) => this.store.trial(id),
      checkpoints: (id) => this.store.checkpoints(id),
      shapes: (req) => this.inference.shapes(req),
    });
    const storing = performance.now();
    const { sweep, trials } = await this.store.createWithTrials(resolved, plan, (p) =>
      this.search.firstSegment(resolved, p.index),
    );
    const storeMs = performance.now() - storing;
    await this.scheduler.adopt(sweep, trials);
    void this.scheduler.tick();
    const round = (ms: number) => Math.round(ms * 10) / 10;
    this.log.info(
      {
        sweepId: sweep.id,
        trials: plan.length,
        method: spec.method,
        dataset: pinned.spec.dataset,
        planMs: round(planMs),
        storeMs: round(storeMs),
        submitMs: round(performance.now() - began),
      },
      'sweep submitted',
    );
    return { id: sweep.id, trialIds: sweep.trialIds, warnings: pinned.warnings, sweep, trials };
  }

  private async pinDataset(spec: SweepSpec): Promise<{ spec: SweepSpec; warnings: string[] }> {
    let manifest: Awaited<ReturnType<DatasetStore['resolve']>>;
    try {
      manifest = await this.datasets.resolve(spec.dataset);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      const { name, version } = spec.dataset;
      throw new SpecValidationError([
        version
          ? { path: 'dataset.version', message: `data set '${name}' has no version ${version}` }
          : {
              path: 'dataset',
              message: `no data set '${name}': push it with gantry dataset push, or see gantry dataset list`,
            },
      ]);
    }
    const fit = fitDataset(spec, manifest);
    if (fit.issues.length > 0) throw new SpecValidationError(fit.issues);
    return { spec: { ...spec, dataset: fit.dataset }, warnings: fit.warnings };
  }

  /** Workers with a recent heartbeat. */
  async workers(): Promise<WorkerInfo[]> {
    const all = await this.redis.hgetall(this.store.keys.workers);
    const now = Date.now();
    return Object.values(all)
      .map((v) => JSON.parse(v) as WorkerInfo)
      .filter((w) => now - w.lastHeartbeat < WORKER_TTL_MS)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Starts the scheduler and, when `listen` is set, the HTTP server. Returns the API's base URL. */
  async start(listen?: { host: string; port: number }): Promise<string | undefined> {
    if (this.state !== 'created') throw new Error(`coordinator already ${this.state}`);
    if (listen) refuseOpenDoor(listen.host, this.config.api.tokens.length);
    await this.objects.ensureBucket();
    this.state = 'running';
    void this.queueEvents.run().catch((err) => this.log.error({ err }, 'queue events stopped'));
    await this.lease.start();
    this.scheduler.start();
    await this.scheduler.tick();
    if (!listen) return undefined;
    await this.app.listen({ host: listen.host, port: listen.port });
    const addr = this.app.server.address() as AddressInfo;
    const url = `http://${listen.host}:${addr.port}`;
    this.log.info({ url }, 'coordinator listening');
    return url;
  }

  /** Stops serving and scheduling; running trials keep going on their workers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closing';
      await this.scheduler.stop();
      await this.lease.stop();
      await this.queueEvents.close();
      await this.eventsRedis.quit().catch(() => {});
      await this.app.close();
      await this.inference.close();
      await this.queue.close();
      await this.augmentQueue.close();
      await this.objects.close();
      await this.queueRedis.quit().catch(() => {});
      await this.redis.quit().catch(() => {});
      this.state = 'closed';
    })();
    return this.closing;
  }
}
