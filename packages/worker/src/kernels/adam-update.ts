import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { type AdamCoefficients, gemmFor, heapPtr } from './gemm/index.ts';

/** Name of the fused Adam kernel (Gantry's own; wasm only). */
export const ADAM_UPDATE = 'GantryAdamUpdate';

/** Arguments of the kernel function, as tfjs passes them. */
interface AdamUpdateArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: AdamCoefficients;
}

/**
 * One Adam step (Kingma & Ba, 2015) of a variable x with moments m, v and gradient g, all float32 of one
 * size, as one wasm kernel: [x', m', v'] in one SIMD pass of the gemm module (gemm/wat.ts) instead of the
 * 11 tfjs ops of optim/adam.ts (the same operations in the same float32 rounding). Measured on the 2-core
 * dev machine, DCGAN's 16 G and D variables: see optim/adam.ts.
 */
function adamUpdateKernel(args: AdamUpdateArgs): TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { x, m, v, g } = inputs;
  const gemm = gemmFor(backend);
  if (x === undefined || m === undefined || v === undefined || g === undefined || gemm === undefined) {
    throw new Error(`${ADAM_UPDATE} (wasm): needs x, m, v, g and Gantry's wasm module`);
  }
  const n = x.shape.reduce((a, b) => a * b, 1);
  const outs = [x, m, v].map((t) => backend.makeOutput([...t.shape], 'float32'));
  const [xo, mo, vo] = outs as [TensorInfo, TensorInfo, TensorInfo];
  // Byte offsets, taken after every allocation (they stay valid if the heap grows).
  gemm.adam(
    {
      x: heapPtr(backend, x),
      m: heapPtr(backend, m),
      v: heapPtr(backend, v),
      g: heapPtr(backend, g),
      xOut: heapPtr(backend, xo),
      mOut: heapPtr(backend, mo),
      vOut: heapPtr(backend, vo),
    },
    n,
    attrs,
  );
  return outs;
}

/** Kernel config to register with tfjs for the wasm backend. */
export const adamUpdateConfig: KernelConfig = {
  kernelName: ADAM_UPDATE,
  backendName: 'wasm',
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: adamUpdateKernel as unknown as KernelFunc,
};

/**
 * [x', m', v'] of one Adam step by the fused wasm kernel, or undefined where it cannot run (another
 * backend, no Gantry wasm module, a dtype other than float32, or sizes that differ): the caller then
 * takes the tfjs ops.
 */
export function fusedAdamUpdate(
  x: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  c: AdamCoefficients,
): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (tf.getBackend() !== 'wasm' || gemmFor(tf.backend() as BackendWasm) === undefined) return undefined;
  const all = [x, m, v, g];
  if (all.some((t) => t.dtype !== 'float32' || t.size !== x.size)) return undefined;
  return tf.engine().runKernel(ADAM_UPDATE, { x, m, v, g }, c as unknown as tf.NamedAttrMap) as unknown as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
}
