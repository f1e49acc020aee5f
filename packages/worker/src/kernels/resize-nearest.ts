import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  ResizeNearestNeighbor,
  type ResizeNearestNeighborAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { gemmFor, heapPtr } from './gemm/index.ts';
import { stockKernel, stockSetup } from './stock-kernels.ts';

/** Arguments of the kernel function, as tfjs passes them. */
export interface ResizeNearestNeighborArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: ResizeNearestNeighborAttrs;
}

/**
 * ResizeNearestNeighbor for the wasm backend. An exact 2x upsampling of a float32 [N, H, W, C] without
 * alignCorners (ProGAN's upsample2x and its 2x2 mean's gradient, families/progan/blocks.ts) is one copy
 * pass of the gemm module (gemm/channel-passes-wat.ts): each pixel into its 2x2 block, which is what the stock kernel
 * computes there with or without half-pixel centres (source row floor(y / 2) either way), bit for bit.
 * Single calls on the 2-core dev machine, medians of 15 alternating, stock against this: [32,32,32,16]
 * (ProGAN 64's) 2.77 -> 0.74 ms, [32,16,16,32] 1.31 -> 0.30, [32,32,32,3] 0.92 -> 0.16, [32,8,8,64]
 * 0.52 -> 0.13. Every other resize goes to the stock kernel.
 */
export function resizeNearestNeighbor(args: ResizeNearestNeighborArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { images } = inputs;
  const gemm = gemmFor(backend);
  if (images !== undefined && gemm !== undefined && isUpsample2x(images, attrs)) {
    const [n, h, w, c] = images.shape as [number, number, number, number];
    const out = backend.makeOutput([n, 2 * h, 2 * w, c], 'float32');
    if (n * h * w * c > 0) gemm.upsample2x(heapPtr(backend, images), heapPtr(backend, out), n * h, w, c);
    return out;
  }
  return stockKernel(ResizeNearestNeighbor, ResizeNearestNeighbor).kernelFunc({
    inputs,
    backend,
    // The typed attrs are a NamedAttrMap at run time; the engine handed them over as one.
    attrs: attrs as unknown as NamedAttrMap,
  }) as TensorInfo;
}

function isUpsample2x(images: TensorInfo, attrs: ResizeNearestNeighborAttrs): boolean {
  if (images.dtype !== 'float32' || images.shape.length !== 4 || attrs.alignCorners) return false;
  const [, h, w] = images.shape as [number, number, number, number];
  const [newH, newW] = attrs.size;
  return newH === 2 * h && newW === 2 * w;
}

/** Kernel config to register with tfjs for the wasm backend, in place of the stock one. */
export const resizeNearestNeighborConfig: KernelConfig = {
  kernelName: ResizeNearestNeighbor,
  backendName: 'wasm',
  setupFunc: stockSetup(ResizeNearestNeighbor),
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: ((args: ResizeNearestNeighborArgs) => resizeNearestNeighbor(args)) as unknown as KernelFunc,
};
