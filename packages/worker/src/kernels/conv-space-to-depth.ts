import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { type Gemm, heapPtr } from './gemm/index.ts';
import {
  F3X2,
  F4X2,
  spaceToDepthPasses,
  type WinogradVariant,
  winogradConv,
  winogradFilterGrad,
} from './winograd.ts';

/**
 * Stride-2 4x4 convolutions (the DCGAN and WGAN-GP discriminators' layers, and their transposed twins in
 * the generators) as stride-1 2x2 convolutions on a space-to-depth of the input, which Winograd's
 * F(4x4, 2x2) or F(3x3, 2x2) then computes (winograd.ts):
 *   y[b, oy, ox] = sum over a, b' in {0, 1} of xs[b, oy + a, ox + b'] . f2[a, b'],
 *   xs[b, sy, sx, (2p + q) CI + ci] = x[b, 2 sy + p - padTop, 2 sx + q - padLeft, ci]   (zero outside x),
 *   f2[a, b', (2p + q) CI + ci, co] = filter[2a + p, 2b' + q, ci, co],
 * with xs of Hs = OH + 1 rows and Ws = OW + 1 columns of 2x2 blocks. With F(4x4, 2x2) a 4x4 block of
 * outputs takes 25 products per channel pair of xs (4 CI channels: 100 per pair of x's), against 256
 * multiply-adds for the direct 4x4 convolution. The input gradient is the full correlation of dy with f2
 * flipped (a forward conv padded by one, to Hs x Ws) read back out of the blocks; the filter gradient the
 * transposed algorithm on xs and dy, unfolded back into 4x4.
 */

/**
 * The algorithm for 2x2 filters on an outH x outW output: F(4x4, 2x2) or F(3x3, 2x2), whichever computes
 * fewer products over its whole tiles (7 or 8 outputs: F(4x4), 17: F(3x3)); passes of 4 MiB of
 * transformed tiles (the products have 4x the channels of the unfolded convolution). Single calls on
 * [64,14,14,64] 4x4/2 -> 128, medians of 7 alternating: im2col 16.9 ms, F(3x3) 15.5, F(4x4) 12.2.
 */
function options(outH: number, outW: number): { variant: WinogradVariant; tileBytes: number } {
  const work = (v: WinogradVariant): number => Math.ceil(outH / v.m) * Math.ceil(outW / v.m) * v.alpha ** 2;
  return { variant: work(F4X2) <= work(F3X2) ? F4X2 : F3X2, tileBytes: 4 * 1024 * 1024 };
}

/** Whether the space-to-depth can compute `g`: 4x4 at stride 2, channel counts in fours, 8+ outputs. */
export function fitsSpaceToDepth(g: ConvGeometry): boolean {
  return (
    g.kH === 4 &&
    g.kW === 4 &&
    g.strideH === 2 &&
    g.strideW === 2 &&
    g.inC % 4 === 0 &&
    g.outC % 4 === 0 &&
    g.outC >= 8 &&
    g.outH >= 3 &&
    g.outW >= 3 &&
    g.padTop >= 0 &&
    g.padLeft >= 0
  );
}

/**
 * Whether `g` goes through the space-to-depth ({@link fitsSpaceToDepth}) rather than im2col: with enough
 * tiles to pay for the filter's transform (25 x 4 CI x CO floats a call). Single calls, medians of 7
 * alternating, against im2col / GEMM + col2im: [8,32,32,64] -> 128 forward 7.0 against 11.5 ms, but
 * [8,8,8,256] -> 256 (8 tiles) 12.9 against 6.4, and [64,8,8,256] -> 512's input gradient 148 against 110.
 */
export function suitsSpaceToDepth(g: ConvGeometry): boolean {
  return (
    fitsSpaceToDepth(g) &&
    g.batch * Math.ceil(g.outH / 4) * Math.ceil(g.outW / 4) >= 64 &&
    g.inC * g.outC <= 256 * 256
  );
}

/** The 2x2 stride-1 convolution on xs [B, OH + 1, OW + 1, 4 CI] that `g` becomes. */
function blockGeometry(g: ConvGeometry): ConvGeometry {
  return {
    batch: g.batch,
    inH: g.outH + 1,
    inW: g.outW + 1,
    inC: 4 * g.inC,
    outH: g.outH,
    outW: g.outW,
    outC: g.outC,
    kH: 2,
    kW: 2,
    strideH: 1,
    strideW: 1,
    padTop: 0,
    padLeft: 0,
  };
}

/** xs of x for `g` (the caller owns it), or undefined while the passes are not compiled. */
function spaceToDepth(backend: BackendWasm, x: TensorInfo, g: ConvGeometry): TensorInfo | undefined {
  const passes = spaceToDepthPasses(backend);
  if (passes === undefined) return undefined;
  const xs = backend.makeOutput([g.batch, g.outH + 1, g.outW + 1, 4 * g.inC], 'float32');
  passes.spaceToDepth(
    heapPtr(backend, x),
    heapPtr(backend, xs),
    g.batch,
    g.inH,
    g.inW,
    g.inC,
    g.outH + 1,
    g.outW + 1,
    g.padTop,
    g.padLeft,
  );
  return xs;
}

