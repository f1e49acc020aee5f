import './gradients.ts';
import { Rng, type TrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from './data/datasets.ts';
import { discriminatorLoss, generatorLoss } from './losses.ts';
import { buildDcgan, dcganFlopsPerImage, type GanNetworks } from './models/dcgan.ts';
import type { NamedArray } from './models/param-store.ts';
import { Adam } from './optim/adam.ts';
import {
  gradNorm,
  HealthRates,
  type LrScale,
  readStepStats,
  type TrainerHealthState,
  wassersteinStep,
} from './train-step.ts';

export type { LrScale, TrainerHealthState } from './train-step.ts';

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
  /** `count` images from a fixed noise batch, NHWC in [-1, 1], at `sampleShape`. */
  sample(count?: number): Float32Array;
  /** Images for quality evaluation at the job's image size (a progan stage's scaled up and cropped to it), NHWC in [-1, 1]. */
  evalSamples(count: number, batch?: number): { images: Float32Array; labels?: Int32Array };
  /**
   * Staged models: real images as the current stage sees them, prepared like `evalSamples`; health checks
   * judge the generator's diversity and classes against them.
   */
  realEvalSamples?(count: number): { images: Float32Array };
  /** Floating-point operations of one training step, approximately. */
  flopsPerStep(): number;
  readonly health: TrainerHealthState;
  applyRestart(scale: LrScale): void;
  exportState(): TrainerState;
  importState(state: TrainerState): void;
  dispose(): void;
}

/**
 * The adversarial training loop of one trial for DCGAN, cGAN and WGAN-GP:
 * - dcgan, cgan: one discriminator update then one generator update per step, non-saturating loss;
 * - wgan-gp: `n_critic` critic updates (Wasserstein loss with gradient penalty, Gulrajani et al. 2017,
 *   Algorithm 1), then one generator update per step;
 * Adam for both networks. Synchronous per step; the caller decides when to yield, checkpoint or stop.
 */
export class GanTrainer implements Trainer {
  readonly nets: GanNetworks;
  private readonly rng: Rng;
  private readonly optG: Adam;
  private readonly optD: Adam;
  private readonly batch: number;
  private readonly latent: number;
  private readonly conditional: boolean;
  readonly sampleShape: { height: number; width: number; channels: number };
  /** wgan-gp: a critic trained with the Wasserstein loss. */
  private readonly wasserstein: boolean;
  private stepCount = 0;
  private readonly rates: HealthRates;

  /**
   * @param faultNanAtStep fault injection for tests: real batches are NaN from this step on, so that the
   *   divergence handling is exercised by a real non-finite loss.
   */
  constructor(
    readonly job: TrialJob,
    private readonly data: Dataset,
    private readonly faultNanAtStep?: number,
  ) {
    const p = job.params;
    this.batch = p.batch_size!;
    this.latent = p.latent_dim!;
    this.conditional = job.model === 'cgan';
    this.wasserstein = job.model === 'wgan-gp';
    if (job.model === 'progan') throw new Error('progan trains with ProganTrainer');
    this.sampleShape = { height: data.height, width: data.width, channels: data.channels };
    this.rng = new Rng(job.seed);
    this.nets = buildDcgan(
      {
        height: data.height,
        width: data.width,
        channels: data.channels,
        latentDim: this.latent,
        baseFilters: p.base_filters!,
        numClasses: this.conditional ? data.numClasses : 0,
        critic: this.wasserstein,
      },
      this.rng,
    );
    this.optG = new Adam(this.nets.g.vars, { lr: p.lr_g!, beta1: p.beta1!, beta2: p.beta2! });
    this.optD = new Adam(this.nets.d.vars, { lr: p.lr_d!, beta1: p.beta1!, beta2: p.beta2! });
    this.rates = new HealthRates(this.optG, this.optD, { g: p.lr_g!, d: p.lr_d! });
  }

