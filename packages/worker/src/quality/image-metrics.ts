/**
 * The one documented downsampling filter Gantry makes super-resolution inputs with (MATLAB's
 * `imresize(..., 'bicubic')`, as SR papers and BasicSR use), and the paired-image scores of SR and
 * image-to-image translation: PSNR and SSIM computed as BasicSR's `calculate_psnr` / `calculate_ssim`
 * (basicsr/metrics/psnr_ssim.py, `test_y_channel=True`), and pix2pix's L1.
 *
 * Images are NHWC Float32Array batches in [-1, 1], 1 or 3 channels (RGB).
 */

/** Size of a batch of NHWC images. */
export interface ImageBatchShape {
  count: number;
  height: number;
  width: number;
  channels: number;
}

/** Keys' cubic convolution kernel with a = -0.5 (Keys, 1981), MATLAB's `cubic`: support |x| < 2. */
export function keysCubic(x: number): number {
  const t = Math.abs(x);
  if (t <= 1) return (1.5 * t - 2.5) * t * t + 1;
  if (t <= 2) return ((-0.5 * t + 2.5) * t - 4) * t + 2;
  return 0;
}

/** One axis of a resize: output i is the sum over k < taps of weights[i*taps+k] * input[indices[i*taps+k]]. */
export interface AxisWeights {
  taps: number;
  indices: Int32Array;
  weights: Float64Array;
}

/**
 * The bicubic taps of an axis of `inSize` pixels resized to `outSize`, exactly as MATLAB's `imresize`
 * (`contributions`) computes them, in 0-based indices:
 *
 * - scale s = outSize / inSize; output pixel i is centred at u = (i + 0.5) / s - 0.5 in the input;
 * - enlarging (s >= 1): h(d) = keysCubic(d), kernel width 4; shrinking (s < 1, antialiasing):
 *   h(d) = s * keysCubic(s * d), kernel width 4 / s;
 * - taps j = floor(u - width / 2) + k for k < ceil(width) + 2, weight h(u - j), normalised to sum 1;
 * - a tap outside the image reads its half-sample symmetric mirror (MATLAB's `aux = [1:n, n:-1:1]`,
 *   numpy's 'symmetric' padding: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...; the edge pixel is repeated once,
 *   neither replicated indefinitely nor skipped as 'reflect' does).
 *
 * Equal sizes give the identity (weight 1 at j = i, 0 elsewhere).
 */
export function bicubicAxisWeights(inSize: number, outSize: number): AxisWeights {
  const scale = outSize / inSize;
  const shrink = scale < 1;
  const kernelWidth = shrink ? 4 / scale : 4;
  const taps = Math.ceil(kernelWidth) + 2;
  const indices = new Int32Array(outSize * taps);
  const weights = new Float64Array(outSize * taps);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) / scale - 0.5;
    const left = Math.floor(centre - kernelWidth / 2);
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const d = centre - (left + k);
      const w = shrink ? scale * keysCubic(scale * d) : keysCubic(d);
      indices[i * taps + k] = mirror(left + k, inSize);
      weights[i * taps + k] = w;
      sum += w;
    }
    for (let k = 0; k < taps; k++) weights[i * taps + k]! /= sum;
  }
  return { taps, indices, weights };
}

/** Index j of an axis of n pixels folded into [0, n) by half-sample symmetric mirroring. */
function mirror(j: number, n: number): number {
  const m = ((j % (2 * n)) + 2 * n) % (2 * n);
  return m < n ? m : 2 * n - 1 - m;
}

/**
 * Resizes every image of a batch to `outHeight x outWidth` with MATLAB's bicubic `imresize` (see
 * {@link bicubicAxisWeights} for the filter and borders): along the height, then along the width, in
 * float64, each axis with its own scale out / in (what `imresize(A, [outHeight outWidth])` uses; equal to
 * BasicSR's `imresize(img, 1 / factor)` when the factor divides the size). MATLAB starts with the axis it
 * shrinks most; the filter is linear and separable, so the order only changes rounding. Not clamped:
 * bicubic overshoots at edges, so apply {@link clampUnit} where values must stay in [-1, 1].
 */
