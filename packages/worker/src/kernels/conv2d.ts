import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend_util,
  Conv2D,
  type Conv2DAttrs,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { type MIN_SLICE_MACS, suitsGemm } from './batch-mat-mul.ts';
import { type ConvGeometry, convGeometry, isPointwise } from './conv-geometry.ts';
import { shiftedOutputConv, suitsShiftedOutput } from './conv-shifted-output.ts';
import { spaceToDepthConv, suitsSpaceToDepth } from './conv-space-to-depth.ts';
import { type Gemm, gemmFor, heapPtr } from './gemm/index.ts';
import { im2col } from './im2col.ts';
import { im2colWasm } from './im2col-wasm.ts';
import { stockKernel, stockSetup } from './stock-kernels.ts';
import { suitsWinograd, winogradConv } from './winograd.ts';

/**
 * Floats in one chunk of the patches matrix (1 MiB): convolutions go in chunks of output rows, each
 * gathered and multiplied while it is still in L2. Against one 64 MiB chunk, medians of 7 alternating
 * calls: DCGAN D's 4x4/2 64 -> 128 at 14 px 18.4 -> 16.0 ms, at 32 px 50.3 -> 41.2; SRGAN D's 3x3/2
 * 32 -> 32 at 64 px 11.9 -> 7.2; SRGAN G's 9x9 input gradient (3 -> 32) 40.8 -> 26.1. 512 Ki and 128 Ki
 * floats measured within noise of it; 64 Ki slower.
 */
export const DEFAULT_MAX_PATCH_ELEMENTS = 256 * 1024;

/** Tuning knobs; the defaults are what the registered kernel uses. */
export interface Conv2DOptions {
  /** @default DEFAULT_MAX_PATCH_ELEMENTS */
  maxPatchElements?: number;
  /**
   * Use Gantry's product for every convolution it supports, however small (the registered kernel
   * leaves products under a 4x8 tile or {@link MIN_SLICE_MACS} multiply-adds to XNNPACK).
   * @default false
   */
  always?: boolean;
  /**
   * Take stride-1 3x3 convolutions with channel counts in fours through Winograd (winograd.ts), and 4x4
   * stride-2 ones through the space-to-depth (conv-space-to-depth.ts), rather than im2col.
   * @default true
   */
  winograd?: boolean;
}

/** Arguments of the kernel function, as tfjs passes them. */
export interface Conv2DArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: Conv2DAttrs;
}

/**
 * Forward 2-D convolution (NHWC, float32, no dilation) for the wasm backend, as im2col then Gantry's
 * matrix product: y[B*OH*OW, CO] = patches[B*OH*OW, KH*KW*CI] @ filter[KH*KW*CI, CO]. A 1x1 stride-1
 * convolution needs no patches; a stride-1 3x3 one with channel counts in fours goes through
 * Winograd's F(4x4, 3x3) instead (winograd.ts: 2.3-3.3x faster than im2col on ProGAN's and SRGAN's
 * layers), one with at most 7 output channels through conv-shifted-output.ts (SRGAN G's 9x9 32 -> 3:
 * 74 -> 26 ms), and a 4x4 stride-2 one as a 2x2 Winograd convolution on its space-to-depth
 * (conv-space-to-depth.ts). Everything else (dilations, NCHW, other dtypes, products too small for a 4x8
 * tile, or no Gantry product on this machine) is left to the stock XNNPACK kernel. It also runs the
 * stride-1 phases of the sub-pixel transposed convolution (transposed-conv-subpixel.ts).
 *
 * Measured on the 2-core dev machine (single-threaded wasm with SIMD), x [64,14,14,64] * filter
 * [4,4,64,128], stride 2 'same' (822 MFLOP, the DCGAN discriminator's big layer): in a profiled training
 * step XNNPACK took 47 ms per call and this 33.5 ms; called alone, alternating the two, medians of 9
 * under background load: 52 against 46 ms.
 */
