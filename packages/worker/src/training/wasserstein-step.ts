import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import type { DiffAugment } from '../augment/diff-augment.ts';
import { criticLoss, gradientPenalty, wassersteinGeneratorLoss } from '../losses.ts';
import type { Adam } from '../optim/adam.ts';
import { gradNorm } from './step-stats.ts';

/** What one Wasserstein step needs of a model: its networks, variables, optimizers and batches. */
export interface WassersteinModel {
  generate(z: tf.Tensor2D): tf.Tensor4D;
  critic(x: tf.Tensor4D): tf.Tensor1D;
  gVars: readonly tf.Variable[];
  dVars: readonly tf.Variable[];
  optG: Adam;
  optD: Adam;
  realBatch(): tf.Tensor4D;
  noise(): tf.Tensor2D;
  /** Draws the penalty's interpolation weights, one uniform in [0, 1] per sample, after each batch. */
  rng: Rng;
  nCritic: number;
  gpLambda: number;
  /** Weight of the drift term (0: none). */
  drift: number;
  /**
   * DiffAugment: the critic sees T(x) and T(G(z)) in both losses, and the penalty is taken at interpolates
   * of the augmented batches (the constraint holds where the critic is evaluated; no second derivative
   * passes through T). Absent: none.
   */
  augment?: DiffAugment;
}

/**
 * One WGAN-GP step (Gulrajani et al., 2017, Algorithm 1): `nCritic` critic updates on the Wasserstein loss
 * with gradient penalty (and drift), then one generator update. Returns a tensor of [D loss, G loss, mean
 * critic score on real, on fake, |grad G|, |grad D|] (the last critic update's D values); call inside no
 * tidy, it manages its own.
 */
export function wassersteinStep(m: WassersteinModel): tf.Tensor1D {
  // Scores computed inside the gradient function outlive it only through tf.keep; disposed below.
  const kept: tf.Tensor[] = [];
  const aug = (x: tf.Tensor4D) => (m.augment ? m.augment.apply(x) : x);
  const out = tf.tidy(() => {
    let last: tf.Tensor[] = [];
    for (let i = 0; i < m.nCritic; i++) {
      const real = aug(m.realBatch());
      const fake = aug(m.generate(m.noise()));
      const eps = tf.tensor1d(Float32Array.from({ length: real.shape[0] }, () => m.rng.uniform()));
      let scores: tf.Tensor[] = [];
      const dRes = tf.variableGrads(() => {
        const r = m.critic(real);
        const f = m.critic(fake);
        scores = [tf.keep(tf.mean(r)), tf.keep(tf.mean(f))];
        kept.push(...scores);
        m.augment?.observe(r);
        return criticLoss(r, f, gradientPenalty(m.critic, real, fake, eps, m.gpLambda), m.drift);
      }, m.dVars as tf.Variable[]);
      // A variable outside every path to the loss (none in practice) gets a zero gradient.
      const dGrads = m.dVars.map((v) => dRes.grads[v.name] ?? tf.zerosLike(v));
      m.optD.apply(dGrads);
      last = [dRes.value, ...scores, gradNorm(dGrads)];
    }
    const z = m.noise();
    const gRes = tf.variableGrads(
      () => wassersteinGeneratorLoss(m.critic(aug(m.generate(z)))),
      m.gVars as tf.Variable[],
    );
    const gGrads = m.gVars.map((v) => gRes.grads[v.name] ?? tf.zerosLike(v));
    m.optG.apply(gGrads);
    const [dLoss, dReal, dFake, dNorm] = last as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    return tf.stack([dLoss, gRes.value, dReal, dFake, gradNorm(gGrads), dNorm]) as tf.Tensor1D;
  });
  for (const t of kept) t.dispose();
  return out;
}
