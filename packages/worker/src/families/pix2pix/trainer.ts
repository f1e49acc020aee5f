import '../../gradients.ts';
import { Rng, type TrialJob } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { augmentState, createAugment, type DiffAugment } from '../../augment/diff-augment.ts';
import type { Dataset } from '../../data/datasets.ts';
import { exampleImages, imageTensor, runOn } from '../../export/network-examples.ts';
import { generatorLoss } from '../../losses.ts';
import { Adam } from '../../optim/adam.ts';
import { HealthRates } from '../../training/health-rates.ts';
import { drawIndices, gather, interleave, mapBatches, pixels } from '../../training/image-batches.ts';
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
import { buildPix2pix, type Pix2pixNetworks, pix2pixFlopsPerImage } from './networks.ts';

/** Examples in the sample grid: A | G(A) | B each, two to a row of 6. */
const GRID_EXAMPLES = 16;

/** Side of the power-of-two canvas the U-Net runs on (28 -> 32: the images are padded with -1, black). */
export function pix2pixCanvas(side: number): number {
  return 2 ** Math.ceil(Math.log2(side));
}

/**
 * A pix2pix trial (Isola et al., 2017): G translates A into B, D tells real pairs (A, B) from (A, G(A)) per
 * 70x70 patch; L_D = (BCE(D(A, B), 1) + BCE(D(A, G(A)), 0)) / 2 (the paper halves D's objective), L_G =
 * BCE(D(A, G(A)), 1) + l1_weight |G(A) - B|, Adam for both. Images whose side is not a power of two are
 * padded to one with background (-1) around them and the outputs cropped back, so users see their size.
 * Dropout is drawn from the trial's Rng (so a resumed run repeats it exactly) and kept on at inference,
 * as in the paper, with one set of masks from a seed of the trial's own: a translation is repeatable.
 */
export class Pix2pixTrainer implements Trainer {
  readonly nets: Pix2pixNetworks;
  readonly sampleShape: ImageShape;
  readonly inputShape: ImageShape;
  readonly sampleGrid = { count: 3 * GRID_EXAMPLES, cols: 6 };
  readonly lossBound: number;
  readonly imageTask: ImageTask;
  private readonly canvas: number;
  private readonly rng: Rng;
  private readonly optG: Adam;
  private readonly optD: Adam;
  private readonly rates: HealthRates;
  private readonly batch: number;
  private readonly grid: { a: Float32Array; b: Float32Array; count: number };
  private stepCount = 0;
  private readonly faultNanAtStep?: number;
  /** DiffAugment of D's input pairs: A and B get the same transform (groups of the channels). */
  private readonly augment?: DiffAugment;

  constructor(
    readonly job: TrialJob,
    private readonly data: Dataset,
    opts: TrainerOptions = {},
  ) {
    if (!data.imagesB) throw new Error(`pix2pix needs a paired data set; ${data.name} is not paired`);
    const p = job.params;
    const side = data.height;
    this.canvas = pix2pixCanvas(side);
    this.sampleShape = { height: side, width: side, channels: data.channels };
    this.inputShape = this.sampleShape;
    this.batch = p.batch_size!;
    this.lossBound = 2 * p.l1_weight!;
    this.faultNanAtStep = opts.faultNanAtStep;
    this.rng = new Rng(job.seed);
    this.nets = buildPix2pix(
      { side: this.canvas, channels: data.channels, baseFilters: p.base_filters!, nLayers: p.n_layers! },
      this.rng,
    );
    this.optG = new Adam(this.nets.g.vars, { lr: p.lr_g!, beta1: p.beta1!, beta2: p.beta2! });
    this.optD = new Adam(this.nets.d.vars, { lr: p.lr_d!, beta1: p.beta1!, beta2: p.beta2! });
    this.rates = new HealthRates(this.optG, this.optD, { g: p.lr_g!, d: p.lr_d! });
    this.augment = createAugment(job.augment, this.rng, { groups: 2 });
    const shown = opts.heldOut?.imagesB && opts.heldOut.count > 0 ? opts.heldOut : data;
    const n = Math.min(GRID_EXAMPLES, shown.count);
    const px = pixels(this.sampleShape);
    this.grid = { a: shown.images.subarray(0, n * px), b: shown.imagesB!.subarray(0, n * px), count: n };
    this.imageTask = {
      pairs: (split, count) => {
        if (!split.imagesB) throw new Error(`${split.name} is not paired`);
        const k = Math.min(count, split.count);
        return {
          inputs: split.images.subarray(0, k * px),
          targets: split.imagesB.subarray(0, k * px),
          count: k,
        };
      },
      cropBorder: 0,
      yChannel: false,
    };
  }

