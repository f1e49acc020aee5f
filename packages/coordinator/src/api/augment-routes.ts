import { randomBytes } from 'node:crypto';
import {
  type AugmentationJob,
  type AugmentationParams,
  type AugmentationRecord,
  type AugmentationStore,
  BadRequestError,
  type DatasetManifest,
  FAMILIES,
  MODEL_NAMES,
  NotFoundError,
  parseAugmentationRequest,
  type TrialRecord,
} from '@gantry/shared';
import type { FastifyInstance } from 'fastify';
import type { StoredSweep, SweepStore } from '../sweep-store.ts';
import { jobOf, pickCheckpoint, trialAndSweep } from './infer-route.ts';
import { checkId } from './params.ts';

/** How many times a worker may try an augmentation (a crashed child, S3 trouble) before it fails. */
const ATTEMPTS = 3;

export interface AugmentationRouteDeps {
  store: Pick<SweepStore, 'trial' | 'get' | 'checkpoints'>;
  /** The manifest of a pinned version (its classes). */
  manifest(name: string, version: string): Promise<DatasetManifest>;
  records: Pick<AugmentationStore, 'create' | 'get' | 'ofTrial'>;
  /** The augmentation queue (AUGMENTATION_QUEUE). */
  queue: {
    add(name: string, data: AugmentationJob, opts: { jobId: string; attempts: number }): Promise<unknown>;
  };
}

const CONDITIONAL = MODEL_NAMES.filter((m) => FAMILIES[m].conditional);

/**
 * Why an augmentation of `trial` with `params` would not measure what it says, as a 400 naming the field:
 * an unconditional generator, a set without classes, or K real images per class other than those the
 * generator was trained on (all of the set, or another subset_per_class: leakage).
 */
async function refusal(
  sweep: StoredSweep,
  trial: TrialRecord,
  params: AugmentationParams,
  deps: AugmentationRouteDeps,
): Promise<BadRequestError | undefined> {
  const { model } = sweep.spec;
  if (!FAMILIES[model].conditional)
    return new BadRequestError(
      'id',
      `trial ${trial.id} is a ${model} trial: its generator is not conditional, so it cannot draw images of a given class; augmentation needs a conditional family (${CONDITIONAL.join(', ')})`,
    );
  const { name, version, subset_per_class: subset } = sweep.spec.dataset;
  if (version) {
    const manifest = await deps.manifest(name, version);
    if (manifest.classes.length === 0)
      return new BadRequestError(
        'id',
        `trial ${trial.id}'s data set ${name}@${version} has no classes: there is nothing to classify`,
      );
  }
  const k = params.real_per_class;
  if (subset === undefined)
    return new BadRequestError(
      'real_per_class',
      `trial ${trial.id}'s generator was trained on all of ${name}: any K real images per class are images it has seen, and a gain from them would be leakage; train a trial on dataset: {name: ${name}, subset_per_class: ${k}} and augment that one`,
    );
  if (subset !== k)
    return new BadRequestError(
      'real_per_class',
      `must be ${subset}: trial ${trial.id}'s generator saw the first ${subset} images of each class (dataset.subset_per_class) and the classifier must get the same ones; another K would measure leakage or a different task`,
    );
  return undefined;
}

/**
 * `POST /v1/trials/:id/augment` (`{real_per_class, synthetic_per_class, seeds, step?, classifier_steps?,
 * test_per_class?}`): checks that the measurement means something, records it and queues it for a worker;
 * 202 with the record. `GET /v1/augmentations/:id`: the record (state, progress, result).
 */
export function registerAugmentationRoutes(app: FastifyInstance, deps: AugmentationRouteDeps): void {
  app.post<{ Params: { id: string } }>('/v1/trials/:id/augment', async (req, reply) => {
    const id = checkId('id', req.params.id);
    const params = parseAugmentationRequest(req.body);
    const { trial, sweep } = await trialAndSweep(deps.store, id);
    const refused = await refusal(sweep, trial, params, deps);
    if (refused) throw refused;
    const ref = pickCheckpoint(
      trial,
      await deps.store.checkpoints(id),
      params.step,
      sweep.spec.checkpoint.every_steps,
    );
    const job = jobOf(sweep, trial);
    const record: AugmentationRecord = {
      id: `${id}-a${randomBytes(4).toString('hex')}`,
      trialId: id,
      sweepId: sweep.id,
      state: 'queued',
      params,
      checkpoint: { step: ref.step },
      attempts: 0,
      createdAt: Date.now(),
    };
    await deps.records.create(record);
    await deps.queue.add(
      'augment',
      {
        v: 1,
        augmentationId: record.id,
        trial: job as unknown as Record<string, unknown>,
        checkpoint: { step: ref.step, manifestKey: ref.manifestKey },
        params,
      },
      { jobId: record.id, attempts: ATTEMPTS },
    );
    return reply.status(202).send(record);
  });

  app.get<{ Params: { id: string } }>('/v1/augmentations/:id', async (req) => {
    const id = checkId('id', req.params.id);
    const record = await deps.records.get(id);
    if (!record) throw new NotFoundError('augmentation', id);
    return record;
  });
}
