import type { KernelConfig } from '@tensorflow/tfjs-core';
import { getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import { adamUpdateConfig } from './adam-update.ts';
import { batchMatMulConfig } from './batch-mat-mul.ts';
import { batchNormConfig, batchNormGradConfig } from './batch-norm.ts';
import { biasLeakyReluConfig, biasLeakyReluGradConfig } from './bias-leaky-relu.ts';
import { addConfig, multiplyConfig } from './binary-broadcast.ts';
import { concatConfig } from './concat.ts';
import { conv2DConfig } from './conv2d.ts';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter.ts';
import { conv2DBackpropInputConfig } from './conv2d-backprop-input.ts';
import { geluConfig, geluGradConfig } from './gelu.ts';
import { greaterConfig } from './greater.ts';
import { castConfig, identityConfig } from './identity.ts';
import { layerNormConfig, layerNormGradConfig } from './layer-norm.ts';
import { leakyReluConfig, leakyReluGradConfig } from './leaky-relu.ts';
import { pixelNormConfig, pixelNormGradConfig } from './pixel-norm.ts';
import { preluConfig, preluGradConfig } from './prelu.ts';
import { resizeNearestNeighborConfig } from './resize-nearest.ts';
import { rememberStockKernel } from './stock-kernels.ts';
import { meanConfig, sumConfig } from './sum-mean.ts';

/** Kernels that training needs but tfjs-backend-wasm 4.22 does not ship (and Gantry's fused Adam step and batch norm). */
const MISSING_WASM_KERNELS: readonly KernelConfig[] = [
  conv2DBackpropFilterConfig,
  adamUpdateConfig,
  batchNormConfig,
  batchNormGradConfig,
  leakyReluGradConfig,
  // SRGAN G's PReLU (models/layers.ts).
  preluConfig,
  preluGradConfig,
  // ProGAN G's pixel norm (families/progan/blocks.ts).
  pixelNormConfig,
  pixelNormGradConfig,
  // ProGAN's conv bias and LeakyRelu (kernels/bias-leaky-relu.ts).
  biasLeakyReluConfig,
  biasLeakyReluGradConfig,
  // Layer norm and GELU of models/transformer.ts.
  layerNormConfig,
  layerNormGradConfig,
  geluConfig,
  geluGradConfig,
];

/**
 * Kernels that tfjs-backend-wasm 4.22 ships, but too slowly for training; ours replace them (and may
 * fall back on the stock ones, kept aside in stock-kernels.ts).
 */
const REPLACED_WASM_KERNELS: readonly KernelConfig[] = [
  conv2DConfig,
  conv2DBackpropInputConfig,
  batchMatMulConfig,
  sumConfig,
  meanConfig,
  identityConfig,
  castConfig,
  leakyReluConfig,
  greaterConfig,
  concatConfig,
  addConfig,
  multiplyConfig,
  resizeNearestNeighborConfig,
];

/**
 * Registers the wasm training kernels with tfjs-core. Idempotent: a missing kernel that is already
 * registered (by an earlier call or by a newer tfjs) is left alone; a replaced kernel is swapped for
 * ours unless ours is already the registered one.
 */
export function registerWasmTrainingKernels(): void {
  for (const config of MISSING_WASM_KERNELS) {
    if (registered(config) === undefined) registerKernel(config);
  }
  for (const config of REPLACED_WASM_KERNELS) {
    const existing = registered(config);
    if (existing?.kernelFunc === config.kernelFunc) continue;
    if (existing !== undefined) {
      rememberStockKernel(existing);
      unregisterKernel(config.kernelName, config.backendName);
    }
    registerKernel(config);
  }
}

function registered(config: KernelConfig): KernelConfig | undefined {
  // getKernel is typed as non-null but returns undefined for unknown kernels.
  return getKernel(config.kernelName, config.backendName) as KernelConfig | undefined;
}
