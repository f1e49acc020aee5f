import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  BatchMatMul,
  type BatchMatMulAttrs,
  broadcast_util,
  type DataId,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { type Gemm, gemmFor, heapPtr } from './gemm/index.ts';
import { stockKernel, stockSetup } from './stock-kernels.ts';
import { transpose2d } from './wasm-kernel.ts';

/**
 * Fewest multiply-adds (M*N*K per matrix) for which a batched product runs matrix by matrix on
 * XNNPACK; smaller ones stay on the stock kernel's loop, cheaper than a copy and an operator each.
 */
export const MIN_SLICE_MACS = 32 * 1024;

/** Tuning knobs; the defaults are what the registered kernel uses. */
export interface BatchMatMulOptions {
  /**
   * `'direct'`: op(A) @ op(B) with each transposed operand materialised; `'swapped'`:
   * (op(B)^T @ op(A)^T)^T, which needs no copy of an operand whose transpose flag is set; `'stock'`:
   * the stock kernel as it is; `'auto'`: whichever of direct, swapped and (for a small product with a
   * transposed operand) the stock kernel is estimated to be fastest; `'gemm'`: Gantry's own product
   * (gemm/), where it is available. `'auto'` uses Gantry's product where it is available and
   * {@link suitsGemm} the sizes, else picks among the others.
   * @default 'auto'
   */
  plan?: 'auto' | 'direct' | 'swapped' | 'stock' | 'gemm';
}

/** Arguments of the kernel function, as tfjs passes them. */
export interface BatchMatMulArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: BatchMatMulAttrs;
}

/** One operand of a 2-D product: a matrix stored [rows, cols], used transposed or not. */
interface Operand {
  info: TensorInfo;
  transposed: boolean;
}

/**
 * Matrix product op(A) @ op(B) for the wasm backend, over the leading batch dimensions. tfjs-backend-wasm
 * 4.22 hands a product to XNNPACK only when neither operand is transposed and both are single
 * matrices; anything else runs a scalar loop nest (~1 GFLOP/s, with transposeA ~13x slower than plain).
 * This kernel turns every product into plain 2-D ones for the stock kernel: a transposed operand is
 * materialised by the wasm Transpose kernel (free for a vector: a reshape), or the product is computed
 * swapped as (op(B)^T @ op(A)^T)^T when that moves fewer elements; a batched product whose B is one
 * matrix and A is not transposed is one tall product; other batches run matrix by matrix.
 *
 * Measured on the 2-core dev machine (single-threaded wasm with SIMD, fresh operands, median of 15):
 * - [64,100]^T @ [64,6272] (DCGAN G's dense weight gradient): stock 83-86 ms, here 7-8 ms.
 * - [64,1] @ [6272,1]^T (D's dense input gradient): stock 3.1-5.2 ms, here 0.2-0.3 ms.
 * - [64,100] @ [100,6272] (G's dense layer, no transpose): stock 13.7-16.3 ms, here 8.3 ms, swapped:
 *   XNNPACK packs B at ~12 ns per element when it makes the operator, and this B is the larger.
 * - [64,6272]^T @ [64,1] (D's dense weight gradient) and [64,6272] @ [6272,1]: Gantry's product
 *   ({@link suitsMatrixVector}).
 */
