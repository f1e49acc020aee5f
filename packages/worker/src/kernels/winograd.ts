import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { type Gemm, heapPtr } from './gemm/index.ts';
import { instanceOnBackend, moduleFromWat } from './gemm/module-cache.ts';

/**
 * Stride-1 3x3 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms
 * for Convolutional Neural Networks", 2016): each 2x2 block of outputs comes from a 4x4 tile of the input,
 * Y = A^T [(G g G^T) . (B^T d B)] A, so the 36 multiply-adds per output pixel and channel pair of the direct
 * convolution become 16 per 2x2 block (2.25x fewer). Across channels the elementwise products are 16
 * matrix products, one per tile position xi = (i, j):
 *   M[xi][tile][co] = V[xi][tile][:] @ U[xi][:][co],  V = B^T d B of every tile, U = G g G^T of the filter,
 * which go through Gantry's product (gemm/), and the transforms are SIMD passes over 4 channels at a time
 * (the WAT below). The input is first copied into a zero-padded grid of whole tiles, so the input
 * transform reads without bounds checks.
 *
 * Used for the thin 3x3 convolutions of ProGAN and SRGAN, where im2col's product runs at 19-27 GFLOP/s
 * (its K = 9 * CI is short and the patches are 9x the input); channel counts must be multiples of 4.
 */

/** B^T d B over the rows (first index) of a 4x4 tile: the four combinations, as (plus, minus) pairs. */
const BT: readonly (readonly [number, number, '+' | '-'])[] = [
  [0, 2, '-'],
  [1, 2, '+'],
  [2, 1, '-'],
  [1, 3, '-'],
];

/** The input transform's WAT: V[xi][j][c] = (B^T d B)[xi] for tiles t0 .. t0 + count - 1, channels c..c+3. */
function inputTransformWat(): string {
  const lines: string[] = [];
  // Column by column (fewer live vectors): d_{.j} loaded, t_{.j} = (B^T d)_{.j} from its rows; then
  // V_{ij} = (t B)_{ij} from the columns of each row of t, stored as it is made.
  for (let j = 0; j < 4; j++) {
    for (let i = 0; i < 4; i++) {
      const column = j === 0 ? `(local.get $r${i})` : `(i32.add (local.get $r${i}) (local.get $c${j}))`;
      lines.push(`(local.set $a${i} (v128.load ${column}))`);
    }
    for (let i = 0; i < 4; i++) {
      const [p, q, op] = BT[i] as (typeof BT)[number];
      lines.push(
        `(local.set $t${4 * i + j} (f32x4.${op === '+' ? 'add' : 'sub'} (local.get $a${p}) (local.get $a${q})))`,
      );
    }
  }
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      const [p, q, op] = BT[j] as (typeof BT)[number];
      lines.push(
        `(v128.store (local.get $o) (f32x4.${op === '+' ? 'add' : 'sub'} (local.get $t${4 * i + p}) (local.get $t${4 * i + q})))`,
        `(local.set $o (i32.add (local.get $o) (local.get $xiStride)))`,
      );
    }
  }
  const loads: string[] = [];
  for (let i = 0; i < 4; i++)
    loads.push(
      `(local.set $r${i} (i32.add (local.get $base) (i32.mul (i32.const ${i}) (local.get $rowBytes))))`,
    );
  const vecs = (name: string): string =>
    Array.from({ length: 16 }, (_, k) => `(local $${name}${k} v128)`).join(' ');
  return `(func (export "winogradIn") (param $xp i32) (param $v i32) (param $Hp i32) (param $Wp i32) (param $C i32)
    (param $tH i32) (param $tW i32) (param $first i32) (param $count i32) (param $xiStride i32)
  (local $j i32) (local $t i32) (local $b i32) (local $ty i32) (local $tx i32) (local $base i32) (local $r i32)
  (local $o i32) (local $cb i32) (local $cBytes i32) (local $rowBytes i32) (local $perImage i32)
  (local $r0 i32) (local $r1 i32) (local $r2 i32) (local $r3 i32) (local $c1 i32) (local $c2 i32) (local $c3 i32)
  (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) ${vecs('t')}
  (local.set $cBytes (i32.shl (local.get $C) (i32.const 2)))
  (local.set $c1 (local.get $cBytes))
  (local.set $c2 (i32.shl (local.get $cBytes) (i32.const 1)))
  (local.set $c3 (i32.mul (local.get $cBytes) (i32.const 3)))
  (local.set $rowBytes (i32.mul (local.get $Wp) (local.get $cBytes)))
  (local.set $perImage (i32.mul (local.get $tH) (local.get $tW)))
  (block $done (loop $tiles
    (br_if $done (i32.ge_u (local.get $j) (local.get $count)))
    (local.set $t (i32.add (local.get $first) (local.get $j)))
    (local.set $b (i32.div_u (local.get $t) (local.get $perImage)))
    (local.set $t (i32.sub (local.get $t) (i32.mul (local.get $b) (local.get $perImage))))
    (local.set $ty (i32.div_u (local.get $t) (local.get $tW)))
    (local.set $tx (i32.sub (local.get $t) (i32.mul (local.get $ty) (local.get $tW))))
    (local.set $cb (i32.const 0))
    (loop $channels
      (local.set $base (i32.add (i32.add (local.get $xp) (local.get $cb)) (i32.mul (local.get $cBytes)
        (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $Hp)) (i32.shl (local.get $ty) (i32.const 1))) (local.get $Wp))
          (i32.shl (local.get $tx) (i32.const 1))))))
      ${loads.join('\n      ')}
      (local.set $o (i32.add (local.get $v) (i32.add (i32.mul (local.get $j) (local.get $cBytes)) (local.get $cb))))
      ${lines.join('\n      ')}
      (local.set $cb (i32.add (local.get $cb) (i32.const 16)))
      (br_if $channels (i32.lt_u (local.get $cb) (local.get $cBytes))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $tiles))))`;
}

