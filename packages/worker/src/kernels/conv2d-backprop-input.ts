import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  BatchMatMul,
  backend_util,
  Conv2D,
  Conv2DBackpropInput,
  type Conv2DBackpropInputAttrs,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

/**
 * Upper bound on the number of floats in one GEMM columns matrix (64 MiB of wasm heap).
 * Larger problems are split along the dy positions; each chunk scatters into the same output.
 */
export const DEFAULT_MAX_COLUMN_ELEMENTS = 16 * 1024 * 1024;

/**
 * Fewest result channels (CI) for which the sub-pixel algorithm is used. XNNPACK's convolution
 * vectorises over output channels, so with few of them the GEMM wins (CI = 1: 2.4 vs 13 ms).
 */
export const SUB_PIXEL_MIN_CHANNELS = 16;

/** Tuning knobs; the defaults are what the registered kernel uses. */
export interface Conv2DBackpropInputOptions {
  /**
   * `'gemm'` (GEMM + col2im), `'sub-pixel'` (one stride-1 XNNPACK convolution per stride phase), or
   * `'auto'`: sub-pixel when the result has at least {@link SUB_PIXEL_MIN_CHANNELS} channels.
   * @default 'auto'
   */
  algorithm?: 'auto' | 'gemm' | 'sub-pixel';
  /** @default DEFAULT_MAX_COLUMN_ELEMENTS */
  maxColumnElements?: number;
}

/** Arguments of the kernel function, as tfjs passes them. */
export interface Conv2DBackpropInputArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: Conv2DBackpropInputAttrs;
}

/** Geometry of one call: dx [B, H, W, CI] from dy [B, OH, OW, CO] and filter [KH, KW, CI, CO]. */
interface Geometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

/**
 * Gradient of conv2d w.r.t. its input, dx[b, oy*s - pad + k, :] += dy[b, oy, :] . filter[k]^T, and
 * so the forward pass of conv2dTranspose, for the wasm backend. It replaces tfjs-backend-wasm 4.22's
 * own kernel, a naive loop nest (~1.2-1.7 GFLOP/s). Two algorithms, both handing the arithmetic to
 * the backend's XNNPACK kernels:
 *
 * - GEMM + col2im: cols[B*OH*OW, KH*KW*CI] = dy[B*OH*OW, CO] @ W'[CO, KH*KW*CI] (W' the filter
 *   transposed) by the wasm BatchMatMul, then each row of cols is scatter-added into dx at its window.
 * - Sub-pixel (Shi et al., 2016, "Is the deconvolution layer the same as a convolutional layer?"):
 *   the output rows with (y + padTop) % s = r only see taps kh = r + s*j, so each of the s*s stride
 *   phases is a stride-1 convolution of dy with a spatially flipped, channel-transposed sub-filter,
 *   run by the wasm Conv2D kernel and interleaved into dx.
 *
 * Measured on the 2-core dev machine (single-threaded wasm with SIMD, under background load; medians
 * over runs, min in brackets), per call:
 * - dy [64,7,7,128], filter [4,4,64,128], stride 2 'same' (-> [64,14,14,64], 822 MFLOP): stock
 *   440-670 ms (1.2-1.9 GFLOP/s); GEMM 52-62 ms [46]; sub-pixel 45-56 ms [42], 15-18 GFLOP/s.
 * - dy [64,14,14,64], filter [4,4,1,64], stride 2 'same' (-> [64,28,28,1], 26 MFLOP): stock
 *   13-56 ms; GEMM 2.4-3.8 ms [2.2], 7-11 GFLOP/s; sub-pixel 9-13 ms.
 * Across CI = 1..128 (CO = 128, 4x4 kernel, strides 1 and 2) sub-pixel ties or wins from CI = 16 up
 * and loses 2-10x below, hence the `'auto'` rule. One DCGAN training step (batch 64) went from
 * ~2.7 s to ~1.1-1.2 s.
 */