export function batchMatMul(args: BatchMatMulArgs, options: BatchMatMulOptions = {}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { a, b } = inputs;
  const stock = stockKernel(BatchMatMul, 'BatchMatMul');
  // The typed attrs are a NamedAttrMap at run time; the engine handed them over as one.
  const fallback = () =>
    stock.kernelFunc({ inputs, backend, attrs: attrs as unknown as NamedAttrMap }) as TensorInfo;
  const plan = options.plan ?? 'auto';
  if (a === undefined || b === undefined || plan === 'stock') return fallback();
  const p = problem(a, b, attrs);
  // Other dtypes, mismatched shapes and batch layouts the stock kernel does not broadcast either: its
  // own checks and errors apply.
  if (p === undefined || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return fallback();
  }
  const { m, k, n, batchA, batchB, outShape } = p;
  if (outShape.reduce((x, y) => x * y, 1) === 0 || k === 0) {
    // Nothing to compute, or empty sums: zeros, as tfjs defines them.
    const out = backend.makeOutput(outShape, 'float32');
    backend.typedArrayFromHeap(out).fill(0);
    return out;
  }
  const gemm = plan === 'auto' || plan === 'gemm' ? gemmFor(backend) : undefined;
  // Attention's per-head products: a batch of matrices on each side.
  const batched = batchA > 1 && batchB > 1;
  if (
    gemm !== undefined &&
    (plan === 'gemm' ||
      suitsGemm(m, k, n) ||
      suitsMatrixVector(m, k, n) ||
      (batched && suitsBatchedGemm(m, n)))
  ) {
    return gemmProduct(backend, gemm, a, b, attrs, p);
  }
  // Each operand's stored matrix: A is [K, M] when transposed, else [M, K]; B is [N, K] or [K, N].
  const aStored = attrs.transposeA ? [k, m] : [m, k];
  const bStored = attrs.transposeB ? [n, k] : [k, n];
  const opB: Operand = { info: view(b, bStored), transposed: attrs.transposeB };
  let out: TensorInfo;
  if (batchA === 1 && batchB === 1) {
    out = product2d(backend, { info: view(a, aStored), transposed: attrs.transposeA }, opB, plan);
  } else if (batchB === 1 && !attrs.transposeA) {
    // Rows of all A matrices against the one B: a single tall product.
    out = product2d(backend, { info: view(a, [batchA * m, k]), transposed: false }, opB, plan);
  } else if (m * n * k < MIN_SLICE_MACS) {
    return fallback();
  } else {
    out = sliceBySlice(backend, a, b, attrs, p, plan);
  }
  return { dataId: out.dataId, shape: outShape, dtype: 'float32' };
}

/**
 * Products that Gantry's product runs faster than XNNPACK: at least a 4x8 tile of output (its unit of
 * work; thinner results waste most of each tile) and enough work to amortise packing.
 */
export function suitsGemm(m: number, k: number, n: number): boolean {
  return m >= 4 && n >= 8 && m * n * k >= MIN_SLICE_MACS;
}

/**
 * Matrix-vector products (one result column) that Gantry's product runs faster than XNNPACK or the
 * stock loop, though most of each 8-column tile goes unused; the gap is widest on operands fresh from
 * memory, as they are in a training step. Measured on the 2-core dev machine (one process, alternating,
 * medians of 16, cache flushed before each call): DCGAN D's dense [64,6272] @ [6272,1] 1.5 ms on
 * XNNPACK, here 0.6 ms; its weight gradient [64,6272]^T @ [64,1] 1.6 ms (swapped, XNNPACK), here 0.6 ms;
 * with warm caches 0.3 and 0.4 ms, here 0.3 and 0.2 ms. Timed inside DCGAN 28 steps (3 + 2 calls a
 * step) they took 3.6-3.7 ms a step on XNNPACK, here 1.9-2.0 ms: ~0.5% of the step, which is within
 * the step's own noise (three alternating runs in one process, medians of 24: -4.6, -2.7, +2.6 ms).
 */
export function suitsMatrixVector(m: number, k: number, n: number): boolean {
  return n === 1 && m >= 4 && m * k >= MIN_SLICE_MACS;
}

/**
 * Batched products that Gantry's product runs faster than the stock kernel's loop even when each matrix is
 * small (attention's per-head products: TransGAN's windows of 49 tokens with 2 or 8 channels a head, its
 * critic's 50 tokens with 16): the stock loop reads a transposed operand by strides at 0.3-2 GFLOP/s, the
 * product packs it. Measured on the 2-core dev machine (fresh operands, mean of 20): [2048,49,2] @
 * [2048,49,2]^T stock 71-72 ms, here 7-10 ms; [512,49,49] @ [512,49,8] 22-24 ms, here 1.6-2.1 ms;
 * [2048,49,49] @ [2048,49,2] 27 ms, here 9-13 ms (two of each 8-column tile unused). With fewer than 4
 * rows ([2048,49,2]^T @ [2048,49,2]: 0.4 ms stock, 1.4-1.7 ms here) the stock loop stays.
 */
