import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { type Gemm, heapPtr } from './gemm/index.ts';

/**
 * The most output channels for which {@link filterGradPaddedGrid} turns the product to dy^T @ x, CO as its
 * rows: below a GEMM tile's 8 columns, patches^T @ dy wastes most of each tile.
 */
export const PADDED_GRID_MAX_OUT_CHANNELS = 7;

/**
 * Whether {@link filterGradPaddedGrid} computes this filter gradient: stride 1 and either few output
 * channels (any size), or a large image (32x32 and up) of 8-32 channels each side, where saving the
 * patches outweighs the grid's padding and the KH products. Measured (one core, 9 calls alternating,
 * min): [16,64,64,8] 3x3 -> 8: 9.1 -> 4.0 ms, -> 16: 19.0 -> 10.7 ms; [16,32,32,16] -> 16: 4.4 -> 2.9
 * ms; [16,64,64,32] -> 32: 54 -> 45 ms; but [16,16,16,32] -> 32 2.9 / 2.8, [16,8,8,64] -> 64 2.3 / 3.0,
 * [16,32,32,32] -> 128 33 / 38, [16,64,64,3] -> 32 6.1 / 6.5 ms, which stay with im2col.
 */
export function suitsPaddedGrid(g: ConvGeometry): boolean {
  if (g.strideH !== 1 || g.strideW !== 1 || g.batch * g.outH * g.outW === 0) return false;
  if (g.outC <= PADDED_GRID_MAX_OUT_CHANNELS) return g.kW * g.inC >= 8;
  return g.outH * g.outW >= 1024 && g.inC >= 8 && g.inC <= 32 && g.outC <= 32;
}

/**
 * Filter gradient of a stride-1 convolution without im2col. x is copied into a zero-padded grid
 * xp [B, Hp, Wp, CI] (Hp = OH + KH - 1, Wp = OW + KW - 1) and dy into the same grid (zeros past OH, OW).
 * On the grid's flat positions q, the window of output q at tap row kh is the KW*CI contiguous floats of
 * xp from position q + kh*Wp, so for each kh one product, the positions as its depth, with xp itself read
 * with a row stride of CI floats:
 *   few output channels and CI >= 8: dy shifted instead of x ({@link filterGradShiftedDy});
 *   few output channels, fewer CI:   dW[kh]^T [CO, KW*CI] = dyp^T [CO, Q] @ xs_kh [Q, KW*CI] (then transposed);
 *   more:                            dW[kh]   [KW*CI, CO] = xs_kh^T @ dyp [Q, CO], in place.
 * No patches matrix (SRGAN G's last conv, 9x9 32 -> 3 at 64 px: 170M floats of them). The grid's padding
 * costs (Hp*Wp)/(OH*OW) - 1 of extra multiply-adds (6% at 64 px, 27% at 16 px for 3x3). Returns
 * dW [KH, KW, CI, CO]; the caller owns it.
 */
export function filterGradPaddedGrid(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
): TensorInfo {
  if (g.outC <= PADDED_GRID_MAX_OUT_CHANNELS && g.inC >= SHIFTED_DY_MIN_IN_CHANNELS) {
    return filterGradShiftedDy(backend, gemm, x, dy, g);
  }
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, padTop, padLeft } = g;
  const { hp, wp, positions } = paddedGrid(g);
  const row = kW * inC;
  const taps = kH * row;
  const xp = backend.makeOutput([batch, hp, wp, inC], 'float32');
  const dyp = backend.makeOutput([batch, hp, wp, outC], 'float32');
  const wide = outC > PADDED_GRID_MAX_OUT_CHANNELS;
  // The narrow product's [CO, taps] result, transposed into dW at the end.
  const prod = wide ? undefined : backend.makeOutput([outC, taps], 'float32');
  const dw = backend.makeOutput([kH, kW, inC, outC], 'float32');
  try {
    gemm.reserve(Math.max(row, outC));
    padInto(backend, xp, x, { batch, h: inH, w: inW, c: inC, hp, wp, top: padTop, left: padLeft });
    padInto(backend, dyp, dy, { batch, h: outH, w: outW, c: outC, hp, wp, top: 0, left: 0 });
    const xpPtr = heapPtr(backend, xp);
    const dypPtr = heapPtr(backend, dyp);
    const dwPtr = heapPtr(backend, dw);
    if (prod === undefined) {
      for (let kh = 0; kh < kH; kh++) {
        gemm.multiply(
          row,
          positions,
          outC,
          { ptr: xpPtr + 4 * kh * wp * inC, rowStride: 4, colStride: 4 * inC },
          { ptr: dypPtr, rowStride: 4 * outC, colStride: 4 },
          { ptr: dwPtr + 4 * kh * row * outC, rowStride: 4 * outC },
        );
      }
      return dw;
    }
    const prodPtr = heapPtr(backend, prod);
    for (let kh = 0; kh < kH; kh++) {
      gemm.multiply(
        outC,
        positions,
        row,
        { ptr: dypPtr, rowStride: 4, colStride: 4 * outC },
        { ptr: xpPtr + 4 * kh * wp * inC, rowStride: 4 * inC, colStride: 4 },
        { ptr: prodPtr + 4 * kh * row, rowStride: 4 * taps },
      );
    }
    const out = backend.typedArrayFromHeap(dw) as Float32Array;
    const p = backend.typedArrayFromHeap(prod) as Float32Array;
    for (let co = 0; co < outC; co++) {
      for (let t = 0, o = co; t < taps; t++, o += outC) out[o] = p[co * taps + t] as number;
    }
    return dw;
  } catch (err) {
    backend.disposeData(dw.dataId);
    throw err;
  } finally {
    backend.disposeData(xp.dataId);
    backend.disposeData(dyp.dataId);
    if (prod !== undefined) backend.disposeData(prod.dataId);
  }
}