export function conv2DBackpropInput(
  args: Conv2DBackpropInputArgs,
  options: Conv2DBackpropInputOptions = {},
): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { dy, filter } = inputs;
  if (dy === undefined || filter === undefined) {
    throw new Error('Conv2DBackpropInput (wasm): inputs dy and filter are required');
  }
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32') {
    throw new Error(
      `Conv2DBackpropInput (wasm): float32 only, got dy ${dy.dtype} and filter ${filter.dtype}`,
    );
  }
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new Error(`Conv2DBackpropInput (wasm): only NHWC is supported, got ${attrs.dataFormat}`);
  }
  const g = geometry(dy, filter, attrs);
  const algorithm = options.algorithm ?? 'auto';
  const maxColumnElements = options.maxColumnElements ?? DEFAULT_MAX_COLUMN_ELEMENTS;
  if (g.batch * g.inH * g.inW * g.inC * g.outH * g.outW * g.outC * g.kH * g.kW === 0) {
    // Nothing to sum over (or nothing to write): dx is all zeros.
    const zeros = backend.makeOutput([g.batch, g.inH, g.inW, g.inC], 'float32');
    backend.typedArrayFromHeap(zeros).fill(0);
    return zeros;
  }
  const subPixel = algorithm === 'sub-pixel' || (algorithm === 'auto' && g.inC >= SUB_PIXEL_MIN_CHANNELS);
  return subPixel ? viaSubPixel(backend, dy, filter, g) : viaGemm(backend, dy, filter, g, maxColumnElements);
}

function viaGemm(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  g: Geometry,
  maxColumnElements: number,
): TensorInfo {
  const matMul = wasmKernel(BatchMatMul);
  const dx = backend.makeOutput([g.batch, g.inH, g.inW, g.inC], 'float32');
  backend.typedArrayFromHeap(dx).fill(0);
  const taps = g.kH * g.kW * g.inC;
  const totalRows = g.batch * g.outH * g.outW;
  let weights: TensorInfo | undefined;
  try {
    weights = backend.makeOutput([g.outC, taps], 'float32');
    transposeInto(
      backend.typedArrayFromHeap(weights) as Float32Array,
      backend.typedArrayFromHeap(filter) as Float32Array,
      taps,
      g.outC,
    );
    const chunkRows = Math.max(1, Math.min(totalRows, Math.floor(maxColumnElements / taps)));
    for (let row0 = 0; row0 < totalRows; row0 += chunkRows) {
      const rows = Math.min(chunkRows, totalRows - row0);
      const cols = chunkColumns(backend, matMul, dy, weights, g, row0, rows);
      try {
        // Views are taken after every allocation: a heap growth detaches older ones.
        col2im(
          backend.typedArrayFromHeap(dx) as Float32Array,
          backend.typedArrayFromHeap(cols) as Float32Array,
          g,
          row0,
          rows,
        );
      } finally {
        backend.disposeData(cols.dataId);
      }
    }
  } catch (err) {
    backend.disposeData(dx.dataId);
    throw err;
  } finally {
    if (weights !== undefined) backend.disposeData(weights.dataId);
  }
  return dx;
}

/** out[c, r] = src[r, c] for src [rows, cols]. */
function transposeInto(out: Float32Array, src: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const s = r * cols;
    for (let c = 0, o = r; c < cols; c++, o += rows) out[o] = src[s + c] as number;
  }
}

/** dy[rows starting at row0] @ W' -> [rows, KH*KW*CI]. */
function chunkColumns(
  backend: BackendWasm,
  matMul: KernelConfig,
  dy: TensorInfo,
  weights: TensorInfo,
  g: Geometry,
  row0: number,
  rows: number,
): TensorInfo {
  const wholeDy = row0 === 0 && rows === g.batch * g.outH * g.outW;
  // The whole dy is used in place (BatchMatMul only reshapes it); a chunk needs its own copy.
  const dyChunk = wholeDy ? undefined : backend.makeOutput([rows, g.outC], 'float32');
  try {
    if (dyChunk !== undefined) {
      const dyData = backend.typedArrayFromHeap(dy);
      backend.typedArrayFromHeap(dyChunk).set(dyData.subarray(row0 * g.outC, (row0 + rows) * g.outC));
    }
    const a: TensorInfo = dyChunk ?? { dataId: dy.dataId, shape: [rows, g.outC], dtype: 'float32' };
    return matMul.kernelFunc({
      inputs: { a, b: weights },
      backend,
      attrs: { transposeA: false, transposeB: false },
    }) as TensorInfo;
  } finally {
    if (dyChunk !== undefined) backend.disposeData(dyChunk.dataId);
  }
}

/**
 * Adds row (b, oy, ox) - row0 of cols, laid out (kh, kw, ci), into
 * dx[b, oy*sh - padTop + kh, ox*sw - padLeft + kw, :], skipping taps that fall in the padding.
 */