export function bicubicResize(
  images: Float32Array,
  shape: ImageBatchShape,
  outHeight: number,
  outWidth: number,
): Float32Array {
  checkBatch(images, shape);
  for (const [name, value] of Object.entries({ outHeight, outWidth })) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  }
  const { count, height, width, channels } = shape;
  const rows = bicubicAxisWeights(height, outHeight);
  const cols = bicubicAxisWeights(width, outWidth);
  const rowLength = width * channels;
  const mid = new Float64Array(outHeight * rowLength);
  const pixel = new Float64Array(channels);
  const out = new Float32Array(count * outHeight * outWidth * channels);
  let dst = 0;
  for (let n = 0; n < count; n++) {
    // Along the height: output row y is a weighted sum of whole input rows.
    const src = n * height * rowLength;
    mid.fill(0);
    for (let y = 0; y < outHeight; y++) {
      for (let t = y * rows.taps; t < (y + 1) * rows.taps; t++) {
        const w = rows.weights[t]!;
        if (w === 0) continue;
        const from = src + rows.indices[t]! * rowLength;
        const to = y * rowLength;
        for (let x = 0; x < rowLength; x++) mid[to + x]! += w * images[from + x]!;
      }
    }
    // Along the width: output pixel x is a weighted sum of pixels of its row.
    for (let y = 0; y < outHeight; y++) {
      for (let x = 0; x < outWidth; x++) {
        pixel.fill(0);
        for (let t = x * cols.taps; t < (x + 1) * cols.taps; t++) {
          const w = cols.weights[t]!;
          if (w === 0) continue;
          const from = y * rowLength + cols.indices[t]! * channels;
          for (let c = 0; c < channels; c++) pixel[c]! += w * mid[from + c]!;
        }
        for (let c = 0; c < channels; c++) out[dst++] = pixel[c]!;
      }
    }
  }
  return out;
}

/** A copy of `images` with every value clamped to [-1, 1] (NaN stays NaN). */
export function clampUnit(images: Float32Array): Float32Array {
  return images.map((v) => Math.min(1, Math.max(-1, v)));
}

/** How paired images are scored; the names follow BasicSR's `crop_border` and `test_y_channel`. */
export interface PairScoreOptions {
  /** Pixels removed from each side before PSNR and SSIM (SR papers use the scale factor). @default 0 */
  cropBorder?: number;
  /** Score 3-channel images on their BT.601 luma Y, as BasicSR's `test_y_channel=True`. @default true */
  yChannel?: boolean;
  /**
   * Round to the 0..255 integers of the PNG a user gets (clamped, NaN to 0, `Math.round((v + 1) * 127.5)`
   * as `encodeImageGrid` writes it) before scoring; BasicSR scores such uint8 images. Off: (v + 1) * 127.5.
   * @default true
   */
  quantize?: boolean;
}

/** {@link PairScoreOptions} with defaults filled and checked. */
export type CompiledPairScoreOptions = Required<PairScoreOptions>;

/** Fills the defaults of `options`; throws RangeError when `cropBorder` is not a whole number >= 0. */
export function compilePairScoreOptions(options: PairScoreOptions = {}): CompiledPairScoreOptions {
  const compiled = { cropBorder: 0, yChannel: true, quantize: true, ...options };
  if (!Number.isInteger(compiled.cropBorder) || compiled.cropBorder < 0) {
    throw new RangeError(`cropBorder must be a whole number >= 0, got ${compiled.cropBorder}`);
  }
  return compiled;
}

/** Image planes on the 0..255 scale: image n, plane p at offset ((n * planes) + p) * height * width. */
export interface MetricPlanes {
  planes: number;
  height: number;
  width: number;
  data: Float64Array;
}

/**
 * What PSNR and SSIM compare: each image mapped to 0..255 (quantised unless `quantize: false`), its border
 * cropped, and, for 3 channels with `yChannel`, converted to BT.601 luma on the 0..255 scale,
 * Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (in [16, 235]; float64, not rounded, as BasicSR's
 * `to_y_channel`, which computes it in float32). Otherwise one plane per channel.
 */
