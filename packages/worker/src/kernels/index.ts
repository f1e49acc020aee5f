import type { KernelConfig } from '@tensorflow/tfjs-core';
import { getKernel, registerKernel } from '@tensorflow/tfjs-core';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter.ts';

/** Kernels that training needs but tfjs-backend-wasm 4.22 does not ship. */
const WASM_TRAINING_KERNELS: readonly KernelConfig[] = [conv2DBackpropFilterConfig];

/**
 * Registers the missing wasm training kernels with tfjs-core. Idempotent: a kernel that is
 * already registered (by an earlier call or by a newer tfjs) is left alone.
 */
export function registerWasmTrainingKernels(): void {
  for (const config of WASM_TRAINING_KERNELS) {
    // getKernel is typed as non-null but returns undefined for unknown kernels.
    const existing = getKernel(config.kernelName, config.backendName) as KernelConfig | undefined;
    if (existing === undefined) registerKernel(config);
  }
}
