import '../../gradients.ts';
import { Rng, type TrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { augmentState, createAugment, type DiffAugment } from '../../augment/diff-augment.ts';
import type { Dataset } from '../../data/datasets.ts';
import { discriminatorLoss, generatorLoss } from '../../losses.ts';
import type { ParamStore } from '../../models/param-store.ts';
import { Adam } from '../../optim/adam.ts';
import { HealthRates } from '../../training/health-rates.ts';
import { gradNorm, readStepStats } from '../../training/step-stats.ts';
import type {
  DrawOptions,
  ExportableNetwork,
  LrScale,
  NetName,
  NetworkTensor,
  StepStats,
  Trainer,
  TrainerHealthState,
  TrainerOptions,
  TrainerState,
} from '../family.ts';
import { buildDcgan, dcganFlopsPerImage } from './networks.ts';

/** The two networks a GanTrainer trains: variables and forward passes. */
export interface AdversarialNetworks {
  g: ParamStore;
  d: ParamStore;
  /** Generator: z [N, latent] (+ one-hot labels [N, classes]) -> images [N, H, W, C] in [-1, 1]. */
  generate(z: tf.Tensor2D, labels?: tf.Tensor2D): tf.Tensor4D;
  /** Discriminator: images (+ one-hot labels) -> logits or critic scores [N]. */
  discriminate(x: tf.Tensor4D, labels?: tf.Tensor2D): tf.Tensor1D;
  dispose(): void;
}

/** A family's networks for a job, with their forward cost (FLOPs per image). */
export interface BuiltNetworks {
  nets: AdversarialNetworks;
  flopsPerImage: { g: number; d: number };
}

/** What one update of D and G can use of a DCGAN-shaped trainer: its networks, optimizers and batches. */
export interface UpdateContext {
  nets: AdversarialNetworks;
  optG: Adam;
  optD: Adam;
  /** A batch of real images, with one-hot labels for a conditional trainer. */
  realBatch(): { x: tf.Tensor4D; y?: tf.Tensor2D };
  /** One-hot random labels for generated images (conditional trainers), else undefined. */
  randomLabels(): tf.Tensor2D | undefined;
  noise(): tf.Tensor2D;
  rng: Rng;
  params: Record<string, number>;
  /** DiffAugment (the job's `augment`): T before D in both losses; absent without one. */
  augment?: DiffAugment;
}

/** T(x) with the context's DiffAugment, or x itself without one. */
export function augmented(c: Pick<UpdateContext, 'augment'>, x: tf.Tensor4D): tf.Tensor4D {
  return c.augment ? c.augment.apply(x) : x;
}

/**
 * How a family's step updates D and G (its losses): a strategy, so that one trainer serves every
 * DCGAN-shaped family. `step` returns [D loss, G loss, D(x), D(G(z)), |grad G|, |grad D|].
 */
export interface AdversarialUpdate {
  /** D is a critic: no batch norm in it (its scores are per sample). */
  critic: boolean;
  /** D updates per step. */
  dUpdates(params: Record<string, number>): number;
  /** D forward passes a D update adds beyond the plain loss (a gradient penalty's double backward: ~5). */
  extraDForwards: number;
  step(ctx: UpdateContext): tf.Tensor1D;
}

/** What a family sets up a GanTrainer with. */
export interface GanTrainerOptions extends TrainerOptions {
  /** G and D see the class label (cGAN). */
  conditional: boolean;
  update: AdversarialUpdate;
  /**
   * Builds the networks from the job, the data and the trial's Rng (transgan's transformers).
   * @default DCGAN's networks at the data's size (critic without batch norm when `update.critic`)
   */
  networks?: (job: TrialJob, data: Dataset, rng: Rng) => BuiltNetworks;
}

/**
 * One D update then one G update with the non-saturating loss (Goodfellow et al., 2014): DCGAN's and
 * cGAN's step.
 */
export const nonSaturatingUpdate: AdversarialUpdate = {
  critic: false,
  dUpdates: () => 1,
  extraDForwards: 0,
  step(c) {
    const { nets } = c;
    let realLogits: tf.Tensor1D | undefined;
    let fakeLogits: tf.Tensor1D | undefined;
    const out = tf.tidy(() => {
      const real = c.realBatch();
      const fakeLabels = c.randomLabels();
      const fake = nets.generate(c.noise(), fakeLabels);
      // DiffAugment: D sees T(x) and T(G(z)), each a draw of its own.
      const [realX, fakeX] = [augmented(c, real.x), augmented(c, fake)];
      const dRes = tf.variableGrads(() => {
        realLogits = tf.keep(nets.discriminate(realX, real.y));
        fakeLogits = tf.keep(nets.discriminate(fakeX, fakeLabels));
        return discriminatorLoss(realLogits, fakeLogits);
      }, nets.d.vars);
      c.augment?.observe(realLogits!);
      const dGrads = nets.d.vars.map((v) => dRes.grads[v.name]!);
      c.optD.apply(dGrads);

      const gLabels = c.randomLabels();
      const z = c.noise();
      const gRes = tf.variableGrads(
        () => generatorLoss(nets.discriminate(augmented(c, nets.generate(z, gLabels)), gLabels)),
        nets.g.vars,
      );
      const gGrads = nets.g.vars.map((v) => gRes.grads[v.name]!);
      c.optG.apply(gGrads);
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
  },
};

/**
 * The adversarial training loop of one trial for the DCGAN-shaped families (dcgan, cgan, wgan-gp): DCGAN
 * networks at the data's size, Adam for both, and the family's update (its losses and D updates per step).
 * Synchronous per step; the caller decides when to yield, checkpoint or stop.
 */
export class GanTrainer implements Trainer {
  readonly nets: AdversarialNetworks;
  private readonly flopsPerImage: { g: number; d: number };
  private readonly rng: Rng;
  private readonly optG: Adam;
  private readonly optD: Adam;
  private readonly batch: number;
  private readonly latent: number;
  private readonly conditional: boolean;
  readonly sampleShape: { height: number; width: number; channels: number };
  private readonly update: AdversarialUpdate;
  private readonly faultNanAtStep?: number;
  private readonly context: UpdateContext;
  private stepCount = 0;
  private readonly rates: HealthRates;
  private readonly augment?: DiffAugment;

  constructor(
    readonly job: TrialJob,
    private readonly data: Dataset,
    opts: GanTrainerOptions,
  ) {
    const p = job.params;
    this.batch = p.batch_size!;
    this.latent = p.latent_dim!;
    this.conditional = opts.conditional;
    this.update = opts.update;
    this.faultNanAtStep = opts.faultNanAtStep;
    this.sampleShape = { height: data.height, width: data.width, channels: data.channels };
    this.rng = new Rng(job.seed);
    const built = (opts.networks ?? this.dcganNetworks.bind(this))(job, data, this.rng);
    this.nets = built.nets;
    this.flopsPerImage = built.flopsPerImage;
    this.optG = new Adam(this.nets.g.vars, { lr: p.lr_g!, beta1: p.beta1!, beta2: p.beta2! });
    this.optD = new Adam(this.nets.d.vars, { lr: p.lr_d!, beta1: p.beta1!, beta2: p.beta2! });
    this.rates = new HealthRates(this.optG, this.optD, { g: p.lr_g!, d: p.lr_d! });
    this.augment = createAugment(job.augment, this.rng);
    this.context = {
      nets: this.nets,
      optG: this.optG,
      optD: this.optD,
      realBatch: () => this.realBatch(),
      randomLabels: () => this.randomLabels(),
      noise: () => this.noise(),
      rng: this.rng,
      params: p,
      augment: this.augment,
    };
  }

  get step(): number {
    return this.stepCount;
  }

  private dcganNetworks(job: TrialJob, data: Dataset, rng: Rng): BuiltNetworks {
    const nets = buildDcgan(
      {
        height: data.height,
        width: data.width,
        channels: data.channels,
        latentDim: this.latent,
        baseFilters: job.params.base_filters!,
        numClasses: this.conditional ? data.numClasses : 0,
        critic: this.update.critic,
      },
      rng,
    );
    return { nets, flopsPerImage: dcganFlopsPerImage(nets.shape) };
  }

  /** Floating-point operations of one training step (forward + backward of both updates), approximately. */
  flopsPerStep(): number {
    const f = this.flopsPerImage;
    // D update: G fwd, D fwd on real and fake, D backward (~2x fwd) on both.
    // G update: G fwd, D fwd, D backward for the input gradient, G backward (~2x fwd).
    // A gradient penalty adds D forward and backward on the mixed batch, and the backward of that backward
    // (~2x again): about 5 more D forwards per critic update.
    const dUpdate = f.g + 2 * f.d + 2 * 2 * f.d + this.update.extraDForwards * f.d;
    const gUpdate = f.g + f.d + 2 * f.d + 2 * f.g;
    return this.batch * (this.update.dUpdates(this.job.params) * dUpdate + gUpdate);
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

  /** One step of the family's update. Returns the step's scalars (possibly non-finite: the caller checks). */
  trainStep(): StepStats {
    const out = this.update.step(this.context);
    this.stepCount += 1;
    return { ...readStepStats(out, this.stepCount), ...this.augment?.stats() };
  }

  /**
   * Images from a fixed noise batch (its own Rng, so sampling never disturbs training), one row per class
   * for cGAN. Returns NHWC floats in [-1, 1].
   */
  sample(count = 64): Float32Array {
    const { z, labels } = this.sampleInputs(count);
    return tf.tidy(() => {
      const y = labels && (tf.tensor2d(labels, [count, this.data.numClasses]) as tf.Tensor2D);
      return this.nets.generate(tf.tensor2d(z, [count, this.latent]), y).dataSync() as Float32Array;
    });
  }

  /** The sample grid's noise (its own Rng) and, for cGAN, one-hot labels: one class per row of the grid. */
  private sampleInputs(count: number): { z: Float32Array; labels?: Float32Array } {
    const rng = new Rng((this.job.seed ^ 0x5a5a5a5a) >>> 0);
    const z = rng.fillNormal(new Float32Array(count * this.latent));
    if (!this.conditional) return { z };
    const k = this.data.numClasses;
    const cols = Math.ceil(Math.sqrt(count));
    const labels = new Float32Array(count * k);
    for (let i = 0; i < count; i++) labels[i * k + (Math.floor(i / cols) % k)] = 1;
    return { z, labels };
  }

  /**
   * G: z (+ one-hot labels) -> images, batch norm over the batch given, as `sample` runs it; D: images (+
   * labels) -> logits. Examples: the sample grid's noise, and G's images of it.
   */
  network(net: NetName): ExportableNetwork {
    const { height, width, channels, numClasses } = this.data;
    const labels: NetworkTensor[] = this.conditional
      ? [{ name: 'labels', shape: [numClasses], description: `one-hot class (${numClasses} classes)` }]
      : [];
    const image = { shape: [height, width, channels], description: 'NHWC in [-1, 1]' };
    const grid = (count: number) => {
      const { z, labels: y } = this.sampleInputs(count);
      return { z, y, images: this.sample(count) };
    };
    if (net === 'g') {
      return {
        inputs: [{ name: 'z', shape: [this.latent], description: 'standard normal noise' }, ...labels],
        output: { name: 'images', ...image },
        notes: this.usesBatchStatistics('g')
          ? [
              'batch norm normalises by the batch given, as the trial does: one image alone comes out differently',
            ]
          : [],
        forward: ([z, y]) => this.nets.generate(z as tf.Tensor2D, y as tf.Tensor2D | undefined),
        example: (count) => {
          const { z, y, images } = grid(count);
          return { inputs: y ? [z, y] : [z], output: images };
        },
      };
    }
    return {
      inputs: [{ name: 'images', ...image }, ...labels],
      output: {
        name: 'logits',
        shape: [],
        description: this.update.critic ? 'critic score' : 'logit of "real"',
      },
      notes: this.usesBatchStatistics('d')
        ? ['batch norm normalises by the batch given, as in training']
        : [],
      forward: ([x, y]) => this.nets.discriminate(x as tf.Tensor4D, y as tf.Tensor2D | undefined),
      example: (count) => {
        const { y, images } = grid(count);
        const output = tf.tidy(
          () =>
            this.nets
              .discriminate(
                tf.tensor4d(images, [count, height, width, channels]),
                y && (tf.tensor2d(y, [count, numClasses]) as tf.Tensor2D),
              )
              .dataSync() as Float32Array,
        );
        return { inputs: y ? [images, y] : [images], output };
      },
    };
  }

  /** Whether the network has batch norms (DCGAN's normalise by the batch, in sampling too). */
  private usesBatchStatistics(net: NetName): boolean {
    return (net === 'g' ? this.nets.g : this.nets.d).vars.some((v) => /\/bn\d*\//.test(v.name));
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

  /** `count` images from noise seeded by `opts.seed`; for cGAN all of class `opts.label`, or cycling classes. */
  draw(count: number, opts: DrawOptions): Float32Array {
    const rng = new Rng(opts.seed >>> 0);
    const z = rng.fillNormal(new Float32Array(count * this.latent));
    const { numClasses } = this.data;
    if (this.conditional && opts.label !== undefined && (opts.label < 0 || opts.label >= numClasses))
      throw new RangeError(
        `class ${opts.label} is not one of the set's ${numClasses} (0..${numClasses - 1})`,
      );
    return tf.tidy(() => {
      const y = this.conditional
        ? (tf
            .oneHot(
              tf.tensor1d(
                Array.from({ length: count }, (_, i) => opts.label ?? i % numClasses),
                'int32',
              ),
              numClasses,
            )
            .toFloat() as tf.Tensor2D)
        : undefined;
      return this.nets.generate(tf.tensor2d(z, [count, this.latent]), y).dataSync() as Float32Array;
    });
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
      ...augmentState(this.augment),
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
    this.augment?.importState(state.augment);
  }

  dispose(): void {
    this.nets.dispose();
    this.optG.dispose();
    this.optD.dispose();
    this.augment?.dispose();
  }
}
