import { InferenceError } from '@gantry/shared';
import type { DataType } from '@tensorflow/tfjs-core';
import { PRELU } from '../kernels/prelu.ts';
import type { TracedConst, TracedKernel, TracedRef } from './trace.ts';

/**
 * A TensorFlow GraphDef attribute as TF.js graph models write it in model.json (the JSON form of the
 * AttrValue proto: strings base64, 64-bit integers as decimal strings).
 */
export type AttrValue =
  | { type: string }
  | { b: boolean }
  | { i: string }
  | { f: number }
  | { s: string }
  | { list: { i: string[] } }
  | { shape: { dim: { size: string }[] } };

/** One TensorFlow op of the exported graph: its inputs are traced values or constants it needs. */
export interface TfOp {
  op: string;
  inputs: TracedRef[];
  attrs: Record<string, AttrValue>;
}

export const attr = {
  type: (d: DataType): AttrValue => ({
    type: d === 'int32' ? 'DT_INT32' : d === 'bool' ? 'DT_BOOL' : 'DT_FLOAT',
  }),
  bool: (b: boolean): AttrValue => ({ b }),
  int: (i: number): AttrValue => ({ i: String(i) }),
  float: (f: number): AttrValue => ({ f }),
  str: (s: string): AttrValue => ({ s: Buffer.from(s, 'utf8').toString('base64') }),
  ints: (xs: readonly number[]): AttrValue => ({ list: { i: xs.map(String) } }),
  shape: (dims: readonly number[]): AttrValue => ({ shape: { dim: dims.map((d) => ({ size: String(d) })) } }),
};

const intConst = (values: readonly number[], shape = [values.length]): TracedRef => ({
  kind: 'const',
  value: { dtype: 'int32', shape, values: Int32Array.from(values) } satisfies TracedConst,
});
const intScalar = (v: number) => intConst([v], []);
const floatScalar = (v: number): TracedRef => ({
  kind: 'const',
  value: { dtype: 'float32', shape: [], values: Float32Array.of(v) },
});

/** A tfjs attribute that is a number or a list of numbers, as a list. */
function ints(v: unknown, what: string): number[] {
  const xs = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(xs) || !xs.every((x) => Number.isInteger(x)))
    throw new InferenceError('NOT_EXPORTABLE', `${what}: expected whole numbers, got ${JSON.stringify(v)}`);
  return xs as number[];
}

/** Strides or dilations of a 2-D op as TF's 4-vector (NHWC). */
function hw4(v: unknown, what: string): number[] {
  const xs = ints(v ?? 1, what);
  const [h, w] = xs.length === 1 ? [xs[0]!, xs[0]!] : xs;
  return [1, h!, w!, 1];
}

function padding(k: TracedKernel): AttrValue {
  const pad = k.attrs.pad;
  if ((pad !== 'same' && pad !== 'valid') || k.attrs.dimRoundingMode != null)
    throw new InferenceError(
      'NOT_EXPORTABLE',
      `${k.kernel} with padding ${JSON.stringify(pad)} has no TensorFlow form here (only 'same' and 'valid')`,
    );
  if (k.attrs.dataFormat != null && k.attrs.dataFormat !== 'NHWC')
    throw new InferenceError('NOT_EXPORTABLE', `${k.kernel} in ${String(k.attrs.dataFormat)}: only NHWC`);
  return attr.str(pad.toUpperCase());
}

const input = (k: TracedKernel, name: string): TracedRef => {
  const hit = k.inputs.find(([n]) => n === name);
  if (!hit) throw new InferenceError('NOT_EXPORTABLE', `${k.kernel} was traced without its input '${name}'`);
  return hit[1];
};
const all = (k: TracedKernel) => k.inputs.map(([, r]) => r);
const same =
  (op: string) =>
  (k: TracedKernel): TfOp => ({ op, inputs: all(k), attrs: {} });
const reduce =
  (op: string) =>
  (k: TracedKernel): TfOp => ({
    op,
    inputs: [input(k, 'x'), intConst(ints(k.attrs.axis, `${k.kernel} axis`))],
    attrs: { keep_dims: attr.bool(Boolean(k.attrs.keepDims)) },
  });

/**
 * How each tfjs kernel is written as a TensorFlow op that the TF.js converter's executor runs (its op
 * list: tfjs-converter/src/operations/op_list/*.json names the ops, which inputs it reads as tensors and
 * which attributes it takes). tfjs passes shapes, axes and the like as kernel attributes; TensorFlow takes
 * most of them as int32 tensor inputs, written here as constants.
 */
