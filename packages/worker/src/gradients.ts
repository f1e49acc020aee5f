/**
 * tfjs-core's Node entry registers no gradient functions (its ESM build does, but that build's directory
 * imports do not resolve under Node's ESM loader). The union package's Node bundle registers all of them
 * into the process-global gradient registry that tfjs-core's engine reads, so importing it once is enough.
 */
import '@tensorflow/tfjs';

import {
  customGrad,
  engine,
  type GradSaveFunc,
  mul,
  registerGradient,
  step,
  type Tensor,
} from '@tensorflow/tfjs-core';
import { fusedLeakyReluGrad } from './kernels/leaky-relu.ts';

/**
 * dy * step(x, alpha): by the fused kernel where it runs (kernels/leaky-relu.ts), else Step then Multiply.
 * Where a tape records it (a gradient to be differentiated again, as WGAN-GP's penalty is), it is one
 * op of dy alone, closing over x: its derivative in x is zero wherever it exists (tfjs' Step gradient
 * is zerosLike), and an edge to x would send those zeros back through the forward pass that made x -
 * for WGAN-GP's critic a product of the big conv's shape twice per critic update, on zeros.
 */
export function leakyReluSlopeTimes(dy: Tensor, x: Tensor, alpha: number): Tensor {
  if (!engine().isTapeOn()) return fusedLeakyReluGrad(dy, x, alpha) ?? mul(dy, step(x, alpha));
  const op = customGrad((...args: (Tensor | GradSaveFunc)[]) => {
    const d = args[0] as Tensor;
    return {
      // The forward of a custom op runs untaped, so this takes the fused kernel where it can.
      value: fusedLeakyReluGrad(d, x, alpha) ?? mul(d, step(x, alpha)),
      gradFunc: (dd: Tensor) => leakyReluSlopeTimes(dd, x, alpha),
    };
  }) as (d: Tensor) => Tensor;
  return op(dy);
}

/**
 * LeakyRelu's gradient as dy * step(x, alpha): two vectorised kernels instead of tfjs' where(x > 0, dy,
 * dy * alpha), which costs a comparison, a multiply and a select. Same values, x = 0 included (alpha).
 * On wasm with Gantry's module one fused pass of the same values (kernels/leaky-relu.ts); recorded on a
 * tape, without an edge to x (see leakyReluSlopeTimes).
 */
registerGradient({
  kernelName: 'LeakyRelu',
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const x = saved[0] as Tensor;
    const alpha = (attrs as { alpha: number }).alpha;
    return { x: () => leakyReluSlopeTimes(dy as Tensor, x, alpha) };
  },
});
