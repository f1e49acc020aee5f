import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  Add,
  broadcast_util,
  type KernelConfig,
  type KernelFunc,
  Multiply,
  type NamedTensorInfoMap,
  type TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import { heapPtr } from './gemm/index.ts';
import { instanceOnBackend, moduleFromWat } from './gemm/module-cache.ts';
import { stockKernel, stockSetup } from './stock-kernels.ts';

/**
 * Add and Multiply of float32 tensors for the wasm backend, as SIMD loops over the operands in place, for
 * the broadcasts that training steps make (out is the broadcast shape; `full` is the operand of out's size):
 * - same size: o[i] = a[i] op b[i];
 * - a single value (shape [] or all ones): o[i] = full[i] op s;
 * - a suffix of out's shape (the bias [C] of [..., C], or [H, W, C] of [B, H, W, C]): the P = size(small)
 *   values repeat along out; when P is not a multiple of 4 they are first tiled 4 times into a temporary;
 * - a prefix of out's shape with trailing ones ([..., 1], pixel norm's [B, H, W, 1], or a per-sample
 *   [B, 1, 1, 1]): one value per run of `inner` floats of out.
 * The stock kernels (XNNPACK's) are slow on the broadcasts: single calls, medians of 15 alternating,
 * [32,64,64,8] + [8] 1.7-1.9 -> 0.35-0.56 ms, [32,64,64,3] + [3] 1.40 -> 0.13 ms, [32,64,64,8] *
 * [32,64,64,1] 1.56 -> 0.36 ms; same sizes and single values were within 10% already.
 * Each output is the one IEEE float32 sum or product of its two inputs, as f32x4.add/mul and f32.add/mul
 * compute them: bit for bit the values of the stock and cpu kernels (NaN and infinities propagate; wasm
 * does not flush subnormals). Both operations commute, so which side is broadcast does not matter.
 * Other dtypes and broadcasts (both operands broadcast, or a middle axis) go to the stock kernel.
 */
