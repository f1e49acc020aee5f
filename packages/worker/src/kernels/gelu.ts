import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { geluModuleWat } from './gelu-wat.ts';
import { heapPtr } from './gemm/index.ts';
import { instanceOnBackend, moduleFromWat } from './gemm/module-cache.ts';

/** Kernel names of the fused GELU, forward and gradient (registered for wasm). */
export const GELU = 'GantryGelu';
export const GELU_GRAD = 'GantryGeluGrad';

interface GeluExports {
  gelu(x: number, out: number, n: number): void;
  geluGrad(x: number, dy: number, out: number, n: number): void;
}

let compiled: Promise<object | undefined> | undefined;
const instances = new WeakMap<BackendWasm, GeluExports>();

/**
 * Binds the GELU module (gelu-wat.ts) to `backend`'s memory, once per backend; false where it cannot be
 * built (no SIMD), and then models/transformer.ts keeps GELU's composite form.
 */
export async function initGelu(backend: BackendWasm): Promise<boolean> {
  if (instances.has(backend)) return true;
  compiled ??= moduleFromWat('gantry-gelu', geluModuleWat(), { simd: true }).catch(() => undefined);
  const module = await compiled;
  const exports = module === undefined ? undefined : instanceOnBackend(module, backend);
  if (exports === undefined) return false;
  instances.set(backend, exports as unknown as GeluExports);
  return true;
}

/** Whether the fused GELU serves `backend` (initGelu succeeded for it). */
export function hasFusedGelu(backend: object): boolean {
  return instances.has(backend as BackendWasm);
}

/** Arguments of the kernel functions, as tfjs passes them. */
interface Args {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
}

function exportsFor(backend: BackendWasm): GeluExports {
  const e = instances.get(backend);
  if (e === undefined) throw new Error(`${GELU} (wasm): initGelu was not called for this backend`);
  return e;
}

/**
 * GELU (Hendrycks & Gimpel, 2016), x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), in one SIMD pass: the
 * composite form is five wasm kernels (two multiplies, erf, an add, a multiply) and four temporaries.
 */
export function gelu({ inputs, backend }: Args): TensorInfo {
  const x = inputs.x!;
  const e = exportsFor(backend);
  const out = backend.makeOutput(x.shape, 'float32');
  // Byte offsets stay valid when the heap grows.
  e.gelu(heapPtr(backend, x), heapPtr(backend, out), backend.typedArrayFromHeap(x).length);
  return out;
}

/** dx = dy * GELU'(x) = dy * (Phi(x) + x phi(x)), in one SIMD pass over x and dy. */
export function geluGrad({ inputs, backend }: Args): TensorInfo {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const e = exportsFor(backend);
  const out = backend.makeOutput(x.shape, 'float32');
  const n = backend.typedArrayFromHeap(x).length;
  e.geluGrad(heapPtr(backend, x), heapPtr(backend, dy), heapPtr(backend, out), n);
  return out;
}

// tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
export const geluConfig: KernelConfig = {
  kernelName: GELU,
  backendName: 'wasm',
  kernelFunc: gelu as unknown as KernelFunc,
};
export const geluGradConfig: KernelConfig = {
  kernelName: GELU_GRAD,
  backendName: 'wasm',
  kernelFunc: geluGrad as unknown as KernelFunc,
};