const OPS: Record<string, (k: TracedKernel) => TfOp> = {
  Add: same('AddV2'),
  Sub: same('Sub'),
  Multiply: same('Mul'),
  RealDiv: same('RealDiv'),
  Maximum: same('Maximum'),
  Minimum: same('Minimum'),
  Pow: same('Pow'),
  SquaredDifference: same('SquaredDifference'),
  Greater: same('Greater'),
  GreaterEqual: same('GreaterEqual'),
  Less: same('Less'),
  LessEqual: same('LessEqual'),
  Equal: same('Equal'),
  Select: same('SelectV2'),
  Prelu: same('Prelu'),
  // Gantry's fused PReLU (kernels/prelu.ts): the same values as TensorFlow's Prelu, inputs x then alpha.
  [PRELU]: same('Prelu'),
  ...Object.fromEntries(
    [
      'Relu',
      'Relu6',
      'Elu',
      'Selu',
      'Tanh',
      'Sigmoid',
      'Rsqrt',
      'Sqrt',
      'Square',
      'Neg',
      'Exp',
      'Log',
      'Abs',
      'Erf',
      'Softplus',
      'Identity',
      'Floor',
      'Sign',
      'Reciprocal',
    ].map((op) => [op, same(op)]),
  ),
  AddN: (k) => ({ op: 'AddN', inputs: all(k), attrs: { N: attr.int(k.inputs.length) } }),
  LeakyRelu: (k) => ({
    op: 'LeakyRelu',
    inputs: [input(k, 'x')],
    attrs: { alpha: attr.float(Number(k.attrs.alpha)) },
  }),
  Cast: (k) => ({
    op: 'Cast',
    inputs: [input(k, 'x')],
    attrs: { DstT: attr.type(k.attrs.dtype as DataType) },
  }),
  BatchMatMul: (k) => ({
    op: 'BatchMatMulV2',
    inputs: [input(k, 'a'), input(k, 'b')],
    attrs: { adj_x: attr.bool(Boolean(k.attrs.transposeA)), adj_y: attr.bool(Boolean(k.attrs.transposeB)) },
  }),
  Conv2D: (k) => ({
    op: 'Conv2D',
    inputs: [input(k, 'x'), input(k, 'filter')],
    attrs: {
      strides: attr.ints(hw4(k.attrs.strides, 'Conv2D strides')),
      padding: padding(k),
      data_format: attr.str('NHWC'),
      dilations: attr.ints(hw4(k.attrs.dilations, 'Conv2D dilations')),
    },
  }),
  Conv2DBackpropInput: (k) => ({
    op: 'Conv2DBackpropInput',
    inputs: [
      intConst(ints(k.attrs.inputShape, 'Conv2DBackpropInput inputShape')),
      input(k, 'filter'),
      input(k, 'dy'),
    ],
    attrs: {
      strides: attr.ints(hw4(k.attrs.strides, 'Conv2DBackpropInput strides')),
      padding: padding(k),
      data_format: attr.str('NHWC'),
    },
  }),
  Reshape: (k) => ({
    op: 'Reshape',
    inputs: [input(k, 'x'), intConst(ints(k.attrs.shape, 'Reshape shape'))],
    attrs: {},
  }),
  Transpose: (k) => ({
    op: 'Transpose',
    inputs: [input(k, 'x'), intConst(ints(k.attrs.perm, 'Transpose perm'))],
    attrs: {},
  }),
  Tile: (k) => ({
    op: 'Tile',
    inputs: [input(k, 'x'), intConst(ints(k.attrs.reps, 'Tile reps'))],
    attrs: {},
  }),
  BroadcastTo: (k) => ({
    op: 'BroadcastTo',
    inputs: [input(k, 'x'), intConst(ints(k.attrs.shape, 'BroadcastTo shape'))],
    attrs: {},
  }),
  ExpandDims: (k) => ({
    op: 'ExpandDims',
    inputs: [input(k, 'input'), intScalar(Number(k.attrs.dim))],
    attrs: {},
  }),
  Mean: reduce('Mean'),
  Sum: reduce('Sum'),
  Max: (k) => ({
    ...reduce('Max')(k),
    inputs: [input(k, 'x'), intConst(ints(k.attrs.reductionIndices, 'Max axis'))],
  }),
  Min: reduce('Min'),
  Prod: reduce('Prod'),
  Concat: (k) => ({
    op: 'ConcatV2',
    inputs: [...all(k), intScalar(Number(k.attrs.axis))],
    attrs: { N: attr.int(k.inputs.length) },
  }),
  Pack: (k) => ({
    op: 'Pack',
    inputs: all(k),
    attrs: { axis: attr.int(Number(k.attrs.axis)), N: attr.int(k.inputs.length) },
  }),
  Unpack: (k) => ({
    op: 'Unpack',
    inputs: [input(k, 'value')],
    attrs: { axis: attr.int(Number(k.attrs.axis)), num: attr.int(k.outputs.length) },
  }),
  SplitV: (k) => {
    const x = input(k, 'x');
    const dim = ints(k.attrs.axis, 'SplitV axis')[0]!;
    const sizes = k.outputs.map((o) => o.shape.at(dim)!);
    return {
      op: 'SplitV',
      inputs: [x, intConst(sizes), intScalar(dim)],
      attrs: { num_split: attr.int(k.outputs.length) },
    };
  },
  Slice: (k) => ({
    op: 'Slice',
    inputs: [
      input(k, 'x'),
      intConst(ints(k.attrs.begin, 'Slice begin')),
      intConst(ints(k.attrs.size, 'Slice size')),
    ],
    attrs: {},
  }),
  StridedSlice: (k) => ({
    op: 'StridedSlice',
    inputs: [
      input(k, 'x'),
      intConst(ints(k.attrs.begin, 'StridedSlice begin')),
      intConst(ints(k.attrs.end, 'StridedSlice end')),
      intConst(ints(k.attrs.strides, 'StridedSlice strides')),
    ],
    attrs: Object.fromEntries(
      (['beginMask', 'endMask', 'ellipsisMask', 'newAxisMask', 'shrinkAxisMask'] as const).map((m) => [
        m.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
        attr.int(Number(k.attrs[m] ?? 0)),
      ]),
    ),
  }),
  PadV2: (k) => {
    const pairs = k.attrs.paddings as number[][];
    return {
      op: 'PadV2',
      inputs: [
        input(k, 'x'),
        intConst(pairs.flat(), [pairs.length, 2]),
        floatScalar(Number(k.attrs.constantValue ?? 0)),
      ],
      attrs: {},
    };
  },
  ClipByValue: (k) => ({
    op: 'ClipByValue',
    inputs: [
      input(k, 'x'),
      floatScalar(Number(k.attrs.clipValueMin)),
      floatScalar(Number(k.attrs.clipValueMax)),
    ],
    attrs: {},
  }),
  GatherV2: (k) => ({
    op: 'GatherV2',
    inputs: [input(k, 'x'), input(k, 'indices'), intScalar(Number(k.attrs.axis ?? 0))],
    attrs: { batch_dims: attr.int(Number(k.attrs.batchDims ?? 0)) },
  }),
  Softmax: (k) => {
    const rank = k.outputs[0]!.shape.length;
    const dim = Number(k.attrs.dim ?? -1);
    if (dim !== -1 && dim !== rank - 1)
      throw new InferenceError(
        'NOT_EXPORTABLE',
        `Softmax over axis ${dim} of ${rank}: TensorFlow's is over the last`,
      );
    return { op: 'Softmax', inputs: [input(k, 'logits')], attrs: {} };
  },
  DepthToSpace: (k) => ({
    op: 'DepthToSpace',
    inputs: [input(k, 'x')],
    attrs: { block_size: attr.int(Number(k.attrs.blockSize)), data_format: attr.str('NHWC') },
  }),
  ResizeNearestNeighbor: (k) => ({
    op: 'ResizeNearestNeighbor',
    inputs: [input(k, 'images'), intConst(k.attrs.size as number[])],
    attrs: {
      align_corners: attr.bool(Boolean(k.attrs.alignCorners)),
      half_pixel_centers: attr.bool(Boolean(k.attrs.halfPixelCenters)),
    },
  }),
  AvgPool: (k) => ({
    op: 'AvgPool',
    inputs: [input(k, 'x')],
    attrs: {
      ksize: attr.ints(hw4(k.attrs.filterSize, 'AvgPool filterSize')),
      strides: attr.ints(hw4(k.attrs.strides, 'AvgPool strides')),
      padding: padding(k),
      data_format: attr.str('NHWC'),
    },
  }),
};

/**
 * The TensorFlow op of a traced kernel. @throws InferenceError NOT_EXPORTABLE for a kernel with no
 * TensorFlow op here, or attributes that have no TensorFlow form
 */
export function tfOpOf(k: TracedKernel): TfOp {
  const write = OPS[k.kernel];
  if (!write)
    throw new InferenceError(
      'NOT_EXPORTABLE',
      `the network runs the tfjs kernel '${k.kernel}', which the exporter cannot write as a TensorFlow op`,
    );
  return write(k);
}