/**
 * The fewest input channels for which a filter gradient with few output channels is computed with the
 * shifted dy ({@link filterGradShiftedDy}): CI becomes the product's columns, which must fill an 8-column
 * panel (below it, the [CO, P] @ [P, KW*CI] orientation).
 */
export const SHIFTED_DY_MIN_IN_CHANNELS = 8;

/**
 * The padded grid's height and width, and its positions: the last grid position with a real output, plus
 * one (every tap of every position before it lies inside the grid).
 */
function paddedGrid(g: ConvGeometry): { hp: number; wp: number; positions: number } {
  const hp = g.outH + g.kH - 1;
  const wp = g.outW + g.kW - 1;
  return { hp, wp, positions: (g.batch - 1) * hp * wp + (g.outH - 1) * wp + g.outW };
}

/**
 * The filter gradient of a stride-1 convolution with few output channels (CO <= 7) and CI >= 8, with the
 * kernel columns moved from x to dy so that neither side of the products is a handful of channels wide.
 * On the padded grid (see {@link filterGradPaddedGrid}), with p = q + kw:
 *   dW[kh][kw][ci][co] = sum_q xp[q + kh*Wp + kw][ci] dy[q][co] = sum_p xp[p + kh*Wp][ci] D[p][kw*CO + co],
 * where D [P, KW*CO] holds dy shifted by kw positions in its kw-th column block (zeros where q falls
 * outside the real outputs). For each kh and each image one product, that image's positions as its depth:
 *   T[kh] [KW*CO, CI] += D_b^T [KW*CO, P_b] @ xp_kh,b [P_b, CI],
 * then dW[kh][kw][ci][co] = T[kh][kw*CO + co][ci]. SRGAN G's last conv (9x9, 32 -> 3 at 64 px): 27 rows
 * and CI = 32 columns, 90% of the 5x8 tiles' lanes useful, both operands packed by vectors (D^T is A
 * transposed, xp row-major); the transposed orientation xp_kh^T @ D (32 rows, 27 columns) used 77% and
 * packed xp's row 4 of each block float by float. P_b stops at the image's last real output plus KW - 1:
 * the grid's last KH - 1 rows of each image hold no dy (64 px: 11% of the depth).
 * Measured (one core, [16,64,64,32] x [16,64,64,3] -> [9,9,32,3], medians of 9 in one process): 57 ms
 * with xp_kh^T @ D over all positions, 47 ms with D^T as the rows, 44 ms with the per-image depth.
 * Earlier, against im2col, in a profiled SRGAN pretraining step (batch 16, bench/profile-kernels.ts):
 * 142 -> 54 ms, the step 573 -> 461 ms.
 */
