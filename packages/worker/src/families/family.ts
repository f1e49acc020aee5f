import type { ModelName, TrialJob } from '@gantry/shared';
import type * as tf from '@tensorflow/tfjs-core';
import type { AugmentState } from '../augment/diff-augment.ts';
import type { Dataset } from '../data/datasets.ts';
import type { NamedArray } from '../models/param-store.ts';

/**
 * What a model family gives the worker: a trainer for one job. The queue side (worker, trial runner,
 * reporter, trainer process) knows trials, stages and checkpoints through {@link Trainer}, never a family;
 * the registry (registry.ts) maps each model name to its family, and a family's folder holds its networks,
 * losses, step and tests. The spec side of a family (parameters, capabilities) is `FAMILIES` in shared.
 */
export interface Family {
  readonly name: ModelName;
  /**
   * The training loop of `job` on `data` (the job's images at its pinned size and channels). Only one
   * trainer may exist per process at a time (tfjs variable names are global): dispose it before the next.
   */
  createTrainer(job: TrialJob, data: Dataset, opts?: TrainerOptions): Trainer;
}

export interface TrainerOptions {
  /** Fault injection for tests: real batches are NaN from this step on, so divergence handling runs for real. */
  faultNanAtStep?: number;
  /** Held-out examples that image-conditioned families draw their sample grid from (else the train split). */
  heldOut?: Dataset;
}

/** Scalars of one training step. */
export interface StepStats {
  step: number;
  d_loss: number;
  g_loss: number;
  /** Mean sigmoid(D(x)); for a Wasserstein critic its mean raw score. */
  d_real: number;
  d_fake: number;
  /** Global L2 norm of the generator's and the discriminator's gradients in this step. */
  g_grad_norm: number;
  d_grad_norm: number;
  /** With DiffAugment: the probability each transform is applied at, and ADA's last r_t = E[sign(D(x))]. */
  augment_p?: number;
  augment_rt?: number;
}

/** Learning-rate multipliers of each network (health restarts scale them). */
export interface LrScale {
  g: number;
  d: number;
}

/** What health handling adds to a trainer's state, so a resumed trial keeps its restarts and rates. */
export interface TrainerHealthState {
  restarts: number;
  lrScale: LrScale;
}

/** Everything needed to continue a run bit-for-bit: both networks, both optimizers, step and Rng. */
export interface TrainerState {
  step: number;
  rng: number[];
  g: NamedArray[];
  d: NamedArray[];
  optG: { t: number; arrays: NamedArray[] };
  optD: { t: number; arrays: NamedArray[] };
  /** Absent in checkpoints from before health handling: no restarts, rates as configured. */
  health?: TrainerHealthState;
  /** Staged models: the stage these weights were trained in. */
  stage?: number;
  /** Models with a moving average of G's weights (progan). */
  ema?: NamedArray[];
  /** Running batch-norm statistics (mean, variance) that the generator evaluates with (srgan, pix2pix). */
  stats?: NamedArray[];
  /** DiffAugment with ADA: the adaptive p and its interval under way. */
  augment?: AugmentState;
}

/** Height, width and channels of a batch of NHWC images. */
export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

/**
 * What an image-conditioned family (srgan, pix2pix) is judged on: its task on held-out examples. Outputs are
 * `translate(inputs)`, scored against the targets by PSNR, SSIM and L1 (quality/image-task.ts).
 */
export interface ImageTask {
  /** Inputs (at `inputShape`) and targets (at `sampleShape`) of the first `count` examples of `split`. */
  pairs(split: Dataset, count: number): { inputs: Float32Array; targets: Float32Array; count: number };
  /** What every output is compared with besides its target (srgan: bicubic upsampling), at `sampleShape`. */
  baseline?(inputs: Float32Array, count: number): Float32Array;
  /** PSNR and SSIM: pixels cropped from each side, and whether RGB is scored on its luma (Y) only. */
  cropBorder: number;
  yChannel: boolean;
}

