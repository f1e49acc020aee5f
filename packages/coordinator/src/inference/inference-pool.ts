import { type ChildProcess, fork } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  type ExportRequest,
  type ExportResult,
  type InferChildMessage,
  InferenceError,
  type InferInitMessage,
  type InferParentMessage,
  type InferRequest,
  type InferResult,
  type Logger,
  type ShapesRequest,
  type ShapesResult,
} from '@gantry/shared';

/**
 * Entry of the worker package's inference process, started as a separate process (the coordinator never
 * imports worker code). In this monorepo it sits beside the coordinator package.
 */
export const DEFAULT_INFER_ENTRY = fileURLToPath(
  new URL('../../../worker/bin/gantry-infer.mjs', import.meta.url),
);

/** What the HTTP API needs of inference: one request in, a PNG out (InferencePool; a fake in tests). */
export interface Inference {
  /** @throws InferenceError (busy, timed out, failed) or the inference process' own error */
  run(req: InferRequest): Promise<InferResult>;
  /** The tensors a family's networks have for some parameter sets, and a checkpoint's (init_from). */
  shapes(req: ShapesRequest): Promise<ShapesResult>;
  /** A trial's network as a TF.js graph model (`gantry export`). @throws as `run` */
  export(req: ExportRequest): Promise<ExportResult>;
  close(): Promise<void>;
}

export interface InferencePoolOptions {
  /** Where the processes find the object store, and which backend they start. */
  init: Omit<InferInitMessage, 'type'>;
  log: Logger;
  /** Processes, each answering one request at a time. @default 1 */
  concurrency?: number;
  /** Requests that may wait for a busy process; more are refused (503 with Retry-After). @default 4 */
  queue?: number;
  /** An inference not answered in this long (the process' start included) fails; its process is killed. @default 60000 */
  timeoutMs?: number;
  /** A process idle this long is stopped; the next request starts another. 0: after each request. @default 300000 */
  idleMs?: number;
  /** The script to fork. @default DEFAULT_INFER_ENTRY */
  entry?: string;
}

/** A stopped process gets this long to exit before SIGKILL. */
const STOP_GRACE_MS = 5000;

/** One inference process: started with `init`, answering the requests sent to it one at a time. */
class InferenceProcess {
  private readonly proc: ChildProcess;
  private readonly ready: Promise<void>;
  private readonly pending = new Map<number, { resolve: (r: never) => void; reject: (e: Error) => void }>();
  readonly exited: Promise<void>;
  private alive = true;
  /** Killed or told to stop: takes no more requests, even before its exit is seen. */
  private stopping = false;