function col2im(dx: Float32Array, cols: Float32Array, g: Geometry, row0: number, rows: number): void {
  const { inH, inW, inC, outH, outW, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const taps = kH * kW * inC;
  const rowStride = inW * inC;
  let b = Math.floor(row0 / (outH * outW));
  let oy = Math.floor((row0 - b * outH * outW) / outW);
  let ox = row0 - (b * outH + oy) * outW;
  for (let r = 0; r < rows; r++) {
    const iy0 = oy * strideH - padTop;
    const ix0 = ox * strideW - padLeft;
    // Taps inside the image: kh in [khLo, khHi), kw in [kwLo, kwHi).
    const khLo = Math.max(0, -iy0);
    const khHi = Math.min(kH, inH - iy0);
    const kwLo = Math.max(0, -ix0);
    const kwHi = Math.min(kW, inW - ix0);
    const imageBase = b * inH * rowStride;
    const colBase = r * taps;
    for (let kh = khLo; kh < khHi; kh++) {
      let o = imageBase + (iy0 + kh) * rowStride + (ix0 + kwLo) * inC;
      let c = colBase + (kh * kW + kwLo) * inC;
      const end = c + (kwHi - kwLo) * inC;
      // (kw, ci) for consecutive kw are consecutive in both cols and dx: one contiguous run.
      for (; c < end; c++, o++) dx[o] = (dx[o] as number) + (cols[c] as number);
    }
    if (++ox === outW) {
      ox = 0;
      if (++oy === outH) {
        oy = 0;
        b++;
      }
    }
  }
}

/**
 * One stride phase along one axis: the result rows y = q*s + r - pad for q in [q0, q0 + count), which
 * are out[q - q0] = sum over j < taps of dy[q - j] * filter[r + s*j]: a stride-1 correlation of dy,
 * padded by `before` and `after`, with the `taps`-long sub-filter read backwards. q0 and the count are
 * widened where needed to keep both paddings non-negative; the rows this adds fall outside dx.
 */
interface Phase {
  r: number;
  taps: number;
  q0: number;
  count: number;
  before: number;
  after: number;
}

function phases(size: number, dySize: number, kernel: number, stride: number, pad: number): Phase[] {
  const out: Phase[] = [];
  for (let r = 0; r < stride; r++) {
    const taps = r < kernel ? Math.ceil((kernel - r) / stride) : 0;
    const q0 = Math.min(Math.ceil((pad - r) / stride), Math.max(taps - 1, 0));
    const q1 = Math.max(Math.floor((size - 1 + pad - r) / stride), dySize - 1);
    out.push({ r, taps, q0, count: q1 - q0 + 1, before: taps - 1 - q0, after: q1 + 1 - dySize });
  }
  return out;
}

function viaSubPixel(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, g: Geometry): TensorInfo {
  const conv = wasmKernel(Conv2D);
  const rows = phases(g.inH, g.outH, g.kH, g.strideH, g.padTop);
  const cols = phases(g.inW, g.outW, g.kW, g.strideW, g.padLeft);
  let dx: TensorInfo | undefined;
  try {
    for (const py of rows) {
      for (const px of cols) {
        if (py.taps === 0 || px.taps === 0) continue;
        const sub = backend.makeOutput([py.taps, px.taps, g.outC, g.inC], 'float32');
        let out: TensorInfo;
        try {
          subFilterInto(
            backend.typedArrayFromHeap(sub) as Float32Array,
            backend.typedArrayFromHeap(filter) as Float32Array,
            g,
            py,
            px,
          );
          const pad = [
            [0, 0],
            [py.before, py.after],
            [px.before, px.after],
            [0, 0],
          ];
          out = conv.kernelFunc({
            inputs: { x: dy, filter: sub },
            backend,
            attrs: { strides: 1, pad, dataFormat: 'NHWC', dilations: 1 },
          }) as TensorInfo;
        } finally {
          backend.disposeData(sub.dataId);
        }
        const exact = g.strideH === 1 && g.strideW === 1 && py.q0 === g.padTop && px.q0 === g.padLeft;
        if (exact && py.count === g.inH && px.count === g.inW) return out;
        try {
          if (dx === undefined) {
            dx = backend.makeOutput([g.batch, g.inH, g.inW, g.inC], 'float32');
            // Phases without taps (stride > kernel) leave their rows and columns at zero.
            if (rows.some((p) => p.taps === 0) || cols.some((p) => p.taps === 0)) {
              backend.typedArrayFromHeap(dx).fill(0);
            }
          }
          interleave(
            backend.typedArrayFromHeap(dx) as Float32Array,
            backend.typedArrayFromHeap(out) as Float32Array,
            g,
            py,
            px,
          );
        } finally {
          backend.disposeData(out.dataId);
        }
      }
    }
  } catch (err) {
    if (dx !== undefined) backend.disposeData(dx.dataId);
    throw err;
  }
  if (dx === undefined) throw new Error('Conv2DBackpropInput (wasm): no stride phase has taps');
  return dx;
}

/** sub[ty, tx, co, ci] = filter[py.r + sh*(py.taps-1-ty), px.r + sw*(px.taps-1-tx), ci, co]. */
function subFilterInto(sub: Float32Array, filter: Float32Array, g: Geometry, py: Phase, px: Phase): void {
  const { inC, outC, kW, strideH, strideW } = g;
  let o = 0;
  for (let ty = 0; ty < py.taps; ty++) {
    const kh = py.r + strideH * (py.taps - 1 - ty);
    for (let tx = 0; tx < px.taps; tx++, o += outC * inC) {
      const kw = px.r + strideW * (px.taps - 1 - tx);
      let f = (kh * kW + kw) * inC * outC;
      for (let ci = 0; ci < inC; ci++) {
        for (let co = 0, s = o + ci; co < outC; co++, s += inC) sub[s] = filter[f++] as number;
      }
    }
  }
}

/** Copies the phase result out [B, py.count, px.count, CI] to its rows and columns of dx. */
function interleave(dx: Float32Array, out: Float32Array, g: Geometry, py: Phase, px: Phase): void {
  const { batch, inH, inW, inC, strideH, strideW, padTop, padLeft } = g;
  // Range of u with 0 <= (q0 + u)*s + r - pad < size, per axis.
  const first = (p: Phase, s: number, pad: number): number => Math.max(0, Math.ceil((pad - p.r) / s) - p.q0);
  const last = (p: Phase, s: number, pad: number, size: number): number =>
    Math.min(p.count, Math.floor((size - 1 + pad - p.r) / s) - p.q0 + 1);
  const uy0 = first(py, strideH, padTop);
  const uy1 = last(py, strideH, padTop, inH);
  const ux0 = first(px, strideW, padLeft);
  const ux1 = last(px, strideW, padLeft, inW);
  const xStep = strideW * inC;
  for (let b = 0; b < batch; b++) {
    for (let uy = uy0; uy < uy1; uy++) {
      const y = (py.q0 + uy) * strideH + py.r - padTop;
      let d = ((b * inH + y) * inW + (px.q0 + ux0) * strideW + px.r - padLeft) * inC;
      let s = ((b * py.count + uy) * px.count + ux0) * inC;
      for (let ux = ux0; ux < ux1; ux++, d += xStep - inC) {
        for (let c = 0; c < inC; c++) dx[d++] = out[s++] as number;
      }
    }
  }
}

function wasmKernel(name: string): KernelConfig {
  const kernel = getKernel(name, 'wasm') as KernelConfig | undefined;
  if (kernel === undefined) {
    throw new Error(`Conv2DBackpropInput (wasm): ${name} kernel for wasm is not registered`);
  }
  return kernel;
}

function geometry(dy: TensorInfo, filter: TensorInfo, attrs: Conv2DBackpropInputAttrs): Geometry {
  if (dy.shape.length !== 4 || filter.shape.length !== 4 || attrs.inputShape.length !== 4) {
    throw new Error(
      `Conv2DBackpropInput (wasm): dy, filter and inputShape must be rank 4, got ` +
        `${dy.shape}, ${filter.shape} and ${attrs.inputShape}`,
    );
  }
  const info = backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const expected = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
  if (dy.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`Conv2DBackpropInput (wasm): dy shape ${dy.shape} does not match expected ${expected}`);
  }
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/** Kernel config to register with tfjs for the wasm backend, in place of the stock one. */
export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: Conv2DBackpropInput,
  backendName: 'wasm',
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: ((args: Conv2DBackpropInputArgs) => conv2DBackpropInput(args)) as unknown as KernelFunc,
};
