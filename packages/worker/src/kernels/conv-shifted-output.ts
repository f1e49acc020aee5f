import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { type Gemm, heapPtr } from './gemm/index.ts';
import { TILE_ROWS } from './gemm/wat.ts';

/** The most output channels {@link shiftedOutputConv} takes: past a GEMM tile's 8, im2col fills the tiles. */
export const SHIFTED_OUTPUT_MAX_OUT_CHANNELS = 7;

/** The fewest input channels {@link shiftedOutputConv} takes: CI is each product's whole depth. */
export const SHIFTED_OUTPUT_MIN_IN_CHANNELS = 8;

/** Output rows of one image per chunk: the chunk's [rows * Wp, KW*CO] sums stay in L1/L2 across the kh. */
export const SHIFTED_OUTPUT_CHUNK_ROWS = 8;

/**
 * The least estimated gain over XNNPACK for which {@link suitsShiftedOutput} takes a convolution: XNNPACK's
 * work is KH*KW*CI multiply-adds per 8 output channels (it pads CO to 8), this kernel's KH*CI per padded
 * column of KW*CO, times Wp/OW for the grid's padding columns; the estimate is their ratio.
 */
export const SHIFTED_OUTPUT_MIN_GAIN = 1.2;

/** Options of {@link shiftedOutputConv}. */
export interface ShiftedOutputOptions {
  /** @default SHIFTED_OUTPUT_CHUNK_ROWS */
  chunkRows?: number;
  /** Which driver (comparison only). */
  method?: 'packed' | 'gemm';
  /** Compute any stride-1 convolution, not only those {@link suitsShiftedOutput} expects a gain on (tests). */
  always?: boolean;
}

/**
 * Whether {@link shiftedOutputConv} is expected to beat XNNPACK on this convolution: stride 1, at most 7
 * output channels, at least 8 input channels, a kernel at least 5 wide, and an estimated gain of
 * {@link SHIFTED_OUTPUT_MIN_GAIN}. Measured (one core, 7 calls alternating with XNNPACK, medians; batch
 * 16, 'same'), XNNPACK against this: 64x64x32 9x9 -> 3 74 / 36 ms, -> 1 75 / 20, -> 4 75 / 43, -> 5 74 / 51,
 * -> 7 75 / 66 ms (estimate 1.0: declined); 64x64x64 -> 3 149 / 65; 64x64x8 -> 3 19.6 / 11.1; 16x16x32 9x9
 * -> 3 4.7 / 2.7; 8x8x32 9x9 -> 3 1.2 / 1.0 (estimate 1.1: declined); 16x16x32 5x5 -> 3 1.5 / 1.0;
 * 64x64x8 5x5 -> 3 6.3 / 4.4; 32x32x16 5x5 -> 5 3.0 / 2.8 (1.1: declined), 32x32x32 7x7 -> 7 11.5 / 12.0;
 * 3x3 kernels gain little or lose (the per-kh products are only CI deep): 32x32x32 -> 3 2.2 / 1.9,
 * 64x64x8 -> 3 2.6 / 2.9, 8x8x64 -> 3 0.3 / 0.3 ms.
 */
export function suitsShiftedOutput(g: ConvGeometry): boolean {
  if (!stride1(g) || g.outC > SHIFTED_OUTPUT_MAX_OUT_CHANNELS || g.inC < SHIFTED_OUTPUT_MIN_IN_CHANNELS)
    return false;
  if (g.kW < 5) return false;
  const padded = Math.ceil((g.kW * g.outC) / 8) * 8;
  const gain = (8 * g.kW * g.outW) / (padded * (g.outW + g.kW - 1));
  return gain >= SHIFTED_OUTPUT_MIN_GAIN;
}

function stride1(g: ConvGeometry): boolean {
  return g.strideH === 1 && g.strideW === 1 && g.outC >= 1 && g.batch * g.outH * g.outW > 0;
}

