import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  Cast,
  type CastAttrs,
  Identity,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { stockKernel, stockSetup } from './stock-kernels.ts';

/** Arguments of the kernel functions, as tfjs passes them. */
export interface IdentityArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs?: NamedAttrMap;
}

/**
 * Identity for the wasm backend: the result shares x's storage (one more reference to it) instead of
 * a copy, as the cpu backend and the wasm Reshape kernel already do; tfjs never writes into a tensor's
 * storage after it is made. The gradient machinery clones tensors often (one DCGAN step made ~80
 * copies, 0.1-0.3 ms each). Strings go to the stock kernel.
 */
export function identity(args: IdentityArgs): TensorInfo {
  const { x } = args.inputs;
  if (x === undefined || x.dtype === 'string')
    return stockKernel(Identity, Identity).kernelFunc(args) as TensorInfo;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * Cast for the wasm backend: to x's own dtype it is {@link identity} (tf.moments casts its input to
 * float32 whatever it is, ~20 copies per DCGAN step); any other cast goes to the stock kernel.
 */
export function cast(args: IdentityArgs): TensorInfo {
  const { x } = args.inputs;
  const { dtype } = (args.attrs ?? {}) as unknown as CastAttrs;
  if (x !== undefined && x.dtype === dtype) return identity(args);
  return stockKernel(Cast, Cast).kernelFunc(args) as TensorInfo;
}

/** Kernel config to register with tfjs for the wasm backend, in place of the stock Identity. */
export const identityConfig: KernelConfig = {
  kernelName: Identity,
  backendName: 'wasm',
  setupFunc: stockSetup(Identity),
  // tfjs passes the backend as `{}`; the engine guarantees it is the wasm backend.
  kernelFunc: identity as unknown as KernelFunc,
};

/** Kernel config to register with tfjs for the wasm backend, in place of the stock Cast. */
export const castConfig: KernelConfig = {
  kernelName: Cast,
  backendName: 'wasm',
  setupFunc: stockSetup(Cast),
  kernelFunc: cast as unknown as KernelFunc,
};
