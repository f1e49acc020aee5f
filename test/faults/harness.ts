import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ObjectStore,
  type ObjectStoreConfig,
  TRIAL_QUEUE,
  type TrialEvent,
  type TrialRecord,
} from '@gantry/shared';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  type LocalRedis,
  type LocalS3,
  pickFreePort,
  S3RVER_CREDENTIALS,
  spawnWorker,
  startRedisServer,
  startS3Server,
  stopWorker,
  type WorkerProcess,
} from '../../packages/coordinator/src/local-stack/index.ts';
import { SweepStore } from '../../packages/coordinator/src/sweep-store.ts';
import { CheckpointStore } from '../../packages/worker/src/checkpoint-store.ts';
import { testEnv, uniqueId } from '../support/infra.ts';
import { waitFor, waitForSweepEnd } from '../support/wait-for.ts';

const GANTRY = join(import.meta.dirname, '../../packages/coordinator/bin/gantry.mjs');

export interface FaultStackOptions {
  workers: number;
  /** Redis's `appendfsync`. @default 'always' */
  appendFsync?: 'always' | 'everysec';
  /** Extra environment of every process; `coordinatorEnv`: of the coordinator's first start only. */
  env?: NodeJS.ProcessEnv;
  coordinatorEnv?: NodeJS.ProcessEnv;
  /** Environment of worker i (1-based) on top of the rest. */
  workerEnv?: (i: number) => NodeJS.ProcessEnv;
}

/**
 * A whole deployment of real processes for a fault case (or for cases of one file, one after another),
 * none of it shared with other tests: its own redis-server (AOF on, restartable on the same port and
 * files), its own s3rver (stoppable and restartable in place), the coordinator as a `gantry coordinator`
 * process, and worker processes. Everything it learns it reads from Redis and S3 as an operator would.
 */
export class FaultStack {
  redis!: LocalRedis;
  s3!: LocalS3;
  coordinator?: { child: ChildProcess; exited: Promise<number | null>; url: string };
  readonly workers: WorkerProcess[] = [];
  env!: NodeJS.ProcessEnv;
  store!: SweepStore;
  queue!: Queue;
  objects!: ObjectStore;
  readonly dir: string;
  readonly logDir: string;
  private client!: Redis;
  private queueClient!: Redis;
  private apiPort = 0;
  private coordinatorStarts = 0;
  private appendFsyncNow?: 'always' | 'everysec';

  private constructor(
    dir: string,
    private readonly opts: FaultStackOptions,
  ) {
    this.dir = dir;
    this.logDir = join(dir, 'logs');
  }

  static async start(opts: FaultStackOptions): Promise<FaultStack> {
    const stack = new FaultStack(await mkdtemp(join(tmpdir(), 'gantry-fault-')), opts);
    await stack.boot();
    return stack;
  }

  get redisDir(): string {
    return join(this.dir, 'redis');
  }

  private async boot(): Promise<void> {
    await mkdir(this.logDir, { recursive: true });
    const bucket = uniqueId('fault');
    [this.redis, this.s3] = await Promise.all([
      this.startRedis(),
      startS3Server({ dir: join(this.dir, 's3'), buckets: [bucket] }),
    ]);
    this.apiPort = await pickFreePort();
    this.env = testEnv({
      REDIS_URL: this.redis.url,
      S3_ENDPOINT: this.s3.endpoint,
      S3_BUCKET: bucket,
      GANTRY_LOCK_MS: '4000',
      GANTRY_PROGRESS_EVERY: '1',
      GANTRY_PORT: String(this.apiPort),
      // One coordinator restarted in place, as a pod's container is: it takes its lease back at once.
      GANTRY_COORDINATOR_ID: 'fault-coordinator',
      LOG_LEVEL: 'info',
      ...this.opts.env,
    });
    this.client = new Redis(this.redis.url, { maxRetriesPerRequest: null });
    this.client.on('error', () => {});
    this.queueClient = new Redis(this.redis.url, { maxRetriesPerRequest: null });
    this.queueClient.on('error', () => {});
    this.store = new SweepStore(this.client, this.env.GANTRY_PREFIX!);
    this.queue = new Queue(TRIAL_QUEUE, { connection: this.queueClient, prefix: this.env.GANTRY_PREFIX });
    this.queue.on('error', () => {});
    this.objects = new ObjectStore(this.s3Config());
    // Workers need only Redis and S3: they load while the coordinator starts (each takes seconds).
    for (let i = 1; i <= this.opts.workers; i++) {
      this.workers.push(
        await spawnWorker(`w${i}`, { ...this.env, ...this.opts.workerEnv?.(i) }, this.logDir),
      );
    }
    await this.startCoordinator();
    // Every worker takes jobs before a case submits its sweep (a case may need each to get a trial).
    await waitFor(
      `${this.opts.workers} workers to register`,
      async () => ((await this.client.hlen(this.store.keys.workers)) >= this.opts.workers ? true : undefined),
      60_000,
    );
  }