function filterGradShiftedDy(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
): TensorInfo {
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, padTop, padLeft } = g;
  const { hp, wp, positions } = paddedGrid(g);
  const cols = kW * outC;
  const depth = positions + kW - 1;
  const xp = backend.makeOutput([batch, hp, wp, inC], 'float32');
  const shifted = backend.makeOutput([depth, cols], 'float32');
  const t = backend.makeOutput([kH, cols, inC], 'float32');
  const dw = backend.makeOutput([kH, kW, inC, outC], 'float32');
  try {
    gemm.reserve(inC);
    padInto(backend, xp, x, { batch, h: inH, w: inW, c: inC, hp, wp, top: padTop, left: padLeft });
    const d = backend.typedArrayFromHeap(shifted) as Float32Array;
    const src = backend.typedArrayFromHeap(dy) as Float32Array;
    d.fill(0);
    for (let b = 0, s = 0; b < batch; b++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++, s += outC) {
          const q = (b * hp + oy) * wp + ox;
          for (let kw = 0; kw < kW; kw++) {
            const o = (q + kw) * cols + kw * outC;
            for (let co = 0; co < outC; co++) d[o + co] = src[s + co] as number;
          }
        }
      }
    }
    const xpPtr = heapPtr(backend, xp);
    const dPtr = heapPtr(backend, shifted);
    const tPtr = heapPtr(backend, t);
    // Image b's rows of D: from its grid's first position to its last real output's, plus KW - 1.
    const imageDepth = (outH - 1) * wp + outW + kW - 1;
    for (let kh = 0; kh < kH; kh++) {
      for (let b = 0; b < batch; b++) {
        const p0 = b * hp * wp;
        gemm.multiply(
          cols,
          imageDepth,
          inC,
          { ptr: dPtr + 4 * p0 * cols, rowStride: 4, colStride: 4 * cols },
          { ptr: xpPtr + 4 * (p0 + kh * wp) * inC, rowStride: 4 * inC, colStride: 4 },
          { ptr: tPtr + 4 * kh * cols * inC, rowStride: 4 * inC },
          b > 0,
        );
      }
    }
    const out = backend.typedArrayFromHeap(dw) as Float32Array;
    const tv = backend.typedArrayFromHeap(t) as Float32Array;
    for (let kh = 0, o = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        for (let ci = 0; ci < inC; ci++) {
          const from = (kh * cols + kw * outC) * inC + ci;
          for (let co = 0; co < outC; co++) out[o++] = tv[from + co * inC] as number;
        }
      }
    }
    return dw;
  } catch (err) {
    backend.disposeData(dw.dataId);
    throw err;
  } finally {
    backend.disposeData(xp.dataId);
    backend.disposeData(shifted.dataId);
    backend.disposeData(t.dataId);
  }
}

/** Where an image [batch, h, w, c] goes in a zero grid [batch, hp, wp, c]: its pixel (0, 0) at (top, left). */
export interface Placement {
  batch: number;
  h: number;
  w: number;
  c: number;
  hp: number;
  wp: number;
  top: number;
  left: number;
}

/**
 * Copies `src` into `grid` at the placement, clipping what falls outside the grid, and zeroes the rest of
 * `grid` (its floats past the images' grids too: conv-shifted-output.ts reads a block of slack there).
 * Only the zeros are written, not the whole grid first.
 */
export function padInto(backend: BackendWasm, grid: TensorInfo, src: TensorInfo, p: Placement): void {
  const gridView = backend.typedArrayFromHeap(grid) as Float32Array;
  const heap = new Float32Array(gridView.buffer);
  // Unsigned shifts: byte offsets past 2 GiB would turn negative with `>> 2`.
  const gBase = gridView.byteOffset >>> 2;
  const sBase = (backend.typedArrayFromHeap(src) as Float32Array).byteOffset >>> 2;
  const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
  const col0 = clamp(p.left, 0, p.wp);
  const col1 = clamp(p.w + p.left, col0, p.wp);
  const row0 = clamp(p.top, 0, p.hp);
  const row1 = clamp(p.h + p.top, row0, p.hp);
  const rowFloats = p.wp * p.c;
  for (let b = 0; b < p.batch; b++) {
    const image = gBase + b * p.hp * rowFloats;
    heap.fill(0, image, image + row0 * rowFloats);
    for (let r = row0; r < row1; r++) {
      const row = image + r * rowFloats;
      heap.fill(0, row, row + col0 * p.c);
      const from = sBase + ((b * p.h + r - p.top) * p.w + col0 - p.left) * p.c;
      heap.copyWithin(row + col0 * p.c, from, from + (col1 - col0) * p.c);
      heap.fill(0, row + col1 * p.c, row + rowFloats);
    }
    heap.fill(0, image + row1 * rowFloats, image + p.hp * rowFloats);
  }
  heap.fill(0, gBase + p.batch * p.hp * rowFloats, gBase + gridView.length);
}
