import {
  type ApiRole,
  BadRequestError,
  compileSweepSpec,
  GantryError,
  LIMITS,
  NotFoundError,
  ObjectNotFoundError,
  type ObjectStore,
  PayloadTooLargeError,
  parseSweepSpec,
  type SweepSpec,
  type TokenAuthenticator,
  type TrialRecord,
  type WorkerInfo,
} from '@gantry/shared';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { DatasetStore } from '../datasets/dataset-store.ts';
import type { Inference } from '../inference/inference-pool.ts';
import type { Scheduler } from '../scheduler.ts';
import { hasSearch, searchView } from '../search/views.ts';
import type { StoredSweep, SweepStore } from '../sweep-store.ts';
import { type AugmentationRouteDeps, registerAugmentationRoutes } from './augment-routes.ts';
import { ARCHIVE_TYPES, registerDatasetRoutes } from './dataset-routes.ts';
import { EXPORT_ROUTE, registerExportRoute } from './export-route.ts';
import { INFER_IMAGE_TYPES, INFER_ROUTE, registerInferRoute } from './infer-route.ts';
import { checkId } from './params.ts';
import { registerSearchRoutes } from './search-routes.ts';
import { jsonInPieces, sweepView, trialSummary } from './views.ts';

/** host:port of a worker's metrics URL (Prometheus scrapes /metrics there), or undefined if malformed. */
function metricsTarget(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.port ? `${u.hostname}:${u.port}` : u.host || undefined;
  } catch {
    return undefined;
  }
}

/** What the HTTP API needs from the coordinator. */
export interface ApiDeps {
  store: SweepStore;
  scheduler: Scheduler;
  objects: ObjectStore;
  datasets: DatasetStore;
  metrics: Registry;
  /** Stores a sweep; `sweep` and `trials` as written (the answer is made from them, not read back). */
  submit(spec: SweepSpec): Promise<{
    id: string;
    trialIds: string[];
    warnings: string[];
    sweep?: StoredSweep;
    trials?: readonly TrialRecord[];
  }>;
  workers(): Promise<WorkerInfo[]>;
  ready(): Promise<boolean>;
  /** Augmentation records and their queue (`POST /v1/trials/:id/augment`, `GET /v1/augmentations/:id`). */
  augmentations: Pick<AugmentationRouteDeps, 'records' | 'queue'>;
  /** Runs trials' generators for `POST /v1/trials/:id/infer` (InferencePool). */
  inference: Inference;
  /** Largest image body of an inference request. @default 4 MiB */
  inferMaxBytes?: number;
  /** Bearer tokens; with none configured the API is open (the coordinator allows that on loopback only). */
  auth: TokenAuthenticator;
  /** Write requests per minute and token (or client address, without tokens). @default 60 */
  rateLimitPerMinute?: number;
  /** @default 60000 */
  idleTimeoutMs?: number;
  /** @default 600000 */
  requestTimeoutMs?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The token's name (or the client address without tokens): rate limits and logs key on it. */
    principal: string;
  }
}

/** Requests that change nothing but cost CPU: the read role may make them, rate-limited like writes. */
const COSTLY_READS = new Set([`POST ${INFER_ROUTE}`, `POST ${EXPORT_ROUTE}`]);

/**
 * What a request needs: reads take `read`, anything that changes state `admin` and counts against the
 * write rate limit; costly reads (inference) take `read` and count too. `route` is the matched pattern.
 */
function accessFor(method: string, route: string | undefined): { role: ApiRole; limited: boolean } {
  if (COSTLY_READS.has(`${method} ${route}`)) return { role: 'read', limited: true };
  const role: ApiRole = method === 'GET' || method === 'HEAD' ? 'read' : 'admin';
  return { role, limited: role === 'admin' };
}

/**
 * Write requests allowed per principal: a bucket of `perMinute` that refills continuously. A flood of
 * submissions from one token gets 429 with the seconds to wait; other tokens are not slowed.
 */
class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly perMinute: number) {}

  /** 0 when allowed (and counted), else the seconds until one more is. */
  take(key: string, now = Date.now()): number {
    const rate = this.perMinute / 60_000;
    const b = this.buckets.get(key) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * rate);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / rate / 1000);
  }
}

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml', 'text/plain'];