  s3Config(): ObjectStoreConfig {
    return {
      endpoint: this.s3.endpoint,
      region: 'us-east-1',
      bucket: this.env.S3_BUCKET!,
      forcePathStyle: true,
      ...S3RVER_CREDENTIALS,
    };
  }

  private startRedis(port?: number, dir = this.redisDir): Promise<LocalRedis> {
    return startRedisServer({ port, dir, appendOnly: true, appendFsync: this.appendFsync });
  }

  /** Redis's `appendfsync` now (and at its restarts). */
  get appendFsync(): 'always' | 'everysec' {
    return this.appendFsyncNow ?? this.opts.appendFsync ?? 'always';
  }

  /** Sets Redis's `appendfsync` on the running server (CONFIG SET) and for its restarts. */
  async setAppendFsync(mode: 'always' | 'everysec'): Promise<void> {
    await this.client.config('SET', 'appendfsync', mode);
    this.appendFsyncNow = mode;
  }

  /** SIGKILLs redis-server; `restartRedis` brings it back on the same port from its AOF. */
  killRedis(): Promise<void> {
    return this.redis.kill();
  }

  /** Restarts Redis on its port from `dir` (its own files by default, or a copy taken earlier). */
  async restartRedis(dir = this.redisDir): Promise<void> {
    this.redis = await this.startRedis(this.redis.port, dir);
  }

  /** A copy of Redis's files as they are now (to restart from later: the writes after it are lost). */
  async snapshotRedis(): Promise<string> {
    const copy = join(this.dir, `redis-snapshot-${Date.now()}`);
    await cp(this.redisDir, copy, { recursive: true });
    return copy;
  }

  /** Stops the object store (connections refused until `startS3`). */
  stopS3(): Promise<void> {
    return this.s3.close();
  }

  async startS3(): Promise<void> {
    this.s3 = await startS3Server({ dir: join(this.dir, 's3'), port: this.s3.port });
  }

