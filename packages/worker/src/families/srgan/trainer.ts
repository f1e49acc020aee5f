import '../../gradients.ts';
import { type JobStage, Rng, type TrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { augmentState, createAugment, type DiffAugment } from '../../augment/diff-augment.ts';
import type { Dataset } from '../../data/datasets.ts';
import { exampleImages, imageTensor, runOn } from '../../export/network-examples.ts';
import { discriminatorLoss, generatorLoss } from '../../losses.ts';
import { Adam } from '../../optim/adam.ts';
import { bicubicResize, clampUnit } from '../../quality/image-metrics.ts';
import { HealthRates } from '../../training/health-rates.ts';
import {
  drawIndices,
  gather,
  interleave,
  mapBatches,
  pixels,
  upscaleNearest,
} from '../../training/image-batches.ts';
import { gradNorm, readStepStats } from '../../training/step-stats.ts';
import type {
  ExportableNetwork,
  ImageShape,
  ImageTask,
  LrScale,
  NetName,
  StepStats,
  Trainer,
  TrainerHealthState,
  TrainerOptions,
  TrainerState,
} from '../family.ts';
import { buildSrgan, type SrganNetworks, srganFlopsPerImage } from './networks.ts';

/** Examples in the sample grid: LR (nearest) | bicubic | SR | HR each, two to a row of 8. */
const GRID_EXAMPLES = 16;

/**
 * The low-resolution inputs of `hr` images: MATLAB-style antialiased bicubic downscaling by `scale`
 * (image-metrics.ts, `bicubicResize`), clamped to [-1, 1]. The one filter SR inputs are made with, in
 * training, evaluation and the baseline alike.
 */
export function downscale(hr: Float32Array, count: number, shape: ImageShape, scale: number): Float32Array {
  if (count === 0) return new Float32Array(0);
  const side = shape.height / scale;
  return clampUnit(bicubicResize(hr, { count, ...shape }, side, side));
}

/**
 * One stage of an SRGAN trial (Ledig et al., 2017): stage `pretrain` trains the generator alone on the MSE
 * to the high-resolution image (SRResNet), stage `adversarial` goes on from its checkpoint with content
 * MSE + adv_weight x the non-saturating adversarial loss, and trains the discriminator. Each stage has its
 * own learning rate (lr_pretrain, then lr_g) and fresh optimizers; the content loss is the pixel MSE on the
 * [-1, 1] scale (the paper's SRGAN-MSE): VGG weights cannot be fetched here, and the project's classifiers
 * end in globally pooled 64-d features that carry no spatial detail to match.
 */
export class SrganTrainer implements Trainer {
  readonly nets: SrganNetworks;
  readonly stage: JobStage;
  readonly sampleShape: ImageShape;
  readonly inputShape: ImageShape;
  readonly sampleGrid = { count: 4 * GRID_EXAMPLES, cols: 8 };
  readonly lossBound = 4;
  readonly imageTask: ImageTask;
  private readonly scale: 2 | 4;
  private readonly rng: Rng;
  private readonly optG: Adam;
  private readonly optD: Adam;
  private readonly rates: HealthRates;
  private readonly batch: number;
  private readonly lr: Float32Array;
  private readonly grid: { lr: Float32Array; hr: Float32Array; count: number };
  private stepCount: number;
  private readonly faultNanAtStep?: number;
  /** DiffAugment of D's HR and SR inputs, in the adversarial stage only (pretraining has no D). */
  private readonly augment?: DiffAugment;

  constructor(
    readonly job: TrialJob,
    private readonly data: Dataset,
    opts: TrainerOptions = {},
  ) {
    if (!job.stage?.phase) throw new Error('an srgan job needs its stage (pretrain or adversarial)');
    this.stage = job.stage;
    const p = job.params;
    const scale = p.scale!;
    if (scale !== 2 && scale !== 4) throw new Error(`srgan: scale must be 2 or 4, got ${scale}`);
    this.scale = scale;
    const side = data.height;
    this.sampleShape = { height: side, width: side, channels: data.channels };
    this.inputShape = { height: side / scale, width: side / scale, channels: data.channels };
    this.batch = this.stage.batch_size;
    this.faultNanAtStep = opts.faultNanAtStep;
    this.rng = new Rng(job.seed);
    this.nets = buildSrgan(
      { side, scale, channels: data.channels, blocks: p.blocks!, baseFilters: p.base_filters! },
      this.rng,
    );
    const lrG = this.adversarial ? p.lr_g! : p.lr_pretrain!;
    this.optG = new Adam(this.nets.g.vars, { lr: lrG, beta1: p.beta1!, beta2: p.beta2! });
    this.optD = new Adam(this.nets.d.vars, { lr: p.lr_d!, beta1: p.beta1!, beta2: p.beta2! });
    this.rates = new HealthRates(this.optG, this.optD, { g: lrG, d: p.lr_d! });
    if (this.adversarial) this.augment = createAugment(job.augment, this.rng);
    this.stepCount = this.stage.start_step;
    this.lr = downscale(data.images, data.count, this.sampleShape, scale);
    const shown = opts.heldOut && opts.heldOut.count > 0 ? opts.heldOut : data;
    const n = Math.min(GRID_EXAMPLES, shown.count);
    const hr = shown.images.subarray(0, n * pixels(this.sampleShape));
    this.grid = { hr, lr: downscale(hr, n, this.sampleShape, scale), count: n };
    this.imageTask = {
      pairs: (split, count) => {
        const k = Math.min(count, split.count);
        const targets = split.images.subarray(0, k * pixels(this.sampleShape));
        return { inputs: downscale(targets, k, this.sampleShape, scale), targets, count: k };
      },
      baseline: (inputs, count) => this.bicubic(inputs, count),
      cropBorder: scale,
      yChannel: true,
    };
  }

  /** True in the adversarial stage; the pretraining stage trains G alone. */
  get adversarial(): boolean {
    return this.stage.phase === 'adversarial';
  }

  get step(): number {
    return this.stepCount;
  }

  flopsPerStep(): number {
    const f = srganFlopsPerImage(this.nets.shape);
    // Pretraining: G forward + backward. Adversarial: G fwd, D fwd + bwd on real and fake (D update), then
    // G fwd + bwd through D (G update).
    if (!this.adversarial) return this.batch * 3 * f.g;
    return this.batch * (f.g + 2 * 3 * f.d + 3 * f.g + 3 * f.d);
  }

  /** Bicubic upsampling of LR inputs to the HR side (the baseline), clamped to [-1, 1]. */
  private bicubic(inputs: Float32Array, count: number): Float32Array {
    if (count === 0) return new Float32Array(0);
    const side = this.sampleShape.height;
    return clampUnit(bicubicResize(inputs, { count, ...this.inputShape }, side, side));
  }

  private batchPair(): { lr: tf.Tensor4D; hr: tf.Tensor4D } {
    const idx = drawIndices(this.rng, this.data.count, this.batch);
    const hr = gather(this.data.images, this.sampleShape, idx);
    const lr = gather(this.lr, this.inputShape, idx);
    if (this.faultNanAtStep !== undefined && this.stepCount + 1 >= this.faultNanAtStep)
      return { lr: tf.mul(lr, Number.NaN) as tf.Tensor4D, hr };
    return { lr, hr };
  }

  trainStep(): StepStats {
    const out = this.adversarial ? this.adversarialStep() : this.pretrainStep();
    this.nets.gStats.commit();
    this.stepCount += 1;
    return { ...readStepStats(out, this.stepCount), ...this.augment?.stats() };
  }

  /** G alone on the MSE to HR; D's scores and gradient are reported as 0 (it is not trained). */
  private pretrainStep(): tf.Tensor1D {
    const { nets } = this;
    return tf.tidy(() => {
      const { lr, hr } = this.batchPair();
      nets.gStats.recording = true;
      const res = tf.variableGrads(
        () => tf.mean(tf.squaredDifference(nets.generate(lr, 'train'), hr)),
        nets.g.vars,
      );
      nets.gStats.recording = false;
      const grads = nets.g.vars.map((v) => res.grads[v.name]!);
      this.optG.apply(grads);
      const zero = tf.scalar(0);
      return tf.stack([zero, res.value, zero, zero, gradNorm(grads), zero]) as tf.Tensor1D;
    });
  }

  /** One D update (real HR against SR), then one G update on content MSE + adv_weight x adversarial loss. */
  private adversarialStep(): tf.Tensor1D {
    const { nets } = this;
    const advWeight = this.job.params.adv_weight!;
    let realLogits: tf.Tensor1D | undefined;
    let fakeLogits: tf.Tensor1D | undefined;
    const out = tf.tidy(() => {
      const { lr, hr } = this.batchPair();
      const sr = nets.generate(lr, 'train');
      const aug = (x: tf.Tensor4D) => (this.augment ? this.augment.apply(x) : x);
      const [realX, fakeX] = [aug(hr), aug(sr)];
      const dRes = tf.variableGrads(() => {
        realLogits = tf.keep(nets.discriminate(realX));
        fakeLogits = tf.keep(nets.discriminate(fakeX));
        return discriminatorLoss(realLogits, fakeLogits);
      }, nets.d.vars);
      this.augment?.observe(realLogits!);
      const dGrads = nets.d.vars.map((v) => dRes.grads[v.name]!);
      this.optD.apply(dGrads);

      nets.gStats.recording = true;
      const gRes = tf.variableGrads(() => {
        const out = nets.generate(lr, 'train');
        const content = tf.mean(tf.squaredDifference(out, hr));
        return tf.add(content, tf.mul(advWeight, generatorLoss(nets.discriminate(aug(out))))) as tf.Scalar;
      }, nets.g.vars);
      nets.gStats.recording = false;
      const gGrads = nets.g.vars.map((v) => gRes.grads[v.name]!);
      this.optG.apply(gGrads);
      return tf.stack([
        dRes.value,
        gRes.value,
        tf.mean(tf.sigmoid(realLogits!)),
        tf.mean(tf.sigmoid(fakeLogits!)),
        gradNorm(gGrads),
        gradNorm(dGrads),
      ]) as tf.Tensor1D;
    });
    realLogits?.dispose();
    fakeLogits?.dispose();
    return out;
  }

  /** G in inference mode (running batch-norm statistics) on `count` LR images. */
  translate(inputs: Float32Array, count: number): Float32Array {
    return mapBatches(inputs, count, this.inputShape, this.sampleShape, (x) => this.nets.generate(x, 'eval'));
  }

  /** G: LR images -> SR images with running statistics, as `translate`; D: HR images -> logits. */
  network(net: NetName): ExportableNetwork {
    const lr = imageTensor('lr', this.inputShape, `low-resolution images (1/${this.scale} of the side)`);
    const hr = (name: string) => imageTensor(name, this.sampleShape, 'high-resolution images');
    if (net === 'g') {
      return {
        inputs: [lr],
        output: hr('sr'),
        notes: [],
        forward: ([x]) => this.nets.generate(x as tf.Tensor4D, 'eval'),
        example: (count) => {
          const x = exampleImages(count, this.inputShape);
          return { inputs: [x], output: this.translate(x, count) };
        },
      };
    }
    const inputs = [hr('images')];
    const forward = ([x]: tf.Tensor[]) => this.nets.discriminate(x as tf.Tensor4D);
    return {
      inputs,
      output: { name: 'logits', shape: [], description: 'logit of "real"' },
      notes: ['batch norm normalises by the batch given, as in training'],
      forward,
      example: (count) => {
        const x = [exampleImages(count, this.sampleShape)];
        return { inputs: x, output: runOn(forward, inputs, x, count) };
      },
    };
  }

  /** Grid tiles: per example LR (nearest neighbour) | bicubic | SR | HR, two examples to a row. */
  sample(): Float32Array {
    const { lr, hr, count } = this.grid;
    if (count === 0) return new Float32Array(this.sampleGrid.count * pixels(this.sampleShape)).fill(-1);
    const tiles = interleave(
      [
        upscaleNearest(lr, count, this.inputShape, this.scale),
        this.bicubic(lr, count),
        this.translate(lr, count),
        hr,
      ],
      count,
      pixels(this.sampleShape),
    );
    const full = new Float32Array(this.sampleGrid.count * pixels(this.sampleShape)).fill(-1);
    full.set(tiles);
    return full;
  }

  /** SR outputs of the first `count` train examples (quality evaluation scores held-out ones: imageTask). */
  evalSamples(count: number): { images: Float32Array } {
    const k = Math.min(count, this.data.count);
    return { images: this.translate(this.lr.subarray(0, k * pixels(this.inputShape)), k) };
  }

  get health(): TrainerHealthState {
    return this.rates.state;
  }

  applyRestart(scale: LrScale): void {
    this.rates.restart(scale);
  }

  exportState(): TrainerState {
    return {
      step: this.stepCount,
      rng: this.rng.getState(),
      g: this.nets.g.export(),
      d: this.nets.d.export(),
      optG: this.optG.exportState(),
      optD: this.optD.exportState(),
      health: this.health,
      stage: this.stage.index,
      stats: this.nets.gStats.export(),
      ...augmentState(this.augment),
    };
  }

  /**
   * Resumes a checkpoint of this stage exactly, or starts the adversarial stage from the pretraining
   * stage's final checkpoint: both networks and G's statistics as they are, fresh optimizers at this
   * stage's learning rates (times the multipliers of any health restart so far).
   * @throws Error for a checkpoint of another stage or step.
   */
  importState(state: TrainerState): void {
    const index = this.stage.index;
    const next = index > 0 && state.stage === index - 1;
    if (state.stage !== index && !next)
      throw new Error(`a checkpoint of stage ${state.stage ?? 'none'} cannot resume or start stage ${index}`);
    if (next && state.step !== this.stage.start_step)
      throw new Error(
        `stage ${index} starts at step ${this.stage.start_step}, but stage ${state.stage}'s checkpoint is at step ${state.step}`,
      );
    if (!state.stats)
      throw new Error(`checkpoint at step ${state.step} lacks the generator's batch-norm statistics`);
    this.nets.g.import(state.g);
    this.nets.d.import(state.d);
    this.nets.gStats.import(state.stats);
    if (next) {
      this.optG.reset();
      this.optD.reset();
    } else {
      this.optG.importState(state.optG);
      this.optD.importState(state.optD);
    }
    this.rng.setState(state.rng);
    this.stepCount = state.step;
    // Restarts and their rate multipliers go on across stages, as in progan: a trial a restart slowed down
    // stays slowed down (the handover itself cannot tell a new stage from a rewind to its start).
    this.rates.set(state.health);
    this.augment?.importState(state.augment);
  }

  dispose(): void {
    this.nets.dispose();
    this.optG.dispose();
    this.optD.dispose();
    this.augment?.dispose();
  }
}
