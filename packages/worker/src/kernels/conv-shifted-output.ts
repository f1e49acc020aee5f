import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { padInto } from './conv-padded-grid.ts';
import { type Gemm, heapPtr } from './gemm/index.ts';
import { TILE_ROWS } from './gemm/wat.ts';

/** The most output channels {@link suitsShiftedOutput} takes: past a GEMM tile's 8, im2col fills the tiles. */
export const SHIFTED_OUTPUT_MAX_OUT_CHANNELS = 7;

/** The fewest input channels {@link suitsShiftedOutput} takes: CI is each kernel row's depth. */
export const SHIFTED_OUTPUT_MIN_IN_CHANNELS = 8;

/** Output rows of one image per chunk: the chunk's [~rows * Wg, KW*CO] sums stay in cache (16: 143 KB for SRGAN). */
export const SHIFTED_OUTPUT_CHUNK_ROWS = 16;

/**
 * The least estimated work ratio for which {@link suitsShiftedOutput} takes a convolution: XNNPACK does
 * KH*KW*CI multiply-adds per output pixel and 8 output channels (it pads CO to 8), this kernel KH*CI per
 * padded column of KW*CO, times Wg/OW for the grid's padding columns; the estimate is their ratio. This
 * kernel's multiply-adds measured 1.2-1.5x cheaper than XNNPACK's, hence a threshold under 1.
 */
export const SHIFTED_OUTPUT_MIN_ESTIMATE = 0.8;