  get step(): number {
    return this.stepCount;
  }

  /** Floating-point operations of one training step (forward + backward of both updates), approximately. */
  flopsPerStep(): number {
    const f = dcganFlopsPerImage(this.nets.shape);
    // D update: G fwd, D fwd on real and fake, D backward (~2x fwd) on both.
    // G update: G fwd, D fwd, D backward for the input gradient, G backward (~2x fwd).
    // A gradient penalty adds D forward and backward on the mixed batch, and the backward of that backward
    // (~2x again): about 5 more D forwards per critic update.
    const dUpdate = f.g + 2 * f.d + 2 * 2 * f.d + (this.wasserstein ? 5 * f.d : 0);
    const gUpdate = f.g + f.d + 2 * f.d + 2 * f.g;
    const critics = this.wasserstein ? this.job.params.n_critic! : 1;
    return this.batch * (critics * dUpdate + gUpdate);
  }

  private noise(): tf.Tensor2D {
    const z = new Float32Array(this.batch * this.latent);
    this.rng.fillNormal(z);
    return tf.tensor2d(z, [this.batch, this.latent]);
  }

  private randomLabels(): tf.Tensor2D | undefined {
    if (!this.conditional) return undefined;
    const idx = new Int32Array(this.batch);
    for (let i = 0; i < this.batch; i++) idx[i] = this.rng.int(this.data.numClasses);
    return tf.oneHot(tf.tensor1d(idx, 'int32'), this.data.numClasses).toFloat() as tf.Tensor2D;
  }

  private realBatch(): { x: tf.Tensor4D; y?: tf.Tensor2D } {
    const { height: h, width: w, channels: c, count } = this.data;
    const px = h * w * c;
    const images = new Float32Array(this.batch * px);
    const labels = new Int32Array(this.batch);
    for (let i = 0; i < this.batch; i++) {
      const j = this.rng.int(count);
      images.set(this.data.images.subarray(j * px, (j + 1) * px), i * px);
      labels[i] = this.data.labels[j]!;
    }
    if (this.faultNanAtStep !== undefined && this.stepCount + 1 >= this.faultNanAtStep)
      images.fill(Number.NaN);
    const x = tf.tensor4d(images, [this.batch, h, w, c]);
    if (!this.conditional) return { x };
    return { x, y: tf.oneHot(tf.tensor1d(labels, 'int32'), this.data.numClasses).toFloat() as tf.Tensor2D };
  }

  /**
   * One step: one D update (n_critic for wgan-gp) and one G update. Returns the step's scalars (possibly
   * non-finite: the caller checks).
   */
  trainStep(): StepStats {
    if (this.wasserstein) return this.wassersteinStep();
    const { nets } = this;
    let realLogits: tf.Tensor1D | undefined;
    let fakeLogits: tf.Tensor1D | undefined;
    const out = tf.tidy(() => {
      const real = this.realBatch();
      const fakeLabels = this.randomLabels();
      const fake = nets.generate(this.noise(), fakeLabels);
      const dRes = tf.variableGrads(() => {
        realLogits = tf.keep(nets.discriminate(real.x, real.y));
        fakeLogits = tf.keep(nets.discriminate(fake, fakeLabels));
        return discriminatorLoss(realLogits, fakeLogits);
      }, nets.d.vars);
      const dGrads = nets.d.vars.map((v) => dRes.grads[v.name]!);
      this.optD.apply(dGrads);

      const gLabels = this.randomLabels();
      const z = this.noise();
      const gRes = tf.variableGrads(
        () => generatorLoss(nets.discriminate(nets.generate(z, gLabels), gLabels)),
        nets.g.vars,
      );
      const gGrads = nets.g.vars.map((v) => gRes.grads[v.name]!);
      this.optG.apply(gGrads);
      return tf.stack([
        dRes.value,
        gRes.value,
        tf.mean(tf.sigmoid(realLogits!)),
        tf.mean(tf.sigmoid(fakeLogits!)),
        gradNorm(gGrads),
        gradNorm(dGrads),
      ]);
    });
    realLogits?.dispose();
    fakeLogits?.dispose();
    this.stepCount += 1;
    return readStepStats(out, this.stepCount);
  }

