import {
  BadRequestError,
  convertChannels,
  type DatasetManifest,
  type ExportRequest,
  type ExportResult,
  FAMILIES,
  GantryError,
  INFER_LIMITS,
  InferenceError,
  type InferImage,
  type InferRequest,
  type InferResult,
  jobStage,
  type PinnedDataset,
  parseTrialJob,
  type TrialJob,
} from '@gantry/shared';
import type { Checkpoint } from './checkpoint-store.ts';
import type { Dataset } from './data/datasets.ts';
import { exportNetwork } from './export/export-network.ts';
import type { ImageShape, Trainer } from './families/family.ts';
import { encodeImageGrid } from './sample-grid.ts';

/** What an inference session reads and builds; the inference process wires the store and the registry. */
export interface InferenceDeps {
  /** The checkpoint at `manifestKey` of `job`'s trial, verified (CheckpointStore.read). */
  readCheckpoint(job: TrialJob, manifestKey: string): Promise<Checkpoint>;
  /** The manifest of a pinned data set version (its channels, classes and pairing). */
  readManifest(dataset: PinnedDataset): Promise<DatasetManifest>;
  /** The family's trainer (familyOf(job.model).createTrainer). */
  createTrainer(job: TrialJob, data: Dataset): Trainer;
  /** The seed of a draw that names none. @default a random 32-bit integer */
  randomSeed?: () => number;
}

/** An inference request as the inference process has checked it, its job not yet (parseInferRequest). */
export type InferenceRequest = Omit<InferRequest, 'job'> & { job: unknown };

/** An export request as the inference process has checked it, its job not yet (parseExportRequest). */
export type ExportSessionRequest = Omit<ExportRequest, 'job'> & { job: unknown };

/** Gap between the tiles of a grid of samples, and around them, as in the trials' sample grids. */
const GRID_PADDING = 2;

interface Loaded {
  manifestKey: string;
  job: TrialJob;
  data: Dataset;
  trainer: Trainer;
}

const describe = (job: TrialJob) => `trial ${job.trialId} (${job.model})`;
const channelWord = (c: number) => (c === 1 ? 'gray' : c === 3 ? 'RGB' : 'RGBA');

/**
 * The data set a trainer is built on for inference: no images, the shape and classes of the trial's
 * pinned version (its size and channels as the job pins them, its classes and pairing from the manifest).
 */
export function emptyDataset(job: TrialJob, manifest: DatasetManifest): Dataset {
  return {
    name: manifest.name,
    images: new Float32Array(0),
    ...(manifest.paired ? { imagesB: new Float32Array(0) } : {}),
    labels: new Uint8Array(0),
    count: 0,
    height: job.dataset.image_size,
    width: job.dataset.image_size,
    channels: job.dataset.channels,
    numClasses: manifest.classes.length,
    classNames: manifest.classes,
  };
}

/**
 * A request's image as the trial's generator takes it: NHWC in [-1, 1] at `want`. The size must be the
 * one it was trained on; channels are converted where nothing is lost or guessed (gray to RGB repeats the
 * value, alpha is composited on white as data set pushes do, an opaque alpha is added for RGBA models);
 * a colour image for a gray model is refused.
 * @throws InferenceError WRONG_IMAGE_SIZE, WRONG_IMAGE_CHANNELS
 */
export function prepareInput(img: InferImage, want: ImageShape, job: TrialJob): Float32Array {
  const side = job.dataset.image_size;
  if (img.width !== want.width || img.height !== want.height) {
    const why =
      want.width === side
        ? ` (its image_size)`
        : side % want.width === 0
          ? ` (its image_size ${side} / ${side / want.width})`
          : '';
    throw new InferenceError(
      'WRONG_IMAGE_SIZE',
      `${describe(job)} takes ${want.width}x${want.height} images${why}; this one is ${img.width}x${img.height}`,
    );
  }
  // Only images over INFER_LIMITS.maxPixels come undecoded, and no trial takes one that large.
  if (!img.rgba) throw new InferenceError('INVALID_IMAGE', 'the image was not decoded');
  if (want.channels === 1 && !img.gray) {
    throw new InferenceError(
      'WRONG_IMAGE_CHANNELS',
      `${describe(job)} takes gray (1-channel) images; this one is in colour (RGB${img.hasAlpha ? 'A' : ''}): convert it to gray first`,
    );
  }
  const bytes = convertChannels(img.rgba, img.width * img.height, 4, want.channels);
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i]! / 127.5 - 1;
  return out;
}

/**
 * Runs trials' generators on requests, one at a time, keeping the trainer of the last checkpoint loaded
 * (one trainer per process: tfjs variable names are global), so that repeated requests to one trial only
 * pay the generator's forward pass. Image-conditioned trainers (`translate`) take an image; generative
 * ones (`draw`) draw samples from seeded noise.
 */
export class InferenceSession {
  private loaded?: Loaded;
  private readonly manifests = new Map<string, DatasetManifest>();

  constructor(private readonly deps: InferenceDeps) {}

  /** @throws InferenceError, BadRequestError for requests that do not suit the trial; others as they come */
  async run(req: InferenceRequest): Promise<InferResult> {
    const { trainer, job, data } = await this.load(req);
    if (trainer.translate && trainer.inputShape) return this.translate(req, job, trainer);
    if (trainer.draw) return this.draw(req, job, data, trainer);
    throw new InferenceError('INFERENCE_FAILED', `the ${job.model} trainer can neither translate nor draw`);
  }