/** The narrowest output {@link suitsShiftedOutput} takes: on 4x4 images the fixed costs outweigh the gain. */
export const SHIFTED_OUTPUT_MIN_WIDTH = 8;

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
 * output channels, at least 8 input channels, a kernel at least 3x3, outputs at least
 * {@link SHIFTED_OUTPUT_MIN_WIDTH} wide, and an estimate of {@link SHIFTED_OUTPUT_MIN_ESTIMATE} or more.
 * Measured (one core, 9-21 calls alternating with XNNPACK, medians; batch 16, 'same'), XNNPACK against
 * this: 64x64x32 9x9 -> 3 (SRGAN G's last conv) 77 / 26 ms, -> 1 79 / 16, -> 5 85 / 41, -> 7 77 / 49;
 * 64x64x64 9x9 -> 3 ~150 / 51; 64x64x8 9x9 -> 3 20.3 / 7.0; 16x16x32 9x9 -> 3 4.8 / 2.1; 8x8x32 9x9 -> 3
 * 1.2 / 1.0; 32x32x32 7x7 -> 7 11.5 / 8.7; 16x16x32 5x5 -> 3 1.5 / 0.7; 64x64x8 5x5 -> 3 6.6 / 2.5;
 * 32x32x32 3x3 -> 3 2.3 / 1.5; 16x16x32 3x3 -> 3 0.6 / 0.5; 8x8x64 3x3 -> 3 0.3 / 0.25 ms. Declined:
 * [32,4,4,64] 3x3 -> 3 0.2 / 0.3 ms; 1x1 kernels ([16,32,32,16] -> 3 0.2 / 0.3 ms); 3x1 ([16,64,64,16]
 * -> 1 1.7 / 1.9 ms); 1x3 (even).
 */
export function suitsShiftedOutput(g: ConvGeometry): boolean {
  if (!supported(g) || g.outC > SHIFTED_OUTPUT_MAX_OUT_CHANNELS || g.inC < SHIFTED_OUTPUT_MIN_IN_CHANNELS)
    return false;
  if (g.kH < 3 || g.kW < 3 || g.outW < SHIFTED_OUTPUT_MIN_WIDTH) return false;
  const { wg, ld } = layout(g);
  return (8 * g.kW * g.outW) / (ld * wg) >= SHIFTED_OUTPUT_MIN_ESTIMATE;
}

/**
 * What the kernel computes at all: stride 1, 1-8 output channels (shiftedReduce's two vectors), and
 * padding of zero or more above and on the left (the grid puts x's row 0 at padTop: a negative one, as
 * the flipped conv of an input gradient with a pad past KH - 1 has, would write before the grid).
 */
function supported(g: ConvGeometry): boolean {
  return (
    g.strideH === 1 &&
    g.strideW === 1 &&
    g.padTop >= 0 &&
    g.padLeft >= 0 &&
    g.outC >= 1 &&
    g.outC <= 8 &&
    g.inC >= 1 &&
    g.kH >= 1 &&
    g.kW >= 1 &&
    g.batch * g.outH * g.outW > 0
  );
}

/**
 * The grid's layout: each row holds Z zero columns, then an image row (W columns), so Wg = W + Z; Z is
 * at least the left and the right padding (a window running past the right of its row reads the next
 * row's zeros, which serve as both rows' padding) and makes Wg a whole number of the product's 5-row
 * tiles, so that kernel row kh's rows are whole packed blocks kh*Wg/5 further on. ld: the sums' row
 * length, KW*CO rounded up to whole 8-column panels.
 */
function layout(g: ConvGeometry): { wg: number; zeros: number; ld: number } {
  const padRight = g.outW + g.kW - 1 - g.inW - g.padLeft;
  let zeros = Math.max(0, g.padLeft, padRight);
  zeros += (TILE_ROWS - ((g.inW + zeros) % TILE_ROWS)) % TILE_ROWS;
  return { wg: g.inW + zeros, zeros, ld: 8 * Math.ceil((g.kW * g.outC) / 8) };
}

/**
 * Forward stride-1 convolution with few output channels (SRGAN G's last conv, 9x9 32 -> 3), with the
 * kernel columns moved to the product's output side, as the filter gradient does in
 * conv-padded-grid.ts (filterGradShiftedDy). x is copied into a zero-padded grid xp of Hp = OH + KH - 1
 * rows per image (x's row 0 at padTop) of Wg positions (see {@link layout}: Z zeros, then an image row),
 * CI floats each. On the grid's flat positions p,
 *   Y[p][kw*CO + co] = sum_kh sum_ci xp[p + kh*Wg][ci] W[kh][kw][ci][co],
 * i.e. per kh a product [P, CI] @ [CI, KW*CO] with the filter slice of that kh reorganised to
 * [CI, KW*CO], its columns zero-padded to whole 8-column panels (27 -> 32); then, with q the grid
 * position of output (b, oy, ox)'s window, (b*Hp + oy)*Wg + Z - padLeft + ox,
 *   y[b, oy, ox, co] = sum_kw Y[q + kw][kw*CO + co].
 * The work goes in chunks of output rows of one image (the grid's KH - 1 padding rows are never
 * computed), each in two wasm calls (gemm/wat.ts): `shiftedConv` packs the chunk's grid rows into 5-row
 * blocks once for all KH kernel rows (Wg a multiple of 5 makes kernel row kh's blocks whole blocks
 * kh*Wg/5 further on) and sums each 5x8 tile's KH products in registers; `shiftedReduce` sums the
 * kernel columns back in SIMD. im2col's product would be [B*OH*OW, KH*KW*CI] @ [KH*KW*CI, CO]: 3 of a
 * tile's 8 columns.
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
  const { wg, zeros, ld } = layout(g);
  const panels = ld / 8;
  const chunk = Math.max(1, Math.min(outH, Math.floor(chunkRows)));
  // Y positions of a chunk of `rows` output rows: each output row's windows span OW + KW - 1 of them, from
  // its grid row's start + Z - padLeft; whole 5-row blocks.
  const blocksOf = (rows: number) => Math.ceil(((rows - 1) * wg + outW + kW - 1) / TILE_ROWS);
  const maxBlocks = blocksOf(chunk);
  const shift = wg / TILE_ROWS;
  // The last chunk's packed blocks run up to padRight + TILE_ROWS - 1 positions past its image's grid:
  // one more grid row (Wg >= padRight) and a block of slack after the last image.
  const xp = backend.makeOutput([(batch * hp + 1) * wg + TILE_ROWS, inC], 'float32');
  const bp = backend.makeOutput([panels, kH, inC, 8], 'float32');
  // 8 floats of slack: shiftedReduce reads whole vectors past the columns it sums.
  const sums = backend.makeOutput([maxBlocks * TILE_ROWS * ld + 8], 'float32');
  const ap = backend.makeOutput([(maxBlocks + (kH - 1) * shift) * TILE_ROWS, inC], 'float32');
  const out = backend.makeOutput([batch, outH, outW, outC], 'float32');
  try {
    // Each grid row: Z zeros, then the image row (Wg = W + Z); the slack after the last image zeroed too.
    padInto(backend, xp, x, { batch, h: inH, w: inW, c: inC, hp, wp: wg, top: padTop, left: zeros });
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
      shift,
      taps: kH,
      bp: heapPtr(backend, bp),
      panels,
      y: heapPtr(backend, sums),
      ap: heapPtr(backend, ap),
    };
    const yPtr = heapPtr(backend, out);
    const sum = { s: operands.y, y: 0, rows: 0, wg, ld, ow: outW, co: outC, kws: kW };
    for (let b = 0; b < batch; b++) {
      for (let oy0 = 0; oy0 < outH; oy0 += chunk) {
        const rows = Math.min(chunk, outH - oy0);
        operands.x = xpPtr + 4 * ((b * hp + oy0) * wg + zeros - padLeft) * inC;
        operands.blocks = blocksOf(rows);
        gemm.shiftedConv(operands);
        sum.y = yPtr + 4 * (b * outH + oy0) * outW * outC;
        sum.rows = rows;
        gemm.shiftedReduce(sum);
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
