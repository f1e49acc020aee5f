import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { getKernel, type KernelConfig, type TensorInfo, Transpose } from '@tensorflow/tfjs-core';
import { type Gemm, gemmFor } from './gemm/index.ts';

/**
 * The kernel registered for the wasm backend under `name` (ours where we replaced it), for our kernels
 * to build on. Throws when there is none: the wasm backend package was not loaded.
 */
export function wasmKernel(name: string, caller: string): KernelConfig {
  // getKernel is typed as non-null but returns undefined for unknown kernels.
  const kernel = getKernel(name, 'wasm') as KernelConfig | undefined;
  if (kernel === undefined) {
    throw new Error(`${caller} (wasm): ${name} kernel for wasm is not registered`);
  }
  return kernel;
}

/**
 * x^T for a 2-D x, by the wasm Transpose kernel: a new tensor. 2-4x faster than a JS loop; fast for
 * tall matrices ([3136, 256]: 1 ms, [3136, 1024]: 5.5 ms) and slow for wide ones ([1024, 3136]: 28 ms).
 */
export function transpose2d(backend: BackendWasm, x: TensorInfo, caller: string): TensorInfo {
  return wasmKernel(Transpose, caller).kernelFunc({
    inputs: { x },
    backend,
    attrs: { perm: [1, 0] },
  }) as TensorInfo;
}

/** [rows, c] of a tensor whose last axis is the channels (the fused per-channel passes' view of it). */
export function channelRows(t: TensorInfo): { rows: number; c: number } {
  const c = t.shape[t.shape.length - 1] ?? 1;
  return { rows: t.shape.reduce((a, b) => a * b, 1) / c, c };
}

/** Gantry's wasm module bound to `backend`, for a kernel that has no other way to run. */
export function requireGemm(backend: BackendWasm, kernel: string): Gemm {
  const gemm = gemmFor(backend);
  if (gemm === undefined) throw new Error(`${kernel} (wasm): needs Gantry's wasm module`);
  return gemm;
}