  get step(): number {
    return this.stepCount;
  }

  flopsPerStep(): number {
    const f = pix2pixFlopsPerImage(this.nets.shape);
    // D update: G fwd, D fwd + bwd on real and fake pairs. G update: G fwd + bwd, D fwd + bwd.
    return this.batch * (f.g + 2 * 3 * f.d + 3 * f.g + 3 * f.d);
  }

  /** Images of the job's side centred on the canvas, background -1 around them. */
  private pad(x: tf.Tensor4D): tf.Tensor4D {
    const m = (this.canvas - this.sampleShape.height) / 2;
    return m === 0
      ? x
      : tf.pad(
          x,
          [
            [0, 0],
            [m, m],
            [m, m],
            [0, 0],
          ],
          -1,
        );
  }

  private crop(x: tf.Tensor4D): tf.Tensor4D {
    const m = (this.canvas - this.sampleShape.height) / 2;
    const s = this.sampleShape.height;
    return m === 0 ? x : tf.slice(x, [0, m, m, 0], [x.shape[0], s, s, x.shape[3]]);
  }

  /** Dropout masks for `n` images from `rng`: 1 / (1 - p) where kept, 0 where dropped. */
  private masks(n: number, rng: Rng): tf.Tensor4D[] {
    const p = this.job.params.dropout!;
    if (p === 0) return [];
    return this.nets.dropoutMaskShapes().map(([h, w, c]) => {
      const m = new Float32Array(n * h * w * c);
      for (let i = 0; i < m.length; i++) m[i] = rng.uniform() < p ? 0 : 1 / (1 - p);
      return tf.tensor4d(m, [n, h, w, c]);
    });
  }

