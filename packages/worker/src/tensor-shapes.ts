import {
  type DatasetManifest,
  DEFAULT_HEALTH,
  jobStage,
  type NetShapes,
  type PinnedDataset,
  parseTrialJob,
  type ShapesRequest,
  type ShapesResult,
  stageEnd,
  type TrialJob,
  trialId,
} from '@gantry/shared';
import type { Checkpoint } from './checkpoint-store.ts';
import type { Dataset } from './data/datasets.ts';
import type { Trainer, TrainerState } from './families/family.ts';
import { emptyDataset } from './inference.ts';

/** What answering a shapes request reads and builds; the inference process wires the store and registry. */
export interface ShapesDeps {
  /** A checkpoint of trial `trialId` of sweep `sweepId`, verified (CheckpointStore.read). */
  readCheckpoint(sweepId: string, trialId: string, manifestKey: string): Promise<Checkpoint>;
  readManifest(dataset: PinnedDataset): Promise<DatasetManifest>;
  createTrainer(job: TrialJob, data: Dataset): Trainer;
}

/** Sweep id of the jobs built only to read their networks' shapes (never queued, never stored). */
const PROBE_SWEEP = 'shape-probe';

/** The tensors' names and shapes of both networks of a state. */
export function netShapes(state: Pick<TrainerState, 'g' | 'd'>): NetShapes {
  const list = (arrays: TrainerState['g']) => arrays.map((a) => ({ name: a.name, shape: [...a.shape] }));
  return { g: list(state.g), d: list(state.d) };
}

/**
 * Answers a {@link ShapesRequest}: builds the trainer of each parameter set (the first stage's, for a
 * staged model) on an empty data set of the request's shape and classes, reads its networks' shapes and
 * disposes it (one trainer at a time: tfjs variable names are global); lists the checkpoint's tensors.
 * Nothing is trained. @throws InvalidJobPayloadError for parameters the model refuses
 */
export async function answerShapes(req: ShapesRequest, deps: ShapesDeps): Promise<ShapesResult> {
  const manifest = await deps.readManifest(req.dataset);
  const nets: NetShapes[] = [];
  for (const [index, params] of req.params.entries()) {
    const stage = req.stages ? jobStage(req.stages, 0, params) : undefined;
    const job = parseTrialJob({
      v: 2,
      sweepId: PROBE_SWEEP,
      trialId: trialId(PROBE_SWEEP, index),
      index,
      model: req.model,
      dataset: req.dataset,
      seed: 0,
      steps: stage ? stageEnd(stage) : 1,
      checkpointEvery: 1,
      params,
      health: DEFAULT_HEALTH,
      ...(stage ? { stage } : {}),
    });
    const trainer = deps.createTrainer(job, emptyDataset(job, manifest));
    try {
      nets.push(netShapes(trainer.exportState()));
    } finally {
      trainer.dispose();
    }
  }
  if (!req.checkpoint) return { nets };
  const { sweepId, trialId: source, manifestKey } = req.checkpoint;
  const state = await deps.readCheckpoint(sweepId, source, manifestKey);
  return {
    nets,
    checkpoint: {
      ...netShapes(state),
      step: state.step,
      ...(state.stage !== undefined ? { stage: state.stage } : {}),
    },
  };
}
