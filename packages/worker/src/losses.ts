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

/**
 * The Wasserstein critic's loss (Arjovsky et al., 2017; Gulrajani et al., 2017, Algorithm 1):
 *   mean D(G(z)) - mean D(x) + penalty + drift * mean D(x)^2,
 * the last term being ProGAN's (Karras et al., 2018, section A.1) that keeps scores from drifting far from 0.
 */
export function criticLoss(
  realScores: tf.Tensor1D,
  fakeScores: tf.Tensor1D,
  penalty: tf.Scalar,
  drift = 0,
): tf.Scalar {
  const w = tf.sub(tf.mean(fakeScores), tf.mean(realScores));
  const base = tf.add(w, penalty);
  return (drift > 0 ? tf.add(base, tf.mul(drift, tf.mean(tf.square(realScores)))) : base) as tf.Scalar;
}

/** The generator's Wasserstein loss: -mean D(G(z)). */
export function wassersteinGeneratorLoss(fakeScores: tf.Tensor1D): tf.Scalar {
  return tf.neg(tf.mean(fakeScores)) as tf.Scalar;
}

/**
 * The WGAN-GP gradient penalty (Gulrajani et al., 2017, Algorithm 1):
 *   lambda * mean over the batch of (|grad_x D(x_hat)|_2 - 1)^2,  x_hat = eps * real + (1 - eps) * fake,
 * with one eps in [0, 1] per sample ([N]). Differentiating it with respect to the critic's weights takes
 * second derivatives of the critic: tfjs records the inner gradient's ops on the outer tape. Not every
 * tfjs gradient is differentiable again (tanh's, which uses its saved output, gives wrong second
 * derivatives); losses.test.ts checks the critic's ops against a closed form and finite differences on
 * cpu and wasm.
 */
export function gradientPenalty(
  critic: (x: tf.Tensor4D) => tf.Tensor1D,
  real: tf.Tensor4D,
  fake: tf.Tensor4D,
  eps: tf.Tensor1D,
  lambda = 10,
): tf.Scalar {
  const e = tf.reshape(eps, [-1, 1, 1, 1]);
  const mixed = tf.add(tf.mul(e, real), tf.mul(tf.sub(1, e), fake)) as tf.Tensor4D;
  const grad = tf.grad((x: tf.Tensor) => tf.sum(critic(x as tf.Tensor4D)))(mixed);
  const norm = tf.sqrt(tf.add(tf.sum(tf.square(grad), [1, 2, 3]), 1e-12));
  return tf.mul(lambda, tf.mean(tf.square(tf.sub(norm, 1)))) as tf.Scalar;
}