  /** Starts a `gantry coordinator` process (and waits until it listens). */
  async startCoordinator(extra: NodeJS.ProcessEnv = {}): Promise<void> {
    this.coordinatorStarts += 1;
    const log = createWriteStream(join(this.logDir, `coordinator-${this.coordinatorStarts}.log`));
    const child = spawn(process.execPath, [GANTRY, 'coordinator'], {
      // The coordinator's own settings (a fault to inject) hold for its first start only.
      env: { ...this.env, ...(this.coordinatorStarts === 1 ? this.opts.coordinatorEnv : {}), ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr?.pipe(log);
    let out = '';
    const listening = new Promise<string>((resolve, reject) => {
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const m = /listening on (\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code, sig) =>
        reject(new Error(`coordinator exited (${sig ?? code}) before listening`)),
      );
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = await listening;
    this.coordinator = { child, exited, url };
  }

  /** SIGTERMs the coordinator and waits for it to exit (nothing to do when it has). */
  async stopCoordinator(): Promise<void> {
    const c = this.coordinator;
    if (!c || c.child.exitCode !== null || c.child.signalCode !== null) return;
    c.child.kill('SIGTERM');
    await c.exited;
  }

  /** Submits a spec (JSON) through the API; returns the sweep's id and trial ids. */
  async submit(spec: Record<string, unknown>): Promise<{ id: string; trialIds: string[] }> {
    const res = await fetch(`${this.coordinator!.url}/v1/sweeps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.authHeader() },
      body: JSON.stringify(spec),
    });
    const body = (await res.json()) as { id: string; trialIds: string[] };
    if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
    return body;
  }

  authHeader(): Record<string, string> {
    const token = this.env.GANTRY_API_TOKEN;
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  async trials(ids: readonly string[]): Promise<(TrialRecord & { dispatched: boolean })[]> {
    return this.store.trials(ids);
  }

  /** Waits until a trial matching `pred` exists; returns it. */
  waitForTrial(
    what: string,
    ids: readonly string[],
    pred: (t: TrialRecord & { dispatched: boolean }) => boolean,
    timeoutMs = 120_000,
  ): Promise<TrialRecord & { dispatched: boolean }> {
    return waitFor(what, async () => (await this.store.trials(ids).catch(() => [])).find(pred), timeoutMs);
  }

  /** Waits for the sweep's end; reads that fail while Redis is down count as "not yet". */
  waitForSweepEnd(id: string, timeoutMs = 240_000): Promise<{ state: string }> {
    const store = { get: (sweepId: string) => this.store.get(sweepId).catch(() => undefined) };
    return waitForSweepEnd({ store }, id, timeoutMs);
  }

  worker(id: string): WorkerProcess {
    const w = this.workers.find((x) => x.id === id);
    if (!w) throw new Error(`no worker ${id}`);
    return w;
  }

  /**
   * The worker's log so far (JSON lines); from character `from` on, to read what a case on a shared stack
   * logged (`from`: the length of the log read before it began).
   */
  async workerLog(id: string, from = 0): Promise<string> {
    return (await readFile(this.worker(id).logFile, 'utf8')).slice(from);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => stopWorker(w, 10_000)));
    await this.stopCoordinator();
    await this.queue?.close().catch(() => {});
    this.client?.disconnect();
    this.queueClient?.disconnect();
    await this.objects?.close();
    await this.s3?.close();
    await this.redis?.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** What one fault case cost, measured from the trials' records, events, history and checkpoints. */
export interface FaultFigures {
  trials: number;
  /** Trials that did not complete. */
  lost: number;
  /** Trials with more than one accepted completion. */
  completedTwice: number;
  /** Writes accepted from an attempt after another attempt of the trial had started. */
  staleWrites: number;
  /** Committed checkpoints that do not read back whole, or were written by another worker than committed them. */
  overwritten: number;
  /** Steps trained that later attempts had to train again, over all trials; and the most on one trial. */
  stepsLost: number;
  maxStepsLostPerTrial: number;
  /** From the end of the fault until every trial it interrupted reported a step past what it had reached. */
  recoverMs?: number;
  /** Attempts that failed (each one retried while attempts were left). */
  failedAttempts: number;
  /** Jobs given back to the queue by a worker with a node fault (no attempt used). */
  gaveBack: number;
}

/** Computes the figures of sweep `sweepId`; `faultEnd` (ms) is when the fault was lifted. */
export async function faultFigures(
  stack: FaultStack,
  trialIds: readonly string[],
  opts: { faultEnd?: number; corrupted?: ReadonlySet<string> } = {},
): Promise<FaultFigures> {
  const f: FaultFigures = {
    trials: trialIds.length,
    lost: 0,
    completedTwice: 0,
    staleWrites: 0,
    overwritten: 0,
    stepsLost: 0,
    maxStepsLostPerTrial: 0,
    failedAttempts: 0,
    gaveBack: 0,
  };
  let recover = 0;
  for (const id of trialIds) {
    const t = (await stack.store.trial(id))!;
    const [events, history, checkpoints] = await Promise.all([
      stack.store.events(id),
      stack.store.history(id, 100_000),
      stack.store.checkpoints(id),
    ]);
    if (t.state !== 'completed') f.lost += 1;
    if (events.filter((e) => e.event === 'done').length > 1) f.completedTwice += 1;
    f.failedAttempts += events.filter((e) => e.event === 'failed').length;
    f.gaveBack += events.filter((e) => e.event === 'gave-back').length;
    const starts = events.filter((e) => e.event === 'start');
    const holderAt = (time: number): TrialEvent | undefined => starts.findLast((s) => s.t <= time);
    for (const w of [...history, ...checkpoints]) {
      const holder = holderAt(w.t);
      if (holder && w.worker !== holder.worker) f.staleWrites += 1;
    }
    const checkpointStore = new CheckpointStore(stack.objects, t.sweepId, id);
    for (const ref of checkpoints) {
      if (opts.corrupted?.has(ref.manifestKey)) continue;
      const manifest = await checkpointStore.read(ref.manifestKey).then(
        async () => stack.objects.getJson<{ writer: string }>(ref.manifestKey),
        () => undefined,
      );
      if (!manifest || !manifest.writer.startsWith(`${ref.worker}-`)) f.overwritten += 1;
    }
    let lostHere = 0;
    for (let i = 0; i + 1 < starts.length; i++) {
      const [a, b] = [starts[i]!, starts[i + 1]!];
      const reached = Math.max(
        a.step,
        ...history.filter((p) => p.worker === a.worker && p.t >= a.t && p.t < b.t).map((p) => p.step),
      );
      const fallback = events.find((e) => e.event === 'fallback' && e.attempt === b.attempt && e.t >= b.t);
      lostHere += Math.max(0, reached - (fallback?.step ?? b.step));
    }
    f.stepsLost += lostHere;
    f.maxStepsLostPerTrial = Math.max(f.maxStepsLostPerTrial, lostHere);
    if (opts.faultEnd !== undefined) {
      const end = opts.faultEnd;
      const before = history.filter((p) => p.t <= end);
      const completedBefore = events.some((e) => e.event === 'done' && e.t <= end);
      if (before.length > 0 && !completedBefore) {
        const pre = Math.max(...before.map((p) => p.step));
        const next = history.find((p) => p.t > end && p.step > pre);
        const doneAfter = events.find((e) => e.event === 'done' && e.t > end);
        const at = next?.t ?? doneAfter?.t;
        if (at !== undefined) recover = Math.max(recover, at - end);
      }
    }
  }
  if (opts.faultEnd !== undefined) f.recoverMs = recover;
  return f;
}

/** The one line of figures a fault case ends with. */
export function figuresLine(name: string, f: FaultFigures, interval: number): string {
  const recover = f.recoverMs === undefined ? '' : `, recovered in ${(f.recoverMs / 1000).toFixed(1)} s`;
  return (
    `fault ${name}: trials lost ${f.lost}/${f.trials}, completed twice ${f.completedTwice}, ` +
    `stale writes accepted ${f.staleWrites}, checkpoints overwritten ${f.overwritten}, ` +
    `steps lost ${f.stepsLost} (most on one trial ${f.maxStepsLostPerTrial}, interval ${interval}), ` +
    `failed attempts ${f.failedAttempts}${f.gaveBack ? `, given back ${f.gaveBack}` : ''}${recover}`
  );
}

/** A small DCGAN grid that trains in seconds per trial on this machine. */
export function faultSpec(
  name: string,
  o: { trials: number; parallel: number; steps: number; every: number },
): Record<string, unknown> {
  const lrs = [2e-4, 3e-4, 4e-4, 5e-4].slice(0, o.trials);
  return {
    name,
    model: 'dcgan',
    dataset: 'fashion-mnist',
    method: 'grid',
    seed: 11,
    metric: { name: 'd_loss', goal: 'minimize' },
    health: { eval_every_steps: 0 },
    budget: { trials: o.trials, parallel: o.parallel, steps: o.steps },
    checkpoint: { every_steps: o.every },
    parameters: {
      lr_g: { values: lrs },
      batch_size: { value: 16 },
      base_filters: { value: 8 },
      latent_dim: { value: 16 },
    },
  };
}
