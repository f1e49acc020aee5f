import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  BatchMatMul,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { backwardConvGeometry, type ConvGeometry, isPointwise } from './conv-geometry.ts';
import { filterGradPaddedGrid, suitsPaddedGrid } from './conv-padded-grid.ts';
import { spaceToDepthFilterGrad, suitsSpaceToDepth } from './conv-space-to-depth.ts';
import { type Gemm, gemmFor, heapPtr } from './gemm/index.ts';
import { im2col } from './im2col.ts';
import { im2colWasm } from './im2col-wasm.ts';
import { wasmKernel } from './wasm-kernel.ts';
import { suitsWinograd, winogradFilterGrad } from './winograd.ts';

/**
 * Floats in one chunk of the patches matrix. With Gantry's product (filterGradChunked) 1 MiB, multiplied
 * while still in L2 and added into dW: against one chunk of up to 64 MiB by BatchMatMul, medians of 7
 * alternating calls, DCGAN D's 4x4/2 64 -> 128 at 14 px 20.1 -> 16.9 ms, at 32 px 53.1 -> 45.7; SRGAN D's
 * 3x3/2 32 -> 32 at 64 px 10.3 -> 7.6. Without it (BatchMatMul, partial sums added in JS) 64 MiB.
 */
export const DEFAULT_MAX_PATCH_ELEMENTS = 256 * 1024;
const STOCK_MAX_PATCH_ELEMENTS = 16 * 1024 * 1024;

/** Arguments of the kernel function, as tfjs passes them. */
export interface Conv2DBackpropFilterArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: Conv2DBackpropFilterAttrs;
}

/**
 * Gradient of conv2d w.r.t. its filter for the wasm backend:
 * dW[KH*KW*CI, CO] = patches[B*OH*OW, KH*KW*CI]^T @ dy[B*OH*OW, CO], with the im2col matrix gathered by
 * whole window rows and the product done by the registered wasm BatchMatMul (ours: it transposes
 * patches, or computes dy^T @ patches, whichever is cheaper, and hands XNNPACK a plain product).
 * `maxPatchElements` bounds the size of patches; above it the output positions are processed in chunks
 * whose products are accumulated.
 *
 * Measured on the 2-core dev machine (single-threaded wasm with SIMD; per call in a DCGAN step, mean
 * of 4 profiled steps): patches^T written float by float from JS, then patches^T @ dy by the stock
 * BatchMatMul, against this:
 * - x [64,14,14,64], dy [64,7,7,128] (822 MFLOP): 61 ms, now 52 ms (the product itself is ~40 ms).
 * - x [64,28,28,1], dy [64,14,14,64] (26 MFLOP): 15.3 ms, now 5.8 ms (computed as dy^T @ patches).
 *
 * 4x4 stride-2 convolutions with channel counts in fours go to the space-to-depth and a 2x2 Winograd
 * filter gradient (conv-space-to-depth.ts: DCGAN D's 64 -> 128 at 14 px 17.0 -> 12.0 ms).
 * Stride-1 3x3 convolutions with channel counts in fours go to Winograd's transposed F(3x3, 4x4)
 * (winograd.ts: 2.3-3x faster than the paths below on ProGAN's and SRGAN's layers, 8.8 -> 3.4 ms on
 * ProGAN 32's [32,32,32,16] 16 -> 32).
 * Stride-1 convolutions with fewer than 8 output channels, or thin ones on large images (suitsPaddedGrid),
 * go where Gantry's product is available to {@link filterGradPaddedGrid} instead (no patches: products
 * on a zero-padded grid). Everything else with 8+ output channels, where Gantry's product is available,
 * goes to filterGradChunked: chunks of 1 MiB of patches, each multiplied by Gantry's product (patches
 * read transposed in place) and added into dW.
 */
