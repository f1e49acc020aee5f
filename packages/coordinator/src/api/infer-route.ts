import {
  BadRequestError,
  type CheckpointRef,
  ConflictError,
  type DrawRequest,
  INFER_LIMITS,
  InferenceError,
  type InferImage,
  InvalidDatasetError,
  NotFoundError,
  type TrialJob,
  type TrialRecord,
} from '@gantry/shared';
import type { FastifyInstance } from 'fastify';
import { decodeImage, imageSize } from '../datasets/images.ts';
import type { Inference } from '../inference/inference-pool.ts';
import type { StoredSweep, SweepStore } from '../sweep-store.ts';
import { trialJob } from '../trial-jobs.ts';
import { checkId } from './params.ts';

export const INFER_ROUTE = '/v1/trials/:id/infer';

/** Bodies an inference takes: an image, told apart by its bytes (PNG or JPEG) whatever the type says. */
export const INFER_IMAGE_TYPES = ['image/png', 'image/jpeg', 'application/octet-stream'];

/** An inference's query: which checkpoint, and for generative trials what to draw. */
export interface InferQuery extends DrawRequest {
  /** A committed checkpoint's step; the trial's latest when absent. */
  step?: number;
}

/** Query parameters and their ranges (`class` is DrawRequest's `label`). */
const QUERY_PARAMS = {
  step: { key: 'step', min: 0, max: 1e9 },
  count: { key: 'count', min: 1, max: INFER_LIMITS.maxCount },
  class: { key: 'label', min: 0, max: 9999 },
  seed: { key: 'seed', min: 0, max: 2 ** 32 - 1 },
} as const;

/**
 * The query of `POST /v1/trials/:id/infer`: `step`, `count`, `class`, `seed`, each a whole number in its
 * range. @throws BadRequestError naming the parameter (an unknown one too)
 */
export function parseInferQuery(query: Record<string, unknown>): InferQuery {
  const out: InferQuery = {};
  for (const [name, raw] of Object.entries(query)) {
    const p = Object.hasOwn(QUERY_PARAMS, name) ? QUERY_PARAMS[name as keyof typeof QUERY_PARAMS] : undefined;
    if (!p)
      throw new BadRequestError(
        name,
        `unknown parameter; infer takes ${Object.keys(QUERY_PARAMS).join(', ')}`,
      );
    const n = typeof raw === 'string' && /^\d{1,10}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(n >= p.min && n <= p.max))
      throw new BadRequestError(
        name,
        `must be a whole number from ${p.min} to ${p.max}, got ${JSON.stringify(Array.isArray(raw) ? raw : String(raw).slice(0, 40))}`,
      );
    out[p.key] = n;
  }
  return out;
}

/**
 * The committed checkpoint an inference loads: the one at `step` (the newest commit of that step, after
 * health restarts), or the trial's latest (its checkpoint pointer).
 * @throws ConflictError when the trial has none yet; NotFoundError listing the steps that have one
 */
export function pickCheckpoint(
  trial: Pick<TrialRecord, 'id' | 'state' | 'step' | 'latestCheckpoint'>,
  refs: readonly CheckpointRef[],
  step?: number,
  checkpointEvery?: number,
): CheckpointRef {
  if (refs.length === 0) {
    const every = checkpointEvery ? `; it checkpoints every ${checkpointEvery} steps` : '';
    throw new ConflictError(
      `trial ${trial.id} has no committed checkpoint yet (${trial.state}, step ${trial.step}${every})`,
      { trialId: trial.id },
    );
  }
  if (step === undefined) {
    const latest = trial.latestCheckpoint;
    return latest && refs.some((r) => r.manifestKey === latest.manifestKey) ? latest : refs.at(-1)!;
  }
  const hit = refs.findLast((r) => r.step === step);
  if (!hit) {
    const steps = [...new Set(refs.map((r) => r.step))].sort((a, b) => a - b);
    throw new NotFoundError(
      'checkpoint',
      `${trial.id} at step ${step}`,
      `steps with checkpoints: ${steps.join(', ')}`,
    );
  }
  return hit;
}

/**
 * The request body as an image for the inference process: none for an empty body, else a PNG or JPEG
 * decoded to RGBA (bounded: one over INFER_LIMITS.maxPixels is passed on by its size only, which no trial
 * takes, so that the refusal names the size the trial does take).
 * @throws InferenceError INVALID_IMAGE naming the problem
 */