/**
 * f2 [2, 2, 4 CI, CO] of filter [4, 4, CI, CO]; with `flip`, the input gradient's filter instead:
 * [2, 2, CO, 4 CI], f2 turned by 180 degrees with its channel axes swapped.
 */
function foldFilter(backend: BackendWasm, filter: TensorInfo, g: ConvGeometry, flip: boolean): TensorInfo {
  const { inC, outC } = g;
  const plane = inC * outC;
  const out = backend.makeOutput(flip ? [2, 2, outC, 4 * inC] : [2, 2, 4 * inC, outC], 'float32');
  const w = backend.typedArrayFromHeap(filter) as Float32Array;
  const f = backend.typedArrayFromHeap(out) as Float32Array;
  for (let kh = 0; kh < 4; kh++) {
    for (let kw = 0; kw < 4; kw++) {
      const a = kh >> 1;
      const b = kw >> 1;
      const phase = 2 * (kh & 1) + (kw & 1);
      const src = (kh * 4 + kw) * plane;
      if (!flip) {
        // f2[a, b] is [4 CI, CO]; this tap's [CI, CO] is its phase-th block of rows.
        f.set(w.subarray(src, src + plane), (a * 2 + b) * 4 * plane + phase * plane);
        continue;
      }
      const dst = ((1 - a) * 2 + (1 - b)) * 4 * plane;
      for (let ci = 0; ci < inC; ci++) {
        for (let co = 0; co < outC; co++) {
          f[dst + co * 4 * inC + phase * inC + ci] = w[src + ci * outC + co] as number;
        }
      }
    }
  }
  return out;
}

/**
 * y = conv2d(x, filter) for a `g` that {@link fitsSpaceToDepth}; undefined while the passes are not
 * compiled.
 */
export function spaceToDepthConv(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
): TensorInfo | undefined {
  const xs = spaceToDepth(backend, x, g);
  if (xs === undefined) return undefined;
  const f2 = foldFilter(backend, filter, g, false);
  try {
    return winogradConv(backend, gemm, xs, f2, blockGeometry(g), options(g.outH, g.outW));
  } finally {
    backend.disposeData(xs.dataId);
    backend.disposeData(f2.dataId);
  }
}

/** dx [B, inH, inW, CI] of the convolution `g` from dy; undefined while the passes are not compiled. */
export function spaceToDepthInputGradient(
  backend: BackendWasm,
  gemm: Gemm,
  dy: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
): TensorInfo | undefined {
  const passes = spaceToDepthPasses(backend);
  if (passes === undefined) return undefined;
  const blocks = blockGeometry(g);
  // dxs = dy padded by one on every side, correlated with f2 flipped: the 2x2 convolution's input gradient.
  const back: ConvGeometry = {
    ...blocks,
    inH: g.outH,
    inW: g.outW,
    inC: g.outC,
    outH: blocks.inH,
    outW: blocks.inW,
    outC: blocks.inC,
    padTop: 1,
    padLeft: 1,
  };
  const flipped = foldFilter(backend, filter, g, true);
  let dxs: TensorInfo | undefined;
  try {
    dxs = winogradConv(backend, gemm, dy, flipped, back, options(back.outH, back.outW));
    if (dxs === undefined) return undefined;
    const dx = backend.makeOutput([g.batch, g.inH, g.inW, g.inC], 'float32');
    passes.depthToSpace(
      heapPtr(backend, dxs),
      heapPtr(backend, dx),
      g.batch,
      g.inH,
      g.inW,
      g.inC,
      blocks.inH,
      blocks.inW,
      g.padTop,
      g.padLeft,
    );
    return dx;
  } finally {
    backend.disposeData(flipped.dataId);
    if (dxs !== undefined) backend.disposeData(dxs.dataId);
  }
}

/** dW [4, 4, CI, CO] of the convolution `g` from x and dy; undefined while the passes are not compiled. */
export function spaceToDepthFilterGrad(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
): TensorInfo | undefined {
  const xs = spaceToDepth(backend, x, g);
  if (xs === undefined) return undefined;
  let d2: TensorInfo | undefined;
  try {
    d2 = winogradFilterGrad(backend, gemm, xs, dy, blockGeometry(g), options(g.outH, g.outW));
    if (d2 === undefined) return undefined;
    // Unfold [2, 2, 4 CI, CO] into [4, 4, CI, CO]: each tap's [CI, CO] is one block of rows.
    const plane = g.inC * g.outC;
    const dw = backend.makeOutput([4, 4, g.inC, g.outC], 'float32');
    const src = backend.typedArrayFromHeap(d2) as Float32Array;
    const dst = backend.typedArrayFromHeap(dw) as Float32Array;
    for (let kh = 0; kh < 4; kh++) {
      for (let kw = 0; kw < 4; kw++) {
        const from = ((kh >> 1) * 2 + (kw >> 1)) * 4 * plane + (2 * (kh & 1) + (kw & 1)) * plane;
        dst.set(src.subarray(from, from + plane), (kh * 4 + kw) * plane);
      }
    }
    return dw;
  } finally {
    backend.disposeData(xs.dataId);
    if (d2 !== undefined) backend.disposeData(d2.dataId);
  }
}
