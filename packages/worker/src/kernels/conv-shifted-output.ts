import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { type Gemm, heapPtr } from './gemm/index.ts';
import { TILE_ROWS } from './gemm/wat.ts';

/** The most output channels {@link suitsShiftedOutput} takes: past a GEMM tile's 8, im2col fills the tiles. */
export const SHIFTED_OUTPUT_MAX_OUT_CHANNELS = 7;

/** The fewest input channels {@link suitsShiftedOutput} takes: CI is each kernel row's depth. */
export const SHIFTED_OUTPUT_MIN_IN_CHANNELS = 8;

/** Output rows of one image per chunk: the chunk's [rows * Wg, KW*CO] sums stay in L1/L2 across the kh. */
export const SHIFTED_OUTPUT_CHUNK_ROWS = 8;

/**
 * The least estimated work ratio for which {@link suitsShiftedOutput} takes a convolution: XNNPACK does
 * KH*KW*CI multiply-adds per output pixel and 8 output channels (it pads CO to 8), this kernel KH*CI per
 * padded column of KW*CO, times Wg/OW for the grid's padding columns; the estimate is their ratio. This
 * kernel's multiply-adds measured 1.2-1.5x cheaper than XNNPACK's, hence a threshold under 1.
 */
export const SHIFTED_OUTPUT_MIN_ESTIMATE = 0.8;

/** Options of {@link shiftedOutputConv}. */
export interface ShiftedOutputOptions {
  /** @default SHIFTED_OUTPUT_CHUNK_ROWS */
  chunkRows?: number;
  /**
   * Compute any stride-1 convolution with 1-8 output channels, not only those {@link suitsShiftedOutput}
   * expects a gain on (tests, measurements).
   */
  always?: boolean;
}

/**
 * Whether {@link shiftedOutputConv} is expected to beat XNNPACK on this convolution: stride 1, at most 7
 * output channels, at least 8 input channels, a kernel at least 3x3, and an estimate of
 * {@link SHIFTED_OUTPUT_MIN_ESTIMATE} or more. Measured (one core, 7-21 calls alternating with XNNPACK,
 * medians; batch 16, 'same'), XNNPACK against this: 64x64x32 9x9 -> 3 (SRGAN G's last conv) 74 / 27 ms,
 * -> 1 75 / 15, -> 5 74 / 38, -> 7 74 / 52; 64x64x64 9x9 -> 3 151 / 56; 64x64x8 9x9 -> 3 20.8 / 7.4;
 * 16x16x32 9x9 -> 3 6.4 / 2.4; 8x8x32 9x9 -> 3 1.3 / 0.9; 32x32x32 7x7 -> 7 11.9 / 9.8; 16x16x32 5x5 -> 3
 * 1.6 / 0.7; 64x64x8 5x5 -> 3 6.3 / 2.6; 32x32x32 3x3 -> 3 2.2 / 1.3; 16x16x32 3x3 -> 3 0.6 / 0.3;
 * 8x8x64 3x3 -> 3 0.3 / 0.2 ms; declined: [32,4,4,64] 3x3 -> 3 (estimate 0.6) 0.15 / 0.26 ms, 1x1 kernels
 * ([16,32,32,16] -> 3 0.2 / 0.3 ms), 3x1 ([16,64,64,16] -> 1 1.7 / 1.9 ms), 1x3 (even).
 */
export function suitsShiftedOutput(g: ConvGeometry): boolean {
  if (!supported(g) || g.outC > SHIFTED_OUTPUT_MAX_OUT_CHANNELS || g.inC < SHIFTED_OUTPUT_MIN_IN_CHANNELS)
    return false;
  if (g.kH < 3 || g.kW < 3) return false;
  const { wg, ld } = layout(g);
  return (8 * g.kW * g.outW) / (ld * wg) >= SHIFTED_OUTPUT_MIN_ESTIMATE;
}

/** What the kernel computes at all: stride 1, 1-8 output channels (shiftedReduce's two vectors). */
function supported(g: ConvGeometry): boolean {
  return (
    g.strideH === 1 &&
    g.strideW === 1 &&
    g.outC >= 1 &&
    g.outC <= 8 &&
    g.inC >= 1 &&
    g.kH >= 1 &&
    g.kW >= 1 &&
    g.batch * g.outH * g.outW > 0
  );
}

