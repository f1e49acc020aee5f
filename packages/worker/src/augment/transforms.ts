import * as tf from '@tensorflow/tfjs-core';

/**
 * DiffAugment's transforms (Zhao et al., 2020, section 3 and its reference code) on a batch of NHWC images,
 * each with its parameters given per sample, so that a caller draws them (diff-augment.ts) and a test can
 * fix them. Every transform is built from adds, multiplies, means, reshapes, transposes and matrix
 * products: ops whose tfjs gradients are themselves differentiable (no tanh, exp, pooling or resize), so a
 * gradient penalty can differentiate through them twice. A sample whose parameters are the identity
 * (shift 0, no cutout, brightness 0, saturation and contrast 1) comes out bit-for-bit unchanged.
 *
 * `groups`: the images stacked along the channels (pix2pix's D sees A and B concatenated: 2); each group
 * gets the same parameters, and the colour statistics are each group's own.
 */

/** The largest shift of `translation` along a side of `n` pixels: 1/8 of it, rounded (the paper's ratio). */
export function maxShift(n: number): number {
  return Math.floor(n * 0.125 + 0.5);
}

/** The side of `cutout`'s square along a side of `n` pixels: half of it, rounded. */
export function cutoutSize(n: number): number {
  return Math.floor(n * 0.5 + 0.5);
}

/**
 * Per-sample matrices S [N, n, n] with S[i][k] = 1 where k = i - shift: S . v moves v's content by `shift`
 * along its axis, filling with zeros.
 */
function shiftMatrices(shifts: Int32Array, n: number): tf.Tensor3D {
  const m = new Float32Array(shifts.length * n * n);
  shifts.forEach((s, b) => {
    for (let i = 0; i < n; i++) {
      const k = i - s;
      if (k >= 0 && k < n) m[b * n * n + i * n + k] = 1;
    }
  });
  return tf.tensor3d(m, [shifts.length, n, n]);
}

/**
 * Moves sample b's content down by `dy[b]` rows and right by `dx[b]` columns, zeros shifted in (the
 * reference pads with zeros on the [-1, 1] scale, as here). As two batched matrix products with one-hot
 * shift matrices, whose gradients are matrix products again.
 */
export function translate(x: tf.Tensor4D, dy: Int32Array, dx: Int32Array): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const rows = tf.reshape(tf.matMul(shiftMatrices(dy, h), tf.reshape(x, [n, h, w * c])), [n, h, w, c]);
    const byColumn = tf.reshape(tf.transpose(rows, [0, 2, 1, 3]), [n, w, h * c]);
    const cols = tf.reshape(tf.matMul(shiftMatrices(dx, w), byColumn), [n, w, h, c]);
    return tf.transpose(cols, [0, 2, 1, 3]) as tf.Tensor4D;
  });
}

/**
 * Sets a square of `cutoutSize` per side (clipped at the borders) to 0 in each selected sample: sample b's
 * square is centred at row `cy[b]`, column `cx[b]` (its first row cy - floor(size / 2)); a negative `cy[b]`
 * leaves the sample whole.
 */
export function cutout(x: tf.Tensor4D, cy: Int32Array, cx: Int32Array): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w] = x.shape;
    const sh = cutoutSize(h);
    const sw = cutoutSize(w);
    const mask = new Float32Array(n * h * w).fill(1);
    for (let b = 0; b < n; b++) {
      if (cy[b]! < 0) continue;
      const y0 = Math.max(0, cy[b]! - Math.floor(sh / 2));
      const y1 = Math.min(h, cy[b]! - Math.floor(sh / 2) + sh);
      const x0 = Math.max(0, cx[b]! - Math.floor(sw / 2));
      const x1 = Math.min(w, cx[b]! - Math.floor(sw / 2) + sw);
      for (let i = y0; i < y1; i++) mask.fill(0, b * h * w + i * w + x0, b * h * w + i * w + x1);
    }
    return tf.mul(x, tf.tensor4d(mask, [n, h, w, 1]));
  });
}

/** Colour parameters per sample: brightness offset, saturation and contrast factors. */
export interface ColorParams {
  /** Added to every pixel: the reference draws it from [-0.5, 0.5). */
  brightness: Float32Array;
  /** Scales each pixel's distance from its mean over the channels: from [0, 2). */
  saturation: Float32Array;
  /** Scales each pixel's distance from the image's mean: from [0.5, 1.5). */
  contrast: Float32Array;
}

/**
 * Brightness, saturation and contrast in the reference's order, each as x + (x - mean) * (factor - 1)
 * (the same as (x - mean) * factor + mean, and exact at factor 1). Saturation is a no-op on one channel
 * (a pixel is its own channel mean) and is skipped there.
 */
export function color(x: tf.Tensor4D, params: ColorParams, groups = 1): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const per = (v: Float32Array, offset = 0) =>
      tf.tensor4d(
        v.map((a) => a + offset),
        [n, 1, 1, 1],
      );
    const grouped = (t: tf.Tensor) => tf.reshape(t, [n, h, w, groups, c / groups]);
    let y = tf.add(x, per(params.brightness)) as tf.Tensor4D;
    if (c / groups > 1) {
      const g = grouped(y);
      const d = tf.sub(g, tf.mean(g, 4, true));
      y = tf.add(y, tf.reshape(tf.mul(d, tf.reshape(per(params.saturation, -1), [n, 1, 1, 1, 1])), x.shape));
    }
    const g = grouped(y);
    const d = tf.sub(g, tf.mean(g, [1, 2, 4], true));
    return tf.add(y, tf.reshape(tf.mul(d, tf.reshape(per(params.contrast, -1), [n, 1, 1, 1, 1])), x.shape));
  });
}
