import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BatchMatMul, type KernelConfig, type TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { gemmFor } from './gemm/index.ts';
import { wasmKernel } from './wasm-kernel.ts';

/**
 * Transposed convolution (the input gradient of the forward convolution `g` describes) by GEMM + col2im:
 * cols[B*OH*OW, KH*KW*CI] = dy[B*OH*OW, CO] @ W'[CO, KH*KW*CI] (W' the filter, read transposed in place) by the wasm
 * BatchMatMul, then each row of cols is scatter-added into dx at its window. `maxColumnElements` bounds
 * the columns matrix; larger problems are split along the dy positions, each chunk adding into dx.
 * Returns dx [B, inH, inW, inC]; the caller owns it.
 */
export function transposedConvGemm(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  maxColumnElements: number,
): TensorInfo {
  const matMul = wasmKernel(BatchMatMul, 'Conv2DBackpropInput');
  const dx = backend.makeOutput([g.batch, g.inH, g.inW, g.inC], 'float32');
  backend.typedArrayFromHeap(dx).fill(0);
  const taps = g.kH * g.kW * g.inC;
  const totalRows = g.batch * g.outH * g.outW;
  // The filter [KH*KW*CI, CO] as B transposed, in place: the product packs it by SIMD transposes.
  const weights: TensorInfo = { dataId: filter.dataId, shape: [taps, g.outC], dtype: 'float32' };
  try {
    const chunkRows = Math.max(1, Math.min(totalRows, Math.floor(maxColumnElements / taps)));
    for (let row0 = 0; row0 < totalRows; row0 += chunkRows) {
      const rows = Math.min(chunkRows, totalRows - row0);
      const cols = chunkColumns(backend, matMul, dy, weights, g, row0, rows);
      try {
        col2im(col2imOperands(backend, dx, cols), g, row0, rows);
      } finally {
        backend.disposeData(cols.dataId);
      }
    }
  } catch (err) {
    backend.disposeData(dx.dataId);
    throw err;
  }
  return dx;
}

/** dy[rows starting at row0] @ W' -> [rows, KH*KW*CI]. */
function chunkColumns(
  backend: BackendWasm,
  matMul: KernelConfig,
  dy: TensorInfo,
  weights: TensorInfo,
  g: ConvGeometry,
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
      attrs: { transposeA: false, transposeB: true },
    }) as TensorInfo;
  } finally {
    if (dyChunk !== undefined) backend.disposeData(dyChunk.dataId);
  }
}

/** dx and the columns matrix of one chunk, and a SIMD adder of runs (element offsets) where there is one. */
interface Col2imOperands {
  dx: Float32Array;
  cols: Float32Array;
  /** dx[o + i] += cols[c + i] for i < count. */
  add?: (o: number, c: number, count: number) => void;
}

/** Shortest run added by the gemm module's SIMD loop (a call into wasm) rather than a JS loop. */
const MIN_WASM_RUN = 16;

/**
 * dx and cols as views (taken after every allocation: a heap growth detaches older ones), with the gemm
 * module's SIMD adder where Gantry's product is bound: the DCGAN layer's col2im (3.2M adds) took ~4 ms
 * of JS loop, ~1 ms this way.
 */
function col2imOperands(backend: BackendWasm, dx: TensorInfo, cols: TensorInfo): Col2imOperands {
  const out = backend.typedArrayFromHeap(dx) as Float32Array;
  const src = backend.typedArrayFromHeap(cols) as Float32Array;
  const gemm = gemmFor(backend);
  if (gemm === undefined) return { dx: out, cols: src };
  const dxPtr = out.byteOffset;
  const colsPtr = src.byteOffset;
  return { dx: out, cols: src, add: (o, c, count) => gemm.addInto(dxPtr + 4 * o, colsPtr + 4 * c, count) };
}

/**
 * Adds row (b, oy, ox) - row0 of cols, laid out (kh, kw, ci), into
 * dx[b, oy*sh - padTop + kh, ox*sw - padLeft + kw, :], skipping taps that fall in the padding.
 */
function col2im(operands: Col2imOperands, g: ConvGeometry, row0: number, rows: number): void {
  const { dx, cols, add } = operands;
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
    const run = (kwHi - kwLo) * inC;
    for (let kh = khLo; kh < khHi; kh++) {
      // (kw, ci) for consecutive kw are consecutive in both cols and dx: one contiguous run.
      let o = imageBase + (iy0 + kh) * rowStride + (ix0 + kwLo) * inC;
      let c = colBase + (kh * kW + kwLo) * inC;
      if (add !== undefined && run >= MIN_WASM_RUN) {
        add(o, c, run);
        continue;
      }
      for (const end = c + run; c < end; c++, o++) dx[o] = (dx[o] as number) + (cols[c] as number);
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