/**
 * Forward stride-1 convolution with few output channels (SRGAN G's last conv, 9x9 32 -> 3), with the
 * kernel columns moved to the product's output side, as the filter gradient does in
 * conv-padded-grid.ts (filterGradShiftedDy). x is copied into a zero-padded grid xp [B, Hp, Wp, CI]
 * (Hp = OH + KH - 1, Wp = OW + KW - 1, x's pixel (0, 0) at (padTop, padLeft)). On the grid's flat
 * positions p, for each kh one product of depth CI accumulates into
 *   Y[p][kw*CO + co] = sum_kh sum_ci xp[p + kh*Wp][ci] W[kh][kw][ci][co]   ([P, CI] @ [CI, KW*CO]),
 * the filter slice of each kh reorganised to [CI, KW*CO] with its columns zero-padded to a multiple of 8
 * (27 -> 32) so the GEMM's tiles are whole; then
 *   y[b, oy, ox, co] = sum_kw Y[(b*Hp + oy)*Wp + ox + kw][kw*CO + co].
 * Every Y row an output row needs lies in that output row's own grid row, so the work goes in chunks of
 * output rows whose Y stays in cache across the KH products, and the grid's KH - 1 padding rows per image
 * are never computed. im2col's product is [B*OH*OW, KH*KW*CI] @ [KH*KW*CI, CO]: 3 of a tile's 8 columns.
 * Returns y [B, OH, OW, CO] (the caller owns it), or undefined where the shape does not suit
 * ({@link suitsShiftedOutput}; with `always`, any stride-1 convolution).
 */
export function shiftedOutputConv(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  options: ShiftedOutputOptions = {},
): TensorInfo | undefined {
  if (!(options.always ? stride1(g) : suitsShiftedOutput(g))) return undefined;
  const chunkRows = options.chunkRows ?? SHIFTED_OUTPUT_CHUNK_ROWS;
  if (options.method !== 'gemm') return packedConv(backend, gemm, x, filter, g, chunkRows);
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, padTop, padLeft } = g;
  const hp = outH + kH - 1;
  const wp = outW + kW - 1;
  const cols = kW * outC;
  const ld = Math.ceil(cols / 8) * 8;
  const chunk = Math.max(1, Math.min(outH, Math.floor(chunkRows)));
  const xp = backend.makeOutput([batch, hp, wp, inC], 'float32');
  const wr = backend.makeOutput([kH, inC, ld], 'float32');
  const sums = backend.makeOutput([chunk * wp, ld], 'float32');
  const out = backend.makeOutput([batch, outH, outW, outC], 'float32');
  try {
    gemm.reserve(ld);
    // Views taken after every allocation (a growing heap detaches them).
    padGrid(backend, xp, x, { batch, h: inH, w: inW, c: inC, hp, wp, top: padTop, left: padLeft });
    const w = backend.typedArrayFromHeap(filter) as Float32Array;
    const r = backend.typedArrayFromHeap(wr) as Float32Array;
    r.fill(0);
    for (let kh = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        for (let ci = 0; ci < inC; ci++) {
          const src = ((kh * kW + kw) * inC + ci) * outC;
          const dst = (kh * inC + ci) * ld + kw * outC;
          for (let co = 0; co < outC; co++) r[dst + co] = w[src + co] as number;
        }
      }
    }
    const xpPtr = heapPtr(backend, xp);
    const wrPtr = heapPtr(backend, wr);
    const sumsPtr = heapPtr(backend, sums);
    const y = backend.typedArrayFromHeap(out) as Float32Array;
    const s = backend.typedArrayFromHeap(sums) as Float32Array;
    for (let b = 0; b < batch; b++) {
      for (let oy0 = 0; oy0 < outH; oy0 += chunk) {
        const rows = Math.min(chunk, outH - oy0);
        const p0 = (b * hp + oy0) * wp;
        for (let kh = 0; kh < kH; kh++) {
          gemm.multiply(
            rows * wp,
            inC,
            ld,
            { ptr: xpPtr + 4 * (p0 + kh * wp) * inC, rowStride: 4 * inC, colStride: 4 },
            { ptr: wrPtr + 4 * kh * inC * ld, rowStride: 4 * ld, colStride: 4 },
            { ptr: sumsPtr, rowStride: 4 * ld },
            kh > 0,
          );
        }
        reduceColumns(s, y, rows, wp, ld, outW, outC, kW, (b * outH + oy0) * outW * outC);
      }
    }
    return out;
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    backend.disposeData(xp.dataId);
    backend.disposeData(wr.dataId);
    backend.disposeData(sums.dataId);
  }
}