export function conv2D(args: Conv2DArgs, options: Conv2DOptions = {}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { x, filter } = inputs;
  const gemm = gemmFor(backend);
  const g = x !== undefined && filter !== undefined ? plainGeometry(x, filter, attrs) : undefined;
  if (gemm !== undefined && g !== undefined) {
    const xs = x as TensorInfo;
    const w = filter as TensorInfo;
    // Few output channels (SRGAN G's 9x9 32 -> 3): the kernel columns on the product's output side.
    const y = suitsShiftedOutput(g) ? shiftedOutputConv(backend, gemm, xs, w, g) : undefined;
    if (y !== undefined) return y;
    if (options.always || suitsGemm(g.batch * g.outH * g.outW, g.kH * g.kW * g.inC, g.outC)) {
      return convolve(
        backend,
        gemm,
        xs,
        w,
        g,
        options.maxPatchElements ?? DEFAULT_MAX_PATCH_ELEMENTS,
        options.winograd ?? true,
      );
    }
  }
  return stockKernel(Conv2D, 'Conv2D').kernelFunc({
    inputs,
    backend,
    attrs: attrs as unknown as NamedAttrMap,
  }) as TensorInfo;
}

/**
 * The convolution's geometry where this kernel can compute it (NHWC, float32, no dilation), else
 * undefined.
 */
function plainGeometry(x: TensorInfo, filter: TensorInfo, attrs: Conv2DAttrs): ConvGeometry | undefined {
  if (x.dtype !== 'float32' || filter.dtype !== 'float32') return undefined;
  if (x.shape.length !== 4 || filter.shape.length !== 4) return undefined;
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') return undefined;
  const dilations = attrs.dilations ?? 1;
  if (!(dilations === 1 || (Array.isArray(dilations) && dilations.every((d) => d === 1)))) return undefined;
  let info: backend_util.Conv2DInfo;
  try {
    info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      'channelsLast',
    );
  } catch {
    return undefined; // the stock kernel reports the error
  }
  return info.inChannels === x.shape[3] ? convGeometry(info) : undefined;
}

/**
 * The input gradient of a stride-1 convolution `g` describes, as the forward convolution of dy with the
 * filter flipped in space and with its channels swapped, padded by KH - 1 - padTop above and
 * KW - 1 - padLeft on the left (im2col + Gantry's product): dx[b, iy, ix, ci] = sum over taps of
 * dy[b, iy + padTop - kh, ix + padLeft - kw, :] . filter[kh, kw, ci, :]. Undefined where Gantry's product
 * is not available or the convolution is strided. Returns dx [B, inH, inW, inC]; the caller owns it.
 */
export function stride1InputGradient(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
): TensorInfo | undefined {
  const gemm = gemmFor(backend);
  if (gemm === undefined || g.strideH !== 1 || g.strideW !== 1) return undefined;
  const { kH, kW, inC, outC } = g;
  const flipped = backend.makeOutput([kH, kW, outC, inC], 'float32');
  try {
    const w = backend.typedArrayFromHeap(filter) as Float32Array;
    const f = backend.typedArrayFromHeap(flipped) as Float32Array;
    for (let kh = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        const src = (kh * kW + kw) * inC * outC;
        const dst = ((kH - 1 - kh) * kW + (kW - 1 - kw)) * outC * inC;
        for (let ci = 0; ci < inC; ci++) {
          for (let co = 0; co < outC; co++) f[dst + co * inC + ci] = w[src + ci * outC + co] as number;
        }
      }
    }
    const back = flippedGeometry(g);
    // Few input channels (SRGAN D's first conv, 3x3 3 <- 32): the flipped conv has few output channels.
    const y = suitsShiftedOutput(back) ? shiftedOutputConv(backend, gemm, dy, flipped, back) : undefined;
    if (y !== undefined) return y;
    return convolve(backend, gemm, dy, flipped, back, DEFAULT_MAX_PATCH_ELEMENTS, true);
  } finally {
    backend.disposeData(flipped.dataId);
  }
}

