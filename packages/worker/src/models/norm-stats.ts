import * as tf from '@tensorflow/tfjs-core';
import { batchNorm, batchNormWith } from './layers.ts';
import type { NamedArray } from './param-store.ts';

/** How a network with batch norm runs: training (batch statistics, recorded) or inference (running ones). */
export type NormMode = 'train' | 'eval';

/**
 * Running batch-norm statistics of one network, as PyTorch keeps them (momentum 0.1, the unbiased batch
 * variance): networks that are used on one image at a time after training (srgan's generator, pix2pix's
 * U-Net) cannot normalise by the statistics of that one image. In 'train' mode a batch norm uses the
 * batch's statistics and records them; {@link commit} folds the recorded ones into the running averages
 * after the step. In 'eval' mode it uses the running averages.
 */
export class NormStats {
  private readonly mean = new Map<string, tf.Variable>();
  private readonly variance = new Map<string, tf.Variable>();
  private pending: { name: string; mean: tf.Tensor1D; variance: tf.Tensor1D }[] = [];
  /** Records of the next training forward pass (only one pass per step should record). */
  recording = false;

  constructor(
    readonly scope: string,
    private readonly momentum = 0.1,
  ) {}

  /** Declares a batch norm of `channels` channels: running mean 0, variance 1. */
  add(name: string, channels: number): void {
    const full = `${this.scope}/${name}`;
    this.mean.set(name, tf.variable(tf.zeros([channels]), false, `${full}/mean`));
    this.variance.set(name, tf.variable(tf.ones([channels]), false, `${full}/var`));
  }

  /** Batch norm `name` of x (channels last) in `mode`. */
  apply<T extends tf.Tensor>(name: string, x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, mode: NormMode): T {
    const mean = this.mean.get(name);
    const variance = this.variance.get(name);
    if (!mean || !variance) throw new Error(`no batch norm ${this.scope}/${name}`);
    if (mode === 'eval') return batchNormWith(x, gamma, beta, mean as tf.Tensor1D, variance as tf.Tensor1D);
    if (this.recording) {
      const axes = x.shape.slice(0, -1).map((_, i) => i);
      const m = x.size / x.shape[x.rank - 1]!;
      const moments = tf.moments(x, axes);
      this.pending.push({
        name,
        mean: tf.keep(moments.mean as tf.Tensor1D),
        variance: tf.keep(tf.mul(moments.variance, m / Math.max(1, m - 1)) as tf.Tensor1D),
      });
    }
    return batchNorm(x, gamma, beta);
  }

  /** Folds the recorded batch statistics into the running ones: r = (1 - momentum) r + momentum b. */
  commit(): void {
    const k = this.momentum;
    tf.tidy(() => {
      for (const p of this.pending) {
        const m = this.mean.get(p.name)!;
        const v = this.variance.get(p.name)!;
        m.assign(tf.add(tf.mul(m, 1 - k), tf.mul(p.mean, k)));
        v.assign(tf.add(tf.mul(v, 1 - k), tf.mul(p.variance, k)));
      }
    });
    this.discard();
  }

  /** Drops what was recorded without using it. */
  discard(): void {
    for (const p of this.pending) {
      p.mean.dispose();
      p.variance.dispose();
    }
    this.pending = [];
  }

  export(): NamedArray[] {
    const out: NamedArray[] = [];
    for (const [name, m] of this.mean) {
      const v = this.variance.get(name)!;
      out.push({ name: m.name, shape: [...m.shape], data: m.dataSync() as Float32Array });
      out.push({ name: v.name, shape: [...v.shape], data: v.dataSync() as Float32Array });
    }
    return out;
  }

  /** Restores every statistic; names and shapes must match. */
  import(arrays: readonly NamedArray[]): void {
    const given = new Map(arrays.map((a) => [a.name, a]));
    const all = [...this.mean.values(), ...this.variance.values()];
    for (const v of all) {
      const a = given.get(v.name);
      if (!a) throw new Error(`checkpoint lacks ${v.name}`);
      if (a.shape.join('x') !== v.shape.join('x'))
        throw new Error(
          `checkpoint shape of ${v.name} is ${a.shape.join('x')}, expected ${v.shape.join('x')}`,
        );
      tf.tidy(() => v.assign(tf.tensor(a.data, a.shape, 'float32')));
    }
    if (given.size !== all.length)
      throw new Error(`checkpoint has ${given.size} statistics for ${this.scope}, expected ${all.length}`);
  }

  dispose(): void {
    this.discard();
    for (const v of [...this.mean.values(), ...this.variance.values()]) v.dispose();
    this.mean.clear();
    this.variance.clear();
  }
}
