import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend_util,
  Concat,
  type ConcatAttrs,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import { stockKernel, stockSetup } from './stock-kernels.ts';

/** Arguments of the kernel function, as tfjs passes them (Concat's inputs are a list). */
export interface ConcatArgs {
  inputs: TensorInfo[];
  backend: BackendWasm;
  attrs: ConcatAttrs;
}

/** Runs of fewer floats than this are copied by a loop; longer ones by TypedArray.set. */
const MIN_SET_RUN = 32;

/**
 * Concat for the wasm backend where an input's run along the axis is short (pix2pix's D sees its
 * [8,64,64,3] input and target side by side on the channel axis): the stock kernel makes a subarray and
 * a set() per run of 3 floats (~4.9 ms a call there, loaded machine); this copies short runs by a plain
 * loop. Concats of non-float32 tensors, of empty ones or of only long runs go to the stock kernel.
 */
export function concat(args: ConcatArgs): TensorInfo {
  const { inputs, backend } = args;
  const first = inputs[0];
  const stock = () =>
    stockKernel(Concat, Concat).kernelFunc({
      inputs: inputs as never,
      backend,
      attrs: args.attrs as unknown as NamedAttrMap,
    }) as TensorInfo;
  if (first === undefined || inputs.length < 2) return stock();
  if (inputs.some((t) => t.dtype !== 'float32' || util.sizeFromShape(t.shape) === 0)) return stock();
  const axis = util.parseAxisParam(args.attrs.axis, first.shape)[0] as number;
  const inner = inputs.map((t) => util.sizeFromShape(t.shape.slice(axis)));
  if (inner.every((n) => n >= MIN_SET_RUN)) return stock();
  backend_util.assertParamsConsistent(
    inputs.map((t) => t.shape),
    axis,
  );
  const out = backend.makeOutput(
    backend_util.computeOutShape(
      inputs.map((t) => t.shape),
      axis,
    ),
    'float32',
  );
  const outer = util.sizeFromShape(first.shape.slice(0, axis));
  const total = inner.reduce((a, b) => a + b, 0);
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  let offset = 0;
  inputs.forEach((t, i) => {
    const src = backend.typedArrayFromHeap(t) as Float32Array;
    const n = inner[i] as number;
    for (let b = 0, s = 0, d = offset; b < outer; b++, d += total) {
      if (n >= MIN_SET_RUN) {
        dst.set(src.subarray(s, s + n), d);
        s += n;
      } else {
        for (let k = 0; k < n; k++) dst[d + k] = src[s++] as number;
      }
    }
    offset += n;
  });
  return out;
}

/** Kernel config to register with tfjs for the wasm backend, in place of the stock one. */
export const concatConfig: KernelConfig = {
  kernelName: Concat,
  backendName: 'wasm',
  setupFunc: stockSetup(Concat),
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: ((args: ConcatArgs) => concat(args)) as unknown as KernelFunc,
};
