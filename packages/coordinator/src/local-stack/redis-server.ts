import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findOnPath, pickFreePort, sleep, stopChild } from './process-util.ts';

/** A `redis-server` child process owned by this process. */
export interface LocalRedis {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period) and waits for it to exit. Idempotent. */
  close(): Promise<void>;
  /** SIGKILLs the server (no shutdown: what the AOF has is what survives) and waits for it to exit. */
  kill(): Promise<void>;
}

/** Options for {@link startRedisServer}. */
export interface StartRedisServerOptions {
  /** TCP port on 127.0.0.1; 0 or omitted picks a free one. */
  port?: number;
  /** Working directory for AOF files; a temp dir (removed on close) by default. */
  dir?: string;
  /** Enable `appendonly yes`; default false. */
  appendOnly?: boolean;
  /** `appendfsync` with the AOF on. @default 'everysec' (Redis's default) */
  appendFsync?: 'always' | 'everysec' | 'no';
}

type RedisState = 'starting' | 'running' | 'closing' | 'closed';

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const PORT_RETRIES = 5;
const LOG_TAIL_CHARS = 4_000;

/**
 * Starts a throwaway `redis-server` on 127.0.0.1, configured for BullMQ
 * (`maxmemory-policy noeviction`) and without RDB snapshots. Resolves once the
 * server answers `PING`. The child is SIGKILLed if this process exits without
 * calling `close()`.
 */
export async function startRedisServer(opts: StartRedisServerOptions = {}): Promise<LocalRedis> {
  const bin = await findOnPath('redis-server');
  if (bin === undefined) {
    throw new Error(
      'redis-server was not found on PATH; install it (e.g. `apt-get install redis-server`) or point REDIS_URL at a running Redis',
    );
  }
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'gantry-redis-')));
  if (!ownsDir) await mkdir(dir, { recursive: true });
  const fixedPort = opts.port !== undefined && opts.port !== 0;
  try {
    for (let attempt = 1; ; attempt++) {
      const port = fixedPort ? (opts.port as number) : await pickFreePort();
      try {
        return await launch(
          bin,
          port,
          dir,
          opts.appendOnly ?? false,
          opts.appendFsync ?? 'everysec',
          ownsDir,
        );
      } catch (err) {
        if (fixedPort || !(err instanceof PortInUseError) || attempt >= PORT_RETRIES) throw err;
      }
    }
  } catch (err) {
    if (ownsDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * True when a Redis server at `url` accepts a connection and answers `PING`
 * within `timeoutMs`. Honours credentials, db and `rediss://` in the URL.
 */
export async function isRedisReachable(url: string, timeoutMs = 1000): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // Connection errors surface through connect()/ping(); swallow the event so it is not "unhandled".
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

class PortInUseError extends Error {}

async function launch(
  bin: string,
  port: number,
  dir: string,
  appendOnly: boolean,
  appendFsync: 'always' | 'everysec' | 'no',
  ownsDir: boolean,
): Promise<LocalRedis> {
  const args = [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--save',
    '',
    '--appendonly',
    appendOnly ? 'yes' : 'no',
    '--appendfsync',
    appendFsync,
    '--dir',
    dir,
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
    '--logfile',
    '',
  ];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const collect = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  trackChild(child);

  let state: RedisState = 'starting';
  let closed: Promise<void> = Promise.resolve();
  const shutdown = async (): Promise<void> => {
    await stopChild(child, exited, STOP_GRACE_MS);
    untrackChild(child);
    if (ownsDir) await rm(dir, { recursive: true, force: true });
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

  const deadline = Date.now() + START_TIMEOUT_MS;
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = state === 'starting';
  });
  // Require our own "ready" log line too, so a foreign server already on a fixed port is not mistaken for ours.
  const isReady = async (): Promise<boolean> =>
    /ready to accept connections/i.test(log) && !exitedEarly && (await pingRaw(port, 250));
  while (!(await isReady())) {
    if (spawnError !== undefined || exitedEarly || Date.now() > deadline) {
      const reason =
        spawnError?.message ??
        (exitedEarly
          ? `exited with code ${child.exitCode ?? child.signalCode}`
          : 'did not answer PING in time');
      await stopChild(child, exited, STOP_GRACE_MS);
      untrackChild(child);
      if (/address already in use/i.test(log)) throw new PortInUseError(`port ${port} is in use`);
      throw new Error(`redis-server on port ${port} ${reason}:\n${log.trim()}`);
    }
    await sleep(25);
  }
  state = 'running';
  const kill = async (): Promise<void> => {
    if (state !== 'running') return closed;
    state = 'closing';
    child.kill('SIGKILL');
    closed = exited.then(() => {
      untrackChild(child);
      state = 'closed';
    });
    return closed;
  };
  return { url: `redis://${HOST}:${port}`, port, close, kill };
}

/** Children still running; SIGKILLed synchronously if this process exits without closing them. */
const liveChildren = new Set<ChildProcess>();

function trackChild(child: ChildProcess): void {
  if (liveChildren.size === 0) process.once('exit', killLiveChildren);
  liveChildren.add(child);
  child.once('exit', () => untrackChild(child));
}

function untrackChild(child: ChildProcess): void {
  if (!liveChildren.delete(child)) return;
  if (liveChildren.size === 0) process.removeListener('exit', killLiveChildren);
}

function killLiveChildren(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
}

/** Sends an inline `PING` and resolves true on `+PONG`. Never rejects. */
function pingRaw(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    let reply = '';
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}
