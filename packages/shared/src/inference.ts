import { z } from 'zod';
import type { PinnedDataset } from './dataset.ts';
import type { WireError } from './errors.ts';
import type { ModelName } from './families.ts';
import { STAGE_PHASES, type StageSpec } from './models.ts';
import type { ObjectStoreConfig } from './object-store.ts';
import type { TrialJob } from './trial-job.ts';

/**
 * Running a trial's generator on request (`gantry infer`, `POST /v1/trials/:id/infer`): the coordinator
 * checks the request and the trial, then hands it to an inference process of the worker package (tfjs
 * never runs on the coordinator's event loop) over IPC with these messages.
 */
export const INFER_LIMITS = {
  /** Samples one generative request may draw. */
  maxCount: 256,
  /** Samples drawn when the request names no count. */
  defaultCount: 16,
  /**
   * Largest image decoded for a request (no trial takes more than 256x256): a bigger one is refused as the
   * wrong size without being decoded.
   */
  maxPixels: 512 * 512,
} as const;

/** A request's image as the coordinator decoded it (8-bit RGBA), or only its size when too large to decode. */
export interface InferImage {
  width: number;
  height: number;
  /** Every pixel has R = G = B. */
  gray: boolean;
  /** Some pixel has alpha < 255. */
  hasAlpha: boolean;
  /** `width * height * 4` bytes; absent for an image over INFER_LIMITS.maxPixels. */
  rgba?: Uint8Array;
}

/** What a generative request asks for; every field is optional (the inference process fills defaults). */
export interface DrawRequest {
  count?: number;
  /** Conditional families: the class of every sample. */
  label?: number;
  seed?: number;
}

/** One inference: which trial and checkpoint, and the input. */
export interface InferRequest {
  /** The trial's job as the scheduler queues it (a staged trial's first stage). */
  job: TrialJob;
  /** Staged trials: the spec's stages, so that the job is rebuilt for the checkpoint's stage. */
  stages?: StageSpec[];
  /** The committed checkpoint to load. */
  checkpoint: { step: number; manifestKey: string };
  /** Image-conditioned trials: the image to translate. */
  input?: InferImage;
  draw: DrawRequest;
}

/** What an inference answers with: a PNG and how it is laid out. */
export interface InferResult {
  png: Uint8Array;
  step: number;
  /** Images in the PNG: the samples of a draw, 1 for a translation. */
  count: number;
  /** Tiles per row, tile size and the gap between tiles (and around them), in pixels. */
  cols: number;
  tile: { width: number; height: number };
  padding: number;
  /** Generative trials: the seed the noise was drawn with (give it again for the same samples). */
  seed?: number;
}

/** Coordinator -> inference process, first: where the store is and which backend to start. */
export interface InferInitMessage {
  type: 'init';
  store: ObjectStoreConfig;
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  wasmGemm: boolean;
}

export interface InferRunMessage {
  type: 'infer';
  id: number;
  request: InferRequest;
}

/** A tensor as a network builds it or a checkpoint holds it: its full name and shape. */
export interface TensorShape {
  name: string;
  shape: number[];
}

/** The tensors of both networks. */
export interface NetShapes {
  g: TensorShape[];
  d: TensorShape[];
}

/**
 * What the networks of a family look like for some parameter sets, and what a checkpoint holds (the shape
 * check of a spec's `init_from`): the inference process builds each set's trainer (its first stage for a
 * staged model), reads its tensors' shapes and disposes it, without training.
 */
export interface ShapesRequest {
  model: ModelName;
  dataset: PinnedDataset;
  /** Each distinct parameter set, every model parameter resolved. */
  params: Record<string, number>[];
  /** Staged models: the spec's stages (the networks are those of the first). */
  stages?: StageSpec[];
  /** A committed checkpoint of trial `trialId` whose tensors to list as well (read and verified). */
  checkpoint?: { sweepId: string; trialId: string; manifestKey: string };
}

/** The answer to a ShapesRequest: one entry per parameter set, in order, and the checkpoint's tensors. */
export interface ShapesResult {
  nets: NetShapes[];
  /** `stage`: staged models' checkpoints say which stage their weights belong to. */
  checkpoint?: NetShapes & { step: number; stage?: number };
}

