import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  add,
  backend,
  customGrad,
  engine,
  type GradSaveFunc,
  getBackend,
  type KernelConfig,
  type KernelFunc,
  mean,
  mul,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  rsqrt,
  square,
  sub,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { gemmFor, heapPtr } from './gemm/index.ts';
import { channelRows, requireGemm } from './wasm-kernel.ts';

/** Name of Gantry's pixel norm kernel (wasm only): y and r = 1 / sqrt(mean(x^2) + eps) per pixel. */
export const PIXEL_NORM = 'GantryPixelNorm';

/** Name of Gantry's pixel norm gradient kernel (wasm only): dx from dy, x and the forward pass's r. */
export const PIXEL_NORM_GRAD = 'GantryPixelNormGrad';

interface PixelNormKernelArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs?: NamedAttrMap;
}

function pixelNormKernel({ inputs, backend: wasm, attrs }: PixelNormKernelArgs): TensorInfo[] {
  const { x } = inputs;
  if (x === undefined) throw new Error(`${PIXEL_NORM} (wasm): needs x`);
  const gemm = requireGemm(wasm, PIXEL_NORM);
  const { rows, c } = channelRows(x);
  const y = wasm.makeOutput([...x.shape], 'float32');
  const r = wasm.makeOutput([...x.shape.slice(0, -1), 1], 'float32');
  gemm.pixelNorm(heapPtr(wasm, x), heapPtr(wasm, y), heapPtr(wasm, r), rows, c, Number(attrs?.eps));
  return [y, r];
}

function pixelNormGradKernel({ inputs, backend: wasm }: PixelNormKernelArgs): TensorInfo {
  const { dy, x, r } = inputs;
  if (dy === undefined || x === undefined || r === undefined) {
    throw new Error(`${PIXEL_NORM_GRAD} (wasm): needs dy, x and r`);
  }
  const gemm = requireGemm(wasm, PIXEL_NORM_GRAD);
  const { rows, c } = channelRows(x);
  const dx = wasm.makeOutput([...x.shape], 'float32');
  gemm.pixelNormGrad(heapPtr(wasm, dy), heapPtr(wasm, x), heapPtr(wasm, r), heapPtr(wasm, dx), rows, c);
  return dx;
}

/** Kernel configs of {@link PIXEL_NORM} and {@link PIXEL_NORM_GRAD} to register with tfjs for wasm. */
export const pixelNormConfig: KernelConfig = {
  kernelName: PIXEL_NORM,
  backendName: 'wasm',
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: pixelNormKernel as unknown as KernelFunc,
};

export const pixelNormGradConfig: KernelConfig = {
  kernelName: PIXEL_NORM_GRAD,
  backendName: 'wasm',
  kernelFunc: pixelNormGradKernel as unknown as KernelFunc,
};

/**
 * The gradient's closed form as tfjs ops, for a tape that records it (to differentiate it again):
 * r dy - x r^3 mean(dy x), with r recomputed from x by ops so that its own dependence on x is recorded
 * too (the forward kernel's r is not on the tape).
 */
function pixelNormGradOps(dy: Tensor, x: Tensor, eps: number): Tensor {
  const r = rsqrt(add(mean(square(x), -1, true), eps));
  return sub(mul(r, dy), mul(mul(x, mul(r, mul(r, r))), mean(mul(dy, x), -1, true)));
}

/** One differentiable op per epsilon (tf.customGrad closes over its attributes). */
const ops = new Map<number, (x: Tensor) => Tensor>();

function opFor(eps: number): (x: Tensor) => Tensor {
  let op = ops.get(eps);
  if (op === undefined) {
    op = customGrad((...args: (Tensor | GradSaveFunc)[]) => {
      const [x, save] = args as [Tensor, GradSaveFunc];
      const [y, r] = engine().runKernel(PIXEL_NORM, { x }, { eps }) as unknown as [Tensor, Tensor];
      save([x, r]);
      return {
        value: y,
        gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
          const [sx, sr] = saved as [Tensor, Tensor];
          const d = dy as Tensor;
          if (engine().isTapeOn()) return pixelNormGradOps(d, sx, eps);
          return engine().runKernel(PIXEL_NORM_GRAD, { dy: d, x: sx, r: sr }) as Tensor;
        },
      };
    }) as (x: Tensor) => Tensor;
    ops.set(eps, op);
  }
  return op;
}

/**
 * ProGAN's pixel norm, x / sqrt(mean over channels of x^2 + eps), as one op with its own gradient while
 * a tape records it (training): a SIMD pass each way on wasm with Gantry's module (gemm/channel-passes-wat.ts), where
 * square, mean, add, rsqrt and multiply are 5 kernels forward and ~9 back. Undefined where it would not
 * help or cannot run: no tape (sampling, export: the ops are few forward and export as TensorFlow ops),
 * another backend, no Gantry module, dtypes other than float32, or channels not a multiple of 4. The
 * caller then takes the ops. Values within float32 rounding of the ops' (its mean is the sum over c).
 */
export function fusedPixelNorm<T extends Tensor>(x: T, eps: number): T | undefined {
  if (!engine().isTapeOn() || getBackend() !== 'wasm') return undefined;
  if (gemmFor(backend() as BackendWasm) === undefined) return undefined;
  const c = x.shape[x.rank - 1] ?? 0;
  if (x.dtype !== 'float32' || x.rank < 2 || c === 0 || c % 4 !== 0 || x.size === 0) return undefined;
  return opFor(eps)(x) as T;
}
