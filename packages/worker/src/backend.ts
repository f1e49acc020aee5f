import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { initGelu } from './kernels/gelu.ts';
import { initGemm, setGemmEnabled } from './kernels/gemm/index.ts';
import { registerWasmTrainingKernels } from './kernels/index.ts';
import { winogradReady } from './kernels/winograd.ts';
import { markStartup } from './startup-marks.ts';

/** How a backend is set up. */
export interface BackendOptions {
  /** On `wasm`: use Gantry's matrix product where relaxed SIMD compiles (else XNNPACK's). @default true */
  wasmGemm?: boolean;
}

/** tfjs backends the worker can train on. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** The backend actually in use and a human-readable device description. */
export interface BackendInfo {
  backend: BackendName;
  device: string;
}

const TFJS_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/**
 * Selects and initialises a tfjs backend. Without `requested`, tries the native `tensorflow`
 * backend first and falls back to `wasm`. Throws when the requested backend cannot be set up.
 */
export async function initBackend(
  requested?: BackendName,
  options: BackendOptions = {},
): Promise<BackendInfo> {
  // Production mode: skips tfjs' debug checks and its console banners (workers log through pino).
  tf.enableProdMode();
  if (requested === undefined) {
    try {
      return await initTensorflow();
    } catch {
      return initWasm(options);
    }
  }
  switch (requested) {
    case 'tensorflow':
      return initTensorflow();
    case 'wasm':
      return initWasm(options);
    case 'cpu':
      return initCpu();
  }
}

async function initWasm(options: BackendOptions): Promise<BackendInfo> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  registerWasmTrainingKernels();
  await activate('wasm');
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const threads = wasm.getThreadsCount();
  // Gantry's matrix product (kernels/gemm) where relaxed SIMD compiles; XNNPACK's otherwise.
  const wanted = simd && options.wasmGemm !== false;
  setGemmEnabled(wanted);
  markStartup('wasm');
  const gemm = wanted ? await initGemm(tf.backend() as BackendWasm) : undefined;
  // Winograd's transforms (kernels/winograd.ts); until they compile, 3x3 convolutions use im2col.
  if (gemm) await winogradReady();
  markStartup('gemm');
  // The fused GELU of models/transformer.ts (SIMD); without it GELU keeps its composite form.
  if (simd) await initGelu(tf.backend() as BackendWasm);
  const features = [
    simd ? 'simd' : 'no simd',
    ...(gemm ? ['fma gemm'] : []),
    ...(threads > 1 ? [`${threads} threads`] : []),
  ];
  return { backend: 'wasm', device: `cpu (wasm, ${features.join(', ')})` };
}

async function initCpu(): Promise<BackendInfo> {
  await import('@tensorflow/tfjs-backend-cpu');
  await activate('cpu');
  return { backend: 'cpu', device: 'cpu (js)' };
}

/**
 * Loads tfjs-node-gpu, else tfjs-node (optional; not dependencies of this package). They register
 * the `tensorflow` backend on the tfjs-core instance they resolve, which is the worker's own only
 * when the installed tfjs-core versions match; otherwise the backend is missing here and we throw.
 */
async function initTensorflow(): Promise<BackendInfo> {
  const failures: string[] = [];
  for (const pkg of TFJS_NODE_PACKAGES) {
    try {
      // A string variable keeps TypeScript from resolving a package that may not be installed.
      const specifier: string = pkg;
      await import(specifier);
    } catch (err) {
      failures.push(`${pkg}: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    // Typed as non-null, but null when no such backend is registered.
    if (tf.findBackendFactory('tensorflow') == null) {
      throw new Error(
        `${pkg} loaded but did not register the 'tensorflow' backend on this @tensorflow/tfjs-core ` +
          `(${tf.version_core}); install a ${pkg} whose tfjs-core version matches`,
      );
    }
    await activate('tensorflow');
    return { backend: 'tensorflow', device: pkg === '@tensorflow/tfjs-node-gpu' ? 'gpu' : 'cpu' };
  }
  throw new Error(
    `tensorflow backend unavailable: install ${TFJS_NODE_PACKAGES.join(' or ')} (${failures.join('; ')})`,
  );
}

async function activate(name: BackendName): Promise<void> {
  if (!(await tf.setBackend(name))) {
    throw new Error(`tfjs could not initialise the '${name}' backend`);
  }
  await tf.ready();
}