  /** n_critic critic updates with the gradient penalty, then one generator update. */
  private wassersteinStep(): StepStats {
    const { nets } = this;
    const p = this.job.params;
    const out = wassersteinStep({
      generate: (z) => nets.generate(z),
      critic: (x) => nets.discriminate(x),
      gVars: nets.g.vars,
      dVars: nets.d.vars,
      optG: this.optG,
      optD: this.optD,
      realBatch: () => this.realBatch().x,
      noise: () => this.noise(),
      rng: this.rng,
      nCritic: p.n_critic!,
      gpLambda: p.gp_lambda!,
      drift: 0,
    });
    this.stepCount += 1;
    return readStepStats(out, this.stepCount);
  }

  /**
   * Images from a fixed noise batch (its own Rng, so sampling never disturbs training), one row per class
   * for cGAN. Returns NHWC floats in [-1, 1].
   */
  sample(count = 64): Float32Array {
    const rng = new Rng((this.job.seed ^ 0x5a5a5a5a) >>> 0);
    const z = new Float32Array(count * this.latent);
    rng.fillNormal(z);
    return tf.tidy(() => {
      const cols = Math.ceil(Math.sqrt(count));
      const labels = this.conditional
        ? (tf
            .oneHot(
              tf.tensor1d(
                Array.from({ length: count }, (_, i) => Math.floor(i / cols) % this.data.numClasses),
                'int32',
              ),
              this.data.numClasses,
            )
            .toFloat() as tf.Tensor2D)
        : undefined;
      return this.nets.generate(tf.tensor2d(z, [count, this.latent]), labels).dataSync() as Float32Array;
    });
  }

  /**
   * `count` images for quality evaluation from a fixed noise batch (an Rng of its own, other than the
   * sample grid's), in batches of `batch`; for cGAN, labels cycle through the classes. NHWC in [-1, 1].
   */
  evalSamples(count: number, batch = 256): { images: Float32Array; labels?: Int32Array } {
    const rng = new Rng((this.job.seed ^ 0x3c3c3c3c) >>> 0);
    const { height, width, channels, numClasses } = this.data;
    const px = height * width * channels;
    const images = new Float32Array(count * px);
    const labels = this.conditional
      ? Int32Array.from({ length: count }, (_, i) => i % numClasses)
      : undefined;
    for (let i0 = 0; i0 < count; i0 += batch) {
      const n = Math.min(batch, count - i0);
      const z = rng.fillNormal(new Float32Array(n * this.latent));
      tf.tidy(() => {
        const y = labels
          ? (tf
              .oneHot(tf.tensor1d(labels.subarray(i0, i0 + n), 'int32'), numClasses)
              .toFloat() as tf.Tensor2D)
          : undefined;
        images.set(this.nets.generate(tf.tensor2d(z, [n, this.latent]), y).dataSync(), i0 * px);
      });
    }
    return { images, labels };
  }

  /** Restarts and learning-rate multipliers so far. */
  get health(): TrainerHealthState {
    return this.rates.state;
  }

  /**
   * Records a health restart: multiplies each network's learning rate by `scale` (on top of earlier
   * restarts) and counts it. The caller has already restored the weights to rewind to.
   */
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
    };
  }

  importState(state: TrainerState): void {
    this.nets.g.import(state.g);
    this.nets.d.import(state.d);
    this.optG.importState(state.optG);
    this.optD.importState(state.optD);
    this.rng.setState(state.rng);
    this.stepCount = state.step;
    this.rates.set(state.health);
  }

  dispose(): void {
    this.nets.dispose();
    this.optG.dispose();
    this.optD.dispose();
  }
}
