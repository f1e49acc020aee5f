import { InferenceError } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { withoutFusedKernels } from '../kernels/fused-switch.ts';

/** A constant a traced forward pass read: a weight (by its variable's name) or a value made on the way. */
export interface TracedConst {
  /** The variable's name for weights; absent for other constants. */
  name?: string;
  dtype: tf.DataType;
  shape: number[];
  values: Float32Array | Int32Array | Uint8Array;
}

/** Where a kernel's input comes from: a network input, a constant, or an earlier kernel's output. */
export type TracedRef =
  | { kind: 'input'; index: number }
  | { kind: 'const'; value: TracedConst }
  | { kind: 'node'; node: number; output: number };

/** One kernel the forward pass ran on something that depends on its inputs. */
export interface TracedKernel {
  kernel: string;
  /** The kernel's inputs by its own names (tfjs' NamedTensorMap keys, in order). */
  inputs: [string, TracedRef][];
  attrs: Record<string, unknown>;
  outputs: { shape: number[]; dtype: tf.DataType }[];
}

export interface Trace {
  inputs: { shape: number[]; dtype: tf.DataType }[];
  kernels: TracedKernel[];
  output: TracedRef;
}

function constOf(t: tf.Tensor): TracedConst {
  const values = t.dataSync();
  if (typeof values[0] === 'string')
    throw new InferenceError('NOT_EXPORTABLE', 'string tensors cannot be exported');
  const name = t instanceof tf.Variable ? t.name : undefined;
  return {
    ...(name ? { name } : {}),
    dtype: t.dtype,
    shape: [...t.shape],
    values: (values as Float32Array | Int32Array | Uint8Array).slice(),
  };
}

/**
 * Runs `forward` on `inputs` and records every kernel it runs through the engine (`runKernel`), top-level
 * only (a kernel that runs others inside counts once), as a graph over the inputs: what a graph model's
 * nodes are. Kernels that take no tensor (a fill) are folded, their outputs recorded as constants; the
 * others are recorded even on constants alone, since what they make may depend on the batch (a class
 * token tiled to it). Tensors that no kernel made (variables, scalars an op converted, masks made from
 * data) are constants with their values at trace time.
 */
export function traceForward(forward: (inputs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]): Trace {
  const engine = tf.engine() as unknown as {
    runKernel: (name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>) => unknown;
  };
  const original = engine.runKernel;
  const refs = new Map<number, TracedRef>();
  for (const [index, t] of inputs.entries()) refs.set(t.id, { kind: 'input', index });
  const kernels: TracedKernel[] = [];
  const refOf = (t: tf.Tensor): TracedRef => {
    let r = refs.get(t.id);
    if (!r) {
      r = { kind: 'const', value: constOf(t) };
      refs.set(t.id, r);
    }
    return r;
  };
  let depth = 0;
  engine.runKernel = function (this: unknown, name, kernelInputs, attrs) {
    depth += 1;
    try {
      const result = original.call(this, name, kernelInputs, attrs);
      if (depth > 1) return result;
      const outs = (Array.isArray(result) ? result : [result]) as tf.Tensor[];
      const ins = Object.entries(kernelInputs).flatMap(([k, t]) =>
        t ? ([[k, refOf(t as tf.Tensor)]] as [string, TracedRef][]) : [],
      );
      if (ins.length === 0) {
        for (const o of outs) refs.set(o.id, { kind: 'const', value: constOf(o) });
        return result;
      }
      const node = kernels.length;
      kernels.push({
        kernel: name,
        inputs: ins,
        attrs: { ...attrs },
        outputs: outs.map((o) => ({ shape: [...o.shape], dtype: o.dtype })),
      });
      for (const [output, o] of outs.entries()) refs.set(o.id, { kind: 'node', node, output });
      return result;
    } finally {
      depth -= 1;
    }
  };
  try {
    let output: TracedRef | undefined;
    // Gantry's fused kernels off: the stock ops they stand in for, which tf-ops.ts can write.
    tf.tidy(() => {
      output = refOf(withoutFusedKernels(() => forward(inputs)));
    });
    if (!output || output.kind === 'const')
      throw new InferenceError('NOT_EXPORTABLE', 'the network output does not depend on its inputs');
    return { inputs: inputs.map((t) => ({ shape: [...t.shape], dtype: t.dtype })), kernels, output };
  } finally {
    engine.runKernel = original;
  }
}
