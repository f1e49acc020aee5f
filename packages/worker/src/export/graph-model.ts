import { InferenceError } from '@gantry/shared';
import { type AttrValue, attr, type TfOp, tfOpOf } from './tf-ops.ts';
import type { Trace, TracedConst, TracedRef } from './trace.ts';

/** A TensorFlow GraphDef node in the JSON form TF.js graph models use. */
export interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, AttrValue | { tensor: { dtype: string; tensorShape: unknown } }>;
}

/** model.json of a TF.js graph model, and its one weights file. */
export interface GraphModelFiles {
  modelJson: {
    format: 'graph-model';
    generatedBy: string;
    convertedBy: null;
    modelTopology: { node: GraphNode[]; versions: { producer: number }; library: Record<string, never> };
    weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
    userDefinedMetadata?: Record<string, unknown>;
  };
  weights: Uint8Array;
}

export interface GraphModelOptions {
  /** Names of the network's inputs (Placeholder nodes), in the traces' order. */
  inputNames: string[];
  /** Name of the output (an Identity node). */
  outputName: string;
  /** Batch sizes of the two traces. */
  batches: [number, number];
  /** The weights file's name, as model.json refers to it. @default 'weights.bin' */
  weightsPath?: string;
}

const valuesKey = (c: TracedConst) => `${c.dtype}:${c.shape.join('x')}:${Array.from(c.values).join(',')}`;

/**
 * A TF.js graph model (model.json + weights) of a network traced at two batch sizes (traceForward): every
 * kernel becomes its TensorFlow op (tf-ops.ts), weights and other constants Const nodes whose values are
 * the weights file, and the inputs Placeholders whose first dimension is free (-1). A shape-like constant
 * that differs between the traces only in entries proportional to the batch (a reshape of [N * h, ...], a
 * transposed convolution's output size) is built in the graph from the batch of the first input:
 * ConcatV2 of constant pieces and Mul(batch, k), batch = Slice(Shape(input 0), [0], [1]).
 * @throws InferenceError NOT_EXPORTABLE when the traces differ in any other way (the network's ops depend
 * on the batch size), or a kernel has no TensorFlow op
 */
export function buildGraphModel(traces: [Trace, Trace], opts: GraphModelOptions): GraphModelFiles {
  const [a, b] = traces;
  const [n1, n2] = opts.batches;
  if (a.kernels.length !== b.kernels.length)
    throw notExportable(
      `its ops depend on the batch size (${a.kernels.length} kernels at ${n1}, ${b.kernels.length} at ${n2})`,
    );
  const opsA = a.kernels.map(tfOpOf);
  const opsB = b.kernels.map(tfOpOf);

  const nodes: GraphNode[] = [];
  const weightSpecs: { name: string; shape: number[]; dtype: string }[] = [];
  const chunks: Uint8Array[] = [];
  const constNames = new Map<string, string>();
  const usedNames = new Set<string>();
  const unique = (base: string) => {
    let name = base.replace(/[^A-Za-z0-9_./-]/g, '_');
    for (let i = 1; usedNames.has(name); i++) name = `${base}_${i}`;
    usedNames.add(name);
    return name;
  };

  opts.inputNames.forEach((name, i) => {
    const shape = a.inputs[i]!.shape;
    usedNames.add(name);
    nodes.push({
      name,
      op: 'Placeholder',
      attr: { dtype: attr.type(a.inputs[i]!.dtype), shape: attr.shape([-1, ...shape.slice(1)]) },
    });
  });

  function constNode(c: TracedConst): string {
    // Weights by their variable's name; small equal constants (axes, epsilons) share one node.
    const key = c.name ?? (c.values.length <= 64 ? valuesKey(c) : undefined);
    const hit = key !== undefined ? constNames.get(key) : undefined;
    if (hit) return hit;
    const name = unique(c.name ?? `const/${weightSpecs.length}`);
    if (key !== undefined) constNames.set(key, name);
    const dtype = c.dtype === 'int32' ? 'int32' : 'float32';
    nodes.push({
      name,
      op: 'Const',
      attr: {
        dtype: attr.type(dtype),
        value: {
          tensor: { dtype: dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT', tensorShape: shapeProto(c.shape) },
        },
      },
    });
    weightSpecs.push({ name, shape: c.shape, dtype });
    const data = dtype === 'int32' ? Int32Array.from(c.values) : Float32Array.from(c.values);
    chunks.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return name;
  }

  let batchNode: string | undefined;
  function batchSize(): string {
    if (batchNode) return batchNode;
    const shape = unique('batch/shape');
    nodes.push({
      name: shape,
      op: 'Shape',
      input: [opts.inputNames[0]!],
      attr: { out_type: attr.type('int32') },
    });
    batchNode = unique('batch/size');
    nodes.push({
      name: batchNode,
      op: 'Slice',
      input: [shape, constNode(intVector([0])), constNode(intVector([1]))],
    });
    return batchNode;
  }

  /** An int vector whose entries `dynamic` are k * batch: pieces of constants and products, concatenated. */
  function dynamicVector(values: readonly number[], factors: (number | undefined)[], at: string): string {
    const pieces: string[] = [];
    let run: number[] = [];
    const flush = () => {
      if (run.length) pieces.push(constNode(intVector(run)));
      run = [];
    };
    factors.forEach((k, i) => {
      if (k === undefined) {
        run.push(values[i]!);
        return;
      }
      flush();
      const batch = batchSize();
      if (k === 1) pieces.push(batch);
      else {
        const name = unique(`${at}/batch_x${k}`);
        nodes.push({ name, op: 'Mul', input: [batch, constNode(intVector([k]))] });
        pieces.push(name);
      }
    });
    flush();
    const name = unique(`${at}/shape`);
    nodes.push({
      name,
      op: 'ConcatV2',
      input: [...pieces, constNode({ dtype: 'int32', shape: [], values: Int32Array.of(0) })],
      attr: { N: attr.int(pieces.length) },
    });
    return name;
  }

  const opNames: string[] = [];
  const refName = (r: TracedRef): string => {
    if (r.kind === 'input') return opts.inputNames[r.index]!;
    if (r.kind === 'node') return r.output === 0 ? opNames[r.node]! : `${opNames[r.node]}:${r.output}`;
    return constNode(r.value);
  };

  opsA.forEach((op, i) => {
    const other = opsB[i]!;
    const name = unique(`${a.kernels[i]!.kernel}_${i}`);
    checkSameOp(op, other, i);
    const inputs = op.inputs.map((r, j) => {
      const s = other.inputs[j]!;
      if (r.kind !== s.kind)
        throw notExportable(`input ${j} of op ${i} (${op.op}) depends on the batch size`);
      if (r.kind === 'const' && s.kind === 'const' && !sameConst(r.value, s.value)) {
        const factors = batchFactors(r.value, s.value, n1, n2);
        if (!factors)
          throw notExportable(
            `a constant input of op ${i} (${op.op}, shape ${r.value.shape.join('x')}) depends on the batch size`,
          );
        return dynamicVector(Array.from(r.value.values), factors, name);
      }
      return refName(r);
    });
    opNames.push(name);
    nodes.push({
      name,
      op: op.op,
      input: inputs,
      ...(Object.keys(op.attrs).length ? { attr: op.attrs } : {}),
    });
  });

  nodes.push({ name: opts.outputName, op: 'Identity', input: [refName(a.output)] });

  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const weights = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    weights.set(c, offset);
    offset += c.byteLength;
  }
  return {
    modelJson: {
      format: 'graph-model',
      generatedBy: 'gantry export',
      convertedBy: null,
      modelTopology: { node: nodes, versions: { producer: 1 }, library: {} },
      weightsManifest: [{ paths: [opts.weightsPath ?? 'weights.bin'], weights: weightSpecs }],
    },
    weights,
  };
}

