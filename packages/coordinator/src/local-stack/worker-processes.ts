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