/**
 * The output transform's WAT: y's 2x2 block of tile t = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], from
 * M[xi][j][co]; the block's right column and bottom row are written only inside y (odd output sizes).
 */
function outputTransformWat(): string {
  const loads: string[] = [];
  for (let k = 0; k < 16; k++) {
    loads.push(
      `(local.set $m${k} (v128.load (local.get $p)))`,
      `(local.set $p (i32.add (local.get $p) (local.get $xiStride)))`,
    );
  }
  const add = (a: string, b: string): string => `(f32x4.add ${a} ${b})`;
  const sub = (a: string, b: string): string => `(f32x4.sub ${a} ${b})`;
  const m = (i: number, j: number): string => `(local.get $m${4 * i + j})`;
  const s = (i: number, j: number): string => `(local.get $s${4 * i + j})`;
  const rows: string[] = [];
  // s = A^T M (2x4), then y = s A (2x2).
  for (let j = 0; j < 4; j++) {
    rows.push(`(local.set $s${j} ${add(add(m(0, j), m(1, j)), m(2, j))})`);
    rows.push(`(local.set $s${4 + j} ${sub(sub(m(1, j), m(2, j)), m(3, j))})`);
  }
  const y = (i: number, j: number): string =>
    j === 0 ? add(add(s(i, 0), s(i, 1)), s(i, 2)) : sub(sub(s(i, 1), s(i, 2)), s(i, 3));
  const vecs = (name: string, n: number): string =>
    Array.from({ length: n }, (_, k) => `(local $${name}${k} v128)`).join(' ');
  return `(func (export "winogradOut") (param $mp i32) (param $y i32) (param $OH i32) (param $OW i32) (param $C i32)
    (param $tH i32) (param $tW i32) (param $first i32) (param $count i32) (param $xiStride i32)
  (local $j i32) (local $t i32) (local $b i32) (local $ty i32) (local $tx i32) (local $q i32) (local $p i32)
  (local $cb i32) (local $cBytes i32) (local $rowBytes i32) (local $perImage i32)
  (local $right i32) (local $below i32)
  ${vecs('m', 16)} ${vecs('s', 8)}
  (local.set $cBytes (i32.shl (local.get $C) (i32.const 2)))
  (local.set $rowBytes (i32.mul (local.get $OW) (local.get $cBytes)))
  (local.set $perImage (i32.mul (local.get $tH) (local.get $tW)))
  (block $done (loop $tiles
    (br_if $done (i32.ge_u (local.get $j) (local.get $count)))
    (local.set $t (i32.add (local.get $first) (local.get $j)))
    (local.set $b (i32.div_u (local.get $t) (local.get $perImage)))
    (local.set $t (i32.sub (local.get $t) (i32.mul (local.get $b) (local.get $perImage))))
    (local.set $ty (i32.div_u (local.get $t) (local.get $tW)))
    (local.set $tx (i32.sub (local.get $t) (i32.mul (local.get $ty) (local.get $tW))))
    (local.set $right (i32.lt_u (i32.add (i32.shl (local.get $tx) (i32.const 1)) (i32.const 1)) (local.get $OW)))
    (local.set $below (i32.lt_u (i32.add (i32.shl (local.get $ty) (i32.const 1)) (i32.const 1)) (local.get $OH)))
    (local.set $cb (i32.const 0))
    (loop $channels
      (local.set $p (i32.add (local.get $mp) (i32.add (i32.mul (local.get $j) (local.get $cBytes)) (local.get $cb))))
      ${loads.join('\n      ')}
      ${rows.join('\n      ')}
      (local.set $q (i32.add (i32.add (local.get $y) (local.get $cb)) (i32.mul (local.get $cBytes)
        (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $OH)) (i32.shl (local.get $ty) (i32.const 1))) (local.get $OW))
          (i32.shl (local.get $tx) (i32.const 1))))))
      (v128.store (local.get $q) ${y(0, 0)})
      (if (local.get $right) (then (v128.store (i32.add (local.get $q) (local.get $cBytes)) ${y(0, 1)})))
      (if (local.get $below) (then
        (local.set $q (i32.add (local.get $q) (local.get $rowBytes)))
        (v128.store (local.get $q) ${y(1, 0)})
        (if (local.get $right) (then (v128.store (i32.add (local.get $q) (local.get $cBytes)) ${y(1, 1)})))))
      (local.set $cb (i32.add (local.get $cb) (i32.const 16)))
      (br_if $channels (i32.lt_u (local.get $cb) (local.get $cBytes))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $tiles))))`;
}