function loops(op: 'add' | 'mul'): string {
  const v = `f32x4.${op}`;
  const f = `f32.${op}`;
  return `
;; o[i] = a[i] op b[i], n floats
(func (export "same_${op}") (param $a i32) (param $b i32) (param $o i32) (param $n i32)
  (local $end i32) (local $end8 i32) (local $end4 i32)
  (local.set $end (i32.add (local.get $o) (i32.shl (local.get $n) (i32.const 2))))
  (local.set $end8 (i32.add (local.get $o) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
  (local.set $end4 (i32.add (local.get $o) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
  (block $done (loop $vec2
    (br_if $done (i32.ge_u (local.get $o) (local.get $end8)))
    (v128.store (local.get $o) (${v} (v128.load (local.get $a)) (v128.load (local.get $b))))
    (v128.store offset=16 (local.get $o) (${v} (v128.load offset=16 (local.get $a)) (v128.load offset=16 (local.get $b))))
    (local.set $a (i32.add (local.get $a) (i32.const 32)))
    (local.set $b (i32.add (local.get $b) (i32.const 32)))
    (local.set $o (i32.add (local.get $o) (i32.const 32)))
    (br $vec2)))
  (if (i32.lt_u (local.get $o) (local.get $end4)) (then
    (v128.store (local.get $o) (${v} (v128.load (local.get $a)) (v128.load (local.get $b))))
    (local.set $a (i32.add (local.get $a) (i32.const 16)))
    (local.set $b (i32.add (local.get $b) (i32.const 16)))
    (local.set $o (i32.add (local.get $o) (i32.const 16)))))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $o) (local.get $end)))
    (f32.store (local.get $o) (${f} (f32.load (local.get $a)) (f32.load (local.get $b))))
    (local.set $a (i32.add (local.get $a) (i32.const 4)))
    (local.set $b (i32.add (local.get $b) (i32.const 4)))
    (local.set $o (i32.add (local.get $o) (i32.const 4)))
    (br $one))))
;; o[i] = a[i] op s, n floats, s the float at $s
(func (export "scalar_${op}") (param $a i32) (param $s i32) (param $o i32) (param $n i32)
  (local $end i32) (local $end8 i32) (local $end4 i32) (local $x f32) (local $v v128)
  (local.set $x (f32.load (local.get $s)))
  (local.set $v (f32x4.splat (local.get $x)))
  (local.set $end (i32.add (local.get $o) (i32.shl (local.get $n) (i32.const 2))))
  (local.set $end8 (i32.add (local.get $o) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
  (local.set $end4 (i32.add (local.get $o) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
  (block $done (loop $vec2
    (br_if $done (i32.ge_u (local.get $o) (local.get $end8)))
    (v128.store (local.get $o) (${v} (v128.load (local.get $a)) (local.get $v)))
    (v128.store offset=16 (local.get $o) (${v} (v128.load offset=16 (local.get $a)) (local.get $v)))
    (local.set $a (i32.add (local.get $a) (i32.const 32)))
    (local.set $o (i32.add (local.get $o) (i32.const 32)))
    (br $vec2)))
  (if (i32.lt_u (local.get $o) (local.get $end4)) (then
    (v128.store (local.get $o) (${v} (v128.load (local.get $a)) (local.get $v)))
    (local.set $a (i32.add (local.get $a) (i32.const 16)))
    (local.set $o (i32.add (local.get $o) (i32.const 16)))))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $o) (local.get $end)))
    (f32.store (local.get $o) (${f} (f32.load (local.get $a)) (local.get $x)))
    (local.set $a (i32.add (local.get $a) (i32.const 4)))
    (local.set $o (i32.add (local.get $o) (i32.const 4)))
    (br $one))))
;; o[i] = a[i] op p[i mod P], n floats, P (a multiple of 4) floats at $p
(func (export "period_${op}") (param $a i32) (param $p i32) (param $o i32) (param $n i32) (param $P i32)
  (local $end i32) (local $end4 i32) (local $j i32) (local $pb i32)
  (local.set $pb (i32.shl (local.get $P) (i32.const 2)))
  (local.set $end (i32.add (local.get $o) (i32.shl (local.get $n) (i32.const 2))))
  (local.set $end4 (i32.add (local.get $o) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $o) (local.get $end4)))
    (v128.store (local.get $o) (${v} (v128.load (local.get $a)) (v128.load (i32.add (local.get $p) (local.get $j)))))
    (local.set $j (i32.add (local.get $j) (i32.const 16)))
    (local.set $j (select (i32.const 0) (local.get $j) (i32.eq (local.get $j) (local.get $pb))))
    (local.set $a (i32.add (local.get $a) (i32.const 16)))
    (local.set $o (i32.add (local.get $o) (i32.const 16)))
    (br $vec)))
  ;; under 4 floats are left, at a multiple of 4 into the period: no wrap
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $o) (local.get $end)))
    (f32.store (local.get $o) (${f} (f32.load (local.get $a)) (f32.load (i32.add (local.get $p) (local.get $j)))))
    (local.set $j (i32.add (local.get $j) (i32.const 4)))
    (local.set $a (i32.add (local.get $a) (i32.const 4)))
    (local.set $o (i32.add (local.get $o) (i32.const 4)))
    (br $one))))
;; o[r * inner + k] = a[r * inner + k] op s[r], rows runs of inner floats
(func (export "rows_${op}") (param $a i32) (param $s i32) (param $o i32) (param $rows i32) (param $inner i32)
  (local $end i32) (local $rowEnd i32) (local $rowEnd4 i32) (local $ib i32) (local $ib4 i32) (local $x f32) (local $v v128)
  (local.set $ib (i32.shl (local.get $inner) (i32.const 2)))
  (local.set $ib4 (i32.shl (i32.and (local.get $inner) (i32.const -4)) (i32.const 2)))
  (local.set $end (i32.add (local.get $o) (i32.mul (local.get $rows) (local.get $ib))))
  (block $finished (loop $row
    (br_if $finished (i32.ge_u (local.get $o) (local.get $end)))
    (local.set $x (f32.load (local.get $s)))
    (local.set $v (f32x4.splat (local.get $x)))
    (local.set $rowEnd (i32.add (local.get $o) (local.get $ib)))
    (local.set $rowEnd4 (i32.add (local.get $o) (local.get $ib4)))
    (block $done (loop $vec
      (br_if $done (i32.ge_u (local.get $o) (local.get $rowEnd4)))
      (v128.store (local.get $o) (${v} (v128.load (local.get $a)) (local.get $v)))
      (local.set $a (i32.add (local.get $a) (i32.const 16)))
      (local.set $o (i32.add (local.get $o) (i32.const 16)))
      (br $vec)))
    (block $done (loop $one
      (br_if $done (i32.ge_u (local.get $o) (local.get $rowEnd)))
      (f32.store (local.get $o) (${f} (f32.load (local.get $a)) (local.get $x)))
      (local.set $a (i32.add (local.get $a) (i32.const 4)))
      (local.set $o (i32.add (local.get $o) (i32.const 4)))
      (br $one)))
    (local.set $s (i32.add (local.get $s) (i32.const 4)))
    (br $row))))`;
}

const BINARY_WAT = `(module
(import "env" "memory" (memory 0))
${loops('add')}
${loops('mul')}
)`;

type Run = (...args: number[]) => void;
interface Loops {
  same: Run;
  scalar: Run;
  period: Run;
  rows: Run;
}

let compiled: object | undefined;
/** Compiled once per process, from the first import on; until it is ready the stock kernels run. */
const compiling: Promise<void> = (async () => {
  try {
    compiled = await moduleFromWat('gantry-binary', BINARY_WAT, { simd: true });
  } catch {
    compiled = undefined;
  }
})();

/** Resolves once the module is compiled (or failed to be); the kernels work either way. */
export function binaryBroadcastReady(): Promise<void> {
  return compiling;
}

const instances = new WeakMap<BackendWasm, Record<'add' | 'mul', Loops>>();

