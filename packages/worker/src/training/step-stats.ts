import * as tf from '@tensorflow/tfjs-core';
import type { StepStats } from '../families/family.ts';

/** The global L2 norm of a list of gradients, as a scalar tensor. */
export function gradNorm(grads: readonly tf.Tensor[]): tf.Scalar {
  return tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
}

/**
 * The scalars of step `step` from a training step's [D loss, G loss, D(x), D(G(z)), |grad G|, |grad D|]
 * tensor, which it disposes.
 */
export function readStepStats(out: tf.Tensor, step: number): StepStats {
  const [dLoss, gLoss, dReal, dFake, gNorm, dNorm] = out.dataSync();
  out.dispose();
  return {
    step,
    d_loss: dLoss!,
    g_loss: gLoss!,
    d_real: dReal!,
    d_fake: dFake!,
    g_grad_norm: gNorm!,
    d_grad_norm: dNorm!,
  };
}