/**
 * The filter gradient's transform of dy: E[xi][j][c] = (A e A^T)[xi] for each tile's 2x2 block e of dy
 * (zeros outside dy), A = [1 0; 1 1; 1 -1; 0 -1].
 */
function gradientTransformWat(): string {
  // (A e)_i for the two entries e_0, e_1 of a column or row.
  const combine = (e0: string, e1: string): string[] => [
    e0,
    `(f32x4.add ${e0} ${e1})`,
    `(f32x4.sub ${e0} ${e1})`,
    `(f32x4.neg ${e1})`,
  ];
  const e = (i: number, j: number): string => `(local.get $e${2 * i + j})`;
  const sets: string[] = [];
  for (let j = 0; j < 2; j++) {
    combine(e(0, j), e(1, j)).forEach((v, i) => {
      sets.push(`(local.set $r${2 * i + j} ${v})`);
    });
  }
  const r = (i: number, j: number): string => `(local.get $r${2 * i + j})`;
  for (let i = 0; i < 4; i++) {
    for (const v of combine(r(i, 0), r(i, 1))) {
      sets.push(
        `(v128.store (local.get $o) ${v})`,
        `(local.set $o (i32.add (local.get $o) (local.get $xiStride)))`,
      );
    }
  }
  return `(func (export "winogradDy") (param $dy i32) (param $e i32) (param $OH i32) (param $OW i32) (param $C i32)
    (param $tH i32) (param $tW i32) (param $first i32) (param $count i32) (param $xiStride i32)
  (local $j i32) (local $t i32) (local $b i32) (local $ty i32) (local $tx i32) (local $q i32) (local $o i32)
  (local $cb i32) (local $cBytes i32) (local $rowBytes i32) (local $perImage i32)
  (local $right i32) (local $below i32)
  (local $e0 v128) (local $e1 v128) (local $e2 v128) (local $e3 v128)
  ${Array.from({ length: 8 }, (_, k) => `(local $r${k} v128)`).join(' ')}
  (local.set $cBytes (i32.shl (local.get $C) (i32.const 2)))
  (local.set $rowBytes (i32.mul (local.get $OW) (local.get $cBytes)))
  (local.set $perImage (i32.mul (local.get $tH) (local.get $tW)))
  (block $done (loop $tiles
    (br_if $done (i32.ge_u (local.get $j) (local.get $count)))
    (local.set $t (i32.add (local.get $first) (local.get $j)))
    (local.set $b (i32.div_u (local.get $t) (local.get $perImage)))
    (local.set $t (i32.sub (local.get $t) (i32.mul (local.get $b) (local.get $perImage))))
    (local.set $ty (i32.div_u (local.get $t) (local.get $tW)))
    (local.set $tx (i32.sub (local.get $t) (i32.mul (local.get $ty) (local.get $tW))))
    (local.set $right (i32.lt_u (i32.add (i32.shl (local.get $tx) (i32.const 1)) (i32.const 1)) (local.get $OW)))
    (local.set $below (i32.lt_u (i32.add (i32.shl (local.get $ty) (i32.const 1)) (i32.const 1)) (local.get $OH)))
    (local.set $cb (i32.const 0))
    (loop $channels
      (local.set $q (i32.add (i32.add (local.get $dy) (local.get $cb)) (i32.mul (local.get $cBytes)
        (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $OH)) (i32.shl (local.get $ty) (i32.const 1))) (local.get $OW))
          (i32.shl (local.get $tx) (i32.const 1))))))
      (local.set $e0 (v128.load (local.get $q)))
      (local.set $e1 (v128.const i32x4 0 0 0 0))
      (local.set $e2 (v128.const i32x4 0 0 0 0))
      (local.set $e3 (v128.const i32x4 0 0 0 0))
      (if (local.get $right) (then (local.set $e1 (v128.load (i32.add (local.get $q) (local.get $cBytes))))))
      (if (local.get $below) (then
        (local.set $q (i32.add (local.get $q) (local.get $rowBytes)))
        (local.set $e2 (v128.load (local.get $q)))
        (if (local.get $right) (then (local.set $e3 (v128.load (i32.add (local.get $q) (local.get $cBytes))))))))
      (local.set $o (i32.add (local.get $e) (i32.add (i32.mul (local.get $j) (local.get $cBytes)) (local.get $cb))))
      ${sets.join('\n      ')}
      (local.set $cb (i32.add (local.get $cb) (i32.const 16)))
      (br_if $channels (i32.lt_u (local.get $cb) (local.get $cBytes))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $tiles))))`;
}

