import { Readable } from 'node:stream';
import type { ImportanceAnswer } from '../api/search-routes.ts';
import { type CliTarget, cliConfigPath } from './cli-config.ts';

/** Minimal client of the coordinator's HTTP API for the CLI; errors carry the API's code and field issues. */
export class ApiError extends Error {
  /** Seconds the API asked to wait before trying again (429, 503), from Retry-After. */
  retryAfterS?: number;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message);
  }
}

/** The ApiError of an error response: the API's code, message and field issues when it sent them. */
async function apiError(res: Response): Promise<ApiError> {
  const text = await res.text();
  let parsed: {
    error?: { code?: string; message?: string; issues?: { path: string; message: string }[] };
  } = {};
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // not JSON: keep the raw text as the message
  }
  const err = new ApiError(
    res.status,
    parsed.error?.code ?? 'HTTP_ERROR',
    parsed.error?.message ?? text,
    parsed.error?.issues ?? [],
  );
  const wait = Number(res.headers.get('retry-after') ?? Number.NaN);
  if (Number.isFinite(wait) && wait >= 0) err.retryAfterS = wait;
  return err;
}

export class ApiClient {
  readonly baseUrl: string;
  readonly #token?: string;
  readonly #tokenSource?: string;

  /** `target`: a base URL, or a URL with the bearer token to send (cli-config.ts). */
  constructor(target: string | CliTarget) {
    const t = typeof target === 'string' ? { url: target } : target;
    this.baseUrl = t.url;
    this.#token = t.token;
    this.#tokenSource = t.tokenSource;
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.#token ? { ...extra, authorization: `Bearer ${this.#token}` } : extra;
  }

  /** The API's error, with what to do about a missing or refused token. */
  async #error(res: Response): Promise<ApiError> {
    const err = await apiError(res);
    if (res.status === 401) {
      err.message += this.#token
        ? ` (the token from ${this.#tokenSource} was refused)`
        : ` (set GANTRY_API_TOKEN, or "token" in ${cliConfigPath()})`;
    }
    return err;
  }

  async #fetch(method: string, path: string, body?: { data: string | Uint8Array; type: string }) {
    try {
      return await fetch(new URL(path, this.baseUrl), {
        method,
        headers: this.#headers(body ? { 'content-type': body.type } : {}),
        body: body?.data,
      });
    } catch (err) {
      throw new ApiError(
        0,
        'UNREACHABLE',
        `cannot reach the coordinator at ${this.baseUrl} (${(err as Error).cause ?? (err as Error).message}); start it with 'gantry up' or set GANTRY_API_URL`,
      );
    }
  }

  async request<T>(method: string, path: string, body?: { text: string; type: string }): Promise<T> {
    const res = await this.#fetch(method, path, body && { data: body.text, type: body.type });
    if (res.ok) {
      const type = res.headers.get('content-type') ?? '';
      return (type.includes('json') ? await res.json() : Buffer.from(await res.arrayBuffer())) as T;
    }
    throw await this.#error(res);
  }

  /**
   * POSTs a streamed body and yields the NDJSON lines the API answers with, parsed, as they arrive.
   * @throws ApiError for an error status before the stream starts
   */
  async *postStream<T>(path: string, body: AsyncIterable<Uint8Array>, type: string): AsyncGenerator<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method: 'POST',
        headers: this.#headers({ 'content-type': type, accept: 'application/x-ndjson' }),
        body: Readable.toWeb(Readable.from(body)) as ReadableStream<Uint8Array>,
        duplex: 'half',
      } as RequestInit);
    } catch (err) {
      const e = err as Error;
      throw new ApiError(
        0,
        'UNREACHABLE',
        `cannot reach the coordinator at ${this.baseUrl} (${e.cause ?? e.message})`,
      );
    }
    if (!res.ok || !res.body) throw await this.#error(res);
    let buffered = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) yield JSON.parse(line) as T;
        nl = buffered.indexOf('\n');
      }
    }
    if (buffered.trim()) yield JSON.parse(buffered) as T;
  }

  /**
   * POSTs raw bytes (or nothing) and answers the response's bytes and headers (an image, say).
   * @throws ApiError for an error status, with `retryAfterS` when the API sent Retry-After
   */
  async postBytes(
    path: string,
    body?: { bytes: Uint8Array; type: string },
  ): Promise<{ body: Buffer; headers: Headers }> {
    const res = await this.#fetch('POST', path, body && { data: body.bytes, type: body.type });
    if (!res.ok) throw await this.#error(res);
    return { body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body?: { text: string; type: string }): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  /** A sweep's parameter importance (`GET /v1/sweeps/:id/importance`). */
  importance(sweepId: string): Promise<ImportanceAnswer> {
    return this.get<ImportanceAnswer>(`/v1/sweeps/${encodeURIComponent(sweepId)}/importance`);
  }

  /** A sweep's parallel-coordinates plot, PNG bytes (`GET /v1/sweeps/:id/parallel.png`). */
  parallelPlot(sweepId: string): Promise<Buffer> {
    return this.get<Buffer>(`/v1/sweeps/${encodeURIComponent(sweepId)}/parallel.png`);
  }
}

/** Shapes returned by the API that the CLI reads. */
export interface TrialRow {
  id: string;
  index: number;
  state: string;
  params: Record<string, number>;
  step: number;
  steps: number;
  attempts: number;
  worker?: string;
  reason?: string;
  result?: number;
  metrics?: { d_loss: number; g_loss: number; images_per_sec: number; step: number };
  quality?: { step: number; fld: number; class_coverage: number };
  /** Restarts and the newest health detection. */
  health?: { restarts: number; last?: { detector: string; step: number; action: string; reason: string } };
  /** Staged models: progan's stages have a resolution, srgan's a phase. */
  stage?: { index: number; count: number; resolution?: number; phase?: string; alpha: number; done: number };
}

export interface SweepDetail {
  id: string;
  name: string;
  state: string;
  model: string;
  /** The pinned version, as the coordinator resolved it. */
  dataset: { name: string; version?: string; image_size?: number; channels?: number };
  metric: { name: string; goal: string };
  createdAt: string;
  endedAt?: string;
  trialCounts: Record<string, number>;
  best: { trialId: string; metric: string; value: number; params: Record<string, number> } | null;
  trials: TrialRow[];
}
