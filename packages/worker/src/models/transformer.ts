import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { fusedKernelsOn } from '../kernels/fused-switch.ts';
import { GELU, GELU_GRAD, hasFusedGelu } from '../kernels/gelu.ts';
import { LAYER_NORM, LAYER_NORM_GRAD } from '../kernels/layer-norm.ts';
import { init, type ParamStore } from './param-store.ts';

/*
 * Transformer layers (Vaswani et al., 2017) in the pre-LN arrangement of ViT (Dosovitskiy et al., 2021) and
 * TransGAN (Jiang et al., 2021), written so that a WGAN-GP critic built from them can be differentiated
 * twice. tfjs saves an op's *output* for its gradient through a clone that the tape orders before the op
 * itself, so a gradient that reads its op's output (tanh, exp, softmax) is right once and wrong when
 * differentiated again. Softmax and layer norm therefore have custom gradients that save only their inputs
 * and recompute what they need from them with ops that differentiate correctly; GELU is built from erf,
 * whose gradient reads its input. transformer.test.ts checks all of them to second order against float64.
 *
 * Where no tape records a gradient (nothing will differentiate it again: every backward pass but the
 * gradient penalty's inner one), it takes shortcuts: softmax's uses its saved output instead of computing
 * softmax again, and on wasm layer norm's and GELU's are one fused kernel each (kernels/layer-norm.ts,
 * gelu.ts), as their forward passes always are there. A recorded gradient is built from the
 * differentiable ops above.
 */

/**
 * Whether the fused kernel `name` serves the active backend (ours are registered for wasm only) and the
 * fused kernels are on (not while the exporter traces: kernels/fused-switch.ts).
 */
function fusedKernel(name: string): boolean {
  if (!fusedKernelsOn()) return false;
  // getKernel is typed as non-null but returns undefined for unknown kernels.
  return (tf.getKernel(name, tf.getBackend()) as tf.KernelConfig | undefined) !== undefined;
}

/** Whether a gradient computed now may use a fused kernel: no tape records it (nothing differentiates it). */
function untaped(name: string): boolean {
  return !tf.engine().isTapeOn() && fusedKernel(name);
}

/**
 * Softmax over the last axis, differentiable twice: dx = y * (dy - sum(dy * y)), y recomputed from x where
 * the gradient is recorded, the saved output otherwise.
 */
export function softmax<T extends tf.Tensor>(x: T): T {
  return softmaxOp(x) as T;
}

const softmaxOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  const y = tf.softmax(x);
  (args[1] as tf.GradSaveFunc)([x, y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      // The saved output is right, but a tape would not connect it back to x in time (see above).
      const s = tf.engine().isTapeOn() ? tf.softmax(saved[0]!) : saved[1]!;
      return tf.mul(s, tf.sub(dy, tf.sum(tf.mul(dy, s), -1, true)));
    },
  };
});

/**
 * GELU (Hendrycks & Gimpel, 2016), the exact form x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) that ViT and
 * TransGAN use; the tanh approximation would inherit tanh's wrong second derivative.
 */
export function gelu<T extends tf.Tensor>(x: T): T {
  if (fusedKernel(GELU) && hasFusedGelu(tf.backend())) return geluOp(x) as T;
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)) as T;
}

/** GELU'(x) = Phi(x) + x phi(x), from ops that differentiate (erf's and exp's gradients, once). */
function geluSlope(x: tf.Tensor): tf.Tensor {
  const phi = tf.mul(tf.exp(tf.mul(tf.square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
  return tf.add(tf.mul(tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1), 0.5), tf.mul(x, phi));
}

/** GELU by the fused kernel; its gradient dy * GELU'(x) fused too where no tape records it. */
const geluOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  (args[1] as tf.GradSaveFunc)([x]);
  return {
    value: tf.engine().runKernel<tf.Tensor>(GELU, { x }),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      untaped(GELU_GRAD)
        ? tf.engine().runKernel<tf.Tensor>(GELU_GRAD, { x: saved[0]!, dy })
        : tf.mul(dy, geluSlope(saved[0]!)),
  };
});

/**
 * Layer normalisation (Ba et al., 2016) over the last axis with gain and bias. The backward pass is the
 * closed form, with x-hat and 1/sigma recomputed from the saved input so that it differentiates again:
 *   g = dy * gamma, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), dgamma = sum(dy * xhat), dbeta = sum(dy).
 */