  trainStep(): StepStats {
    const { nets } = this;
    const l1Weight = this.job.params.l1_weight!;
    let realLogits: tf.Tensor1D | undefined;
    let fakeLogits: tf.Tensor1D | undefined;
    const out = tf.tidy(() => {
      const idx = drawIndices(this.rng, this.data.count, this.batch);
      let a = this.pad(gather(this.data.images, this.sampleShape, idx));
      const b = this.pad(gather(this.data.imagesB!, this.sampleShape, idx));
      if (this.faultNanAtStep !== undefined && this.stepCount + 1 >= this.faultNanAtStep)
        a = tf.mul(a, Number.NaN) as tf.Tensor4D;
      const masks = this.masks(this.batch, this.rng);
      // D first, on G's output as it stands; then G through the updated D (the same masks and weights
      // give the same G(A) again: the reference's one forward with fake.detach() for D).
      const fake = nets.generate(a, 'train', masks);
      // DiffAugment: D sees T(A, B) and T(A, G(A)), one transform for both images of a pair.
      const realPair = this.augmentPair(a, b);
      const fakePair = this.augmentPair(a, fake);
      const dRes = tf.variableGrads(() => {
        realLogits = tf.keep(nets.discriminate(...realPair));
        fakeLogits = tf.keep(nets.discriminate(...fakePair));
        const real = tf.mean(tf.softplus(tf.neg(realLogits)));
        return tf.mul(0.5, tf.add(real, tf.mean(tf.softplus(fakeLogits)))) as tf.Scalar;
      }, nets.d.vars);
      // ADA's r_t over each pair's patch logits.
      this.augment?.observe(tf.reshape(realLogits!, [this.batch, -1]));
      const dGrads = nets.d.vars.map((v) => dRes.grads[v.name]!);
      this.optD.apply(dGrads);
      nets.gStats.recording = true;
      const gRes = tf.variableGrads(() => {
        const out = nets.generate(a, 'train', masks);
        nets.gStats.recording = false;
        const l1 = tf.mean(tf.abs(tf.sub(out, b)));
        const adversarial = generatorLoss(nets.discriminate(...this.augmentPair(a, out)));
        return tf.add(adversarial, tf.mul(l1Weight, l1)) as tf.Scalar;
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
    this.nets.gStats.commit();
    this.stepCount += 1;
    return { ...readStepStats(out, this.stepCount), ...this.augment?.stats() };
  }

  /** T(A, B) for D: the pair stacked along the channels, augmented as one, split again; as is without T. */
  private augmentPair(a: tf.Tensor4D, b: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    if (!this.augment) return [a, b];
    const [ta, tb] = tf.split(this.augment.apply(tf.concat([a, b], 3)), 2, 3);
    return [ta as tf.Tensor4D, tb as tf.Tensor4D];
  }

  /**
   * G(A) in inference mode: running statistics, and one set of dropout masks from the trial's inference
   * seed for every image, so that an image's translation depends on the image alone (not on the others
   * sent with it, or its place among them): evaluations, grids and `gantry infer` agree.
   */
  translate(inputs: Float32Array, count: number): Float32Array {
    return mapBatches(inputs, count, this.inputShape, this.sampleShape, (x) => {
      const masks = this.masks(1, new Rng((this.job.seed ^ 0x7e7e7e7e) >>> 0));
      return this.crop(this.nets.generate(this.pad(x), 'eval', masks));
    });
  }

  /**
   * G: A -> B as `translate` runs it (running statistics, the inference dropout masks as constants); D:
   * (A, B) -> one logit per patch.
   */
  network(net: NetName): ExportableNetwork {
    const a = imageTensor('a', this.inputShape, 'images of domain A');
    if (net === 'g') {
      return {
        inputs: [a],
        output: imageTensor('b', this.sampleShape, 'their translations to domain B'),
        notes: [
          "dropout stays on at inference, as in the paper, with one fixed set of masks (the trial's inference seed) in the graph, as the trial and gantry infer translate",
        ],
        forward: ([x]) => {
          const masks = this.masks(1, new Rng((this.job.seed ^ 0x7e7e7e7e) >>> 0));
          return this.crop(this.nets.generate(this.pad(x as tf.Tensor4D), 'eval', masks));
        },
        example: (count) => {
          const x = exampleImages(count, this.inputShape);
          return { inputs: [x], output: this.translate(x, count) };
        },
      };
    }
    const inputs = [a, imageTensor('b', this.sampleShape, 'images of domain B')];
    const forward = ([x, y]: tf.Tensor[]) => {
      const logits = this.nets.discriminate(this.pad(x as tf.Tensor4D), this.pad(y as tf.Tensor4D));
      return tf.reshape(logits, [x!.shape[0], -1]);
    };
    const patches = runOn(
      forward,
      inputs,
      [exampleImages(1, this.inputShape), exampleImages(1, this.sampleShape)],
      1,
    );
    return {
      inputs,
      output: { name: 'logits', shape: [patches.length], description: 'logit of "real" per patch' },
      notes: ['batch norm normalises by the batch given, as in training'],
      forward,
      example: (count) => {
        const xs = [exampleImages(count, this.inputShape), exampleImages(count, this.sampleShape, 1)];
        return { inputs: xs, output: runOn(forward, inputs, xs, count) };
      },
    };
  }

  /** Grid tiles: per example A | G(A) | B, two examples to a row. */
  sample(): Float32Array {
    const { a, b, count } = this.grid;
    const px = pixels(this.sampleShape);
    const full = new Float32Array(this.sampleGrid.count * px).fill(-1);
    if (count > 0) full.set(interleave([a, this.translate(a, count), b], count, px));
    return full;
  }

  /** G(A) of the first `count` train examples (quality evaluation scores held-out ones: imageTask). */
  evalSamples(count: number): { images: Float32Array } {
    const k = Math.min(count, this.data.count);
    return { images: this.translate(this.data.images.subarray(0, k * pixels(this.inputShape)), k) };
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
      stats: this.nets.gStats.export(),
      ...augmentState(this.augment),
    };
  }

  importState(state: TrainerState): void {
    if (!state.stats)
      throw new Error(`checkpoint at step ${state.step} lacks the generator's batch-norm statistics`);
    this.nets.g.import(state.g);
    this.nets.d.import(state.d);
    this.nets.gStats.import(state.stats);
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
