import * as tf from '@tensorflow/tfjs-core';

/**
 * Non-saturating GAN losses from logits (Goodfellow et al., 2014, section 3):
 *   L_D = -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))) = softplus(-D(x)) + softplus(D(G(z)))
 *   L_G = -log sigmoid(D(G(z)))                            = softplus(-D(G(z)))
 * softplus keeps both finite for large logits.
 */
export function discriminatorLoss(realLogits: tf.Tensor1D, fakeLogits: tf.Tensor1D): tf.Scalar {
  return tf.add(tf.mean(tf.softplus(tf.neg(realLogits))), tf.mean(tf.softplus(fakeLogits)));
}

export function generatorLoss(fakeLogits: tf.Tensor1D): tf.Scalar {
  return tf.mean(tf.softplus(tf.neg(fakeLogits)));
}
