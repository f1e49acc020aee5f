import '../../gradients.ts';
import { type JobStage, Rng, stageAlpha, type TrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { augmentState, createAugment, type DiffAugment } from '../../augment/diff-augment.ts';
import type { Dataset } from '../../data/datasets.ts';
import type { NamedArray, ParamStore } from '../../models/param-store.ts';
import { Adam } from '../../optim/adam.ts';
import { HealthRates } from '../../training/health-rates.ts';
import { readStepStats } from '../../training/step-stats.ts';
import { wassersteinStep } from '../../training/wasserstein-step.ts';
import type {
  DrawOptions,
  ExportableNetwork,
  LrScale,
  NetName,
  StepStats,
  Trainer,
  TrainerHealthState,
  TrainerOptions,
  TrainerState,
} from '../family.ts';
import { downsample2x, fadeIn, upsample2x } from './blocks.ts';
import { buildProgan, type ProganNetworks, proganFlopsPerImage } from './networks.ts';

/** Side of the canvas progressive growing trains towards: the images' side, padded up to a power of two (28 -> 32). */
export function proganCanvas(imageSize: number): number {
  return 2 ** Math.ceil(Math.log2(imageSize));
}

/**
 * One stage of a progressive-growing trial (Karras et al., 2018): the networks at the stage's resolution,
 * WGAN-GP with the drift term, Adam, and an exponential moving average of G's weights that draws samples
 * and evaluations.
 *
 * A stage starts from the previous stage's checkpoint: layers of lower resolutions keep their weights, the
 * new ones their fresh initialisation, the optimizers start anew (the paper resets them at each stage) and
 * the EMA takes over the old layers' averages. During the fade steps alpha rises from 0 to 1, blending the
 * new layers in on both sides, real images included (section 3: they are upsampled from the lower
 * resolution and blended the same way). A checkpoint of the stage itself resumes it exactly.
 */
export class ProganTrainer implements Trainer {
  readonly nets: ProganNetworks;
  readonly sampleShape: { height: number; width: number; channels: number };
  readonly stage: JobStage;
  /** The stage's resolution (square). */
  private readonly resolution: number;
  private readonly ema: ParamStore;
  private readonly rng: Rng;
  private readonly optG: Adam;
  private readonly optD: Adam;
  private readonly batch: number;
  private readonly latent: number;
  /** The fresh initialisation, which new layers return to when the stage restarts from its start. */
  private readonly initial: { g: NamedArray[]; d: NamedArray[] };
  private stepCount: number;
  private readonly faultNanAtStep?: number;
  private readonly rates: HealthRates;
  /** DiffAugment at the stage's resolution; ADA's p carries on from stage to stage (in the state). */
  private readonly augment?: DiffAugment;

  /**
   * @param data the job's images padded to {@link proganCanvas} of their side (padDataset).
   * @param opts fault injection for tests (TrainerOptions).
   */
  constructor(
    readonly job: TrialJob,
    private readonly data: Dataset,
    opts: TrainerOptions = {},
  ) {
    this.faultNanAtStep = opts.faultNanAtStep;
    if (job.stage?.resolution === undefined)
      throw new Error('a progan job needs its stage and its resolution');
    const canvas = proganCanvas(job.dataset.image_size);
    if (data.height !== canvas || data.width !== canvas)
      throw new Error(`progan trains on ${canvas}x${canvas} images, got ${data.height}x${data.width}`);
    this.stage = job.stage;
    const p = job.params;
    const R = job.stage.resolution;
    this.resolution = R;
    this.batch = this.stage.batch_size;
    this.latent = p.latent_dim!;
    this.sampleShape = { height: R, width: R, channels: data.channels };
    this.rng = new Rng(job.seed);
    this.nets = buildProgan(
      { channels: data.channels, latentDim: this.latent, baseFilters: p.base_filters!, resolution: R },
      this.rng,
    );
    this.initial = { g: this.nets.g.export(), d: this.nets.d.export() };
    this.ema = this.nets.g.copy('g_ema');
    this.optG = new Adam(this.nets.g.vars, { lr: p.lr_g!, beta1: p.beta1!, beta2: p.beta2! });
    this.optD = new Adam(this.nets.d.vars, { lr: p.lr_d!, beta1: p.beta1!, beta2: p.beta2! });
    this.rates = new HealthRates(this.optG, this.optD, { g: p.lr_g!, d: p.lr_d! });
    this.augment = createAugment(job.augment, this.rng);
    this.stepCount = this.stage.start_step;
  }

  get step(): number {
    return this.stepCount;
  }

  /** Fade-in factor of the next step. */
  get alpha(): number {
    return stageAlpha(this.stage, this.stepCount);
  }

  flopsPerStep(): number {
    const f = proganFlopsPerImage(this.nets.shape);
    // Critic update: G fwd, D fwd + bwd on real and fake, and the penalty's D fwd, bwd and double bwd on the
    // mixed batch (~5 D forwards). Generator update: G fwd + bwd, D fwd + bwd.
    const dUpdate = f.g + 2 * 3 * f.d + 5 * f.d;
    const gUpdate = 3 * f.g + 3 * f.d;
    return this.batch * (this.job.params.n_critic! * dUpdate + gUpdate);
  }

  private noise(): tf.Tensor2D {
    const n = this.batch;
    return tf.tensor2d(this.rng.fillNormal(new Float32Array(n * this.latent)), [n, this.latent]);
  }

  /** Canvas-sized images box-filtered down to the stage's resolution. */
  private toStageResolution(x: tf.Tensor4D): tf.Tensor4D {
    const f = this.data.height / this.resolution;
    return f > 1 ? tf.avgPool(x, f, f, 'valid') : x;
  }

  /**
   * A batch of real images at the stage's resolution (box-filtered down from the canvas), blended with
   * their own lower-resolution version while the stage fades in.
   */
  private realBatch(alpha: number): tf.Tensor4D {
    const { height: h, width: w, channels: c, count } = this.data;
    const px = h * w * c;
    const images = new Float32Array(this.batch * px);
    for (let i = 0; i < this.batch; i++) {
      const j = this.rng.int(count);
      images.set(this.data.images.subarray(j * px, (j + 1) * px), i * px);
    }
    if (this.faultNanAtStep !== undefined && this.stepCount + 1 >= this.faultNanAtStep)
      images.fill(Number.NaN);
    const x = this.toStageResolution(tf.tensor4d(images, [this.batch, h, w, c]));
    return this.resolution > 4 && alpha < 1 ? fadeIn(upsample2x(downsample2x(x)), x, alpha) : x;
  }

  trainStep(): StepStats {
    const { nets } = this;
    const p = this.job.params;
    const alpha = this.alpha;
    const out = wassersteinStep({
      generate: (z) => nets.generate(z, alpha),
      critic: (x) => nets.discriminate(x, alpha),
      gVars: nets.g.vars,
      dVars: nets.d.vars,
      optG: this.optG,
      optD: this.optD,
      realBatch: () => this.realBatch(alpha),
      noise: () => this.noise(),
      rng: this.rng,
      nCritic: p.n_critic!,
      gpLambda: p.gp_lambda!,
      drift: p.drift!,
      augment: this.augment,
    });
    this.updateEma();
    this.stepCount += 1;
    return { ...readStepStats(out, this.stepCount), ...this.augment?.stats() };
  }

  /**
   * ema = d * ema + (1 - d) * w for every generator weight, with d = min(ema_decay, (1 + t) / (10 + t)) and
   * t the steps taken in this stage (the warm-up of TensorFlow's ExponentialMovingAverage). Without it a
   * stage of a few thousand steps would keep a visible share of its new layers' random initialisation in
   * the average (0.999^1200 = 30%): measured at the end of a 1,200-step 16x16 stage, FLD 356 from the plain
   * average against 177 from the raw weights.
   */
  private updateEma(): void {
    const t = this.stepCount - this.stage.start_step;
    const decay = Math.min(this.job.params.ema_decay!, (1 + t) / (10 + t));
    tf.tidy(() => {
      this.nets.g.vars.forEach((w, i) => {
        const e = this.ema.vars[i]!;
        e.assign(decay === 0 ? w : tf.add(tf.mul(e, decay), tf.mul(w, 1 - decay)));
      });
    });
  }

  /** Generates from the EMA weights, clipped to [-1, 1] (the generator's output is linear). */
  private generateEma(z: tf.Tensor2D): tf.Tensor4D {
    return tf.clipByValue(this.nets.generate(z, this.alpha, this.ema), -1, 1);
  }

  sample(count = 64): Float32Array {
    const rng = new Rng((this.job.seed ^ 0x5a5a5a5a) >>> 0);
    const z = rng.fillNormal(new Float32Array(count * this.latent));
    return tf.tidy(() => this.generateEma(tf.tensor2d(z, [count, this.latent])).dataSync() as Float32Array);
  }

  /**
   * G: z -> the stage's images through the EMA weights at the current fade-in, clipped, as `sample`; D:
   * images at the stage's resolution -> critic scores. Examples: the sample grid's noise and its images.
   */
  network(net: NetName): ExportableNetwork {
    const { channels } = this.data;
    const R = this.resolution;
    const images = { shape: [R, R, channels], description: `the stage's ${R}x${R} images, NHWC in [-1, 1]` };
    const alpha = this.alpha;
    const stage = `stage ${this.stage.index} at fade-in alpha ${alpha}`;
    const gridNoise = (count: number) =>
      new Rng((this.job.seed ^ 0x5a5a5a5a) >>> 0).fillNormal(new Float32Array(count * this.latent));
    if (net === 'g') {
      return {
        inputs: [{ name: 'z', shape: [this.latent], description: 'standard normal noise' }],
        output: { name: 'images', ...images },
        notes: [`the moving average of G's weights, ${stage}`],
        forward: ([z]) => this.generateEma(z as tf.Tensor2D),
        example: (count) => ({ inputs: [gridNoise(count)], output: this.sample(count) }),
      };
    }
    const forward = ([x]: tf.Tensor[]) => this.nets.discriminate(x as tf.Tensor4D, alpha);
    return {
      inputs: [{ name: 'images', ...images }],
      output: { name: 'scores', shape: [], description: 'critic score' },
      notes: [`D of ${stage}`],
      forward,
      example: (count) => {
        const x = this.sample(count);
        return {
          inputs: [x],
          output: tf.tidy(
            () => forward([tf.tensor4d(x, [count, R, R, channels])]).dataSync() as Float32Array,
          ),
        };
      },
    };
  }

  /** `count` images at the stage's resolution from noise seeded by `opts.seed`, through the EMA weights. */
  draw(count: number, opts: DrawOptions): Float32Array {
    const z = new Rng(opts.seed >>> 0).fillNormal(new Float32Array(count * this.latent));
    return tf.tidy(() => this.generateEma(tf.tensor2d(z, [count, this.latent])).dataSync() as Float32Array);
  }

  /**
   * Images for the classifier: the stage's output scaled up to the canvas (nearest neighbour) and the
   * padding cropped off again, so that every stage is scored against the full-resolution data.
   */
  evalSamples(count: number, batch = 256): { images: Float32Array } {
    const rng = new Rng((this.job.seed ^ 0x3c3c3c3c) >>> 0);
    return this.classifierImages(count, batch, (n) =>
      this.generateEma(tf.tensor2d(rng.fillNormal(new Float32Array(n * this.latent)), [n, this.latent])),
    );
  }

  /**
   * The first `count` real images as this stage sees them (box-filtered to its resolution), through the
   * same scaling and crop as {@link evalSamples}: what health checks compare a low-resolution stage with.
   */
  realEvalSamples(count: number, batch = 256): { images: Float32Array } {
    const { height: h, width: w, channels: c } = this.data;
    let i0 = 0;
    return this.classifierImages(Math.min(count, this.data.count), batch, (n) => {
      const x = tf.tensor4d(this.data.images.subarray(i0 * h * w * c, (i0 + n) * h * w * c), [n, h, w, c]);
      i0 += n;
      return this.toStageResolution(x);
    });
  }

  /** Batches of stage-resolution images from `make`, scaled up to the canvas and cropped to the images' side. */
  private classifierImages(
    count: number,
    batch: number,
    make: (n: number) => tf.Tensor4D,
  ): { images: Float32Array } {
    const { height, width, channels } = this.data;
    const side = this.job.dataset.image_size;
    const crop = { top: (height - side) / 2, left: (width - side) / 2 };
    const px = side * side * channels;
    const images = new Float32Array(count * px);
    for (let i0 = 0; i0 < count; i0 += batch) {
      const n = Math.min(batch, count - i0);
      tf.tidy(() => {
        let x = make(n);
        for (let r = x.shape[1]; r < height; r *= 2) x = upsample2x(x);
        x = tf.slice(x, [0, crop.top, crop.left, 0], [n, side, side, channels]);
        images.set(x.dataSync(), i0 * px);
      });
    }
    return { images };
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
      ema: this.ema.export(),
      ...augmentState(this.augment),
    };
  }

  /**
   * Restores a checkpoint of this stage exactly, or starts the stage from the previous stage's final
   * checkpoint (grown networks, fresh optimizers).
   * @throws Error for a checkpoint of any other stage or step.
   */
  importState(state: TrainerState): void {
    const index = this.stage.index;
    if (state.stage === index) {
      this.nets.g.import(state.g);
      this.nets.d.import(state.d);
      if (!state.ema)
        throw new Error(`checkpoint at step ${state.step} lacks the generator's moving average`);
      this.ema.import(state.ema);
      this.optG.importState(state.optG);
      this.optD.importState(state.optD);
    } else if (index > 0 && state.stage === index - 1) {
      if (state.step !== this.stage.start_step) {
        throw new Error(
          `stage ${index} starts at step ${this.stage.start_step}, but stage ${state.stage}'s checkpoint is at step ${state.step}`,
        );
      }
      // Layers the previous stage lacks start from this stage's initialisation, also after a rewind.
      this.nets.g.import(this.initial.g);
      this.nets.d.import(this.initial.d);
      this.nets.g.importMatching(state.g);
      this.nets.d.importMatching(state.d);
      this.ema.importMatching(this.nets.g.export());
      if (state.ema) this.ema.importMatching(state.ema);
      this.optG.reset();
      this.optD.reset();
    } else {
      throw new Error(`a checkpoint of stage ${state.stage ?? 'none'} cannot resume or start stage ${index}`);
    }
    this.rng.setState(state.rng);
    this.stepCount = state.step;
    this.rates.set(state.health);
    this.augment?.importState(state.augment);
  }

  dispose(): void {
    this.nets.dispose();
    this.ema.dispose();
    this.optG.dispose();
    this.optD.dispose();
    this.augment?.dispose();
  }
}