/**
 * The grid's width Wg (Wp = OW + KW - 1 rounded up to a whole number of the product's 5-row tiles, so
 * that each kernel row's rows are whole packed blocks) and the sums' row length ld (KW*CO rounded up to
 * whole 8-column panels).
 */
function layout(g: ConvGeometry): { wg: number; ld: number } {
  return {
    wg: Math.ceil((g.outW + g.kW - 1) / TILE_ROWS) * TILE_ROWS,
    ld: 8 * Math.ceil((g.kW * g.outC) / 8),
  };
}

/**
 * Forward stride-1 convolution with few output channels (SRGAN G's last conv, 9x9 32 -> 3), with the
 * kernel columns moved to the product's output side, as the filter gradient does in
 * conv-padded-grid.ts (filterGradShiftedDy). x is copied into a zero-padded grid xp [B, Hp, Wg, CI]
 * (Hp = OH + KH - 1, Wg >= OW + KW - 1 (see {@link layout}), x's pixel (0, 0) at (padTop, padLeft)). On
 * the grid's flat positions p,
 *   Y[p][kw*CO + co] = sum_kh sum_ci xp[p + kh*Wg][ci] W[kh][kw][ci][co],
 * i.e. per kh a product [P, CI] @ [CI, KW*CO] with the filter slice of that kh reorganised to
 * [CI, KW*CO], its columns zero-padded to whole 8-column panels (27 -> 32); then
 *   y[b, oy, ox, co] = sum_kw Y[(b*Hp + oy)*Wg + ox + kw][kw*CO + co].
 * Every Y row an output row needs lies in that output row's own grid row, so the work goes in chunks of
 * output rows (the grid's KH - 1 padding rows per image are never computed), each in two wasm calls
 * (gemm/wat.ts): `shiftedConv` packs the chunk's grid rows into 5-row blocks once for all KH kernel rows
 * (Wg a multiple of 5 makes kernel row kh's blocks whole blocks kh*Wg/5 further on) and sums each 5x8
 * tile's KH products in registers; `shiftedReduce` sums the kernel columns back in SIMD. im2col's
 * product would be [B*OH*OW, KH*KW*CI] @ [KH*KW*CI, CO]: 3 of a tile's 8 columns.
 * Returns y [B, OH, OW, CO] (the caller owns it), or undefined where the shape does not suit
 * ({@link suitsShiftedOutput}; with `always`, any stride-1 convolution with 1-8 output channels).
 */
export function shiftedOutputConv(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  options: ShiftedOutputOptions = {},
): TensorInfo | undefined {
  if (!(options.always ? supported(g) : suitsShiftedOutput(g))) return undefined;
  return packedConv(backend, gemm, x, filter, g, options.chunkRows ?? SHIFTED_OUTPUT_CHUNK_ROWS);
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
  const { wg, ld } = layout(g);
  const panels = ld / 8;
  const chunk = Math.max(1, Math.min(outH, Math.floor(chunkRows)));
  const xp = backend.makeOutput([batch, hp, wg, inC], 'float32');
  const bp = backend.makeOutput([panels, kH, inC, 8], 'float32');
  // 8 floats of slack: shiftedReduce reads whole vectors past the columns it sums.
  const sums = backend.makeOutput([chunk * wg * ld + 8], 'float32');
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
    const yPtr = heapPtr(backend, out);
    for (let b = 0; b < batch; b++) {
      for (let oy0 = 0; oy0 < outH; oy0 += chunk) {
        const rows = Math.min(chunk, outH - oy0);
        operands.x = xpPtr + 4 * (b * hp + oy0) * wg * inC;
        operands.blocks = (rows * wg) / TILE_ROWS;
        gemm.shiftedConv(operands);
        gemm.shiftedReduce(
          operands.y,
          yPtr + 4 * (b * outH + oy0) * outW * outC,
          rows,
          wg,
          ld,
          outW,
          outC,
          kW,
        );
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