function packedConv(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  chunkRows: number,
): TensorInfo {
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, padTop, padLeft } = g;
  const hp = outH + kH - 1;
  // The grid's width a whole number of tiles, so each kernel row's rows are whole packed blocks.
  const wg = Math.ceil((outW + kW - 1) / TILE_ROWS) * TILE_ROWS;
  const cols = kW * outC;
  const panels = Math.ceil(cols / 8);
  const ld = 8 * panels;
  const chunk = Math.max(1, Math.min(outH, Math.floor(chunkRows)));
  const xp = backend.makeOutput([batch, hp, wg, inC], 'float32');
  const bp = backend.makeOutput([panels, kH, inC, 8], 'float32');
  const sums = backend.makeOutput([chunk * wg, ld], 'float32');
  const ap = backend.makeOutput([(chunk + kH - 1) * wg, inC], 'float32');
  const out = backend.makeOutput([batch, outH, outW, outC], 'float32');
  try {
    padGrid(backend, xp, x, { batch, h: inH, w: inW, c: inC, hp, wp: wg, top: padTop, left: padLeft });
    const w = backend.typedArrayFromHeap(filter) as Float32Array;
    const r = backend.typedArrayFromHeap(bp) as Float32Array;
    r.fill(0);
    for (let kh = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        for (let ci = 0; ci < inC; ci++) {
          const src = ((kh * kW + kw) * inC + ci) * outC;
          for (let co = 0; co < outC; co++) {
            const c = kw * outC + co;
            r[(((c >> 3) * kH + kh) * inC + ci) * 8 + (c & 7)] = w[src + co] as number;
          }
        }
      }
    }
    const xpPtr = heapPtr(backend, xp);
    const operands = {
      x: 0,
      ci: inC,
      blocks: 0,
      shift: wg / TILE_ROWS,
      taps: kH,
      bp: heapPtr(backend, bp),
      panels,
      y: heapPtr(backend, sums),
      ap: heapPtr(backend, ap),
    };
    const y = backend.typedArrayFromHeap(out) as Float32Array;
    const s = backend.typedArrayFromHeap(sums) as Float32Array;
    for (let b = 0; b < batch; b++) {
      for (let oy0 = 0; oy0 < outH; oy0 += chunk) {
        const rows = Math.min(chunk, outH - oy0);
        operands.x = xpPtr + 4 * (b * hp + oy0) * wg * inC;
        operands.blocks = (rows * wg) / TILE_ROWS;
        gemm.shiftedConv(operands);
        reduceColumns(s, y, rows, wg, ld, outW, outC, kW, (b * outH + oy0) * outW * outC);
      }
    }
    return out;
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    backend.disposeData(xp.dataId);
    backend.disposeData(bp.dataId);
    backend.disposeData(sums.dataId);
    backend.disposeData(ap.dataId);
  }
}

/**
 * y[o + (oy*OW + ox)*CO + co] = sum_kw s[(oy*Wp + ox + kw)*ld + kw*CO + co] for the chunk's `rows` output
 * rows: the kernel columns' partial sums, each shifted back by its kw.
 */
function reduceColumns(
  s: Float32Array,
  y: Float32Array,
  rows: number,
  wp: number,
  ld: number,
  outW: number,
  outC: number,
  kW: number,
  o: number,
): void {
  const step = ld + outC;
  for (let oy = 0; oy < rows; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      const base = (oy * wp + ox) * ld;
      for (let co = 0; co < outC; co++) {
        let acc = 0;
        for (let kw = 0, i = base + co; kw < kW; kw++, i += step) acc += s[i] as number;
        y[o++] = acc;
      }
    }
  }
}

/** Where an image [batch, h, w, c] goes in a zero grid [batch, hp, wp, c]: its pixel (0, 0) at (top, left). */
interface Placement {
  batch: number;
  h: number;
  w: number;
  c: number;
  hp: number;
  wp: number;
  top: number;
  left: number;
}

/** Zero-fills `grid` and copies `src` into it at the placement, clipping what falls outside the grid. */
function padGrid(backend: BackendWasm, grid: TensorInfo, src: TensorInfo, p: Placement): void {
  const gridView = backend.typedArrayFromHeap(grid) as Float32Array;
  gridView.fill(0);
  const heap = new Float32Array(gridView.buffer);
  // Unsigned shifts: byte offsets past 2 GiB would turn negative with `>> 2`.
  const gBase = gridView.byteOffset >>> 2;
  const sBase = (backend.typedArrayFromHeap(src) as Float32Array).byteOffset >>> 2;
  const col0 = Math.max(0, p.left);
  const col1 = Math.min(p.wp, p.w + p.left);
  if (col1 <= col0) return;
  const run = (col1 - col0) * p.c;
  for (let b = 0; b < p.batch; b++) {
    for (let r = Math.max(0, p.top); r < Math.min(p.hp, p.h + p.top); r++) {
      const from = sBase + ((b * p.h + r - p.top) * p.w + col0 - p.left) * p.c;
      heap.copyWithin(gBase + ((b * p.hp + r) * p.wp + col0) * p.c, from, from + run);
    }
  }
}