/** Builds the HTTP API of DESIGN.md (`/v1/...`, `/healthz`, `/metrics`); tested through `app.inject`. */
export function buildApi(deps: ApiDeps): FastifyInstance {
  const app = Fastify({
    bodyLimit: LIMITS.bodyBytes,
    logger: false,
    // Long ids reach the handlers, which refuse them in the API's error shape (the router's own 414 has another).
    maxParamLength: 4096,
    // A client that goes quiet (mid-headers or mid-body) is cut off; a whole request has a deadline.
    connectionTimeout: deps.idleTimeoutMs ?? 60_000,
    requestTimeout: deps.requestTimeoutMs ?? 600_000,
  });
  app.server.headersTimeout = Math.min(deps.idleTimeoutMs ?? 60_000, deps.requestTimeoutMs ?? 600_000);
  const perMinute = deps.rateLimitPerMinute ?? 60;
  const limiter = new RateLimiter(perMinute);

  // Every route but /healthz needs a token once tokens are configured: `read` to look, `admin` to act.
  app.decorateRequest('principal', '');
  app.addHook('onRequest', async (req, reply) => {
    req.principal = req.ip;
    if (req.url === '/healthz' || req.url.startsWith('/healthz?')) return;
    const access = accessFor(req.method, req.routeOptions.url);
    if (deps.auth.enabled) {
      const r = deps.auth.authenticate(req.headers.authorization);
      if (!r.ok) {
        return reply
          .status(401)
          .header('www-authenticate', 'Bearer realm="gantry"')
          .send({ error: { code: r.code, message: r.message } });
      }
      req.principal = `token:${r.token.name}`;
      if (access.role === 'admin' && r.token.role !== 'admin') {
        return reply.status(403).send({
          error: {
            code: 'FORBIDDEN',
            message: `token '${r.token.name}' has the read role; ${req.method} ${req.routeOptions.url ?? req.url} needs an admin token`,
          },
        });
      }
    }
    if (access.limited) {
      const wait = limiter.take(req.principal);
      if (wait > 0) {
        return reply
          .status(429)
          .header('retry-after', String(wait))
          .send({
            error: {
              code: 'RATE_LIMITED',
              message: `more than ${perMinute} write requests a minute; retry in ${wait} s`,
            },
          });
      }
    }
  });

  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: FastifyError | GantryError, req, reply) => {
    if (err instanceof GantryError) {
      const wait = err.context.retryAfterS;
      if (typeof wait === 'number') reply.header('retry-after', String(wait));
      return reply.status(err.status).send({ error: err.toJSON() });
    }
    if (err instanceof ObjectNotFoundError)
      return reply.status(404).send({ error: { code: 'NOT_FOUND', message: err.message } });
    const fe = err as FastifyError;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const what = req.routeOptions.url === INFER_ROUTE ? 'image (GANTRY_INFER_MAX_BYTES)' : 'request body';
      const e = new PayloadTooLargeError(what, req.routeOptions.bodyLimit ?? LIMITS.bodyBytes);
      return reply.status(413).send({ error: e.toJSON() });
    }
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      const what = req.url.startsWith('/v1/datasets')
        ? `send the images as one archive: ${ARCHIVE_TYPES.join(', ')}`
        : req.routeOptions.url === INFER_ROUTE
          ? `send the image as ${INFER_IMAGE_TYPES.join(' or ')}, or no body for a generative trial`
          : 'send the spec as application/yaml or application/json';
      return reply.status(415).send({ error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: what } });
    }
    if (fe.statusCode && fe.statusCode < 500) {
      return reply.status(fe.statusCode).send({
        error: { code: 'BAD_REQUEST', message: fe.message, issues: [{ path: '', message: fe.message }] },
      });
    }
    app.log.error(err);
    return reply.status(500).send({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } }),
  );

  // A spec is at most LIMITS.specBytes whichever way it is sent (parseSweepSpec only sees YAML text).
  app.post('/v1/sweeps', { bodyLimit: LIMITS.specBytes }, async (req, reply) => {
    const spec = typeof req.body === 'string' ? parseSweepSpec(req.body) : compileSweepSpec(req.body);
    const created = await deps.submit(spec);
    const sweep = created.sweep ?? (await deps.store.get(created.id));
    return reply.status(201).send({
      ...sweepView(sweep!, created.trials ?? (await deps.store.trials(created.trialIds))),
      trialIds: created.trialIds,
      warnings: created.warnings,
    });
  });

  registerDatasetRoutes(app, deps.datasets);
  registerAugmentationRoutes(app, {
    store: deps.store,
    manifest: (name, version) => deps.datasets.manifest(name, version),
    ...deps.augmentations,
  });
  registerExportRoute(app, { store: deps.store, inference: deps.inference });
  registerInferRoute(app, {
    store: deps.store,
    inference: deps.inference,
    maxBytes: deps.inferMaxBytes ?? 4 * 1024 ** 2,
  });
  registerSearchRoutes(app, deps);

  // An active sweep's trials from the scheduling coordinator's view when this is it, else from Redis.
  const trialsOf = async (s: StoredSweep) =>
    (await deps.scheduler.currentTrials(s.id)) ?? (await deps.store.trials(s.trialIds));

  app.get('/v1/sweeps', async () => {
    const sweeps = await deps.store.list(100);
    return {
      sweeps: await Promise.all(sweeps.map(async (s) => sweepView(s, await trialsOf(s)))),
    };
  });

  app.get<{ Params: { id: string } }>('/v1/sweeps/:id', async (req, reply) => {
    const sweep = await deps.store.get(checkId('id', req.params.id));
    if (!sweep) throw new NotFoundError('sweep', req.params.id);
    const trials = await trialsOf(sweep);
    // Rungs, stops and PBT lineage (README, "Adaptive search"), for sweeps that search adaptively.
    const search = hasSearch(sweep.spec)
      ? { search: searchView(sweep.spec, await deps.store.searchEvents(sweep.id), trials) }
      : {};
    // A 10,000-trial answer is 3.4 MB: written in pieces, so the scheduler's passes run in between.
    const body = await jsonInPieces(
      { ...sweepView(sweep, trials), spec: sweep.spec, ...search },
      'trials',
      trials.map(trialSummary),
    );
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.post<{ Params: { id: string } }>('/v1/sweeps/:id/cancel', async (req) => {
    const sweep = await deps.scheduler.cancel(checkId('id', req.params.id));
    return { id: sweep.id, state: sweep.state };
  });

  // More trials for a running or ended sweep (random, tpe, pbt-replay): `gantry extend`.
  app.post<{ Params: { id: string }; Body: unknown }>('/v1/sweeps/:id/extend', async (req) => {
    const body = req.body as { trials?: unknown } | undefined;
    const more = body?.trials;
    if (typeof more !== 'number' || !Number.isInteger(more) || more < 1)
      throw new BadRequestError('trials', `must be a positive integer, got ${JSON.stringify(more)}`);
    const { sweep, trials } = await deps.scheduler.extend(checkId('id', req.params.id), more);
    return { id: sweep.id, state: sweep.state, trials, added: more };
  });

  app.get<{ Params: { id: string } }>('/v1/trials/:id', async (req) => {
    const trial = await deps.store.trial(checkId('id', req.params.id));
    if (!trial) throw new NotFoundError('trial', req.params.id);
    const { dispatched: _d, ...rest } = trial;
    const [history, checkpoints, samples, events, stageEvents, augmentations, qualityHistory] =
      await Promise.all([
        deps.store.history(trial.id),
        deps.store.checkpoints(trial.id),
        deps.store.samples(trial.id),
        deps.store.events(trial.id),
        trial.stage ? deps.store.stageEvents(trial.id) : undefined,
        deps.augmentations.records.ofTrial(trial.id),
        deps.store.qualityHistory(trial.id),
      ]);
    return {
      ...rest,
      history,
      checkpoints,
      samples,
      events,
      ...(stageEvents ? { stageEvents } : {}),
      augmentations,
      qualityHistory,
    };
  });

  app.get<{ Params: { id: string } }>('/v1/trials/:id/samples/latest.png', async (req, reply) => {
    const samples = await deps.store.samples(checkId('id', req.params.id));
    const last = samples.at(-1);
    if (!last) throw new NotFoundError('sample', req.params.id);
    const png = await deps.objects.get(last.key);
    return reply.header('content-type', 'image/png').header('x-gantry-step', String(last.step)).send(png);
  });

  app.get<{ Params: { id: string; step: string } }>(
    '/v1/trials/:id/samples/:step.png',
    async (req, reply) => {
      checkId('id', req.params.id);
      const step = /^\d{1,10}$/.test(req.params.step) ? Number(req.params.step) : Number.NaN;
      if (!Number.isInteger(step))
        throw new BadRequestError('step', `must be a step number, got ${JSON.stringify(req.params.step)}`);
      const sample = (await deps.store.samples(req.params.id)).findLast((s) => s.step === step);
      if (!sample) throw new NotFoundError('sample', `${req.params.id} at step ${step}`);
      const png = await deps.objects.get(sample.key);
      return reply.header('content-type', 'image/png').header('x-gantry-step', String(step)).send(png);
    },
  );

  app.get('/v1/workers', async () => ({ workers: await deps.workers() }));

  // Prometheus HTTP service discovery (infra/prometheus/prometheus.yml): the coordinator itself, at the
  // address Prometheus reached it by, and every worker with a live heartbeat, at its metrics address.
  app.get<{ Querystring: { role?: string } }>('/v1/prometheus/targets', async (req) => {
    const role = req.query.role ?? 'all';
    if (!['all', 'coordinator', 'worker'].includes(role)) {
      throw new BadRequestError('role', `must be coordinator, worker or absent, got ${JSON.stringify(role)}`);
    }
    const groups: { targets: string[]; labels: Record<string, string> }[] = [];
    if (role !== 'worker' && req.headers.host) groups.push({ targets: [req.headers.host], labels: {} });
    if (role !== 'coordinator') {
      for (const w of await deps.workers()) {
        const target = metricsTarget(w.metricsUrl);
        if (target) groups.push({ targets: [target], labels: { worker: w.id } });
      }
    }
    return groups;
  });

  app.get('/healthz', async (_req, reply) => {
    const ok = await deps.ready();
    return reply.status(ok ? 200 : 503).send({ ok });
  });

  app.get('/metrics', async (_req, reply) => {
    const body = await deps.metrics.metrics();
    return reply.header('content-type', deps.metrics.contentType).send(body);
  });

  return app;
}