export function suitsBatchedGemm(m: number, n: number): boolean {
  return m >= 4 && n >= 2;
}

/**
 * op(A) @ op(B) by Gantry's product, every matrix of a batch in place: transposes are strides, so
 * nothing is copied.
 */
function gemmProduct(
  backend: BackendWasm,
  gemm: Gemm,
  a: TensorInfo,
  b: TensorInfo,
  attrs: BatchMatMulAttrs,
  p: Problem,
): TensorInfo {
  const { m, k, n, batchA, batchB, outShape } = p;
  const out = backend.makeOutput(outShape, 'float32');
  // Byte offsets stay valid when the heap grows (only typed-array views are detached).
  gemm.reserve(n);
  const aBase = heapPtr(backend, a);
  const bBase = heapPtr(backend, b);
  const cBase = heapPtr(backend, out);
  // A is stored [K, M] when transposed, else [M, K]; B is stored [N, K] or [K, N].
  const aStrides = attrs.transposeA ? { rowStride: 4, colStride: 4 * m } : { rowStride: 4 * k, colStride: 4 };
  const bStrides = attrs.transposeB ? { rowStride: 4, colStride: 4 * k } : { rowStride: 4 * n, colStride: 4 };
  for (let i = 0; i < Math.max(batchA, batchB); i++) {
    gemm.multiply(
      m,
      k,
      n,
      { ptr: aBase + (batchA === 1 ? 0 : i) * 4 * m * k, ...aStrides },
      { ptr: bBase + (batchB === 1 ? 0 : i) * 4 * k * n, ...bStrides },
      { ptr: cBase + i * 4 * m * n, rowStride: 4 * n },
    );
  }
  return out;
}

/** Sizes of one call; undefined where tfjs' own rules (checked by the stock kernel) do not hold. */
interface Problem {
  m: number;
  k: number;
  n: number;
  batchA: number;
  batchB: number;
  outShape: number[];
}

function problem(a: TensorInfo, b: TensorInfo, attrs: BatchMatMulAttrs): Problem | undefined {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) return undefined;
  const dim = (s: number[], i: number): number => s[i] as number;
  const m = attrs.transposeA ? dim(a.shape, ra - 1) : dim(a.shape, ra - 2);
  const kA = attrs.transposeA ? dim(a.shape, ra - 2) : dim(a.shape, ra - 1);
  const kB = attrs.transposeB ? dim(b.shape, rb - 1) : dim(b.shape, rb - 2);
  const n = attrs.transposeB ? dim(b.shape, rb - 2) : dim(b.shape, rb - 1);
  if (kA !== kB) return undefined;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = outerA.reduce((x, y) => x * y, 1);
  const batchB = outerB.reduce((x, y) => x * y, 1);
  // tfjs flattens the batch dimensions; only equal batches or a single matrix broadcast correctly.
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return undefined;
  let outer: number[];
  try {
    outer = broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return undefined;
  }
  if (outer.reduce((x, y) => x * y, 1) !== Math.max(batchA, batchB)) return undefined;
  return { m, k: kA, n, batchA, batchB, outShape: [...outer, m, n] };
}