/**
 * x [B, inH, inW, C] into the zero grid [B, hp, wp, C] at (padT, padL) (either may be negative: x's first
 * rows or columns are then dropped), row by row with bulk copies and fills.
 */
const PAD_WAT = `(func (export "winogradPad") (param $x i32) (param $xp i32) (param $B i32) (param $inH i32) (param $inW i32)
    (param $C i32) (param $hp i32) (param $wp i32) (param $padT i32) (param $padL i32)
  (local $cb i32) (local $b i32) (local $gy i32) (local $iy i32) (local $dst i32) (local $row i32)
  (local $left i32) (local $ix0 i32) (local $n i32)
  (local.set $cb (i32.shl (local.get $C) (i32.const 2)))
  (local.set $row (i32.mul (local.get $wp) (local.get $cb)))
  ;; grid columns [0, left) are zero, then n columns of x from ix0, then zeros
  (local.set $left (select (local.get $padL) (i32.const 0) (i32.gt_s (local.get $padL) (i32.const 0))))
  (local.set $ix0 (i32.sub (local.get $left) (local.get $padL)))
  (local.set $n (i32.sub (local.get $inW) (local.get $ix0)))
  (if (i32.gt_s (local.get $n) (i32.sub (local.get $wp) (local.get $left))) (then (local.set $n (i32.sub (local.get $wp) (local.get $left)))))
  (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
  (local.set $dst (local.get $xp))
  (block $done (loop $images
    (br_if $done (i32.ge_u (local.get $b) (local.get $B)))
    (local.set $gy (i32.const 0))
    (block $rowsDone (loop $rows
      (br_if $rowsDone (i32.ge_u (local.get $gy) (local.get $hp)))
      (local.set $iy (i32.sub (local.get $gy) (local.get $padT)))
      (if (i32.or (i32.lt_s (local.get $iy) (i32.const 0)) (i32.or (i32.ge_s (local.get $iy) (local.get $inH)) (i32.eqz (local.get $n))))
        (then (memory.fill (local.get $dst) (i32.const 0) (local.get $row)))
        (else
          (memory.fill (local.get $dst) (i32.const 0) (i32.mul (local.get $left) (local.get $cb)))
          (memory.copy (i32.add (local.get $dst) (i32.mul (local.get $left) (local.get $cb)))
            (i32.add (local.get $x) (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $inH)) (local.get $iy)) (local.get $inW)) (local.get $ix0)) (local.get $cb)))
            (i32.mul (local.get $n) (local.get $cb)))
          (memory.fill (i32.add (local.get $dst) (i32.mul (i32.add (local.get $left) (local.get $n)) (local.get $cb))) (i32.const 0)
            (i32.mul (i32.sub (local.get $wp) (i32.add (local.get $left) (local.get $n))) (local.get $cb)))))
      (local.set $dst (i32.add (local.get $dst) (local.get $row)))
      (local.set $gy (i32.add (local.get $gy) (i32.const 1)))
      (br $rows)))
    (local.set $b (i32.add (local.get $b) (i32.const 1)))
    (br $images))))`;

