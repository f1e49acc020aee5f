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
  leakyRelu,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  reshape,
  sum,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { leakyReluSlopeTimes } from '../gradients.ts';
import { gemmFor, heapPtr } from './gemm/index.ts';
import { channelRows, requireGemm } from './wasm-kernel.ts';

/** Name of Gantry's bias-then-LeakyRelu kernel (wasm only): leakyRelu(y + b) in one SIMD pass. */
export const BIAS_LEAKY_RELU = 'GantryBiasLeakyRelu';

/** Name of its gradient kernel (wasm only): dy and db from dz and the output in one SIMD pass. */
export const BIAS_LEAKY_RELU_GRAD = 'GantryBiasLeakyReluGrad';

interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs?: NamedAttrMap;
}

function biasLeakyReluKernel({ inputs, backend: wasm, attrs }: KernelArgs): TensorInfo {
  const { y, b } = inputs;
  if (y === undefined || b === undefined) throw new Error(`${BIAS_LEAKY_RELU} (wasm): needs y and b`);
  const gemm = requireGemm(wasm, BIAS_LEAKY_RELU);
  const { rows, c } = channelRows(y);
  const out = wasm.makeOutput([...y.shape], 'float32');
  gemm.biasLeakyRelu(heapPtr(wasm, y), heapPtr(wasm, b), heapPtr(wasm, out), rows, c, Number(attrs?.alpha));
  return out;
}

function biasLeakyReluGradKernel({ inputs, backend: wasm, attrs }: KernelArgs): TensorInfo[] {
  const { dz, out } = inputs;
  if (dz === undefined || out === undefined)
    throw new Error(`${BIAS_LEAKY_RELU_GRAD} (wasm): needs dz and out`);
  const gemm = requireGemm(wasm, BIAS_LEAKY_RELU_GRAD);
  const { rows, c } = channelRows(out);
  const dy = wasm.makeOutput([...out.shape], 'float32');
  const db = wasm.makeOutput([c], 'float32');
  gemm.biasLeakyReluGrad(
    heapPtr(wasm, dz),
    heapPtr(wasm, out),
    heapPtr(wasm, dy),
    heapPtr(wasm, db),
    rows,
    c,
    Number(attrs?.alpha),
  );
  return [dy, db];
}

/** Kernel configs of {@link BIAS_LEAKY_RELU} and {@link BIAS_LEAKY_RELU_GRAD} to register for wasm. */
export const biasLeakyReluConfig: KernelConfig = {
  kernelName: BIAS_LEAKY_RELU,
  backendName: 'wasm',
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: biasLeakyReluKernel as unknown as KernelFunc,
};

export const biasLeakyReluGradConfig: KernelConfig = {
  kernelName: BIAS_LEAKY_RELU_GRAD,
  backendName: 'wasm',
  kernelFunc: biasLeakyReluGradKernel as unknown as KernelFunc,
};

/** One differentiable op per slope (tf.customGrad closes over its attributes). */
const ops = new Map<number, (y: Tensor, b: Tensor) => Tensor>();

function opFor(alpha: number): (y: Tensor, b: Tensor) => Tensor {
  let op = ops.get(alpha);
  if (op === undefined) {
    op = customGrad((...args: (Tensor | GradSaveFunc)[]) => {
      const [y, b, save] = args as [Tensor, Tensor, GradSaveFunc];
      const out = engine().runKernel(BIAS_LEAKY_RELU, { y, b }, { alpha }) as Tensor;
      save([out]);
      return {
        value: out,
        gradFunc: (dz: Tensor | Tensor[], saved: Tensor[]) => {
          const [so] = saved as [Tensor];
          const d = dz as Tensor;
          if (engine().isTapeOn()) {
            // To be differentiated again (WGAN-GP's penalty): dz times the slope, an op of dz alone (its
            // derivative in the output is zero wherever it exists), and its sums over rows for b.
            const dy = leakyReluSlopeTimes(d, so, alpha);
            const axes = so.shape.slice(0, -1).map((_, i) => i);
            return [dy, reshape(sum(dy, axes), b.shape)];
          }
          return engine().runKernel(
            BIAS_LEAKY_RELU_GRAD,
            { dz: d, out: so },
            { alpha },
          ) as unknown as Tensor[];
        },
      };
    }) as (y: Tensor, b: Tensor) => Tensor;
    ops.set(alpha, op);
  }
  return op;
}

/**
 * leakyRelu(y + b, alpha) with b [C] over y [..., C]: the convolution layer's bias and activation (ProGAN's),
 * on wasm with Gantry's module one op with its own gradient, a SIMD pass each way (gemm/channel-passes-wat.ts) where Add
 * then LeakyRelu are two passes forward and LeakyRelu's gradient then the bias's Sum two back. The same
 * values as the two ops; b's gradient sums in row order. Where no tape records it (sampling, export) or
 * where it cannot run (another backend, no Gantry module, dtypes other than float32, channels not a
 * multiple of 4, a slope that is not positive: the gradient reads the sign off the output), the ops.
 * Where a tape records its gradient, that is ops too, differentiable again.
 */
export function biasLeakyRelu<T extends Tensor>(y: T, b: Tensor, alpha: number): T {
  const c = y.shape[y.rank - 1] ?? 0;
  const fused =
    engine().isTapeOn() &&
    getBackend() === 'wasm' &&
    gemmFor(backend() as BackendWasm) !== undefined &&
    y.dtype === 'float32' &&
    b.dtype === 'float32' &&
    b.rank === 1 &&
    b.size === c &&
    c > 0 &&
    c % 4 === 0 &&
    y.size > 0 &&
    alpha > 0;
  return (fused ? opFor(alpha)(y, b) : leakyRelu(add(y, b), alpha)) as T;
}