/** The forward convolution of dy that computes the input gradient of stride-1 `g` (see stride1InputGradient). */
function flippedGeometry(g: ConvGeometry): ConvGeometry {
  return {
    batch: g.batch,
    inH: g.outH,
    inW: g.outW,
    inC: g.outC,
    outH: g.inH,
    outW: g.inW,
    outC: g.inC,
    kH: g.kH,
    kW: g.kW,
    strideH: 1,
    strideW: 1,
    padTop: g.kH - 1 - g.padTop,
    padLeft: g.kW - 1 - g.padLeft,
  };
}

/**
 * Whether the input gradient of `g` (stride 1) goes to conv-shifted-output.ts as its flipped forward
 * conv: few input channels for many output channels (SRGAN D's first conv, dy [16,64,64,32] -> dx 3
 * channels: 10.1 ms by GEMM and col2im, 6.1 ms so; [16,32,32,32] -> 3 2.5 -> 1.6 ms; medians of 9).
 */
export function inputGradientSuitsShiftedOutput(g: ConvGeometry): boolean {
  if (g.strideH !== 1 || g.strideW !== 1) return false;
  const back = flippedGeometry(g);
  // A forward pad past KH - 1 (or KW - 1) on any side makes the flipped conv's negative: col2im's then.
  const padBottom = back.outH + back.kH - 1 - back.inH - back.padTop;
  const padRight = back.outW + back.kW - 1 - back.inW - back.padLeft;
  if (back.padTop < 0 || back.padLeft < 0 || padBottom < 0 || padRight < 0) return false;
  return suitsShiftedOutput(back);
}

function convolve(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  maxPatchElements: number,
  winograd: boolean,
): TensorInfo {
  if (winograd && suitsWinograd(g)) {
    const y = winogradConv(backend, gemm, x, filter, g);
    if (y !== undefined) return y;
  }
  if (winograd && suitsSpaceToDepth(g)) {
    const y = spaceToDepthConv(backend, gemm, x, filter, g);
    if (y !== undefined) return y;
  }
  const depth = g.kH * g.kW * g.inC;
  const rows = g.batch * g.outH * g.outW;
  const out = backend.makeOutput([g.batch, g.outH, g.outW, g.outC], 'float32');
  const pointwise = isPointwise(g);
  // A pointwise convolution multiplies x itself; any other gathers its windows into patches, in chunks.
  const chunk = pointwise ? rows : Math.max(1, Math.min(rows, Math.floor(maxPatchElements / depth)));
  const patches = pointwise ? undefined : backend.makeOutput([chunk, depth], 'float32');
  try {
    gemm.reserve(g.outC);
    // Byte offsets, taken after every allocation; they stay valid if the heap grows.
    const filterPtr = heapPtr(backend, filter);
    const outPtr = heapPtr(backend, out);
    for (let row0 = 0; row0 < rows; row0 += chunk) {
      const count = Math.min(chunk, rows - row0);
      if (patches && !im2colWasm(backend, patches, x, g, row0, count))
        im2col(backend, patches, x, g, row0, count);
      gemm.multiply(
        count,
        depth,
        g.outC,
        {
          ptr: patches ? heapPtr(backend, patches) : heapPtr(backend, x),
          rowStride: 4 * depth,
          colStride: 4,
        },
        { ptr: filterPtr, rowStride: 4 * g.outC, colStride: 4 },
        { ptr: outPtr + 4 * row0 * g.outC, rowStride: 4 * g.outC },
      );
    }
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    if (patches) backend.disposeData(patches.dataId);
  }
  return out;
}

/** Kernel config to register with tfjs for the wasm backend, in place of the stock one. */
export const conv2DConfig: KernelConfig = {
  kernelName: Conv2D,
  backendName: 'wasm',
  setupFunc: stockSetup(Conv2D),
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: ((args: Conv2DArgs) => conv2D(args)) as unknown as KernelFunc,
};