const WINOGRAD_WAT = `(module
(import "env" "memory" (memory 0))
${PAD_WAT}
${inputTransformWat()}
${outputTransformWat()}
${gradientTransformWat()}
)`;

type TransformExport = (...args: number[]) => void;
interface WinogradExports {
  winogradIn: TransformExport;
  winogradOut: TransformExport;
  winogradDy: TransformExport;
  winogradPad: TransformExport;
}

let compiled: object | undefined;
/** Compiled once per process, from the first import on; until it is ready convolutions use im2col. */
const compiling: Promise<void> = (async () => {
  try {
    compiled = await moduleFromWat('gantry-winograd', WINOGRAD_WAT, { simd: true, bulk_memory: true });
  } catch {
    compiled = undefined;
  }
})();

/** Resolves once the transforms are compiled (or failed to be); convolutions work either way. */
export function winogradReady(): Promise<void> {
  return compiling;
}

const instances = new WeakMap<BackendWasm, WinogradExports>();

function transformsFor(backend: BackendWasm): WinogradExports | undefined {
  const existing = instances.get(backend);
  if (existing !== undefined || compiled === undefined) return existing;
  const exports = instanceOnBackend(compiled, backend) as WinogradExports | undefined;
  if (exports?.winogradIn === undefined) return undefined;
  instances.set(backend, exports);
  return exports;
}

/**
 * Tiles per pass: V [16, tiles, CI] and M [16, tiles, CO] together about 1 MiB, so the transforms read
 * what the products just wrote from L2.
 */
export const DEFAULT_TILE_BYTES = 1024 * 1024;

/**
 * Floats from one tile position's plane to the next in V, M and E ([16][tiles][channels]): the plane
 * plus 16 floats, so that the transforms' 16 streams do not fall on the same cache sets (a plane of
 * 512 tiles x 16 channels, 32 KiB, made ProGAN's 32 px input transform ~7x slower).
 */
function planeStride(tiles: number, channels: number): number {
  return tiles * channels + 16;
}

/** Whether F(2x2, 3x3) applies to `g` and pays (measured on the family shapes, see the README). */
export function suitsWinograd(g: ConvGeometry): boolean {
  return (
    g.kH === 3 &&
    g.kW === 3 &&
    g.strideH === 1 &&
    g.strideW === 1 &&
    g.inC % 4 === 0 &&
    g.outC % 4 === 0 &&
    g.inC >= 8 &&
    g.outC >= 8 &&
    g.outH >= 4 &&
    g.outW >= 4
  );
}