/** Same dtype, shape and values; a weight (a variable) by its name. */
function sameConst(x: TracedConst, y: TracedConst): boolean {
  if (x.name !== undefined || y.name !== undefined) return x.name === y.name;
  if (x.dtype !== y.dtype || x.shape.join('x') !== y.shape.join('x') || x.values.length !== y.values.length)
    return false;
  for (let i = 0; i < x.values.length; i++) if (x.values[i] !== y.values[i]) return false;
  return true;
}

function intVector(values: number[]): TracedConst {
  return { dtype: 'int32', shape: [values.length], values: Int32Array.from(values) };
}

function shapeProto(shape: readonly number[]) {
  return shape.length ? { dim: shape.map((d) => ({ size: String(d) })) } : {};
}

function notExportable(why: string): InferenceError {
  return new InferenceError('NOT_EXPORTABLE', `the network cannot be exported as a graph: ${why}`);
}

function checkSameOp(x: TfOp, y: TfOp, i: number): void {
  if (x.op !== y.op || x.inputs.length !== y.inputs.length)
    throw notExportable(`op ${i} is ${x.op} at one batch size and ${y.op} at another`);
  if (JSON.stringify(x.attrs) !== JSON.stringify(y.attrs))
    throw notExportable(`the attributes of op ${i} (${x.op}) depend on the batch size`);
  x.inputs.forEach((r, j) => {
    const s = y.inputs[j]!;
    if (r.kind === 'node' && s.kind === 'node' && (r.node !== s.node || r.output !== s.output))
      throw notExportable(`op ${i} (${x.op}) is wired differently at another batch size`);
    if (r.kind === 'input' && s.kind === 'input' && r.index !== s.index)
      throw notExportable(`op ${i} (${x.op}) takes other inputs at another batch size`);
  });
}

/**
 * For a 1-D int32 constant traced as `x` at batch n1 and `y` at n2: per entry, undefined where equal, k
 * where x = k n1 and y = k n2; undefined overall when any other entry differs.
 */
function batchFactors(
  x: TracedConst,
  y: TracedConst,
  n1: number,
  n2: number,
): (number | undefined)[] | undefined {
  if (
    x.dtype !== 'int32' ||
    y.dtype !== 'int32' ||
    x.shape.length !== 1 ||
    x.values.length !== y.values.length
  )
    return undefined;
  const out: (number | undefined)[] = [];
  for (let i = 0; i < x.values.length; i++) {
    const u = x.values[i]!;
    const v = y.values[i]!;
    if (u === v) out.push(undefined);
    else if (u % n1 === 0 && v % n2 === 0 && u / n1 === v / n2 && u / n1 > 0) out.push(u / n1);
    else return undefined;
  }
  return out;
}
