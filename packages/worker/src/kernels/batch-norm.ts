import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { fusedKernelsOn } from './fused-switch.ts';
import { gemmFor, heapPtr } from './gemm/index.ts';

/** Gantry's fused batch normalisation kernels (wasm only): forward, and backward from the forward's xhat. */
export const BATCH_NORM = 'GantryBatchNorm';
export const BATCH_NORM_GRAD = 'GantryBatchNormGrad';

/** Arguments of the kernel functions, as tfjs passes them. */
interface Args {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: { epsilon?: number };
}

/** The inputs, the bound module, and x's [rows, c] when a fused kernel can run; throws otherwise. */
function operands(args: Args, names: readonly string[]) {
  const gemm = gemmFor(args.backend);
  const ts = names.map((n) => args.inputs[n]);
  const first = ts[0];
  if (gemm === undefined || first === undefined || ts.some((t) => t === undefined)) {
    throw new Error(`Gantry batch norm (wasm): needs ${names.join(', ')} and Gantry's wasm module`);
  }
  const c = first.shape[first.shape.length - 1] as number;
  const rows = first.shape.reduce((a, b) => a * b, 1) / c;
  return { gemm, ts: ts as TensorInfo[], rows, c };
}

/**
 * [y, xhat, rstd] of batch normalisation with batch statistics over every axis but the last (x
 * [..., C], C % 4 = 0): the forward of models/layers.ts' batchNorm in three SIMD passes over x
 * (gemm/batch-norm-wat.ts) instead of ~10 tfjs kernels.
 */
function batchNormKernel(args: Args): TensorInfo[] {
  const { backend } = args;
  const { gemm, ts, rows, c } = operands(args, ['x', 'gamma', 'beta']);
  const [x, gamma, beta] = ts as [TensorInfo, TensorInfo, TensorInfo];
  const outs = [
    backend.makeOutput([...x.shape], 'float32'),
    backend.makeOutput([...x.shape], 'float32'),
    backend.makeOutput([c], 'float32'),
  ];
  const mean = backend.makeOutput([c], 'float32');
  const [y, xhat, rstd] = outs as [TensorInfo, TensorInfo, TensorInfo];
  const ptr = (t: TensorInfo) => heapPtr(backend, t);
  try {
    gemm.batchNorm.bnStats(ptr(x), rows, c, ptr(mean), ptr(rstd), Math.fround(args.attrs.epsilon ?? 1e-5));
    gemm.batchNorm.bnApply(ptr(x), rows, c, ptr(mean), ptr(rstd), ptr(gamma), ptr(beta), ptr(xhat), ptr(y));
  } finally {
    backend.disposeData(mean.dataId);
  }
  return outs;
}

/** [dx, dgamma, dbeta] from dy, the forward's xhat and rstd, and gamma: the paper's closed form (layers.ts). */
function batchNormGradKernel(args: Args): TensorInfo[] {
  const { backend } = args;
  const { gemm, ts, rows, c } = operands(args, ['dy', 'xhat', 'rstd', 'gamma']);
  const [dy, xhat, rstd, gamma] = ts as [TensorInfo, TensorInfo, TensorInfo, TensorInfo];
  const outs = [
    backend.makeOutput([...dy.shape], 'float32'),
    backend.makeOutput([c], 'float32'),
    backend.makeOutput([c], 'float32'),
  ];
  const [dx, dgamma, dbeta] = outs as [TensorInfo, TensorInfo, TensorInfo];
  const ptr = (t: TensorInfo) => heapPtr(backend, t);
  gemm.batchNorm.bnGradSums(ptr(dy), ptr(xhat), rows, c, ptr(dbeta), ptr(dgamma));
  gemm.batchNorm.bnGradApply(
    ptr(dy),
    ptr(xhat),
    rows,
    c,
    ptr(gamma),
    ptr(rstd),
    ptr(dbeta),
    ptr(dgamma),
    ptr(dx),
  );
  return outs;
}

/** Kernel configs to register with tfjs for the wasm backend. */
export const batchNormConfig: KernelConfig = {
  kernelName: BATCH_NORM,
  backendName: 'wasm',
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: batchNormKernel as unknown as KernelFunc,
};
export const batchNormGradConfig: KernelConfig = {
  kernelName: BATCH_NORM_GRAD,
  backendName: 'wasm',
  kernelFunc: batchNormGradKernel as unknown as KernelFunc,
};

/** The backward kernel's closed form (models/layers.ts) as tfjs ops: [dx, dgamma, dbeta]. */
function closedFormGrad(dy: tf.Tensor, xhat: tf.Tensor, rstd: tf.Tensor, gamma: tf.Tensor): tf.Tensor[] {
  const axes = xhat.shape.slice(0, -1).map((_, i) => i);
  const m = xhat.size / (xhat.shape[xhat.rank - 1] as number);
  const dbeta = tf.sum(dy, axes);
  const dgamma = tf.sum(tf.mul(dy, xhat), axes);
  const scale = tf.div(tf.mul(gamma, rstd), m);
  return [tf.mul(scale, tf.sub(tf.sub(tf.mul(dy, m), dbeta), tf.mul(xhat, dgamma))), dgamma, dbeta];
}

/** One differentiable op per epsilon (tf.customGrad closes over its attributes). */
const ops = new Map<number, (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor>();

function opFor(epsilon: number) {
  let op = ops.get(epsilon);
  if (op === undefined) {
    op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, gamma, beta] = args as [tf.Tensor, tf.Tensor, tf.Tensor];
      const save = args[3] as tf.GradSaveFunc;
      const [y, xhat, rstd] = tf
        .engine()
        .runKernel(BATCH_NORM, { x, gamma, beta }, { epsilon }) as tf.Tensor[];
      save([xhat as tf.Tensor, rstd as tf.Tensor, gamma]);
      return {
        value: y as tf.Tensor,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sXhat, sRstd, sGamma] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
          // A gradient that a tape records (to be differentiated again) is built from tfjs ops.
          if (tf.engine().isTapeOn()) return closedFormGrad(dy, sXhat, sRstd, sGamma);
          return tf
            .engine()
            .runKernel(BATCH_NORM_GRAD, { dy, xhat: sXhat, rstd: sRstd, gamma: sGamma }, {}) as tf.Tensor[];
        },
      };
    }) as (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
    ops.set(epsilon, op);
  }
  return op;
}

/**
 * Batch normalisation of x [..., C] with batch statistics, by the fused wasm kernels, or undefined where
 * they cannot run (another backend, no Gantry wasm module, C % 4 != 0, dtypes other than float32, gamma
 * or beta not [C], inside withoutFusedKernels): models/layers.ts then takes the tfjs ops.
 */
export function fusedBatchNorm(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon: number,
): tf.Tensor | undefined {
  if (!fusedKernelsOn()) return undefined;
  if (tf.getBackend() !== 'wasm' || gemmFor(tf.backend() as BackendWasm) === undefined) return undefined;
  const c = x.shape[x.rank - 1];
  if (c === undefined || c % 4 !== 0 || x.size === 0) return undefined;
  if ([x, gamma, beta].some((t) => t.dtype !== 'float32')) return undefined;
  if (gamma.rank !== 1 || beta.rank !== 1 || gamma.size !== c || beta.size !== c) return undefined;
  return opFor(epsilon)(x, gamma, beta);
}