  private translate(req: InferenceRequest, job: TrialJob, trainer: Trainer): InferResult {
    const want = trainer.inputShape!;
    const drawParam = (['count', 'label', 'seed'] as const).find((k) => req.draw[k] !== undefined);
    if (drawParam) {
      throw new BadRequestError(
        drawParam === 'label' ? 'class' : drawParam,
        `only for generative trials; ${describe(job)} translates the image sent`,
      );
    }
    if (!req.input) {
      throw new InferenceError(
        'WRONG_INPUT',
        `${describe(job)} translates an image: send a ${want.width}x${want.height} ${channelWord(want.channels)} PNG or JPEG as the body (image/png or image/jpeg)`,
      );
    }
    const out = trainer.translate!(prepareInput(req.input, want, job), 1);
    const { height, width, channels } = trainer.sampleShape;
    const png = encodeImageGrid(out, { count: 1, height, width, channels: channels as 1 | 3 | 4 });
    return { png, step: req.checkpoint.step, count: 1, cols: 1, tile: { width, height }, padding: 0 };
  }

  private draw(req: InferenceRequest, job: TrialJob, data: Dataset, trainer: Trainer): InferResult {
    if (req.input) {
      throw new InferenceError(
        'WRONG_INPUT',
        `${describe(job)} draws samples from noise and takes no image: send no body (query count, seed${FAMILIES[job.model].conditional ? ', class' : ''})`,
      );
    }
    const conditional = FAMILIES[job.model].conditional;
    const { label } = req.draw;
    if (label !== undefined && !conditional)
      throw new BadRequestError('class', `${describe(job)} is not conditional: it draws no classes`);
    if (label !== undefined && label >= data.numClasses) {
      throw new BadRequestError(
        'class',
        `must be 0..${data.numClasses - 1} (${data.classNames.map((c, i) => `${i} ${c}`).join(', ')})`,
      );
    }
    const count = req.draw.count ?? INFER_LIMITS.defaultCount;
    const seed = req.draw.seed ?? (this.deps.randomSeed ?? randomSeed)();
    const images = trainer.draw!(count, { seed, ...(label !== undefined ? { label } : {}) });
    // Without a class, a conditional draw cycles through the classes: one column per class.
    const cols =
      conditional && label === undefined
        ? Math.min(count, Math.max(1, data.numClasses))
        : Math.ceil(Math.sqrt(count));
    const padding = count > 1 ? GRID_PADDING : 0;
    const { height, width, channels } = trainer.sampleShape;
    const png = encodeImageGrid(images, {
      count,
      height,
      width,
      channels: channels as 1 | 3 | 4,
      cols,
      padding,
    });
    return { png, step: req.checkpoint.step, count, cols, tile: { width, height }, padding, seed };
  }

  /**
   * `gantry export`: the request's network of its checkpoint as a TF.js graph model (export/).
   * @throws InferenceError NOT_EXPORTABLE when the network cannot be written as a graph
   */
  async export(req: ExportSessionRequest): Promise<ExportResult> {
    const { trainer, job } = await this.load(req);
    const files = await exportNetwork(trainer, req.net, {
      model: job.model,
      sweepId: job.sweepId,
      trialId: job.trialId,
      step: req.checkpoint.step,
      ...(job.stage ? { stage: job.stage.index } : {}),
    });
    return { step: req.checkpoint.step, net: req.net, files };
  }

  /** The trainer of the request's checkpoint: the loaded one, or a new one (the old one disposed). */
  private async load(req: Pick<InferenceRequest, 'job' | 'stages' | 'checkpoint'>): Promise<Loaded> {
    const { manifestKey } = req.checkpoint;
    if (this.loaded?.manifestKey === manifestKey) return this.loaded;
    this.dispose();
    let job = checkJob(req.job);
    const checkpoint = await this.deps.readCheckpoint(job, manifestKey);
    // A staged trial's weights belong to the stage they were trained in: build that stage's trainer.
    if (job.stage && req.stages && checkpoint.stage !== undefined && checkpoint.stage !== job.stage.index) {
      if (checkpoint.stage >= req.stages.length)
        throw new InferenceError(
          'INFERENCE_FAILED',
          `checkpoint ${manifestKey} is of stage ${checkpoint.stage}; the spec has ${req.stages.length}`,
        );
      job = checkJob({ ...job, stage: jobStage(req.stages, checkpoint.stage, job.params) });
    }
    const manifest = await this.manifest(job.dataset);
    const data = emptyDataset(job, manifest);
    const trainer = this.deps.createTrainer(job, data);
    try {
      trainer.importState(checkpoint);
    } catch (err) {
      trainer.dispose();
      throw err;
    }
    this.loaded = { manifestKey, job, data, trainer };
    return this.loaded;
  }

  private async manifest(d: PinnedDataset): Promise<DatasetManifest> {
    const key = `${d.name}@${d.version}`;
    const hit = this.manifests.get(key);
    if (hit) return hit;
    const m = await this.deps.readManifest(d);
    this.manifests.set(key, m);
    return m;
  }

  /** Frees the loaded trainer, if any (after an unexpected error its state is not trusted). Idempotent. */
  dispose(): void {
    this.loaded?.trainer.dispose();
    this.loaded = undefined;
  }
}

/** The request's job, checked as a worker checks a payload; a bad one is the coordinator's fault (500). */
function checkJob(data: unknown): TrialJob {
  try {
    return parseTrialJob(data);
  } catch (err) {
    if (!(err instanceof GantryError)) throw err;
    throw new InferenceError('INFERENCE_FAILED', err.message, { cause: err });
  }
}

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}