export function conv2DBackpropFilter(args: Conv2DBackpropFilterArgs, maxPatchElements?: number): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { x, dy } = inputs;
  if (x === undefined || dy === undefined) {
    throw new Error('Conv2DBackpropFilter (wasm): inputs x and dy are required');
  }
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`Conv2DBackpropFilter (wasm): float32 only, got x ${x.dtype} and dy ${dy.dtype}`);
  }
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new Error(`Conv2DBackpropFilter (wasm): only NHWC is supported, got ${attrs.dataFormat}`);
  }
  const g = geometry(x, dy, attrs);
  const pointwise = isPointwise(g);
  if (pointwise) {
    const thin = pointwiseThin(backend, x, dy, g);
    if (thin !== undefined) return thin;
    // 1x1 (ProGAN's toRGB and fromRGB): x itself is the patches matrix; one product, no copies (3 -> 8
    // channels at 64 px: 2.5 ms through patches, 3.9 on the padded grid, 1.6 so).
    const rows = g.batch * g.outH * g.outW;
    const dw = wasmKernel(BatchMatMul, 'Conv2DBackpropFilter').kernelFunc({
      inputs: {
        a: { dataId: x.dataId, shape: [rows, g.inC], dtype: 'float32' },
        b: { dataId: dy.dataId, shape: [rows, g.outC], dtype: 'float32' },
      },
      backend,
      attrs: { transposeA: true, transposeB: false },
    }) as TensorInfo;
    return { dataId: dw.dataId, shape: [1, 1, g.inC, g.outC], dtype: 'float32' };
  }
  const gemm = gemmFor(backend);
  if (gemm !== undefined && suitsSpaceToDepth(g)) {
    const dw = spaceToDepthFilterGrad(backend, gemm, x, dy, g);
    if (dw !== undefined) return dw;
  }
  if (gemm !== undefined && suitsWinograd(g)) {
    const dw = winogradFilterGrad(backend, gemm, x, dy, g);
    if (dw !== undefined) return dw;
  }
  if (gemm !== undefined && suitsPaddedGrid(g)) return filterGradPaddedGrid(backend, gemm, x, dy, g);
  if (gemm !== undefined && g.outC >= 8) {
    return filterGradChunked(backend, gemm, x, dy, g, maxPatchElements ?? DEFAULT_MAX_PATCH_ELEMENTS);
  }
  const matMul = wasmKernel(BatchMatMul, 'Conv2DBackpropFilter');

  const rows = g.kH * g.kW * g.inC;
  const totalCols = g.batch * g.outH * g.outW;
  const chunkCols = Math.max(
    1,
    Math.min(totalCols, Math.floor((maxPatchElements ?? STOCK_MAX_PATCH_ELEMENTS) / rows)),
  );

  let result: TensorInfo | undefined;
  try {
    for (let col0 = 0; col0 < totalCols; col0 += chunkCols) {
      const cols = Math.min(chunkCols, totalCols - col0);
      const partial = chunkProduct(backend, matMul, x, dy, g, col0, cols);
      if (result === undefined) {
        result = partial;
      } else {
        // Views are taken after every allocation: a heap growth detaches older ones.
        const acc = backend.typedArrayFromHeap(result);
        const add = backend.typedArrayFromHeap(partial);
        for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] as number) + (add[i] as number);
        backend.disposeData(partial.dataId);
      }
    }
  } catch (err) {
    if (result !== undefined) backend.disposeData(result.dataId);
    throw err;
  }
  if (result === undefined) {
    // Empty batch or empty output: the gradient is all zeros.
    const zeros = backend.makeOutput([...attrs.filterShape], 'float32');
    backend.typedArrayFromHeap(zeros).fill(0);
    return zeros;
  }
  // Same storage, [KH*KW*CI, CO] -> [KH, KW, CI, CO] (row order matches).
  return { dataId: result.dataId, shape: [g.kH, g.kW, g.inC, g.outC], dtype: 'float32' };
}

/**
 * A 1x1 filter gradient with at most 4 channels on one side and a multiple of 4 on the other (ProGAN's
 * fromRGB, 1 or 3 -> 8 / 16, and toRGB, 8 / 16 -> 1 or 3), as one pass over the positions with every sum
 * in registers (gemm/channel-passes-wat.ts, `pointwiseOuter`): the product x^T @ dy has 1-4 rows (or columns) there,
 * which the 5x8 tile packs float by float. Undefined for other shapes or without Gantry's module.
 * Measured (single calls, medians of 9, before and after in turn): [32,64,64,3] x [32,64,64,8] 1.47 ->
 * 0.36 ms, [32,32,32,3] x 16 2.15 -> 0.19, [32,32,32,16] x 3 2.03 -> 0.12, [32,64,64,8] x 3 1.28 -> 0.28.
 */