/** U[xi][ci][co] = (G g G^T)[xi] for filter [3, 3, CI, CO], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]. */
function transformFilter(w: Float32Array, u: Float32Array, ci: number, co: number): void {
  const plane = ci * co;
  const tap = (kh: number, kw: number, k: number): number => w[(kh * 3 + kw) * plane + k] as number;
  const r = new Float64Array(12);
  for (let k = 0; k < plane; k++) {
    // Rows first: r = G g (4x3), then U = r G^T (4x4).
    for (let kw = 0; kw < 3; kw++) {
      const g0 = tap(0, kw, k);
      const g1 = tap(1, kw, k);
      const g2 = tap(2, kw, k);
      r[kw] = g0;
      r[3 + kw] = 0.5 * (g0 + g1 + g2);
      r[6 + kw] = 0.5 * (g0 - g1 + g2);
      r[9 + kw] = g2;
    }
    for (let i = 0; i < 4; i++) {
      const a = r[3 * i] as number;
      const b = r[3 * i + 1] as number;
      const c = r[3 * i + 2] as number;
      u[4 * i * plane + k] = a;
      u[(4 * i + 1) * plane + k] = 0.5 * (a + b + c);
      u[(4 * i + 2) * plane + k] = 0.5 * (a - b + c);
      u[(4 * i + 3) * plane + k] = c;
    }
  }
}

/**
 * y = conv2d(x, filter) for a geometry that {@link suitsWinograd}, by F(2x2, 3x3); undefined while the
 * transforms are not compiled (the caller then uses im2col). Returns y [B, OH, OW, CO]; the caller owns it.
 */
export function winogradConv(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  tileBytes = DEFAULT_TILE_BYTES,
): TensorInfo | undefined {
  const wino = transformsFor(backend);
  if (wino === undefined) return undefined;
  const { batch, inC, outH, outW, outC } = g;
  const tH = Math.ceil(outH / 2);
  const tW = Math.ceil(outW / 2);
  const tiles = batch * tH * tW;
  const hp = 2 * tH + 2;
  const wp = 2 * tW + 2;
  const chunk = Math.max(1, Math.min(tiles, Math.floor(tileBytes / (64 * (inC + outC)))));
  const out = backend.makeOutput([batch, outH, outW, outC], 'float32');
  const padded = backend.makeOutput([batch, hp, wp, inC], 'float32');
  const u = backend.makeOutput([16, inC, outC], 'float32');
  const vStride = planeStride(chunk, inC);
  const mStride = planeStride(chunk, outC);
  const v = backend.makeOutput([16 * vStride], 'float32');
  const m = backend.makeOutput([16 * mStride], 'float32');
  try {
    gemm.reserve(outC);
    // Views and byte offsets taken after every allocation.
    transformFilter(
      backend.typedArrayFromHeap(filter) as Float32Array,
      backend.typedArrayFromHeap(u) as Float32Array,
      inC,
      outC,
    );
    wino.winogradPad(
      heapPtr(backend, x),
      heapPtr(backend, padded),
      g.batch,
      g.inH,
      g.inW,
      inC,
      hp,
      wp,
      g.padTop,
      g.padLeft,
    );
    const paddedPtr = heapPtr(backend, padded);
    const uPtr = heapPtr(backend, u);
    const vPtr = heapPtr(backend, v);
    const mPtr = heapPtr(backend, m);
    const outPtr = heapPtr(backend, out);
    for (let t0 = 0; t0 < tiles; t0 += chunk) {
      const count = Math.min(chunk, tiles - t0);
      wino.winogradIn(paddedPtr, vPtr, hp, wp, inC, tH, tW, t0, count, 4 * vStride);
      for (let xi = 0; xi < 16; xi++) {
        gemm.multiply(
          count,
          inC,
          outC,
          { ptr: vPtr + 4 * xi * vStride, rowStride: 4 * inC, colStride: 4 },
          { ptr: uPtr + 4 * xi * inC * outC, rowStride: 4 * outC, colStride: 4 },
          { ptr: mPtr + 4 * xi * mStride, rowStride: 4 * outC },
        );
      }
      wino.winogradOut(mPtr, outPtr, outH, outW, outC, tH, tW, t0, count, 4 * mStride);
    }
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    for (const t of [padded, u, v, m]) backend.disposeData(t.dataId);
  }
  return out;
}

/**
 * The filter gradient of a convolution that {@link suitsWinograd}, by the transposed algorithm F(3x3, 2x2):
 * dW = G^T [sum over tiles of (B^T d B) . (A e A^T)] G, with d each tile of x (the forward pass's input
 * transform) and e the matching 2x2 block of dy. Over channels the sums are 16 products
 * S[xi][ci][co] = V[xi][:, ci]^T @ E[xi][:, co], long in K (the tiles), accumulated across passes. Undefined
 * while the transforms are not compiled. Returns dW [3, 3, CI, CO]; the caller owns it.
 */
