import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type {
  KernelConfig,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs-core';

/** Kernel names of the fused layer norm, forward and gradient (registered for wasm only). */
export const LAYER_NORM = 'GantryLayerNorm';
export const LAYER_NORM_GRAD = 'GantryLayerNormGrad';

/** Arguments of the kernel functions, as tfjs passes them; attrs: `{ eps }`. */
interface Args {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: NamedAttrMap;
}

/**
 * Mean and 1/sigma of each row of c elements, as the composite form computes them: the mean, then the mean
 * of the squared deviations (two passes, in float64).
 */
function rowStats(xs: Float32Array, row: number, c: number, eps: number): { mean: number; rstd: number } {
  let sum = 0;
  for (let j = 0; j < c; j++) sum += xs[row + j]!;
  const mean = sum / c;
  let sq = 0;
  for (let j = 0; j < c; j++) {
    const d = xs[row + j]! - mean;
    sq += d * d;
  }
  return { mean, rstd: 1 / Math.sqrt(sq / c + eps) };
}

/**
 * Layer normalisation (Ba et al., 2016) over the last axis with gain and bias, y = (x - mean) / sigma *
 * gamma + beta, one row at a time: the composite form is nine wasm kernels and five temporaries.
 */
export function layerNorm({ inputs, backend, attrs }: Args): TensorInfo {
  const { x, gamma, beta } = inputs as { x: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
  const eps = attrs.eps as number;
  const c = x.shape[x.shape.length - 1] ?? 1;
  const out = backend.makeOutput(x.shape, 'float32');
  // Views after the allocation: a heap growth detaches older ones.
  const xs = backend.typedArrayFromHeap(x) as Float32Array;
  const g = backend.typedArrayFromHeap(gamma);
  const b = backend.typedArrayFromHeap(beta);
  const ys = backend.typedArrayFromHeap(out);
  for (let row = 0; row < xs.length; row += c) {
    const { mean, rstd } = rowStats(xs, row, c, eps);
    for (let j = 0; j < c; j++) ys[row + j] = (xs[row + j]! - mean) * rstd * g[j]! + b[j]!;
  }
  return out;
}

/**
 * The gradient of {@link layerNorm} from its input x, gamma and dy, x-hat and 1/sigma recomputed per row:
 * g = dy * gamma, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), dgamma = sum(dy * xhat) and
 * dbeta = sum(dy) over the rows. Three outputs: dx, dgamma, dbeta.
 */
export function layerNormGrad({ inputs, backend, attrs }: Args): TensorInfo[] {
  const { x, gamma, dy } = inputs as { x: TensorInfo; gamma: TensorInfo; dy: TensorInfo };
  const eps = attrs.eps as number;
  const c = x.shape[x.shape.length - 1] ?? 1;
  const dx = backend.makeOutput(x.shape, 'float32');
  const dGamma = backend.makeOutput([c], 'float32');
  const dBeta = backend.makeOutput([c], 'float32');
  const xs = backend.typedArrayFromHeap(x) as Float32Array;
  const g = backend.typedArrayFromHeap(gamma);
  const dys = backend.typedArrayFromHeap(dy);
  const dxs = backend.typedArrayFromHeap(dx);
  const sumG = new Float64Array(c);
  const sumB = new Float64Array(c);
  const xhat = new Float64Array(c);
  for (let row = 0; row < xs.length; row += c) {
    const { mean, rstd } = rowStats(xs, row, c, eps);
    let mg = 0;
    let mgx = 0;
    for (let j = 0; j < c; j++) {
      const h = (xs[row + j]! - mean) * rstd;
      const d = dys[row + j]!;
      const gj = d * g[j]!;
      xhat[j] = h;
      mg += gj;
      mgx += gj * h;
      sumG[j] = sumG[j]! + d * h;
      sumB[j] = sumB[j]! + d;
    }
    mg /= c;
    mgx /= c;
    for (let j = 0; j < c; j++) dxs[row + j] = rstd * (dys[row + j]! * g[j]! - mg - xhat[j]! * mgx);
  }
  backend.typedArrayFromHeap(dGamma).set(sumG);
  backend.typedArrayFromHeap(dBeta).set(sumB);
  return [dx, dGamma, dBeta];
}

// tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
export const layerNormConfig: KernelConfig = {
  kernelName: LAYER_NORM,
  backendName: 'wasm',
  kernelFunc: layerNorm as unknown as KernelFunc,
};
export const layerNormGradConfig: KernelConfig = {
  kernelName: LAYER_NORM_GRAD,
  backendName: 'wasm',
  kernelFunc: layerNormGrad as unknown as KernelFunc,
};