function pointwiseThin(
  backend: BackendWasm,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
): TensorInfo | undefined {
  const gemm = gemmFor(backend);
  if (gemm === undefined) return undefined;
  const { inC, outC } = g;
  const rows = g.batch * g.outH * g.outW;
  const fits = (few: number, many: number) => few <= 4 && many % 4 === 0 && few * (many / 4) <= 12;
  const direct = fits(inC, outC);
  if (!direct && !fits(outC, inC)) return undefined;
  const dw = backend.makeOutput([1, 1, inC, outC], 'float32');
  let sums: TensorInfo | undefined;
  try {
    sums = direct ? dw : backend.makeOutput([outC, inC], 'float32');
    const [a, lda, b, ldb, i, v] = direct
      ? [x, 4 * inC, dy, 4 * outC, inC, outC / 4]
      : [dy, 4 * outC, x, 4 * inC, outC, inC / 4];
    const ran = gemm.pointwiseOuter(
      i,
      v,
      heapPtr(backend, a),
      lda,
      heapPtr(backend, b),
      ldb,
      heapPtr(backend, sums),
      rows,
    );
    if (!ran) {
      backend.disposeData(dw.dataId);
      return undefined;
    }
    if (!direct) {
      const t = backend.typedArrayFromHeap(sums) as Float32Array;
      const out = backend.typedArrayFromHeap(dw) as Float32Array;
      for (let ci = 0; ci < inC; ci++)
        for (let co = 0; co < outC; co++) out[ci * outC + co] = t[co * inC + ci] as number;
    }
    return dw;
  } catch (err) {
    backend.disposeData(dw.dataId);
    throw err;
  } finally {
    if (!direct && sums !== undefined) backend.disposeData(sums.dataId);
  }
}

/**
 * dW [KH*KW*CI, CO] = sum over chunks of output positions of patches_chunk^T @ dy_chunk, through Gantry's
 * product directly: patches read transposed in place (column stride KH*KW*CI floats), dy's rows of the
 * chunk in place, each chunk's product added into dW.
 */
function filterGradChunked(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
  chunkElements: number,
): TensorInfo {
  const depth = g.kH * g.kW * g.inC;
  const total = g.batch * g.outH * g.outW;
  const chunk = Math.max(1, Math.min(total, Math.floor(chunkElements / depth)));
  const dw = backend.makeOutput([g.kH, g.kW, g.inC, g.outC], 'float32');
  const patches = backend.makeOutput([chunk, depth], 'float32');
  try {
    gemm.reserve(g.outC);
    if (total === 0) backend.typedArrayFromHeap(dw).fill(0);
    for (let col0 = 0; col0 < total; col0 += chunk) {
      const cols = Math.min(chunk, total - col0);
      if (!im2colWasm(backend, patches, x, g, col0, cols)) im2col(backend, patches, x, g, col0, cols);
      gemm.multiply(
        depth,
        cols,
        g.outC,
        { ptr: heapPtr(backend, patches), rowStride: 4, colStride: 4 * depth },
        { ptr: heapPtr(backend, dy) + 4 * col0 * g.outC, rowStride: 4 * g.outC, colStride: 4 },
        { ptr: heapPtr(backend, dw), rowStride: 4 * g.outC },
        col0 > 0,
      );
    }
  } catch (err) {
    backend.disposeData(dw.dataId);
    throw err;
  } finally {
    backend.disposeData(patches.dataId);
  }
  return dw;
}

/** patches^T @ dy for the output positions [col0, col0 + cols) of the flattened (b, oh, ow) axis. */
function chunkProduct(
  backend: BackendWasm,
  matMul: KernelConfig,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
  col0: number,
  cols: number,
): TensorInfo {
  const wholeDy = col0 === 0 && cols === g.batch * g.outH * g.outW;
  const patches = backend.makeOutput([cols, g.kH * g.kW * g.inC], 'float32');
  // The whole dy is used in place (BatchMatMul only reshapes it); a chunk needs its own copy.
  const dyChunk = wholeDy ? undefined : backend.makeOutput([cols, g.outC], 'float32');
  try {
    if (!im2colWasm(backend, patches, x, g, col0, cols)) im2col(backend, patches, x, g, col0, cols);
    if (dyChunk !== undefined) {
      const dyData = backend.typedArrayFromHeap(dy);
      backend.typedArrayFromHeap(dyChunk).set(dyData.subarray(col0 * g.outC, (col0 + cols) * g.outC));
    }
    const b: TensorInfo = dyChunk ?? { dataId: dy.dataId, shape: [cols, g.outC], dtype: 'float32' };
    return matMul.kernelFunc({
      inputs: { a: patches, b },
      backend,
      attrs: { transposeA: true, transposeB: false },
    }) as TensorInfo;
  } finally {
    backend.disposeData(patches.dataId);
    if (dyChunk !== undefined) backend.disposeData(dyChunk.dataId);
  }
}

function geometry(x: TensorInfo, dy: TensorInfo, attrs: Conv2DBackpropFilterAttrs): ConvGeometry {
  if (x.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`Conv2DBackpropFilter (wasm): x and dy must be rank 4, got ${x.shape} and ${dy.shape}`);
  }
  return backwardConvGeometry(
    'Conv2DBackpropFilter',
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs,
    dy.shape,
  );
}

/** Kernel config to register with tfjs for the wasm backend. */
export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: ((args: Conv2DBackpropFilterArgs) => conv2DBackpropFilter(args)) as unknown as KernelFunc,
};
