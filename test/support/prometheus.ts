import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  findOnPath,
  pickFreePort,
  sleep,
  stopChild,
} from '../../packages/coordinator/src/local-stack/index.ts';

/** One element of an instant vector from the HTTP API. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** The body of `/api/v1/query` (`data` only on success). */
export interface PromQueryResponse {
  status: 'success' | 'error';
  data?: { resultType: 'vector' | 'matrix' | 'scalar' | 'string'; result: unknown };
  errorType?: string;
  error?: string;
  warnings?: string[];
}

/** A `prometheus` child process owned by this process, with its config and TSDB in a temp dir. */
export interface LocalPrometheus {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding `prometheus.yml`, the other given files and `data/`. */
  readonly dir: string;
  /** Runs an instant query (at `time`, unix seconds, or now) and returns the API's answer as is. */
  query(expr: string, time?: number): Promise<PromQueryResponse>;
  /** GETs an API path (e.g. `/api/v1/rules`) and returns its JSON. */
  get<T>(path: string): Promise<T>;
  /** The last lines Prometheus logged, for failure messages. */
  logTail(): string;
  /** SIGTERM, SIGKILL after a grace period, then removes the temp dir. Idempotent. */
  close(): Promise<void>;
}

export interface StartPrometheusOptions {
  /** The text of `prometheus.yml`. */
  config: string;
  /** More files to write beside it, by path relative to the config (rule files, say). */
  files?: Record<string, string>;
  /** How long to wait for `/-/ready`. @default 30000 */
  readyTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const STOP_GRACE_MS = 10_000;
const PORT_RETRIES = 5;
const LOG_TAIL_CHARS = 6_000;

/**
 * Starts Debian's `prometheus` on a free loopback port with `config` (and `files`) in a fresh temp dir, and
 * resolves once `/-/ready` answers 200. Throws with Prometheus' log when it exits or is not ready in time.
 */
export async function startPrometheus(opts: StartPrometheusOptions): Promise<LocalPrometheus> {
  const bin = await findOnPath('prometheus');
  if (bin === undefined) {
    throw new Error('prometheus was not found on PATH; install it with `apt-get install prometheus`');
  }
  const dir = await mkdtemp(join(tmpdir(), 'gantry-prometheus-'));
  try {
    await writeFile(join(dir, 'prometheus.yml'), opts.config);
    for (const [rel, text] of Object.entries(opts.files ?? {})) {
      await mkdir(dirname(join(dir, rel)), { recursive: true });
      await writeFile(join(dir, rel), text);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await launch(bin, dir, await pickFreePort(), opts.readyTimeoutMs ?? 30_000);
      } catch (err) {
        if (!(err instanceof PortInUseError) || attempt >= PORT_RETRIES) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

class PortInUseError extends Error {}

async function launch(
  bin: string,
  dir: string,
  port: number,
  readyTimeoutMs: number,
): Promise<LocalPrometheus> {
  const url = `http://${HOST}:${port}`;
  const child = spawn(
    bin,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=${HOST}:${port}`,
      '--storage.tsdb.retention.time=1d',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const collect = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await stopChild(child, exited, STOP_GRACE_MS);
      process.removeListener('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    })();
    return closing;
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) {
      await stopChild(child, exited, STOP_GRACE_MS);
      process.removeListener('exit', killOnExit);
      if (/address already in use/i.test(log)) throw new PortInUseError(`port ${port} is in use`);
      const why = spawnError?.message ?? `exited with ${child.exitCode ?? child.signalCode}`;
      throw new Error(`prometheus ${why}:\n${log.trim()}`);
    }
    if (await isReady(url)) break;
    if (Date.now() > deadline) {
      await stopChild(child, exited, STOP_GRACE_MS);
      process.removeListener('exit', killOnExit);
      throw new Error(`prometheus at ${url} was not ready after ${readyTimeoutMs} ms:\n${log.trim()}`);
    }
    await sleep(100);
  }

  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    return (await res.json()) as T;
  };
  return {
    url,
    port,
    dir,
    get,
    query: (expr, time) => {
      const params = new URLSearchParams({ query: expr });
      if (time !== undefined) params.set('time', String(time));
      return get<PromQueryResponse>(`/api/v1/query?${params}`);
    },
    logTail: () => log.trim(),
    close,
  };
}

async function isReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * A Prometheus config of infra/prometheus/ (prometheus.yml, prometheus-token.yml) pointed at a test
 * coordinator, scraping every `scrapeSeconds`. Text substitution keeps the file itself under test (its
 * jobs, discovery, authorization and rule_files).
 */
export function testPrometheusConfig(text: string, coordinatorUrl: string, scrapeSeconds = 2): string {
  const urls = text.match(/http:\/\/127\.0\.0\.1:8080/g) ?? [];
  if (urls.length < 2)
    throw new Error(`expected the coordinator URL at least twice in the config, found ${urls.length}`);
  return text
    .replaceAll('http://127.0.0.1:8080', coordinatorUrl)
    .replace(/^(\s*(?:evaluation_interval|refresh_interval):)\s*\S+/gm, '$1 1s')
    .replace(/^(\s*scrape_interval:)\s*\S+/gm, `$1 ${scrapeSeconds}s`)
    .replace(/^(\s*scrape_timeout:)\s*\S+/gm, `$1 ${scrapeSeconds}s`);
}
