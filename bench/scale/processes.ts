/**
 * The scale simulation's child processes: the real coordinator (`gantry coordinator`) and the worker
 * hosts (host.ts). Each logs to a file of its own; stdout carries only the lines waited for here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HostSpec } from './host.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOST_ENTRY = fileURLToPath(new URL('./host.ts', import.meta.url));
const GANTRY_BIN = fileURLToPath(new URL('../../packages/coordinator/bin/gantry.mjs', import.meta.url));

/** A child process of the bench. */
export interface BenchProcess {
  readonly pid: number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** Resolves with the first match of `pattern` on the child's stdout; rejects if it exits or times out. */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs: number) {
  return new Promise<RegExpExecArray>((resolve, reject) => {
    let seen = '';
    const done = (err?: Error, m?: RegExpExecArray) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m!);
    };
    const onData = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      const m = pattern.exec(seen);
      if (m) done(undefined, m);
    };
    const onExit = (code: number | null, sig: NodeJS.Signals | null) =>
      done(new Error(`${what} exited (${sig ?? `code ${code}`}) before it was ready`));
    const timer = setTimeout(
      () => done(new Error(`${what} not ready after ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

function launch(
  args: string[],
  env: NodeJS.ProcessEnv,
  logFile: string,
): BenchProcess & { child: ChildProcess } {
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', log] });
  if (child.pid === undefined) throw new Error(`could not start ${args.join(' ')}`);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  // The child's remaining stdout is read and dropped, so that it never blocks on a full pipe.
  child.stdout?.resume();
  let closed: Promise<void> | undefined;
  return {
    child,
    pid: child.pid,
    close: (graceMs = 60_000) => {
      closed ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      })();
      return closed;
    },
  };
}

/** The real coordinator, configured by `env` (REDIS_URL, S3_*, GANTRY_PREFIX, ...) on a free port. */
export async function startCoordinator(
  env: NodeJS.ProcessEnv,
  logFile: string,
): Promise<BenchProcess & { url: string }> {
  const p = launch([GANTRY_BIN, 'coordinator', '--port', '0', '--host', '127.0.0.1'], env, logFile);
  try {
    const m = await waitForLine(p.child, /listening on (http:\/\/\S+)/, 'the coordinator', 60_000);
    return { pid: p.pid, close: p.close, url: m[1]! };
  } catch (err) {
    await p.close(1000);
    throw err;
  }
}

/** A worker host (host.ts) running `spec.ids.length` workers; resolves once all have started. */
export async function startHost(
  spec: HostSpec,
  env: NodeJS.ProcessEnv,
  logFile: string,
): Promise<BenchProcess> {
  const p = launch(['--import', 'tsx', HOST_ENTRY, JSON.stringify(spec)], env, logFile);
  try {
    // A 250-worker host opens ~1,500 Redis connections and 250 ports on a loaded 2-core machine.
    await waitForLine(p.child, /ready \d+/, `worker host ${spec.ids[0]}..`, 300_000);
    return { pid: p.pid, close: p.close };
  } catch (err) {
    await p.close(1000);
    throw err;
  }
}
