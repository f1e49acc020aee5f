import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  Conv2DBackpropInput,
  type Conv2DBackpropInputAttrs,
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { backwardConvGeometry, type ConvGeometry, isPointwise } from './conv-geometry.ts';
import { spaceToDepthInputGradient, suitsSpaceToDepth } from './conv-space-to-depth.ts';
import { inputGradientSuitsShiftedOutput, stride1InputGradient } from './conv2d.ts';
import { type Gemm, gemmFor, heapPtr } from './gemm/index.ts';
import { transposedConvGemm } from './transposed-conv-gemm.ts';
import { transposedConvSubPixel } from './transposed-conv-subpixel.ts';
import { suitsWinograd } from './winograd.ts';

/**
 * Floats in one chunk of the GEMM columns matrix (1 MiB, still in L2 when col2im scatters it); the dy
 * positions go in chunks, each scattering into the same output. Against one chunk of up to 64 MiB,
 * medians of 7 alternating calls: SRGAN D's 3x3/2 32 -> 32 at 64 px 9.9 -> 8.3 ms, DCGAN D's 4x4/2
 * 64 -> 128 at 32 px 48.6 -> 45.8, at 14 px 17.6 -> 16.9.
 */
export const DEFAULT_MAX_COLUMN_ELEMENTS = 256 * 1024;

/**
 * Fewest result channels (CI) for which the sub-pixel algorithm is used. XNNPACK's convolution
 * vectorises over output channels, so with few of them the GEMM wins (CI = 1: 2.4 vs 13 ms).
 */
export const SUB_PIXEL_MIN_CHANNELS = 16;