export function metricPlanes(
  images: Float32Array,
  shape: ImageBatchShape,
  options: PairScoreOptions = {},
): MetricPlanes {
  checkBatch(images, shape);
  const { cropBorder, yChannel, quantize } = compilePairScoreOptions(options);
  const { count, height, width, channels } = shape;
  const h = height - 2 * cropBorder;
  const w = width - 2 * cropBorder;
  if (h < 1 || w < 1) throw new RangeError(`cropBorder ${cropBorder} leaves nothing of ${height}x${width}`);
  const luma = yChannel && channels === 3;
  const planes = luma ? 1 : channels;
  const data = new Float64Array(count * planes * h * w);
  const to255 = quantize ? toByte : (v: number) => (v + 1) * 127.5;
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const src = ((n * height + y + cropBorder) * width + x + cropBorder) * channels;
        const dst = n * planes * h * w + y * w + x;
        if (luma) {
          const r = to255(images[src]!);
          const g = to255(images[src + 1]!);
          const b = to255(images[src + 2]!);
          data[dst] = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255;
        } else {
          for (let c = 0; c < channels; c++) data[dst + c * h * w] = to255(images[src + c]!);
        }
      }
    }
  }
  return { planes, height: h, width: w, data };
}

/** [-1, 1] to a 0..255 integer, as the PNG writer does. */
function toByte(v: number): number {
  if (!(v > -1)) return 0;
  if (v >= 1) return 255;
  return Math.round((v + 1) * 127.5);
}

/**
 * PSNR of each output against its target, 10 log10(255^2 / MSE), the MSE over all pixels of the planes of
 * {@link metricPlanes}: Infinity where they are identical, as BasicSR returns.
 */
export function psnrPerImage(
  outputs: Float32Array,
  targets: Float32Array,
  shape: ImageBatchShape,
  options: PairScoreOptions = {},
): Float64Array {
  return psnrOfPlanes(metricPlanes(outputs, shape, options), metricPlanes(targets, shape, options));
}

function psnrOfPlanes(a: MetricPlanes, b: MetricPlanes): Float64Array {
  const size = a.planes * a.height * a.width;
  const count = a.data.length / size;
  const scores = new Float64Array(count);
  for (let n = 0; n < count; n++) {
    let sum = 0;
    for (let i = n * size; i < (n + 1) * size; i++) sum += (a.data[i]! - b.data[i]!) ** 2;
    scores[n] = sum === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255) / (sum / size));
  }
  return scores;
}

/** The SSIM window: cv2.getGaussianKernel(11, 1.5), exp(-(i - 5)^2 / (2 * 1.5^2)) normalised to sum 1. */
export const SSIM_WINDOW: Float64Array = (() => {
  const g = Float64Array.from({ length: 11 }, (_, i) => Math.exp(-((i - 5) ** 2) / (2 * 1.5 * 1.5)));
  const sum = g.reduce((s, v) => s + v, 0);
  return g.map((v) => v / sum);
})();

/**
 * SSIM of each output against its target (Wang et al., 2004) as BasicSR's `_ssim`: local means, variances
 * and covariance under the 11x11 Gaussian window (sigma 1.5, 'valid' positions only), C1 = (0.01 * 255)^2,
 * C2 = (0.03 * 255)^2, the mean of the SSIM map, averaged over planes. Needs 11x11 pixels after cropping.
 */
export function ssimPerImage(
  outputs: Float32Array,
  targets: Float32Array,
  shape: ImageBatchShape,
  options: PairScoreOptions = {},
): Float64Array {
  return ssimOfPlanes(metricPlanes(outputs, shape, options), metricPlanes(targets, shape, options));
}

function ssimOfPlanes(a: MetricPlanes, b: MetricPlanes): Float64Array {
  const { planes, height, width } = a;
  if (height < 11 || width < 11) throw new RangeError(`SSIM needs 11x11 pixels, got ${height}x${width}`);
  const count = a.data.length / (planes * height * width);
  const scratch = new Float64Array(5 * height * (width - 10));
  const scores = new Float64Array(count);
  for (let n = 0; n < count; n++) {
    let sum = 0;
    for (let p = 0; p < planes; p++) {
      const offset = (n * planes + p) * height * width;
      sum += ssimPlane(a.data, b.data, offset, height, width, scratch);
    }
    scores[n] = sum / planes;
  }
  return scores;
}

const C1 = (0.01 * 255) ** 2;
const C2 = (0.03 * 255) ** 2;

