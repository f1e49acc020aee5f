import * as tf from '@tensorflow/tfjs-core';
import { fusedAdamUpdate } from '../kernels/adam-update.ts';
import type { NamedArray } from '../models/param-store.ts';

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  /** @default 1e-8 */
  epsilon?: number;
}

/**
 * Adam (Kingma & Ba, 2015) with bias correction folded into the step size. Written here rather than taken
 * from tfjs so that its whole state (t, m, v) is explicit, named and checkpointable.
 */
export class Adam {
  private t = 0;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private readonly eps: number;

  constructor(
    private readonly vars: readonly tf.Variable[],
    private readonly opts: AdamOptions,
  ) {
    this.eps = opts.epsilon ?? 1e-8;
    this.m = vars.map((x) => tf.variable(tf.zerosLike(x), false, `${x.name}/adam_m`));
    this.v = vars.map((x) => tf.variable(tf.zerosLike(x), false, `${x.name}/adam_v`));
  }

  get steps(): number {
    return this.t;
  }

  /** Applies one update from gradients given in the order of `vars`. */
  apply(grads: readonly tf.Tensor[]): void {
    if (grads.length !== this.vars.length)
      throw new Error(`expected ${this.vars.length} gradients, got ${grads.length}`);
    this.t += 1;
    const { lr, beta1, beta2 } = this.opts;
    const alpha = (lr * Math.sqrt(1 - beta2 ** this.t)) / (1 - beta1 ** this.t);
    tf.tidy(() => {
      grads.forEach((g, i) => {
        const m = this.m[i]!;
        const v = this.v[i]!;
        const x = this.vars[i]!;
        const fused = fusedAdamUpdate(x, m, v, g, { beta1, beta2, alpha, epsilon: this.eps });
        if (fused !== undefined) {
          const [xNew, mNew, vNew] = fused;
          m.assign(mNew);
          v.assign(vNew);
          x.assign(xNew);
          return;
        }
        const mNew = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const vNew = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        m.assign(mNew);
        v.assign(vNew);
        x.assign(tf.sub(x, tf.mul(tf.div(mNew, tf.add(tf.sqrt(vNew), this.eps)), alpha)));
      });
    });
  }

  /** Forgets the moments and the step count: a fresh optimizer over the same variables. */
  reset(): void {
    this.t = 0;
    tf.tidy(() => {
      for (const x of [...this.m, ...this.v]) x.assign(tf.zerosLike(x));
    });
  }

  /** Scales the learning rate, e.g. when a health rule restarts a trial. */
  setLearningRate(lr: number): void {
    this.opts.lr = lr;
  }

  exportState(): { t: number; arrays: NamedArray[] } {
    const arrays = [...this.m, ...this.v].map((x) => ({
      name: x.name,
      shape: [...x.shape],
      data: x.dataSync() as Float32Array,
    }));
    return { t: this.t, arrays };
  }

  importState(state: { t: number; arrays: readonly NamedArray[] }): void {
    const given = new Map(state.arrays.map((a) => [a.name, a]));
    for (const x of [...this.m, ...this.v]) {
      const a = given.get(x.name);
      if (!a || a.shape.join('x') !== x.shape.join('x'))
        throw new Error(`optimizer state lacks or misshapes ${x.name}`);
      tf.tidy(() => x.assign(tf.tensor(a.data, a.shape, 'float32')));
    }
    this.t = state.t;
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}
