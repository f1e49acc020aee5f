import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';

/** Shortest run of floats copied by copyWithin (a native call) rather than a JS loop. */
const MIN_COPY_RUN = 32;

/**
 * Writes the im2col matrix into `patches` [cols, KH*KW*CI]: row (b, oh, ow) - col0, column (kh, kw, ci)
 * holds x[b, oh*sh - padTop + kh, ow*sw - padLeft + kw, ci], or 0 where that lies in the padding.
 * A window row (kh fixed) is KW*CI contiguous floats in x and in the row, so each is one copyWithin
 * on the heap (native memmove) rather than a JS loop over floats.
 */
export function im2col(
  backend: BackendWasm,
  patches: TensorInfo,
  x: TensorInfo,
  g: ConvGeometry,
  col0: number,
  cols: number,
): void {
  const { inH, inW, inC, outH, outW, kH, kW, strideH, strideW, padTop, padLeft } = g;
  // One view of the whole heap; the tensors' element offsets into it.
  const patchView = backend.typedArrayFromHeap(patches) as Float32Array;
  const heap = new Float32Array(patchView.buffer);
  const xBase = (backend.typedArrayFromHeap(x) as Float32Array).byteOffset >>> 2;
  const windowRow = kW * inC;
  // Unsigned shifts: a heap past 2 GiB has byte offsets >= 2^31, which `>> 2` would make negative.
  let o = patchView.byteOffset >>> 2;
  let b = Math.floor(col0 / (outH * outW));
  let oh = Math.floor((col0 - b * outH * outW) / outW);
  let ow = col0 - (b * outH + oh) * outW;
  for (let j = 0; j < cols; j++) {
    const iw0 = ow * strideW - padLeft;
    // Taps inside the image along the width: kw in [kwLo, kwHi).
    const kwLo = Math.max(0, -iw0);
    const kwHi = Math.max(kwLo, Math.min(kW, inW - iw0));
    for (let kh = 0; kh < kH; kh++, o += windowRow) {
      const ih = oh * strideH - padTop + kh;
      if (ih < 0 || ih >= inH || kwHi === kwLo) {
        heap.fill(0, o, o + windowRow);
        continue;
      }
      if (kwLo > 0) heap.fill(0, o, o + kwLo * inC);
      const from = xBase + ((b * inH + ih) * inW + iw0 + kwLo) * inC;
      const count = (kwHi - kwLo) * inC;
      if (count >= MIN_COPY_RUN) {
        heap.copyWithin(o + kwLo * inC, from, from + count);
      } else {
        for (let i = 0, to = o + kwLo * inC; i < count; i++) heap[to + i] = heap[from + i] as number;
      }
      if (kwHi < kW) heap.fill(0, o + kwHi * inC, o + windowRow);
    }
    if (++ow === outW) {
      ow = 0;
      if (++oh === outH) {
        oh = 0;
        b++;
      }
    }
  }
}