/** Mean SSIM map of one plane pair; the window is applied separably, along rows into `scratch`, then columns. */
function ssimPlane(
  a: Float64Array,
  b: Float64Array,
  offset: number,
  h: number,
  w: number,
  scratch: Float64Array,
) {
  const g = SSIM_WINDOW;
  const vw = w - 10;
  const vh = h - 10;
  const m = h * vw;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < vw; x++) {
      let sa = 0;
      let sb = 0;
      let saa = 0;
      let sbb = 0;
      let sab = 0;
      for (let k = 0; k < 11; k++) {
        const va = a[offset + y * w + x + k]!;
        const vb = b[offset + y * w + x + k]!;
        const gk = g[k]!;
        sa += gk * va;
        sb += gk * vb;
        saa += gk * va * va;
        sbb += gk * vb * vb;
        sab += gk * va * vb;
      }
      const i = y * vw + x;
      scratch[i] = sa;
      scratch[m + i] = sb;
      scratch[2 * m + i] = saa;
      scratch[3 * m + i] = sbb;
      scratch[4 * m + i] = sab;
    }
  }
  let total = 0;
  for (let y = 0; y < vh; y++) {
    for (let x = 0; x < vw; x++) {
      let mu1 = 0;
      let mu2 = 0;
      let e11 = 0;
      let e22 = 0;
      let e12 = 0;
      for (let k = 0; k < 11; k++) {
        const i = (y + k) * vw + x;
        const gk = g[k]!;
        mu1 += gk * scratch[i]!;
        mu2 += gk * scratch[m + i]!;
        e11 += gk * scratch[2 * m + i]!;
        e22 += gk * scratch[3 * m + i]!;
        e12 += gk * scratch[4 * m + i]!;
      }
      const num = (2 * mu1 * mu2 + C1) * (2 * (e12 - mu1 * mu2) + C2);
      const den = (mu1 * mu1 + mu2 * mu2 + C1) * (e11 - mu1 * mu1 + e22 - mu2 * mu2 + C2);
      total += num / den;
    }
  }
  return total / (vh * vw);
}

/**
 * The PSNR an image counts with in {@link imagePairScores}' mean, where it scores higher (identical images
 * score Infinity). Finite scores only pass it for MSE < 255^2 / 1e10, e.g. one blue level in one Y pixel
 * of a 64x64 image (~104 dB): differences that small count as identical.
 */
export const PSNR_CAP_DB = 100;

/** Mean paired scores of a batch: higher PSNR and SSIM, lower L1 is better. */
export interface ImagePairScores {
  /** Mean per-image PSNR in dB, each capped at {@link PSNR_CAP_DB}. */
  psnr: number;
  /** Mean per-image SSIM. */
  ssim: number;
  /** Mean |output - target| on the [-1, 1] scale over all pixels (no crop, no quantising): pix2pix's L1. */
  l1: number;
}

/** PSNR, SSIM ({@link psnrPerImage}, {@link ssimPerImage}) and L1 of outputs against targets, as means. */
export function imagePairScores(
  outputs: Float32Array,
  targets: Float32Array,
  shape: ImageBatchShape,
  options: PairScoreOptions = {},
): ImagePairScores {
  const a = metricPlanes(outputs, shape, options);
  const b = metricPlanes(targets, shape, options);
  const psnr = psnrOfPlanes(a, b);
  const ssim = ssimOfPlanes(a, b);
  let l1 = 0;
  for (let i = 0; i < outputs.length; i++) l1 += Math.abs(outputs[i]! - targets[i]!);
  const mean = (xs: Float64Array) => xs.reduce((s, v) => s + v, 0) / xs.length;
  return {
    psnr: mean(psnr.map((v) => Math.min(v, PSNR_CAP_DB))),
    ssim: mean(ssim),
    l1: l1 / outputs.length,
  };
}

function checkBatch(images: Float32Array, shape: ImageBatchShape): void {
  const { count, height, width, channels } = shape;
  for (const [name, value] of Object.entries({ count, height, width })) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError(`channels must be 1 or 3, got ${channels}`);
  if (images.length !== count * height * width * channels) {
    throw new RangeError(`expected ${count * height * width * channels} values, got ${images.length}`);
  }
}