function loopsFor(backend: BackendWasm, op: 'add' | 'mul'): Loops | undefined {
  const existing = instances.get(backend);
  if (existing !== undefined) return existing[op];
  if (compiled === undefined) return undefined;
  const ex = instanceOnBackend(compiled, backend);
  if (ex === undefined) return undefined;
  const pick = (o: string): Loops => ({
    same: ex[`same_${o}`] as Run,
    scalar: ex[`scalar_${o}`] as Run,
    period: ex[`period_${o}`] as Run,
    rows: ex[`rows_${o}`] as Run,
  });
  const both = { add: pick('add'), mul: pick('mul') };
  instances.set(backend, both);
  return both[op];
}

/** How the smaller operand `small` broadcasts against `out` (of the other operand's size). */
export type Pattern =
  | { kind: 'same' }
  | { kind: 'scalar' }
  | { kind: 'period'; period: number }
  | { kind: 'rows'; inner: number }
  | { kind: 'other' };

/**
 * The pattern of `small` against the broadcast shape `out`: a single value, a suffix of out's shape (after
 * leading ones), a prefix of it (before trailing ones), or other.
 */
export function broadcastPattern(small: readonly number[], out: readonly number[]): Pattern {
  const n = util.sizeFromShape(out as number[]);
  const m = util.sizeFromShape(small as number[]);
  if (m === n) return { kind: 'same' };
  if (m === 1) return { kind: 'scalar' };
  const r = out.length;
  const s = [...new Array<number>(r - small.length).fill(1), ...small];
  let first = 0;
  while (first < r && s[first] === 1) first++;
  let last = r;
  while (last > 0 && s[last - 1] === 1) last--;
  const suffix = s.slice(first).every((d, i) => d === out[first + i]);
  if (suffix) return { kind: 'period', period: m };
  const prefix = s.slice(0, last).every((d, i) => d === out[i]);
  if (prefix) return { kind: 'rows', inner: util.sizeFromShape(out.slice(last) as number[]) };
  return { kind: 'other' };
}

/** Arguments of the kernel function, as tfjs passes them. */
export interface BinaryArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
}

function binary(name: typeof Add | typeof Multiply, op: 'add' | 'mul', args: BinaryArgs): TensorInfo {
  const { inputs, backend } = args;
  const { a, b } = inputs;
  const stock = (): TensorInfo => stockKernel(name, name).kernelFunc(args) as TensorInfo;
  if (a === undefined || b === undefined || a.dtype !== 'float32' || b.dtype !== 'float32') return stock();
  const run = loopsFor(backend, op);
  if (run === undefined) return stock();
  const shape = broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const n = util.sizeFromShape(shape);
  if (n === 0) return stock();
  const aFull = util.sizeFromShape(a.shape) === n;
  const bFull = util.sizeFromShape(b.shape) === n;
  if (!aFull && !bFull) return stock();
  const [full, small] = aFull ? [a, b] : [b, a];
  const pattern = broadcastPattern(small.shape, shape);
  if (pattern.kind === 'other') return stock();
  const out = backend.makeOutput(shape, 'float32');
  if (pattern.kind === 'same') {
    run.same(heapPtr(backend, a), heapPtr(backend, b), heapPtr(backend, out), n);
  } else if (pattern.kind === 'scalar') {
    run.scalar(heapPtr(backend, full), heapPtr(backend, small), heapPtr(backend, out), n);
  } else if (pattern.kind === 'rows') {
    run.rows(
      heapPtr(backend, full),
      heapPtr(backend, small),
      heapPtr(backend, out),
      n / pattern.inner,
      pattern.inner,
    );
  } else if (pattern.period % 4 === 0) {
    run.period(heapPtr(backend, full), heapPtr(backend, small), heapPtr(backend, out), n, pattern.period);
  } else {
    // Four copies of the period make one that a whole number of vectors spans.
    const p = pattern.period;
    const tiled = backend.makeOutput([4 * p], 'float32');
    try {
      const src = backend.typedArrayFromHeap(small) as Float32Array;
      const dst = backend.typedArrayFromHeap(tiled) as Float32Array;
      for (let k = 0; k < 4; k++) dst.set(src, k * p);
      run.period(heapPtr(backend, full), heapPtr(backend, tiled), heapPtr(backend, out), n, 4 * p);
    } finally {
      backend.disposeData(tiled.dataId);
    }
  }
  return out;
}

/** Kernel config to register with tfjs for the wasm backend, in place of the stock Add. */
export const addConfig: KernelConfig = {
  kernelName: Add,
  backendName: 'wasm',
  setupFunc: stockSetup(Add),
  // tfjs passes the backend as `{}`; the engine guarantees it is the wasm backend.
  kernelFunc: ((args: BinaryArgs) => binary(Add, 'add', args)) as unknown as KernelFunc,
};

/** Kernel config to register with tfjs for the wasm backend, in place of the stock Multiply. */
export const multiplyConfig: KernelConfig = {
  kernelName: Multiply,
  backendName: 'wasm',
  setupFunc: stockSetup(Multiply),
  kernelFunc: ((args: BinaryArgs) => binary(Multiply, 'mul', args)) as unknown as KernelFunc,
};