/** What a draw for `gantry infer` asks of a generative family. */
export interface DrawOptions {
  /** Seeds the noise: the same seed draws the same images. */
  seed: number;
  /** Conditional families: the class to draw (every image); without it classes cycle. */
  label?: number;
}

/** A trial's two networks, as `gantry export` names them. */
export type NetName = 'g' | 'd';

/** One input or the output of an exportable network: per example (the batch dimension is free). */
export interface NetworkTensor {
  name: string;
  shape: number[];
  /** What it holds, in a line (the export's README). */
  description: string;
}

/**
 * A network as `gantry export` traces it (export/): its forward pass on batched float32 inputs in the mode
 * the trainer's own `sample`/`translate` run it (running statistics where they use them, the EMA weights,
 * the current fade-in), and a check of it by the trainer's own output.
 */
export interface ExportableNetwork {
  inputs: NetworkTensor[];
  output: NetworkTensor;
  /** What a user must know to get the trainer's results from it (batch statistics, dropout, ...). */
  notes: string[];
  forward(inputs: tf.Tensor[]): tf.Tensor;
  /**
   * `count` inputs (the trial's own where it has them: the sample grid's noise) and what the trainer makes
   * of them through its own path (`sample`, `translate`), each flat NHWC / [N, ...shape].
   */
  example(count: number): { inputs: Float32Array[]; output: Float32Array };
}

/** What the trainer process, the evaluator and the bench need of a model's training loop. */
export interface Trainer {
  readonly job: TrialJob;
  /** Steps taken (global across stages). */
  readonly step: number;
  /** Size of the images `sample` returns. */
  readonly sampleShape: { height: number; width: number; channels: number };
  /** Staged models: the fade-in factor of the next step. */
  readonly alpha?: number;
  trainStep(): StepStats;
  /**
   * The sample grid's tiles: `count` images NHWC in [-1, 1] at `sampleShape`, `cols` to a row. Generative
   * families draw them from a fixed noise batch; image-conditioned ones show the task on held-out inputs
   * (srgan: LR | bicubic | SR | HR; pix2pix: A | G(A) | B). @default {count: 64, cols: 8}
   */
  readonly sampleGrid?: { count: number; cols: number };
  sample(count?: number): Float32Array;
  /**
   * Image-conditioned families (srgan, pix2pix): the images `translate` takes, and G applied to `count` of
   * them (NHWC in [-1, 1] at `inputShape`), in inference mode; returns `count` images at `sampleShape`.
   */
  readonly inputShape?: ImageShape;
  translate?(inputs: Float32Array, count: number): Float32Array;
  readonly imageTask?: ImageTask;
  /**
   * How far the family's losses go beyond the adversarial terms by design (pix2pix's weighted L1, srgan's
   * MSE): added to the divergence detector's `loss_max`. @default 0
   */
  readonly lossBound?: number;
  /** False while the step trains no discriminator (srgan's MSE pretraining): its D scores are not judged. */
  readonly adversarial?: boolean;
  /** Generative families: `count` new images at `sampleShape` from noise seeded by `opts.seed`. */
  draw?(count: number, opts: DrawOptions): Float32Array;
  /**
   * Images for quality evaluation at the job's image size (a progan stage's scaled up and cropped to it),
   * NHWC in [-1, 1]; conditional families give the labels they drew them for.
   */
  evalSamples(count: number, batch?: number): { images: Float32Array; labels?: Int32Array };
  /**
   * Staged models: real images as the current stage sees them, prepared like `evalSamples`; health checks
   * judge the generator's diversity and classes against them.
   */
  realEvalSamples?(count: number): { images: Float32Array };
  /** Floating-point operations of one training step, approximately. */
  flopsPerStep(): number;
  /** The generator or the discriminator as `gantry export` traces it; absent where a family has none. */
  network?(net: NetName): ExportableNetwork;
  readonly health: TrainerHealthState;
  applyRestart(scale: LrScale): void;
  exportState(): TrainerState;
  importState(state: TrainerState): void;
  dispose(): void;
}