export function layerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5): T {
  if (fusedKernel(LAYER_NORM)) return fusedLayerNormOp(x, gamma, beta, tf.scalar(eps)) as T;
  return layerNormOp(x, gamma, beta, tf.scalar(eps)) as T;
}

/** x-hat and 1/sigma of x over its last axis. */
function normalise(x: tf.Tensor, eps: tf.Tensor): { xhat: tf.Tensor; rstd: tf.Tensor } {
  const mean = tf.mean(x, -1, true);
  const centred = tf.sub(x, mean);
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), eps));
  return { xhat: tf.mul(centred, rstd), rstd };
}

const layerNormOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, gamma, beta, eps] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  (args[4] as tf.GradSaveFunc)([x, gamma, eps]);
  const { xhat } = normalise(x, eps);
  return {
    value: tf.add(tf.mul(xhat, gamma), beta),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sGamma, sEps] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      return layerNormBackward(sx, sGamma, sEps, dy);
    },
  };
});

/** The closed-form gradient of layer norm w.r.t. x, gamma, beta and eps (none), from ops that differentiate. */
function layerNormBackward(x: tf.Tensor, gamma: tf.Tensor, eps: tf.Tensor, dy: tf.Tensor): tf.Tensor[] {
  const { xhat: h, rstd } = normalise(x, eps);
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const g = tf.mul(dy, gamma);
  const inner = tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(h, tf.mean(tf.mul(g, h), -1, true)));
  return [tf.mul(rstd, inner), tf.sum(tf.mul(dy, h), axes), tf.sum(dy, axes), tf.zerosLike(eps)];
}

/** {@link layerNormOp} by the fused kernels: forward, and backward where no tape records it. */
const fusedLayerNormOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, gamma, beta, eps] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  (args[4] as tf.GradSaveFunc)([x, gamma, eps]);
  // eps is a scalar input for the composite gradient; the kernels take it as a number.
  const epsValue = eps.dataSync()[0]!;
  return {
    value: tf.engine().runKernel<tf.Tensor>(LAYER_NORM, { x, gamma, beta }, { eps: epsValue }),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sGamma, sEps] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      if (!untaped(LAYER_NORM_GRAD)) return layerNormBackward(sx, sGamma, sEps, dy);
      const grads = tf
        .engine()
        .runKernel<tf.Tensor[]>(LAYER_NORM_GRAD, { x: sx, gamma: sGamma, dy }, { eps: epsValue });
      return [...grads, tf.zerosLike(sEps)];
    },
  };
});