export function inferInput(body: unknown): InferImage | undefined {
  if (body === undefined || body === null) return undefined;
  if (!Buffer.isBuffer(body))
    throw new InferenceError(
      'INVALID_IMAGE',
      `body: not an image; send a PNG or JPEG as ${INFER_IMAGE_TYPES.slice(0, 2).join(' or ')}`,
    );
  if (body.length === 0) return undefined;
  const size = imageSize(body);
  if (size && size.width > 0 && size.height > 0 && size.width * size.height > INFER_LIMITS.maxPixels)
    return { ...size, gray: false, hasAlpha: false };
  try {
    const img = decodeImage(body, 'body', { maxPixels: INFER_LIMITS.maxPixels });
    return { width: img.width, height: img.height, gray: img.gray, hasAlpha: img.hasAlpha, rgba: img.data };
  } catch (err) {
    if (!(err instanceof InvalidDatasetError)) throw err;
    throw new InferenceError('INVALID_IMAGE', `body: ${String(err.context.reason)}`, { cause: err });
  }
}

/**
 * The trial `id` and its sweep, for the routes that run a trial's networks (infer, export, augment).
 * @throws NotFoundError for an unknown trial or a sweep gone from the store
 */
export async function trialAndSweep(
  store: Pick<SweepStore, 'trial' | 'get'>,
  id: string,
): Promise<{ trial: TrialRecord; sweep: StoredSweep }> {
  const trial = await store.trial(id);
  if (!trial) throw new NotFoundError('trial', id);
  const sweep = await store.get(trial.sweepId);
  if (!sweep) throw new NotFoundError('sweep', trial.sweepId);
  return { trial, sweep };
}

/** The trial's job, or a 409 for a sweep stored before data sets were pinned. */
export function jobOf(sweep: StoredSweep, trial: TrialRecord): TrialJob {
  try {
    return trialJob(sweep, trial);
  } catch (err) {
    throw new ConflictError(`trial ${trial.id} cannot be rebuilt from its sweep: ${(err as Error).message}`, {
      trialId: trial.id,
    });
  }
}

export interface InferRouteDeps {
  store: SweepStore;
  inference: Inference;
  /** Largest image body; more is a 413. */
  maxBytes: number;
}

/**
 * `POST /v1/trials/:id/infer[?step=&count=&class=&seed=]`: runs the trial's generator from a committed
 * checkpoint and answers image/png. Image-conditioned trials (srgan, pix2pix) take an image body at the
 * size they were trained on; generative ones take none and draw `count` samples (a grid). Registered in
 * a scope of its own, so that image bodies are parsed for this route only.
 */
export function registerInferRoute(app: FastifyInstance, deps: InferRouteDeps): void {
  app.register(async (scope) => {
    scope.addContentTypeParser(INFER_IMAGE_TYPES, { parseAs: 'buffer' }, (_req, body, done) =>
      done(null, body),
    );
    scope.post<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
      INFER_ROUTE,
      { bodyLimit: deps.maxBytes },
      async (req, reply) => {
        const id = checkId('id', req.params.id);
        const { step, ...draw } = parseInferQuery(req.query);
        const { trial, sweep } = await trialAndSweep(deps.store, id);
        const ref = pickCheckpoint(
          trial,
          await deps.store.checkpoints(id),
          step,
          sweep.spec.checkpoint.every_steps,
        );
        const input = inferInput(req.body);
        const result = await deps.inference.run({
          job: jobOf(sweep, trial),
          ...(sweep.spec.stages ? { stages: sweep.spec.stages } : {}),
          checkpoint: { step: ref.step, manifestKey: ref.manifestKey },
          ...(input ? { input } : {}),
          draw,
        });
        const png = Buffer.from(result.png.buffer, result.png.byteOffset, result.png.byteLength);
        reply
          .header('content-type', 'image/png')
          .header('x-gantry-step', String(result.step))
          .header('x-gantry-count', String(result.count))
          .header('x-gantry-cols', String(result.cols))
          .header('x-gantry-tile', `${result.tile.width}x${result.tile.height}`)
          .header('x-gantry-padding', String(result.padding));
        if (result.seed !== undefined) reply.header('x-gantry-seed', String(result.seed));
        return reply.send(png);
      },
    );
  });
}
