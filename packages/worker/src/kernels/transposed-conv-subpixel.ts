import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { Conv2D, type TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { wasmKernel } from './wasm-kernel.ts';

/**
 * One stride phase along one axis: the result rows y = q*s + r - pad for q in [q0, q0 + count), which
 * are out[q - q0] = sum over j < taps of dy[q - j] * filter[r + s*j]: a stride-1 correlation of dy,
 * padded by `before` and `after`, with the `taps`-long sub-filter read backwards. q0 and the count are
 * widened where needed to keep both paddings non-negative; the rows this adds fall outside dx.
 */
interface Phase {
  r: number;
  taps: number;
  q0: number;
  count: number;
  before: number;
  after: number;
}

function phases(size: number, dySize: number, kernel: number, stride: number, pad: number): Phase[] {
  const out: Phase[] = [];
  for (let r = 0; r < stride; r++) {
    const taps = r < kernel ? Math.ceil((kernel - r) / stride) : 0;
    const q0 = Math.min(Math.ceil((pad - r) / stride), Math.max(taps - 1, 0));
    const q1 = Math.max(Math.floor((size - 1 + pad - r) / stride), dySize - 1);
    out.push({ r, taps, q0, count: q1 - q0 + 1, before: taps - 1 - q0, after: q1 + 1 - dySize });
  }
  return out;
}

/**
 * Transposed convolution (the input gradient of the forward convolution `g` describes) by sub-pixel
 * convolution (Shi et al., 2016, "Is the deconvolution layer the same as a convolutional layer?"): the
 * dx rows with (y + padTop) % s = r only see taps kh = r + s*j, so each of the s*s stride phases is a
 * stride-1 convolution of dy with a spatially flipped, channel-transposed sub-filter, run by the wasm
 * Conv2D kernel (XNNPACK) and interleaved into dx. Returns dx [B, inH, inW, inC]; the caller owns it.
 */
export function transposedConvSubPixel(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
): TensorInfo {
  const conv = wasmKernel(Conv2D, 'Conv2DBackpropInput');
  const rows = phases(g.inH, g.outH, g.kH, g.strideH, g.padTop);
  const cols = phases(g.inW, g.outW, g.kW, g.strideW, g.padLeft);
  let dx: TensorInfo | undefined;
  try {
    for (const py of rows) {
      for (const px of cols) {
        if (py.taps === 0 || px.taps === 0) continue;
        const sub = backend.makeOutput([py.taps, px.taps, g.outC, g.inC], 'float32');
        let out: TensorInfo;
        try {
          subFilterInto(
            backend.typedArrayFromHeap(sub) as Float32Array,
            backend.typedArrayFromHeap(filter) as Float32Array,
            g,
            py,
            px,
          );
          const pad = [
            [0, 0],
            [py.before, py.after],
            [px.before, px.after],
            [0, 0],
          ];
          out = conv.kernelFunc({
            inputs: { x: dy, filter: sub },
            backend,
            attrs: { strides: 1, pad, dataFormat: 'NHWC', dilations: 1 },
          }) as TensorInfo;
        } finally {
          backend.disposeData(sub.dataId);
        }
        const exact = g.strideH === 1 && g.strideW === 1 && py.q0 === g.padTop && px.q0 === g.padLeft;
        if (exact && py.count === g.inH && px.count === g.inW) return out;
        try {
          if (dx === undefined) {
            dx = backend.makeOutput([g.batch, g.inH, g.inW, g.inC], 'float32');
            // Phases without taps (stride > kernel) leave their rows and columns at zero.
            if (rows.some((p) => p.taps === 0) || cols.some((p) => p.taps === 0)) {
              backend.typedArrayFromHeap(dx).fill(0);
            }
          }
          interleave(
            backend.typedArrayFromHeap(dx) as Float32Array,
            backend.typedArrayFromHeap(out) as Float32Array,
            g,
            py,
            px,
          );
        } finally {
          backend.disposeData(out.dataId);
        }
      }
    }
  } catch (err) {
    if (dx !== undefined) backend.disposeData(dx.dataId);
    throw err;
  }
  if (dx === undefined) throw new Error('Conv2DBackpropInput (wasm): no stride phase has taps');
  return dx;
}

/** sub[ty, tx, co, ci] = filter[py.r + sh*(py.taps-1-ty), px.r + sw*(px.taps-1-tx), ci, co]. */
function subFilterInto(sub: Float32Array, filter: Float32Array, g: ConvGeometry, py: Phase, px: Phase): void {
  const { inC, outC, kW, strideH, strideW } = g;
  let o = 0;
  for (let ty = 0; ty < py.taps; ty++) {
    const kh = py.r + strideH * (py.taps - 1 - ty);
    for (let tx = 0; tx < px.taps; tx++, o += outC * inC) {
      const kw = px.r + strideW * (px.taps - 1 - tx);
      let f = (kh * kW + kw) * inC * outC;
      for (let ci = 0; ci < inC; ci++) {
        for (let co = 0, s = o + ci; co < outC; co++, s += inC) sub[s] = filter[f++] as number;
      }
    }
  }
}

/** Copies the phase result out [B, py.count, px.count, CI] to its rows and columns of dx. */
function interleave(dx: Float32Array, out: Float32Array, g: ConvGeometry, py: Phase, px: Phase): void {
  const { batch, inH, inW, inC, strideH, strideW, padTop, padLeft } = g;
  // Range of u with 0 <= (q0 + u)*s + r - pad < size, per axis.
  const first = (p: Phase, s: number, pad: number): number => Math.max(0, Math.ceil((pad - p.r) / s) - p.q0);
  const last = (p: Phase, s: number, pad: number, size: number): number =>
    Math.min(p.count, Math.floor((size - 1 + pad - p.r) / s) - p.q0 + 1);
  const uy0 = first(py, strideH, padTop);
  const uy1 = last(py, strideH, padTop, inH);
  const ux0 = first(px, strideW, padLeft);
  const ux1 = last(px, strideW, padLeft, inW);
  const xStep = strideW * inC;
  for (let b = 0; b < batch; b++) {
    for (let uy = uy0; uy < uy1; uy++) {
      const y = (py.q0 + uy) * strideH + py.r - padTop;
      let d = ((b * inH + y) * inW + (px.q0 + ux0) * strideW + px.r - padLeft) * inC;
      let s = ((b * py.count + uy) * px.count + ux0) * inC;
      for (let ux = ux0; ux < ux1; ux++, d += xStep - inC) {
        for (let c = 0; c < inC; c++) dx[d++] = out[s++] as number;
      }
    }
  }
}
