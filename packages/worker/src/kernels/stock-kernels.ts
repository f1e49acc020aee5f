import type { KernelConfig } from '@tensorflow/tfjs-core';

/** The tfjs-backend-wasm kernels that ours replaced, by kernel name, for ours to fall back on. */
const stock = new Map<string, KernelConfig>();

/** Keeps the stock wasm kernel `config` that one of ours is about to replace in the registry. */
export function rememberStockKernel(config: KernelConfig): void {
  stock.set(config.kernelName, config);
}

/**
 * The stock wasm kernel that ours replaced under `name`. Throws when ours was never registered over
 * one (registerWasmTrainingKernels was not called, or the wasm backend package was not loaded).
 */
export function stockKernel(name: string, caller: string): KernelConfig {
  const kernel = stock.get(name);
  if (kernel === undefined) {
    throw new Error(
      `${caller} (wasm): no stock ${name} kernel was captured; call registerWasmTrainingKernels`,
    );
  }
  return kernel;
}

/**
 * The setup hook for a kernel of ours that wraps the stock one: the engine runs the setup of whatever is
 * registered when the backend is set, and the stock kernel's (binding its wasm function) must still run.
 */
export function stockSetup(name: string): NonNullable<KernelConfig['setupFunc']> {
  return (backend) => stock.get(name)?.setupFunc?.(backend);
}
