import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  BatchMatMul,
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { type ConvGeometry, convGeometry } from './conv-geometry.ts';
import { wasmKernel } from './wasm-kernel.ts';

/**
 * Upper bound on the number of floats in one patches matrix (64 MiB of wasm heap).
 * Larger problems are split along the output positions and the partial results summed.
 */
export const DEFAULT_MAX_PATCH_ELEMENTS = 16 * 1024 * 1024;

/** Arguments of the kernel function, as tfjs passes them. */
export interface Conv2DBackpropFilterArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: Conv2DBackpropFilterAttrs;
}

/**
 * Gradient of conv2d w.r.t. its filter for the wasm backend:
 * dW[KH*KW*CI, CO] = patchesT[KH*KW*CI, B*OH*OW] @ dy[B*OH*OW, CO], with the matmul done by the
 * wasm backend's own (XNNPACK) BatchMatMul. `maxPatchElements` bounds the size of patchesT; above it
 * the output positions are processed in chunks whose products are accumulated.
 */
export function conv2DBackpropFilter(
  args: Conv2DBackpropFilterArgs,
  maxPatchElements: number = DEFAULT_MAX_PATCH_ELEMENTS,
): TensorInfo {
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
  const matMul = wasmKernel(BatchMatMul, 'Conv2DBackpropFilter');

  const rows = g.kH * g.kW * g.inC;
  const totalCols = g.batch * g.outH * g.outW;
  const chunkCols = Math.max(1, Math.min(totalCols, Math.floor(maxPatchElements / rows)));

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

/** patchesT @ dy for the output positions [col0, col0 + cols) of the flattened (b, oh, ow) axis. */
function chunkProduct(
  backend: BackendWasm,
  matMul: KernelConfig,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
  col0: number,
  cols: number,
): TensorInfo {
  const rows = g.kH * g.kW * g.inC;
  const wholeDy = col0 === 0 && cols === g.batch * g.outH * g.outW;
  const patches = backend.makeOutput([rows, cols], 'float32');
  // The whole dy is used in place (BatchMatMul only reshapes it); a chunk needs its own copy.
  const dyChunk = wholeDy ? undefined : backend.makeOutput([cols, g.outC], 'float32');
  try {
    const xData = backend.typedArrayFromHeap(x) as Float32Array;
    fillPatchesT(backend.typedArrayFromHeap(patches) as Float32Array, xData, g, col0, cols);
    if (dyChunk !== undefined) {
      const dyData = backend.typedArrayFromHeap(dy);
      backend.typedArrayFromHeap(dyChunk).set(dyData.subarray(col0 * g.outC, (col0 + cols) * g.outC));
    }
    const b: TensorInfo = dyChunk ?? { dataId: dy.dataId, shape: [cols, g.outC], dtype: 'float32' };
    return matMul.kernelFunc({
      inputs: { a: patches, b },
      backend,
      attrs: { transposeA: false, transposeB: false },
    }) as TensorInfo;
  } finally {
    backend.disposeData(patches.dataId);
    if (dyChunk !== undefined) backend.disposeData(dyChunk.dataId);
  }
}

/**
 * Writes the transposed im2col matrix: row (kh, kw, ci), column (b, oh, ow) - col0 holds
 * x[b, oh*sh - padTop + kh, ow*sw - padLeft + kw, ci], or 0 where that lies in the padding.
 * Loops run (kh, kw) outermost so only CI output rows are live at a time.
 */
function fillPatchesT(out: Float32Array, x: Float32Array, g: ConvGeometry, col0: number, cols: number): void {
  const { inH, inW, inC, outH, outW, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const outHW = outH * outW;
  for (let kh = 0; kh < kH; kh++) {
    for (let kw = 0; kw < kW; kw++) {
      const rowBase = (kh * kW + kw) * inC * cols;
      for (let j = 0; j < cols; j++) {
        const col = col0 + j;
        const b = Math.floor(col / outHW);
        const rem = col - b * outHW;
        const oh = Math.floor(rem / outW);
        const ow = rem - oh * outW;
        const ih = oh * strideH - padTop + kh;
        const iw = ow * strideW - padLeft + kw;
        let o = rowBase + j;
        if (ih < 0 || ih >= inH || iw < 0 || iw >= inW) {
          for (let ci = 0; ci < inC; ci++, o += cols) out[o] = 0;
        } else {
          let xi = ((b * inH + ih) * inW + iw) * inC;
          for (let ci = 0; ci < inC; ci++, o += cols) out[o] = x[xi++] as number;
        }
      }
    }
  }
}

function geometry(x: TensorInfo, dy: TensorInfo, attrs: Conv2DBackpropFilterAttrs): ConvGeometry {
  if (x.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`Conv2DBackpropFilter (wasm): x and dy must be rank 4, got ${x.shape} and ${dy.shape}`);
  }
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const expected = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
  if (dy.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`Conv2DBackpropFilter (wasm): dy shape ${dy.shape} does not match expected ${expected}`);
  }
  return convGeometry(info);
}

/** Kernel config to register with tfjs for the wasm backend. */
export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: ((args: Conv2DBackpropFilterArgs) => conv2DBackpropFilter(args)) as unknown as KernelFunc,
};