  constructor(entry: string, init: InferencePoolOptions['init'], log: Logger) {
    // No inherited execArgv (a test runner's loaders); advanced serialization carries images as bytes.
    this.proc = fork(entry, [], {
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    // It should print nothing; whatever it does print goes to the log, not over the CLI's output.
    for (const [stream, out] of [
      ['stdout', this.proc.stdout],
      ['stderr', this.proc.stderr],
    ] as const) {
      if (out)
        createInterface({ input: out }).on('line', (line) =>
          log.warn({ pid: this.proc.pid, stream, line }, 'inference process output'),
        );
    }
    let started!: () => void;
    let failed!: (e: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    this.ready.catch(() => {});
    this.proc.on('message', (m: InferChildMessage) => {
      if (m.type === 'ready') started();
      else if (m.type === 'init-failed')
        failed(new InferenceError('INFERENCE_FAILED', `the inference process could not start: ${m.message}`));
      else {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.type === 'result' || m.type === 'shapes' || m.type === 'exported')
          p?.resolve(m.result as never);
        else p?.reject(InferenceError.fromWire(m.error));
      }
    });
    this.exited = new Promise<void>((resolve) => {
      const gone = (why: string) => {
        if (!this.alive) return;
        this.alive = false;
        const err = new InferenceError('INFERENCE_FAILED', `the inference process ${why}`);
        failed(err);
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        resolve();
      };
      this.proc.once('error', (err) => gone(`could not be started: ${err.message}`));
      this.proc.once('exit', (code, signal) => gone(`exited (${signal ?? `code ${code}`})`));
    });
    this.send({ type: 'init', ...init });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Running and not being stopped: may take a request. */
  get usable(): boolean {
    return this.alive && !this.stopping;
  }

  private send(m: InferParentMessage): void {
    if (this.proc.connected) this.proc.send(m, (err) => err && this.kill());
  }

  /** Sends `req` once the process is ready; fails after `timeoutMs` (the process is then killed). */
  run(id: number, req: InferRequest, timeoutMs: number): Promise<InferResult> {
    return this.ask({ type: 'infer', id, request: req }, timeoutMs);
  }

  /** Sends a shapes request once the process is ready; fails like `run`. */
  shapes(id: number, req: ShapesRequest, timeoutMs: number): Promise<ShapesResult> {
    return this.ask({ type: 'shapes', id, request: req }, timeoutMs);
  }

  /** Sends an export request once the process is ready; fails like `run`. */
  export(id: number, req: ExportRequest, timeoutMs: number): Promise<ExportResult> {
    return this.ask({ type: 'export', id, request: req }, timeoutMs);
  }

  private ask<T>(m: Extract<InferParentMessage, { id: number }>, timeoutMs: number): Promise<T> {
    const { id } = m;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        reject(
          new InferenceError(
            'INFERENCE_TIMEOUT',
            `no answer from the inference process within ${timeoutMs} ms; it was stopped`,
          ),
        );
        this.kill();
      }, timeoutMs);
      const settle =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          f(v);
        };
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      this.ready.then(
        () => this.send(m),
        (err: Error) => {
          if (this.pending.delete(id)) settle(reject)(err);
        },
      );
    });
  }

  kill(): void {
    this.stopping = true;
    if (this.alive) this.proc.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once it has exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (!this.alive) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.kill(), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

interface Slot {
  proc?: InferenceProcess;
  busy: boolean;
  idle?: NodeJS.Timeout;
}

type State = 'open' | 'closing' | 'closed';

/**
 * The coordinator's inference processes (packages/worker/bin/gantry-infer.mjs): at most `concurrency`, each
 * started on first need and kept warm until idle for `idleMs` (the first request pays tfjs' start). A
 * request waits for a free process, up to `queue` waiting; beyond that it is refused with the seconds to
 * wait. A process that hangs past `timeoutMs` is killed and one that crashes is replaced: either costs its
 * own request only.
 */
export class InferencePool implements Inference {
  private readonly slots: Slot[];
  private readonly waiters: { take: (s: Slot) => void; refuse: (e: Error) => void }[] = [];
  private readonly concurrency: number;
  private readonly queue: number;
  private readonly timeoutMs: number;
  private readonly idleMs: number;
  private readonly entry: string;
  private nextId = 1;
  /** Moving average of recent inferences' durations, for Retry-After. */
  private meanMs = 2000;
  private state: State = 'open';
  private closing?: Promise<void>;

  constructor(private readonly opts: InferencePoolOptions) {
    this.concurrency = opts.concurrency ?? 1;
    this.queue = opts.queue ?? 4;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.idleMs = opts.idleMs ?? 300_000;
    this.entry = opts.entry ?? DEFAULT_INFER_ENTRY;
    this.slots = Array.from({ length: this.concurrency }, () => ({ busy: false }));
  }

  /** Process ids of the running inference processes (tests, logs). */
  get pids(): number[] {
    return this.slots.flatMap((s) => (s.proc?.usable && s.proc.pid !== undefined ? [s.proc.pid] : []));
  }

  async run(req: InferRequest): Promise<InferResult> {
    const log = this.opts.log.child({ trialId: req.job.trialId, step: req.checkpoint.step });
    const started = Date.now();
    const result = await this.withProcess(log, (proc, id) => proc.run(id, req, this.timeoutMs));
    log.info({ ms: Date.now() - started, count: result.count }, 'inference');
    return result;
  }

  async shapes(req: ShapesRequest): Promise<ShapesResult> {
    const log = this.opts.log.child({ model: req.model, sets: req.params.length });
    const started = Date.now();
    const result = await this.withProcess(log, (proc, id) => proc.shapes(id, req, this.timeoutMs));
    log.info({ ms: Date.now() - started }, 'network shapes');
    return result;
  }

  /** `gantry export`: the request's network as a TF.js graph model, its files by name. */
  async export(req: ExportRequest): Promise<ExportResult> {
    const log = this.opts.log.child({ trialId: req.job.trialId, step: req.checkpoint.step, net: req.net });
    const started = Date.now();
    const result = await this.withProcess(log, (proc, id) => proc.export(id, req, this.timeoutMs));
    const bytes = result.files.reduce((n, f) => n + f.bytes.length, 0);
    log.info({ ms: Date.now() - started, files: result.files.length, bytes }, 'export');
    return result;
  }

  /** Runs `ask` on a free process (started if need be), then hands the process on. */
  private async withProcess<T>(
    log: Logger,
    ask: (proc: InferenceProcess, id: number) => Promise<T>,
  ): Promise<T> {
    const slot = await this.acquire();
    const started = Date.now();
    try {
      if (!slot.proc?.usable) slot.proc = new InferenceProcess(this.entry, this.opts.init, this.opts.log);
      return await ask(slot.proc, this.nextId++);
    } catch (err) {
      const e = err as InferenceError;
      if (e.status >= 500) log.warn({ code: e.code, err: e.message }, 'inference failed');
      throw err;
    } finally {
      this.meanMs = 0.7 * this.meanMs + 0.3 * (Date.now() - started);
      this.release(slot);
    }
  }

  /** A free slot, marked busy: at once, or after waiting in line. */
  private acquire(): Promise<Slot> {
    if (this.state !== 'open')
      return Promise.reject(
        new InferenceError('INFERENCE_BUSY', 'the coordinator is stopping', { retryAfterS: 5 }),
      );
    const free = this.slots.find((s) => !s.busy);
    if (free) {
      this.take(free);
      return Promise.resolve(free);
    }
    if (this.waiters.length >= this.queue) {
      const retryAfterS = Math.max(
        1,
        Math.ceil((this.meanMs * (this.waiters.length + 1)) / this.concurrency / 1000),
      );
      return Promise.reject(
        new InferenceError(
          'INFERENCE_BUSY',
          `all ${this.concurrency} inference processes are busy and ${this.waiters.length} requests wait; retry in ${retryAfterS} s`,
          { retryAfterS },
        ),
      );
    }
    return new Promise<Slot>((take, refuse) => this.waiters.push({ take, refuse }));
  }

  private take(slot: Slot): void {
    slot.busy = true;
    if (slot.idle) clearTimeout(slot.idle);
    slot.idle = undefined;
  }

  /** Hands the slot to the next waiting request, or lets its process idle (and stop after idleMs). */
  private release(slot: Slot): void {
    slot.busy = false;
    const next = this.waiters.shift();
    if (next) {
      this.take(slot);
      next.take(slot);
      return;
    }
    if (!slot.proc?.usable || this.state !== 'open') return;
    const proc = slot.proc;
    slot.idle = setTimeout(() => {
      slot.idle = undefined;
      if (!slot.busy && slot.proc === proc) void proc.stop();
    }, this.idleMs);
    slot.idle.unref();
  }

  /** Refuses waiting requests and stops every process. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closing';
      for (const w of this.waiters.splice(0))
        w.refuse(new InferenceError('INFERENCE_BUSY', 'the coordinator is stopping', { retryAfterS: 5 }));
      for (const s of this.slots) if (s.idle) clearTimeout(s.idle);
      await Promise.all(this.slots.map((s) => s.proc?.stop()));
      this.state = 'closed';
    })();
    return this.closing;
  }
}