export function winogradFilterGrad(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
  tileBytes = DEFAULT_TILE_BYTES,
): TensorInfo | undefined {
  const wino = transformsFor(backend);
  if (wino === undefined) return undefined;
  const { batch, inC, outH, outW, outC } = g;
  const tH = Math.ceil(outH / 2);
  const tW = Math.ceil(outW / 2);
  const tiles = batch * tH * tW;
  const hp = 2 * tH + 2;
  const wp = 2 * tW + 2;
  const chunk = Math.max(1, Math.min(tiles, Math.floor(tileBytes / (64 * (inC + outC)))));
  const dw = backend.makeOutput([3, 3, inC, outC], 'float32');
  const padded = backend.makeOutput([batch, hp, wp, inC], 'float32');
  const sums = backend.makeOutput([16, inC, outC], 'float32');
  const vStride = planeStride(chunk, inC);
  const eStride = planeStride(chunk, outC);
  const v = backend.makeOutput([16 * vStride], 'float32');
  const e = backend.makeOutput([16 * eStride], 'float32');
  try {
    gemm.reserve(outC);
    wino.winogradPad(
      heapPtr(backend, x),
      heapPtr(backend, padded),
      g.batch,
      g.inH,
      g.inW,
      inC,
      hp,
      wp,
      g.padTop,
      g.padLeft,
    );
    const paddedPtr = heapPtr(backend, padded);
    const sumsPtr = heapPtr(backend, sums);
    const vPtr = heapPtr(backend, v);
    const ePtr = heapPtr(backend, e);
    const dyPtr = heapPtr(backend, dy);
    for (let t0 = 0; t0 < tiles; t0 += chunk) {
      const count = Math.min(chunk, tiles - t0);
      wino.winogradIn(paddedPtr, vPtr, hp, wp, inC, tH, tW, t0, count, 4 * vStride);
      wino.winogradDy(dyPtr, ePtr, outH, outW, outC, tH, tW, t0, count, 4 * eStride);
      for (let xi = 0; xi < 16; xi++) {
        gemm.multiply(
          inC,
          count,
          outC,
          { ptr: vPtr + 4 * xi * vStride, rowStride: 4, colStride: 4 * inC },
          { ptr: ePtr + 4 * xi * eStride, rowStride: 4 * outC, colStride: 4 },
          { ptr: sumsPtr + 4 * xi * inC * outC, rowStride: 4 * outC },
          t0 > 0,
        );
      }
    }
    untransformFilterGrad(
      backend.typedArrayFromHeap(sums) as Float32Array,
      backend.typedArrayFromHeap(dw) as Float32Array,
      inC * outC,
    );
  } catch (err) {
    backend.disposeData(dw.dataId);
    throw err;
  } finally {
    for (const t of [padded, sums, v, e]) backend.disposeData(t.dataId);
  }
  return dw;
}

/** dW[kh][kw][k] = (G^T S[k] G)[kh][kw], G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1], k = (ci, co). */
function untransformFilterGrad(s: Float32Array, dw: Float32Array, plane: number): void {
  const r = new Float64Array(12);
  for (let k = 0; k < plane; k++) {
    // r = G^T S (3x4), then dW = r G (3x3).
    for (let j = 0; j < 4; j++) {
      const s0 = s[(0 + j) * plane + k] as number;
      const s1 = s[(4 + j) * plane + k] as number;
      const s2 = s[(8 + j) * plane + k] as number;
      const s3 = s[(12 + j) * plane + k] as number;
      r[j] = s0 + 0.5 * (s1 + s2);
      r[4 + j] = 0.5 * (s1 - s2);
      r[8 + j] = 0.5 * (s1 + s2) + s3;
    }
    for (let i = 0; i < 3; i++) {
      const a = r[4 * i] as number;
      const b = r[4 * i + 1] as number;
      const c = r[4 * i + 2] as number;
      const d = r[4 * i + 3] as number;
      dw[3 * i * plane + k] = a + 0.5 * (b + c);
      dw[(3 * i + 1) * plane + k] = 0.5 * (b - c);
      dw[(3 * i + 2) * plane + k] = 0.5 * (b + c) + d;
    }
  }
}
