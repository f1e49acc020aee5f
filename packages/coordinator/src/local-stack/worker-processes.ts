import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Entry of the worker package, started as a separate process (the coordinator never imports worker code).
 * In this monorepo it sits beside the coordinator package; GANTRY_WORKER_ENTRY overrides it.
 */
export const DEFAULT_WORKER_ENTRY = fileURLToPath(
  new URL('../../../worker/bin/gantry-worker.mjs', import.meta.url),
);

export interface WorkerProcess {
  id: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

/** Spawns one `gantry-worker` process with `env`, its logs (JSON on stderr) appended to `<logDir>/<id>.log`. */
export async function spawnWorker(
  id: string,
  env: NodeJS.ProcessEnv,
  logDir: string,
  entry = DEFAULT_WORKER_ENTRY,
): Promise<WorkerProcess> {
  await mkdir(logDir, { recursive: true });
  const logFile = join(logDir, `${id}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [entry], {
    env: { ...env, GANTRY_WORKER_ID: id },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      log.end();
      resolve(code);
    }),
  );
  return { id, child, logFile, exited };
}

/** SIGTERM (checkpoint and give jobs back), then SIGKILL after `graceMs`. */
export async function stopWorker(w: WorkerProcess, graceMs = 120_000): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill('SIGTERM');
  const timer = setTimeout(() => w.child.kill('SIGKILL'), graceMs);
  await w.exited;
  clearTimeout(timer);
}

/** What a supervisor says when one of its workers exits while it supervises. */
export interface WorkerExit {
  id: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Restarts of this worker so far, this one included. */
  restarts: number;
  /** When the next process starts: the backoff grows while the worker keeps dying young. */
  restartInMs: number;
  logFile: string;
}

export interface WorkerSupervisorOptions {
  env: NodeJS.ProcessEnv;
  logDir: string;
  entry?: string;
  /** Told of each exit, before the restart. */
  onExit?: (e: WorkerExit) => void;
  /** First restart delay; doubled for each exit of a process younger than `healthyMs`. @default 1000 */
  minDelayMs?: number;
  /** @default 30000 */
  maxDelayMs?: number;
  /** A process that ran this long was healthy: its exit restarts after `minDelayMs` again. @default 60000 */
  healthyMs?: number;
}

/**
 * Keeps N worker processes running, as `gantry up` does: a worker that dies (a crash, an out-of-memory
 * kill, a SIGKILL by hand) is started again under the same id, after a delay that doubles while it keeps
 * dying young (like a container runtime's crash-loop backoff). Its trial's job was given back or goes
 * stalled and is taken again, so no training is lost beyond the last checkpoint.
 */
export class WorkerSupervisor {
  private readonly current = new Map<string, WorkerProcess>();
  private readonly state = new Map<string, { restarts: number; delayMs: number; timer?: NodeJS.Timeout }>();
  private stopping = false;

  constructor(private readonly opts: WorkerSupervisorOptions) {}

  /** The running process of each worker (a worker waiting for its restart is absent). */
  get workers(): WorkerProcess[] {
    return [...this.current.values()];
  }

  /** Starts worker `id` and supervises it. */
  async add(id: string): Promise<WorkerProcess> {
    this.state.set(id, { restarts: 0, delayMs: this.opts.minDelayMs ?? 1000 });
    return this.launch(id);
  }

  private async launch(id: string): Promise<WorkerProcess> {
    const w = await spawnWorker(id, this.opts.env, this.opts.logDir, this.opts.entry);
    this.current.set(id, w);
    const startedAt = Date.now();
    w.child.once('exit', (code, signal) => {
      if (this.stopping) return;
      this.current.delete(id);
      const s = this.state.get(id)!;
      const min = this.opts.minDelayMs ?? 1000;
      if (Date.now() - startedAt >= (this.opts.healthyMs ?? 60_000)) s.delayMs = min;
      s.restarts += 1;
      const restartInMs = s.delayMs;
      s.delayMs = Math.min(s.delayMs * 2, this.opts.maxDelayMs ?? 30_000);
      this.opts.onExit?.({ id, code, signal, restarts: s.restarts, restartInMs, logFile: w.logFile });
      s.timer = setTimeout(() => {
        s.timer = undefined;
        if (!this.stopping) void this.launch(id);
      }, restartInMs);
    });
    return w;
  }

  /** Stops supervising, then stops every worker (SIGTERM: they checkpoint and give their jobs back). */
  async stop(graceMs?: number): Promise<void> {
    this.stopping = true;
    for (const s of this.state.values()) if (s.timer) clearTimeout(s.timer);
    await Promise.all(this.workers.map((w) => stopWorker(w, graceMs)));
  }
}
