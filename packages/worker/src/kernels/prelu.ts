import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend,
  customGrad,
  engine,
  type GradSaveFunc,
  getBackend,
  greater,
  type KernelConfig,
  type KernelFunc,
  mul,
  type NamedTensorInfoMap,
  reshape,
  sum,
  type Tensor,
  type Tensor1D,
  type Tensor4D,
  type TensorInfo,
  where,
  zerosLike,
} from '@tensorflow/tfjs-core';
import { gemmFor, heapPtr } from './gemm/index.ts';
import { channelRows, requireGemm } from './wasm-kernel.ts';

/** Name of Gantry's PReLU kernel (wasm only): x > 0 ? x : alpha[c] * x in one SIMD pass. */
export const PRELU = 'GantryPrelu';

/** Name of Gantry's PReLU gradient kernel (wasm only): dx and dalpha in one SIMD pass. */
export const PRELU_GRAD = 'GantryPreluGrad';

interface PreluKernelArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
}

function preluKernel({ inputs, backend: wasm }: PreluKernelArgs): TensorInfo {
  const { x, alpha } = inputs;
  if (x === undefined || alpha === undefined) throw new Error(`${PRELU} (wasm): needs x and alpha`);
  const gemm = requireGemm(wasm, PRELU);
  const { rows, c } = channelRows(x);
  const out = wasm.makeOutput([...x.shape], 'float32');
  gemm.prelu(heapPtr(wasm, x), heapPtr(wasm, alpha), heapPtr(wasm, out), rows, c);
  return out;
}

function preluGradKernel({ inputs, backend: wasm }: PreluKernelArgs): TensorInfo[] {
  const { dy, x, alpha } = inputs;
  if (dy === undefined || x === undefined || alpha === undefined) {
    throw new Error(`${PRELU_GRAD} (wasm): needs dy, x and alpha`);
  }
  const gemm = requireGemm(wasm, PRELU_GRAD);
  const { rows, c } = channelRows(x);
  const dx = wasm.makeOutput([...x.shape], 'float32');
  const dalpha = wasm.makeOutput([c], 'float32');
  gemm.preluGrad(
    heapPtr(wasm, dy),
    heapPtr(wasm, x),
    heapPtr(wasm, alpha),
    heapPtr(wasm, dx),
    heapPtr(wasm, dalpha),
    rows,
    c,
  );
  return [dx, dalpha];
}

/** Kernel configs of {@link PRELU} and {@link PRELU_GRAD} to register with tfjs for the wasm backend. */
export const preluConfig: KernelConfig = {
  kernelName: PRELU,
  backendName: 'wasm',
  // tfjs passes the backend as `{}`; the engine guarantees these shapes.
  kernelFunc: preluKernel as unknown as KernelFunc,
};

export const preluGradConfig: KernelConfig = {
  kernelName: PRELU_GRAD,
  backendName: 'wasm',
  kernelFunc: preluGradKernel as unknown as KernelFunc,
};

/**
 * PReLU's gradients from tfjs ops (where the fused kernel cannot take them: a tape recording them to
 * differentiate again): dx = x > 0 ? dy : alpha * dy, dalpha = the sum over all but the channel axis
 * of (x > 0 ? 0 : dy * x).
 */
function preluGradOps(dy: Tensor, x: Tensor, alpha: Tensor): [Tensor, Tensor] {
  const positive = greater(x, 0);
  const dx = where(positive, dy, mul(dy, alpha));
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const dalpha = reshape(sum(where(positive, zerosLike(dy), mul(dy, x)), axes), alpha.shape);
  return [dx, dalpha];
}

/** The fused op: the kernels forward and back, the ops where a tape records its gradient. */
const preluOp = customGrad((...args: (Tensor | GradSaveFunc)[]) => {
  const [xt, at, save] = args as [Tensor, Tensor, GradSaveFunc];
  save([xt, at]);
  return {
    value: engine().runKernel(PRELU, { x: xt, alpha: at }) as Tensor,
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
      const [sx, sa] = saved as [Tensor, Tensor];
      const d = dy as Tensor;
      if (engine().isTapeOn()) return preluGradOps(d, sx, sa);
      return engine().runKernel(PRELU_GRAD, { dy: d, x: sx, alpha: sa }) as unknown as Tensor[];
    },
  };
}) as (x: Tensor4D, alpha: Tensor1D) => Tensor4D;

/**
 * PReLU (He et al., 2015), x > 0 ? x : alpha[c] * x with one slope per channel, as one op with its own
 * gradient, on wasm with Gantry's module: the forward pass and both gradients one SIMD pass each
 * (gemm/channel-passes-wat.ts), where relu(x) - alpha * relu(-x) costs 5 kernels forward and 9 back. Undefined where it
 * cannot run (another backend, no Gantry module, dtypes other than float32, a channel count that is not
 * a multiple of 4, or alpha not [C]): the caller then takes the tfjs ops. Same values as the ops'
 * (x > 0 ? x : alpha * x, exactly); the gradient at x = 0 is alpha * dy where relu's is 0 (a set of
 * measure zero), and dalpha's float32 sum runs in row order.
 */
export function fusedPrelu(x: Tensor4D, alpha: Tensor1D): Tensor4D | undefined {
  if (getBackend() !== 'wasm' || gemmFor(backend() as BackendWasm) === undefined) return undefined;
  const c = x.shape[3];
  if (x.dtype !== 'float32' || alpha.dtype !== 'float32' || c % 4 !== 0 || c === 0) return undefined;
  if (alpha.rank !== 1 || alpha.size !== c || x.size === 0) return undefined;
  return preluOp(x, alpha);
}