/** x [N, T, C] @ W [C, out] + b, applied to every token. */
export function tokenDense(x: tf.Tensor3D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor3D {
  const [n, t, c] = x.shape;
  const y = tf.matMul(tf.reshape(x, [n * t, c]), w);
  return tf.reshape(b ? tf.add(y, b) : y, [n, t, w.shape[1]]);
}

/** [N, T, H * d] -> [N * H, T, d]: one sequence per head. */
function splitHeads(x: tf.Tensor2D, n: number, t: number, heads: number): tf.Tensor3D {
  const d = x.shape[1] / heads;
  return tf.reshape(tf.transpose(tf.reshape(x, [n, t, heads, d]), [0, 2, 1, 3]), [n * heads, t, d]);
}

/** The weights of one pre-LN transformer block. */
export interface BlockParams {
  ln1g: tf.Tensor1D;
  ln1b: tf.Tensor1D;
  /** Query, key and value projections, without biases (as TransGAN's and ViT's `qkv_bias=False`). */
  wQ: tf.Tensor2D;
  wK: tf.Tensor2D;
  wV: tf.Tensor2D;
  wO: tf.Tensor2D;
  bO: tf.Tensor1D;
  ln2g: tf.Tensor1D;
  ln2b: tf.Tensor1D;
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
}

/** Xavier (Glorot & Bengio, 2010) normal initialisation of a [fanIn, fanOut] weight, as TransGAN's linears. */
export function xavier(rng: Rng, fanIn: number, fanOut: number): (n: number) => Float32Array {
  return init.normal(rng, Math.sqrt(2 / (fanIn + fanOut)));
}

/** Adds the variables of a block of width `dim` (MLP hidden width `dim * mlpRatio`) under `prefix`. */
export function addBlock(
  store: ParamStore,
  prefix: string,
  { dim, mlpRatio }: { dim: number; mlpRatio: number },
  rng: Rng,
): BlockParams {
  const hidden = dim * mlpRatio;
  const vec = (name: string, n: number, fill: (n: number) => Float32Array) =>
    store.add(`${prefix}/${name}`, [n], fill) as tf.Tensor as tf.Tensor1D;
  const mat = (name: string, rows: number, cols: number) =>
    store.add(`${prefix}/${name}`, [rows, cols], xavier(rng, rows, cols)) as tf.Tensor as tf.Tensor2D;
  return {
    ln1g: vec('ln1_gamma', dim, init.ones()),
    ln1b: vec('ln1_beta', dim, init.zeros()),
    wQ: mat('q_w', dim, dim),
    wK: mat('k_w', dim, dim),
    wV: mat('v_w', dim, dim),
    wO: mat('proj_w', dim, dim),
    bO: vec('proj_b', dim, init.zeros()),
    ln2g: vec('ln2_gamma', dim, init.ones()),
    ln2b: vec('ln2_beta', dim, init.zeros()),
    w1: mat('mlp1_w', dim, hidden),
    b1: vec('mlp1_b', hidden, init.zeros()),
    w2: mat('mlp2_w', hidden, dim),
    b2: vec('mlp2_b', dim, init.zeros()),
  };
}

/**
 * Multi-head scaled dot-product self-attention (Vaswani et al., 2017, section 3.2) over x [N, T, C]:
 * softmax(Q K^T / sqrt(d)) V per head of d = C / heads channels, heads concatenated and projected.
 */
export function selfAttention(x: tf.Tensor3D, p: BlockParams, heads: number): tf.Tensor3D {
  const [n, t, c] = x.shape;
  const rows = tf.reshape(x, [n * t, c]);
  // Three products rather than one and a split: a split copies, and its gradient concatenates.
  const [q, k, v] = [p.wQ, p.wK, p.wV].map((w) => splitHeads(tf.matMul(rows, w), n, t, heads)) as [
    tf.Tensor3D,
    tf.Tensor3D,
    tf.Tensor3D,
  ];
  // The scale on q rather than on the scores: T x d elements instead of T x T (49 x 2 against 49 x 49 in G).
  const scores = tf.matMul(tf.mul(q, 1 / Math.sqrt(c / heads)), k, false, true);
  const mixed = tf.matMul(softmax(scores), v);
  const merged = tf.reshape(tf.transpose(tf.reshape(mixed, [n, heads, t, c / heads]), [0, 2, 1, 3]), [
    n * t,
    c,
  ]);
  return tf.reshape(tf.add(tf.matMul(merged, p.wO), p.bO), [n, t, c]);
}

/**
 * A pre-LN transformer block: x + attention(LN(x)), then + MLP(LN(x)) with a GELU between its two linears.
 * `attend` replaces global attention (the generator's windowed attention at high resolution).
 */
export function transformerBlock(
  x: tf.Tensor3D,
  p: BlockParams,
  heads: number,
  attend: (h: tf.Tensor3D) => tf.Tensor3D = (h) => selfAttention(h, p, heads),
): tf.Tensor3D {
  const a = tf.add<tf.Tensor3D>(x, attend(layerNorm(x, p.ln1g, p.ln1b)));
  const h = gelu(tokenDense(layerNorm(a, p.ln2g, p.ln2b), p.w1, p.b1));
  return tf.add(a, tokenDense(h, p.w2, p.b2));
}

/**
 * [N, H, W, C] tokens -> [N * (H/s) * (W/s), s * s, C]: the non-overlapping s x s windows that TransGAN's
 * grid self-attention attends within (Jiang et al., 2021, section 3.3), each its own sequence.
 */
export function toWindows(x: tf.Tensor4D, s: number): tf.Tensor3D {
  const [n, h, w, c] = x.shape;
  const t = tf.transpose(tf.reshape(x, [n * (h / s), s, w / s, s * c]), [0, 2, 1, 3]);
  return tf.reshape(t, [n * (h / s) * (w / s), s * s, c]);
}

/** The inverse of {@link toWindows} for an [N, H, W, C] grid. */
export function fromWindows(x: tf.Tensor3D, shape: [number, number, number, number], s: number): tf.Tensor4D {
  const [n, h, w, c] = shape;
  const t = tf.transpose(tf.reshape(x, [n * (h / s), w / s, s, s * c]), [0, 2, 1, 3]);
  return tf.reshape(t, [n, h, w, c]);
}

/** Multiply-adds of one block over T tokens of width C attending in windows of `window` tokens, per image. */
export function blockMacs(tokens: number, dim: number, mlpRatio: number, window = tokens): number {
  const linear = tokens * (4 * dim * dim + 2 * dim * dim * mlpRatio);
  return linear + 2 * tokens * window * dim;
}
