/**
 * tfjs-core's Node entry registers no gradient functions (its ESM build does, but that build's directory
 * imports do not resolve under Node's ESM loader). The union package's Node bundle registers all of them
 * into the process-global gradient registry that tfjs-core's engine reads, so importing it once is enough.
 */
import '@tensorflow/tfjs';

import { mul, registerGradient, step, type Tensor } from '@tensorflow/tfjs-core';
import { fusedLeakyReluGrad } from './kernels/leaky-relu.ts';

/**
 * LeakyRelu's gradient as dy * step(x, alpha): two vectorised kernels instead of tfjs' where(x > 0, dy,
 * dy * alpha), which costs a comparison, a multiply and a select. Same values, x = 0 included (alpha).
 * On wasm with Gantry's module, and no tape recording the gradient, one fused pass of the same values
 * (kernels/leaky-relu.ts).
 */
registerGradient({
  kernelName: 'LeakyRelu',
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const x = saved[0] as Tensor;
    const alpha = (attrs as { alpha: number }).alpha;
    return { x: () => fusedLeakyReluGrad(dy as Tensor, x, alpha) ?? mul(dy as Tensor, step(x, alpha)) };
  },
});