export interface InferShapesMessage {
  type: 'shapes';
  id: number;
  request: ShapesRequest;
}

/** A trial's two networks as `gantry export` names them: the generator and the discriminator. */
export const EXPORT_NETS = ['g', 'd'] as const;
export type ExportNet = (typeof EXPORT_NETS)[number];

/**
 * One export (`gantry export`, `POST /v1/trials/:id/export`): a network of a trial's committed checkpoint,
 * written as a TF.js graph model by the inference process.
 */
export interface ExportRequest {
  /** The trial's job as the scheduler queues it (a staged trial's first stage). */
  job: TrialJob;
  /** Staged trials: the spec's stages, so that the job is rebuilt for the checkpoint's stage. */
  stages?: StageSpec[];
  checkpoint: { step: number; manifestKey: string };
  net: ExportNet;
}

/** The files of an export (model.json, its weights, an example, metadata, a README), by name. */
export interface ExportResult {
  step: number;
  net: ExportNet;
  files: { name: string; bytes: Uint8Array }[];
}

export interface InferExportMessage {
  type: 'export';
  id: number;
  request: ExportRequest;
}

export type InferParentMessage = InferInitMessage | InferRunMessage | InferShapesMessage | InferExportMessage;

export type InferChildMessage =
  | { type: 'ready'; backend: string; device: string }
  /** The backend or store could not be set up: the process exits after sending it. */
  | { type: 'init-failed'; message: string }
  | { type: 'result'; id: number; result: InferResult }
  | { type: 'shapes'; id: number; result: ShapesResult }
  | { type: 'exported'; id: number; result: ExportResult }
  | { type: 'error'; id: number; error: WireError };

const stageSpecSchema = z.strictObject({
  resolution: z.number().int().optional(),
  phase: z.enum(STAGE_PHASES).optional(),
  fade_steps: z.number().int().min(0),
  stable_steps: z.number().int().min(1),
  batch_size: z.number().int().min(0),
});

const inferRequestSchema = z.strictObject({
  // Checked by parseTrialJob once the stage of the checkpoint is known.
  job: z.record(z.string(), z.unknown()),
  stages: z.array(stageSpecSchema).min(1).optional(),
  checkpoint: z.strictObject({ step: z.number().int().min(0), manifestKey: z.string().min(1) }),
  input: z
    .strictObject({
      width: z.number().int().min(1),
      height: z.number().int().min(1),
      gray: z.boolean(),
      hasAlpha: z.boolean(),
      rgba: z.instanceof(Uint8Array).optional(),
    })
    .refine((i) => i.rgba === undefined || i.rgba.length === i.width * i.height * 4, {
      message: 'rgba must hold width * height * 4 bytes',
    })
    .optional(),
  draw: z.strictObject({
    count: z.number().int().min(1).max(INFER_LIMITS.maxCount).optional(),
    label: z.number().int().min(0).optional(),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 32 - 1)
      .optional(),
  }),
});

/**
 * Checks an inference request as the inference process receives it (its job is checked by parseTrialJob
 * after). @throws Error naming the field
 */
export function parseInferRequest(data: unknown): Omit<InferRequest, 'job'> & { job: unknown } {
  const parsed = inferRequestSchema.safeParse(data);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new Error(`invalid inference request: ${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`);
  }
  return parsed.data as Omit<InferRequest, 'job'> & { job: unknown };
}

const exportRequestSchema = z.strictObject({
  // Checked by parseTrialJob once the stage of the checkpoint is known.
  job: z.record(z.string(), z.unknown()),
  stages: z.array(stageSpecSchema).min(1).optional(),
  checkpoint: z.strictObject({ step: z.number().int().min(0), manifestKey: z.string().min(1) }),
  net: z.enum(EXPORT_NETS),
});

/** Checks an export request as the inference process receives it. @throws Error naming the field */
export function parseExportRequest(data: unknown): Omit<ExportRequest, 'job'> & { job: unknown } {
  const parsed = exportRequestSchema.safeParse(data);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new Error(`invalid export request: ${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`);
  }
  return parsed.data as Omit<ExportRequest, 'job'> & { job: unknown };
}