/** Tuning knobs; the defaults are what the registered kernel uses. */
export interface Conv2DBackpropInputOptions {
  /**
   * `'gemm'` (GEMM + col2im), `'sub-pixel'` (one stride-1 XNNPACK convolution per stride phase), or
   * `'auto'`: GEMM where Gantry's matrix product is available (kernels/gemm), else sub-pixel when the
   *   result has at least {@link SUB_PIXEL_MIN_CHANNELS} channels.
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

/**
 * Gradient of conv2d w.r.t. its input, dx[b, oy*s - pad + k, :] += dy[b, oy, :] . filter[k]^T, and
 * so the forward pass of conv2dTranspose, for the wasm backend. It replaces tfjs-backend-wasm 4.22's
 * own kernel, a naive loop nest (~1.2-1.7 GFLOP/s). Two algorithms, both handing the arithmetic to
 * the registered wasm kernels (BatchMatMul and Conv2D: Gantry's matrix product where it is available,
 * else XNNPACK): GEMM + col2im ({@link transposedConvGemm}) and sub-pixel convolution
 * ({@link transposedConvSubPixel}).
 *
 * Measured on the 2-core dev machine (single-threaded wasm with SIMD, under background load; medians
 * over runs, min in brackets), per call:
 * - dy [64,7,7,128], filter [4,4,64,128], stride 2 'same' (-> [64,14,14,64], 822 MFLOP): stock
 *   440-670 ms (1.2-1.9 GFLOP/s); GEMM 52-62 ms [46]; sub-pixel 45-56 ms [42], 15-18 GFLOP/s.
 * - dy [64,14,14,64], filter [4,4,1,64], stride 2 'same' (-> [64,28,28,1], 26 MFLOP): stock
 *   13-56 ms; GEMM 2.4-3.8 ms [2.2], 7-11 GFLOP/s; sub-pixel 9-13 ms.
 * Across CI = 1..128 (CO = 128, 4x4 kernel, strides 1 and 2) sub-pixel ties or wins from CI = 16 up
 * and loses 2-10x below, hence the `'auto'` rule without Gantry's product. One DCGAN training step
 * (batch 64) went from ~2.7 s to ~1.1-1.2 s. With Gantry's product (kernels/gemm), the first shape,
 * 8 calls alternating: GEMM 30-34 ms against sub-pixel 33-47 ms, so `'auto'` takes GEMM there.
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
  const gemm = gemmFor(backend);
  // 1x1 (ProGAN's toRGB and fromRGB): dx = dy @ W^T, one product on the tensors in place.
  if (algorithm === 'auto' && gemm !== undefined && isPointwise(g)) {
    return pointwiseInputGradient(backend, gemm, dy, filter, g);
  }
  // 4x4 at stride 2 (DCGAN's and pix2pix's generators, the critics' gradients): a 2x2 Winograd
  // convolution of dy on the space-to-depth grid (conv-space-to-depth.ts).
  if (algorithm === 'auto' && gemm !== undefined && suitsSpaceToDepth(g)) {
    const dx = spaceToDepthInputGradient(backend, gemm, dy, filter, g);
    if (dx !== undefined) return dx;
  }
  // Stride 1, dy no wider than dx (SRGAN G's 9x9 32 -> 3: 670 -> 76 ms), or any 3x3 that Winograd takes
  // (ProGAN's 3x3 32 -> 16: 15 -> 4 ms): a forward conv (conv2d.ts).
  // Few input channels for many output ones (SRGAN D's first conv): the flipped conv's kernel columns on
  // the output side (conv-shifted-output.ts).
  if (
    algorithm === 'auto' &&
    ((g.inC >= 8 && g.outC <= g.inC) || suitsWinograd(g) || inputGradientSuitsShiftedOutput(g))
  ) {
    const dx = stride1InputGradient(backend, dy, filter, g);
    if (dx !== undefined) return dx;
  }
  const subPixel =
    algorithm === 'sub-pixel' ||
    (algorithm === 'auto' && gemm === undefined && g.inC >= SUB_PIXEL_MIN_CHANNELS);
  return subPixel
    ? transposedConvSubPixel(backend, dy, filter, g)
    : transposedConvGemm(backend, dy, filter, g, maxColumnElements);
}

/** Geometry of one call: dx [B, H, W, CI] from dy [B, OH, OW, CO] and filter [KH, KW, CI, CO]. */
function geometry(dy: TensorInfo, filter: TensorInfo, attrs: Conv2DBackpropInputAttrs): ConvGeometry {
  if (dy.shape.length !== 4 || filter.shape.length !== 4 || attrs.inputShape.length !== 4) {
    throw new Error(
      `Conv2DBackpropInput (wasm): dy, filter and inputShape must be rank 4, got ` +
        `${dy.shape}, ${filter.shape} and ${attrs.inputShape}`,
    );
  }
  return backwardConvGeometry(
    'Conv2DBackpropInput',
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs,
    dy.shape,
  );
}

/** Kernel config to register with tfjs for the wasm backend, in place of the stock one. */
export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: Conv2DBackpropInput,
  backendName: 'wasm',
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: ((args: Conv2DBackpropInputArgs) => conv2DBackpropInput(args)) as unknown as KernelFunc,
};

/**
 * The input gradient of a 1x1 stride-1 convolution without padding: dx [rows, CI] = dy [rows, CO] @ W^T,
 * W [CI, CO] read transposed in place by Gantry's product. Through col2im it was a GEMM then a scatter of
 * single pixels (ProGAN's fromRGB at 64 px, dy [32,64,64,8] -> dx [32,64,64,3]: 4.21 -> 1.17 ms, medians of 9).
 */
function pointwiseInputGradient(
  backend: BackendWasm,
  gemm: Gemm,
  dy: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
): TensorInfo {
  const rows = g.batch * g.inH * g.inW;
  const dx = backend.makeOutput([g.batch, g.inH, g.inW, g.inC], 'float32');
  try {
    gemm.reserve(g.inC);
    gemm.multiply(
      rows,
      g.outC,
      g.inC,
      { ptr: heapPtr(backend, dy), rowStride: 4 * g.outC, colStride: 4 },
      { ptr: heapPtr(backend, filter), rowStride: 4, colStride: 4 * g.outC },
      { ptr: heapPtr(backend, dx), rowStride: 4 * g.inC },
    );
    return dx;
  } catch (err) {
    backend.disposeData(dx.dataId);
    throw err;
  }
}
