import { backend_util, type Conv2DBackpropFilterAttrs } from '@tensorflow/tfjs-core';

/**
 * Geometry of one 2-D convolution in forward terms, NHWC: x [B, inH, inW, inC] * filter
 * [kH, kW, inC, outC] -> y [B, outH, outW, outC], y[b, oy, ox] = sum over taps of
 * x[b, oy*strideH - padTop + kh, ox*strideW - padLeft + kw] . filter[kh, kw]. The backward kernels
 * (input and filter gradients) describe their problem by the forward convolution they differentiate.
 */
export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

/** The fields of tfjs' own convolution info that our kernels use (dilation 1 only). */
export function convGeometry(info: backend_util.Conv2DInfo): ConvGeometry {
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/**
 * Geometry of the forward convolution x [inputShape] * filter [filterShape] that a backward kernel
 * differentiates, checking that its `dy` has that convolution's output shape.
 * @throws Error naming `kernel` when dy does not match.
 */
export function backwardConvGeometry(
  kernel: string,
  inputShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: Pick<Conv2DBackpropFilterAttrs, 'strides' | 'pad' | 'dimRoundingMode'>,
  dyShape: readonly number[],
): ConvGeometry {
  const info = backend_util.computeConv2DInfo(
    inputShape,
    filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const expected = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
  if (dyShape.some((d, i) => d !== expected[i])) {
    throw new Error(`${kernel} (wasm): dy shape ${dyShape} does not match expected ${expected}`);
  }
  return convGeometry(info);
}

/** Whether `g` is a 1x1 convolution at stride 1 without padding: x itself is its patches matrix. */
export function isPointwise(g: ConvGeometry): boolean {
  return (
    g.kH === 1 &&
    g.kW === 1 &&
    g.strideH === 1 &&
    g.strideW === 1 &&
    g.padTop === 0 &&
    g.padLeft === 0 &&
    g.outH === g.inH &&
    g.outW === g.inW
  );
}