/** Same storage, other shape; not a new reference (the caller must not dispose it). */
function view(t: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

function rowsOf(x: Operand): number {
  return x.info.shape[0] as number;
}

function colsOf(x: Operand): number {
  return x.info.shape[1] as number;
}

/** Whether `x` is a row or column vector, whose transpose is a reshape. */
function isVector(x: Operand): boolean {
  return rowsOf(x) === 1 || colsOf(x) === 1;
}

/** Elements the wasm Transpose kernel copies to make op(x) a plain operand. */
function moved(x: Operand): number {
  return x.transposed && !isVector(x) ? rowsOf(x) * colsOf(x) : 0;
}

/** op(x) as a plain operand without copying, where that is possible (see {@link moved}). */
function asIs(x: Operand): TensorInfo {
  return x.transposed ? view(x.info, [colsOf(x), rowsOf(x)]) : x.info;
}

/**
 * Estimated cost, in ns on the dev machine, of each step of a plain XNNPACK product: an element moved by
 * the wasm Transpose kernel; an element of B packed when its operator is made (XNNPACK gathers B
 * transposed, one element at a time: 9-16 ns); a multiply-add, with the fully connected micro-kernels
 * computing 8 columns at a time. And of the stock kernel's loop nest, which it runs for a transposed
 * operand: per multiply-add and per result element. With them `'auto'` picks the fastest plan (within
 * noise) for every product the DCGAN step makes, on fresh operands.
 */
const TRANSPOSE_NS = 2;
const PACK_NS = 12;
const MULTIPLY_ADD_NS = 0.12;
const KERNEL_COLUMNS = 8;
const LOOP_MULTIPLY_ADD_NS = 2.5;
const LOOP_RESULT_NS = 10;

/**
 * The stock kernel keeps one XNNPACK operator, holding B packed, per B storage id whatever B's shape
 * in the call. Storage shared by reshapes and clones (our Identity returns its input's storage) can
 * come back as a B of another [K, N] and would meet that stale operator: the [K, N] each storage was
 * last multiplied as, so that such a B is copied first (and an operator still cached is known).
 */
const packedAs = new WeakMap<DataId, string>();

/** Estimated ns of {@link plainProduct}(a, b) for op(a) [m, k] @ op(b) [k, n]. */
function plainCost(a: Operand, b: Operand, m: number, n: number, k: number): number {
  const weights = asIs(b);
  const cached = moved(b) === 0 && packedAs.get(weights.dataId) === weights.shape.join('x');
  const columns = Math.ceil(n / KERNEL_COLUMNS) * KERNEL_COLUMNS;
  return (
    TRANSPOSE_NS * (moved(a) + moved(b)) + (cached ? 0 : PACK_NS * k * n) + MULTIPLY_ADD_NS * m * columns * k
  );
}

/** op(A) @ op(B) for 2-D operands by plain XNNPACK products; a new tensor [M, N]. */
function product2d(
  backend: BackendWasm,
  a: Operand,
  b: Operand,
  plan: BatchMatMulOptions['plan'],
): TensorInfo {
  const m = a.transposed ? colsOf(a) : rowsOf(a);
  const n = b.transposed ? rowsOf(b) : colsOf(b);
  const k = a.transposed ? rowsOf(a) : colsOf(a);
  // op(X)^T is the same stored matrix with the opposite flag.
  const flip = (x: Operand): Operand => ({ info: x.info, transposed: !x.transposed });
  const outVector = m === 1 || n === 1;
  let choice = plan;
  if (choice !== 'direct' && choice !== 'swapped') {
    const direct = plainCost(a, b, m, n, k);
    const swapped = plainCost(flip(b), flip(a), n, m, k) + (outVector ? 0 : TRANSPOSE_NS * m * n);
    const loop =
      a.transposed || b.transposed ? LOOP_MULTIPLY_ADD_NS * m * n * k + LOOP_RESULT_NS * m * n : Infinity;
    choice = loop < Math.min(direct, swapped) ? 'stock' : swapped < direct ? 'swapped' : 'direct';
  }
  if (choice === 'stock') {
    return stockKernel(BatchMatMul, 'BatchMatMul').kernelFunc({
      inputs: { a: a.info, b: b.info },
      backend,
      attrs: { transposeA: a.transposed, transposeB: b.transposed },
    }) as TensorInfo;
  }
  if (choice === 'direct') return plainProduct(backend, a, b);
  const outT = plainProduct(backend, flip(b), flip(a));
  if (outVector) return view(outT, [m, n]);
  try {
    return transpose2d(backend, outT, BatchMatMul);
  } finally {
    backend.disposeData(outT.dataId);
  }
}

/** The stock kernel's plain product of op(A) and op(B), each materialised if transposed. */
function plainProduct(backend: BackendWasm, a: Operand, b: Operand): TensorInfo {
  const temps: TensorInfo[] = [];
  const plain = (x: Operand): TensorInfo => {
    if (moved(x) === 0) return asIs(x);
    const t = transpose2d(backend, x.info, BatchMatMul);
    temps.push(t);
    return t;
  };
  try {
    let weights = plain(b);
    const shape = weights.shape.join('x');
    const packed = packedAs.get(weights.dataId);
    if (packed !== undefined && packed !== shape) {
      const copy = backend.makeOutput(weights.shape, 'float32');
      temps.push(copy);
      backend.typedArrayFromHeap(copy).set(backend.typedArrayFromHeap(weights));
      weights = copy;
    } else {
      packedAs.set(weights.dataId, shape);
    }
    return stockKernel(BatchMatMul, 'BatchMatMul').kernelFunc({
      inputs: { a: plain(a), b: weights },
      backend,
      attrs: { transposeA: false, transposeB: false },
    }) as TensorInfo;
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

/** A batched product, matrix by matrix: each operand matrix copied out, multiplied, copied back. */
function sliceBySlice(
  backend: BackendWasm,
  a: TensorInfo,
  b: TensorInfo,
  attrs: BatchMatMulAttrs,
  p: Problem,
  plan: BatchMatMulOptions['plan'],
): TensorInfo {
  const { m, k, n, batchA, batchB } = p;
  const batch = Math.max(batchA, batchB);
  const aShape = attrs.transposeA ? [k, m] : [m, k];
  const bShape = attrs.transposeB ? [n, k] : [k, n];
  const out = backend.makeOutput([batch, m, n], 'float32');
  // A matrix shared by every product (a broadcast operand) is copied once.
  let sharedA: TensorInfo | undefined;
  let sharedB: TensorInfo | undefined;
  try {
    for (let i = 0; i < batch; i++) {
      let ai = sharedA;
      let bi = sharedB;
      let ci: TensorInfo | undefined;
      try {
        ai ??= matrix(backend, a, aShape, batchA === 1 ? 0 : i);
        if (batchA === 1) sharedA = ai;
        bi ??= matrix(backend, b, bShape, batchB === 1 ? 0 : i);
        if (batchB === 1) sharedB = bi;
        ci = product2d(
          backend,
          { info: ai, transposed: attrs.transposeA },
          { info: bi, transposed: attrs.transposeB },
          plan,
        );
        // Views are taken after every allocation: a heap growth detaches older ones.
        backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(ci), i * m * n);
      } finally {
        if (ci !== undefined) backend.disposeData(ci.dataId);
        if (ai !== undefined && ai !== sharedA) backend.disposeData(ai.dataId);
        if (bi !== undefined && bi !== sharedB) backend.disposeData(bi.dataId);
      }
    }
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    if (sharedA !== undefined) backend.disposeData(sharedA.dataId);
    if (sharedB !== undefined) backend.disposeData(sharedB.dataId);
  }
  return out;
}

/** A copy of matrix `index` of the batched tensor t, as a new tensor of `shape`. */
function matrix(backend: BackendWasm, t: TensorInfo, shape: number[], index: number): TensorInfo {
  const size = (shape[0] as number) * (shape[1] as number);
  const copy = backend.makeOutput(shape, 'float32');
  const src = backend.typedArrayFromHeap(t);
  backend.typedArrayFromHeap(copy).set(src.subarray(index * size, (index + 1) * size));
  return copy;
}

/** Kernel config to register with tfjs for the wasm backend, in place of the stock one. */
export const batchMatMulConfig: KernelConfig = {
  kernelName: BatchMatMul,
  backendName: 'wasm',
  setupFunc: stockSetup(BatchMatMul),
  // tfjs passes the backend as `{}` and attrs as a loose map; the engine guarantees these shapes.
  kernelFunc: ((args: BatchMatMulArgs) => batchMatMul(args)) as unknown as KernelFunc,
};
