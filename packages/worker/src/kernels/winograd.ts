import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { type Gemm, heapPtr } from './gemm/index.ts';
import { instanceOnBackend, moduleFromWat } from './gemm/module-cache.ts';

/**
 * Stride-1 convolutions by Winograd's minimal filtering F(m x m, r x r) (Lavin and Gray, "Fast Algorithms
 * for Convolutional Neural Networks", 2016): each m x m block of outputs comes from an alpha x alpha tile
 * of the input (alpha = m + r - 1), Y = A^T [(G g G^T) . (B^T d B)] A, so the r^2 multiply-adds per
 * output pixel and channel pair of the direct convolution become alpha^2 / m^2 (F(4x4, 3x3): 36 / 16
 * against 9). Across channels the elementwise products are alpha^2 matrix products, one per tile position
 * xi = (i, j):
 *   M[xi][tile][co] = V[xi][tile][:] @ U[xi][:][co],  V = B^T d B of every tile, U = G g G^T of the filter,
 * which go through Gantry's product (gemm/); the transforms are SIMD passes over 4 channels at a time,
 * generated from each algorithm's matrices (the WAT below). The input is first copied into a zero-padded
 * grid of whole tiles, so the input transform reads without bounds checks. The filter gradient is the
 * transposed algorithm (winogradFilterGrad).
 *
 * F(4x4, 3x3) takes ProGAN's and SRGAN's stride-1 3x3 convolutions (F(2x2, 3x3) is kept beside it, and
 * tested), where im2col's product ran at 19-27 GFLOP/s (its K = 9 * CI is short and the patches are 9x
 * the input); F(4x4, 2x2) and F(3x3, 2x2) the 2x2 convolutions that stride-2 4x4 ones become after a
 * space-to-depth (conv-space-to-depth.ts). Channel counts must be multiples of 4.
 */

/**
 * One Winograd algorithm F(m x m, r x r): outputs per tile side m, filter side r, tile side alpha =
 * m + r - 1, and its matrices (for F(2, 3) and F(4, 3) Lavin and Gray's, interpolation points 0, +-1 and
 * 0, +-1, +-2, plus infinity): V = B^T d B, U = G g G^T, Y = A^T M A.
 */
export interface WinogradVariant {
  m: number;
  /** The filter's side. */
  r: number;
  /** m + r - 1 */
  alpha: number;
  /** alpha x alpha */
  BT: readonly (readonly number[])[];
  /** alpha x r */
  G: readonly (readonly number[])[];
  /** m x alpha */
  AT: readonly (readonly number[])[];
}

export const F2X3: WinogradVariant = {
  m: 2,
  r: 3,
  alpha: 4,
  BT: [
    [1, 0, -1, 0],
    [0, 1, 1, 0],
    [0, -1, 1, 0],
    [0, 1, 0, -1],
  ],
  G: [
    [1, 0, 0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0, 0, 1],
  ],
  AT: [
    [1, 1, 1, 0],
    [0, 1, -1, -1],
  ],
};

export const F4X3: WinogradVariant = {
  m: 4,
  r: 3,
  alpha: 6,
  BT: [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
  ],
  G: [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
  ],
  AT: [
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
  ],
};

const transpose = (a: readonly (readonly number[])[]): number[][] =>
  (a[0] as readonly number[]).map((_, j) => a.map((row) => row[j] as number));

/**
 * F(3x3, 2x2), for 2x2 filters (stride-2 4x4 convolutions after a space-to-depth,
 * conv-space-to-depth.ts): by the transposition principle, F(2, 3)'s matrices swapped: B^T as is,
 * G = (F(2, 3)'s A^T)^T, A^T = (F(2, 3)'s G)^T.
 */
export const F3X2: WinogradVariant = {
  m: 3,
  r: 2,
  alpha: 4,
  BT: F2X3.BT,
  G: transpose(F2X3.AT),
  AT: transpose(F2X3.G),
};

/**
 * F(4x4, 2x2), for the same 2x2 filters where outputs come in fours (7 -> 8 where F(3x3) computes 9):
 * Toom-Cook at the points 0, 1, -1, 2 and infinity, the matrices worked out exactly in rationals and
 * checked against the direct correlation (1.96x fewer multiplications than direct on a 7x7 output).
 */
export const F4X2: WinogradVariant = {
  m: 4,
  r: 2,
  alpha: 5,
  BT: [
    [2, -1, -2, 1, 0],
    [0, -2, -1, 1, 0],
    [0, 2, -3, 1, 0],
    [0, -1, 0, 1, 0],
    [0, 2, -1, -2, 1],
  ],
  G: [
    [1 / 2, 0],
    [-1 / 2, -1 / 2],
    [-1 / 6, 1 / 6],
    [1 / 6, 1 / 3],
    [0, 1],
  ],
  AT: [
    [1, 1, 1, 1, 0],
    [0, 1, -1, 2, 0],
    [0, 1, 1, 4, 0],
    [0, 1, -1, 8, 1],
  ],
};

const VARIANTS: readonly WinogradVariant[] = [F2X3, F4X3, F3X2, F4X2];

/** WAT for sum_k c[k] * terms[k] over f32x4 values (a positive term first, so no negation for +-1). */
function combination(c: readonly number[], terms: readonly string[]): string {
  const order = c.map((_, k) => k).filter((k) => c[k] !== 0);
  order.sort((p, q) => Number((c[q] as number) > 0) - Number((c[p] as number) > 0));
  let expr: string | undefined;
  for (const k of order) {
    const coef = c[k] as number;
    const a = Math.abs(coef);
    const term =
      a === 1 ? (terms[k] as string) : `(f32x4.mul ${terms[k]} (v128.const f32x4 ${a} ${a} ${a} ${a}))`;
    if (expr === undefined) expr = coef > 0 ? term : `(f32x4.neg ${term})`;
    else expr = `(f32x4.${coef > 0 ? 'add' : 'sub'} ${expr} ${term})`;
  }
  return expr ?? '(v128.const i32x4 0 0 0 0)';
}

const vectors = (name: string, n: number): string =>
  Array.from({ length: n }, (_, k) => `(local $${name}${k} v128)`).join(' ');

/** The tile loop's head shared by the transforms: tile t = first + j -> image b, tile row ty, column tx. */
const TILE_HEAD = `(br_if $done (i32.ge_u (local.get $j) (local.get $count)))
    (local.set $t (i32.add (local.get $first) (local.get $j)))
    (local.set $b (i32.div_u (local.get $t) (local.get $perImage)))
    (local.set $t (i32.sub (local.get $t) (i32.mul (local.get $b) (local.get $perImage))))
    (local.set $ty (i32.div_u (local.get $t) (local.get $tW)))
    (local.set $tx (i32.sub (local.get $t) (i32.mul (local.get $ty) (local.get $tW))))`;

/** Byte address of pixel (b, m*ty, m*tx) of a [B, H, W, C] grid at `base`, channel byte offset $cb. */
const tileCorner = (base: string, h: string, w: string, m: number): string =>
  `(i32.add (i32.add (local.get ${base}) (local.get $cb)) (i32.mul (local.get $cBytes)
        (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get ${h})) (i32.mul (local.get $ty) (i32.const ${m}))) (local.get ${w}))
          (i32.mul (local.get $tx) (i32.const ${m})))))`;

/**
 * The input transform's WAT, export `winogradIn<m>`: V[xi][j][c] = (B^T d B)[xi] for the tiles first ..
 * first + count - 1 of the padded grid [B, Hp, Wp, C], 4 channels at a time; planes xiStride bytes apart.
 */
function inputTransformWat(v: WinogradVariant): string {
  const { alpha, m, BT } = v;
  const body: string[] = [];
  // Column by column (fewer live vectors): d_{.j} loaded, t_{.j} = (B^T d)_{.j}; then each row of t
  // gives V_{i.} = (t B)_{i.}, stored as it is made.
  for (let j = 0; j < alpha; j++) {
    for (let i = 0; i < alpha; i++) {
      const at = j === 0 ? `(local.get $r${i})` : `(i32.add (local.get $r${i}) (local.get $c${j}))`;
      body.push(`(local.set $a${i} (v128.load ${at}))`);
    }
    const column = Array.from({ length: alpha }, (_, i) => `(local.get $a${i})`);
    for (let i = 0; i < alpha; i++)
      body.push(`(local.set $t${alpha * i + j} ${combination(BT[i] as number[], column)})`);
  }
  for (let i = 0; i < alpha; i++) {
    const row = Array.from({ length: alpha }, (_, j) => `(local.get $t${alpha * i + j})`);
    for (let j = 0; j < alpha; j++) {
      body.push(
        `(v128.store (local.get $o) ${combination(BT[j] as number[], row)})`,
        `(local.set $o (i32.add (local.get $o) (local.get $xiStride)))`,
      );
    }
  }
  const setup: string[] = [];
  for (let j = 1; j < alpha; j++)
    setup.push(`(local.set $c${j} (i32.mul (local.get $cBytes) (i32.const ${j})))`);
  const rows: string[] = [];
  for (let i = 0; i < alpha; i++)
    rows.push(
      `(local.set $r${i} (i32.add (local.get $base) (i32.mul (i32.const ${i}) (local.get $rowBytes))))`,
    );
  const ints = (name: string, from: number, n: number): string =>
    Array.from({ length: n }, (_, k) => `(local $${name}${from + k} i32)`).join(' ');
  return `(func (export "winogradIn${m}x${v.r}") (param $xp i32) (param $v i32) (param $Hp i32) (param $Wp i32) (param $C i32)
    (param $tH i32) (param $tW i32) (param $first i32) (param $count i32) (param $xiStride i32)
  (local $j i32) (local $t i32) (local $b i32) (local $ty i32) (local $tx i32) (local $base i32)
  (local $o i32) (local $cb i32) (local $cBytes i32) (local $rowBytes i32) (local $perImage i32)
  ${ints('r', 0, alpha)} ${ints('c', 1, alpha - 1)}
  ${vectors('a', alpha)} ${vectors('t', alpha * alpha)}
  (local.set $cBytes (i32.shl (local.get $C) (i32.const 2)))
  ${setup.join('\n  ')}
  (local.set $rowBytes (i32.mul (local.get $Wp) (local.get $cBytes)))
  (local.set $perImage (i32.mul (local.get $tH) (local.get $tW)))
  (block $done (loop $tiles
    ${TILE_HEAD}
    (local.set $cb (i32.const 0))
    (loop $channels
      (local.set $base ${tileCorner('$xp', '$Hp', '$Wp', m)})
      ${rows.join('\n      ')}
      (local.set $o (i32.add (local.get $v) (i32.add (i32.mul (local.get $j) (local.get $cBytes)) (local.get $cb))))
      ${body.join('\n      ')}
      (local.set $cb (i32.add (local.get $cb) (i32.const 16)))
      (br_if $channels (i32.lt_u (local.get $cb) (local.get $cBytes))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $tiles))))`;
}

/**
 * The output transform's WAT, export `winogradOut<m>`: y's m x m block of each tile = A^T M A from
 * M[xi][j][co]; rows and columns of the block past y's edge (sizes not a multiple of m) are not written.
 */
function outputTransformWat(v: WinogradVariant): string {
  const { alpha, m, AT } = v;
  const body: string[] = [];
  for (let k = 0; k < alpha * alpha; k++) {
    body.push(
      `(local.set $m${k} (v128.load (local.get $p)))`,
      `(local.set $p (i32.add (local.get $p) (local.get $xiStride)))`,
    );
  }
  // s = A^T M (m x alpha), then y = s A (m x m).
  for (let j = 0; j < alpha; j++) {
    const column = Array.from({ length: alpha }, (_, k) => `(local.get $m${alpha * k + j})`);
    for (let i = 0; i < m; i++)
      body.push(`(local.set $s${alpha * i + j} ${combination(AT[i] as number[], column)})`);
  }
  for (let i = 0; i < m; i++) {
    const row = Array.from({ length: alpha }, (_, k) => `(local.get $s${alpha * i + k})`);
    for (let j = 0; j < m; j++) {
      const at = `(i32.add (local.get $q) (i32.add (i32.mul (i32.const ${i}) (local.get $rowBytes)) (i32.mul (i32.const ${j}) (local.get $cBytes))))`;
      const store = `(v128.store ${at} ${combination(AT[j] as number[], row)})`;
      body.push(
        i === 0 && j === 0
          ? store
          : `(if (i32.and (i32.gt_s (local.get $rows) (i32.const ${i})) (i32.gt_s (local.get $cols) (i32.const ${j}))) (then ${store}))`,
      );
    }
  }
  return `(func (export "winogradOut${m}x${v.r}") (param $mp i32) (param $y i32) (param $OH i32) (param $OW i32) (param $C i32)
    (param $tH i32) (param $tW i32) (param $first i32) (param $count i32) (param $xiStride i32)
  (local $j i32) (local $t i32) (local $b i32) (local $ty i32) (local $tx i32) (local $q i32) (local $p i32)
  (local $cb i32) (local $cBytes i32) (local $rowBytes i32) (local $perImage i32) (local $rows i32) (local $cols i32)
  ${vectors('m', alpha * alpha)} ${vectors('s', m * alpha)}
  (local.set $cBytes (i32.shl (local.get $C) (i32.const 2)))
  (local.set $rowBytes (i32.mul (local.get $OW) (local.get $cBytes)))
  (local.set $perImage (i32.mul (local.get $tH) (local.get $tW)))
  (block $done (loop $tiles
    ${TILE_HEAD}
    ;; rows and columns of this tile's block inside y
    (local.set $rows (i32.sub (local.get $OH) (i32.mul (local.get $ty) (i32.const ${m}))))
    (local.set $cols (i32.sub (local.get $OW) (i32.mul (local.get $tx) (i32.const ${m}))))
    (local.set $cb (i32.const 0))
    (loop $channels
      (local.set $p (i32.add (local.get $mp) (i32.add (i32.mul (local.get $j) (local.get $cBytes)) (local.get $cb))))
      (local.set $q ${tileCorner('$y', '$OH', '$OW', m)})
      ${body.join('\n      ')}
      (local.set $cb (i32.add (local.get $cb) (i32.const 16)))
      (br_if $channels (i32.lt_u (local.get $cb) (local.get $cBytes))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $tiles))))`;
}

/**
 * The filter transform's WAT, export `winogradFilter<m>`: U[xi][k] = (G g G^T)[xi] for the filter's
 * channel pairs k (its [3, 3, plane] layout, plane = CI * CO a multiple of 4), 4 pairs at a time.
 */
function filterTransformWat(v: WinogradVariant): string {
  const { alpha, m, r, G } = v;
  const taps = Array.from({ length: r }, (_, k) => k);
  const body: string[] = [];
  for (let tap = 0; tap < r * r; tap++)
    body.push(
      `(local.set $g${tap} (v128.load (i32.add (local.get $w) (i32.mul (local.get $planeBytes) (i32.const ${tap})))))`,
    );
  // t = G g (alpha x r), then U = t G^T (alpha x alpha).
  for (let kw = 0; kw < r; kw++) {
    const column = taps.map((kh) => `(local.get $g${r * kh + kw})`);
    for (let i = 0; i < alpha; i++)
      body.push(`(local.set $r${r * i + kw} ${combination(G[i] as number[], column)})`);
  }
  for (let i = 0; i < alpha; i++) {
    const row = taps.map((kw) => `(local.get $r${r * i + kw})`);
    for (let j = 0; j < alpha; j++) {
      body.push(
        `(v128.store (i32.add (local.get $u) (i32.mul (local.get $planeBytes) (i32.const ${alpha * i + j}))) ${combination(G[j] as number[], row)})`,
      );
    }
  }
  return `(func (export "winogradFilter${m}x${r}") (param $w i32) (param $u i32) (param $plane i32)
  (local $planeBytes i32) (local $end i32) ${vectors('g', r * r)} ${vectors('r', r * alpha)}
  (local.set $planeBytes (i32.shl (local.get $plane) (i32.const 2)))
  (local.set $end (i32.add (local.get $w) (local.get $planeBytes)))
  (block $done (loop $pairs
    (br_if $done (i32.ge_u (local.get $w) (local.get $end)))
    ${body.join('\n    ')}
    (local.set $w (i32.add (local.get $w) (i32.const 16)))
    (local.set $u (i32.add (local.get $u) (i32.const 16)))
    (br $pairs))))`;
}

/**
 * The filter gradient's transform of dy, export `winogradDy<m>`: E[xi][j][c] = (A e A^T)[xi] for each
 * tile's m x m block e of dy (zeros past dy's edge), A = (A^T)^T (alpha x m); planes xiStride bytes apart.
 */
function gradientTransformWat(v: WinogradVariant): string {
  const { alpha, m, AT } = v;
  // Column i of A is row i of A^T's transpose: A[k][i] = AT[i][k].
  const a = (k: number): number[] => AT.map((row) => row[k] as number);
  const body: string[] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      const at = `(i32.add (local.get $q) (i32.add (i32.mul (i32.const ${i}) (local.get $rowBytes)) (i32.mul (i32.const ${j}) (local.get $cBytes))))`;
      const load = `(v128.load ${at})`;
      body.push(
        i === 0 && j === 0
          ? `(local.set $e0 ${load})`
          : `(local.set $e${m * i + j} (if (result v128) (i32.and (i32.gt_s (local.get $rows) (i32.const ${i})) (i32.gt_s (local.get $cols) (i32.const ${j}))) (then ${load}) (else (v128.const i32x4 0 0 0 0))))`,
      );
    }
  }
  // r = A e (alpha x m), then E = r A^T (alpha x alpha).
  for (let j = 0; j < m; j++) {
    const column = Array.from({ length: m }, (_, k) => `(local.get $e${m * k + j})`);
    for (let i = 0; i < alpha; i++) body.push(`(local.set $r${m * i + j} ${combination(a(i), column)})`);
  }
  for (let i = 0; i < alpha; i++) {
    const row = Array.from({ length: m }, (_, k) => `(local.get $r${m * i + k})`);
    for (let j = 0; j < alpha; j++) {
      body.push(
        `(v128.store (local.get $o) ${combination(a(j), row)})`,
        `(local.set $o (i32.add (local.get $o) (local.get $xiStride)))`,
      );
    }
  }
  return `(func (export "winogradDy${m}x${v.r}") (param $dy i32) (param $e i32) (param $OH i32) (param $OW i32) (param $C i32)
    (param $tH i32) (param $tW i32) (param $first i32) (param $count i32) (param $xiStride i32)
  (local $j i32) (local $t i32) (local $b i32) (local $ty i32) (local $tx i32) (local $q i32) (local $o i32)
  (local $cb i32) (local $cBytes i32) (local $rowBytes i32) (local $perImage i32) (local $rows i32) (local $cols i32)
  ${vectors('e', m * m)} ${vectors('r', alpha * m)}
  (local.set $cBytes (i32.shl (local.get $C) (i32.const 2)))
  (local.set $rowBytes (i32.mul (local.get $OW) (local.get $cBytes)))
  (local.set $perImage (i32.mul (local.get $tH) (local.get $tW)))
  (block $done (loop $tiles
    ${TILE_HEAD}
    (local.set $rows (i32.sub (local.get $OH) (i32.mul (local.get $ty) (i32.const ${m}))))
    (local.set $cols (i32.sub (local.get $OW) (i32.mul (local.get $tx) (i32.const ${m}))))
    (local.set $cb (i32.const 0))
    (loop $channels
      (local.set $q ${tileCorner('$dy', '$OH', '$OW', m)})
      (local.set $o (i32.add (local.get $e) (i32.add (i32.mul (local.get $j) (local.get $cBytes)) (local.get $cb))))
      ${body.join('\n      ')}
      (local.set $cb (i32.add (local.get $cb) (i32.const 16)))
      (br_if $channels (i32.lt_u (local.get $cb) (local.get $cBytes))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $tiles))))`;
}

/**
 * The filter gradient's way back, export `winogradUnfilter<m>`: dW[tap][k] = (G^T S G)[tap] from the
 * alpha x alpha sums S[xi][k] of the channel pairs k (plane = CI * CO a multiple of 4), 4 pairs at a time.
 */
function gradientUntransformWat(v: WinogradVariant): string {
  const { alpha, m, r, G } = v;
  const gt = (kh: number): number[] => G.map((row) => row[kh] as number);
  const body: string[] = [];
  for (let xi = 0; xi < alpha * alpha; xi++)
    body.push(
      `(local.set $s${xi} (v128.load (i32.add (local.get $src) (i32.mul (local.get $planeBytes) (i32.const ${xi})))))`,
    );
  // t = G^T S (r x alpha), then dW = t G (r x r).
  for (let j = 0; j < alpha; j++) {
    const column = Array.from({ length: alpha }, (_, k) => `(local.get $s${alpha * k + j})`);
    for (let kh = 0; kh < r; kh++)
      body.push(`(local.set $r${alpha * kh + j} ${combination(gt(kh), column)})`);
  }
  for (let kh = 0; kh < r; kh++) {
    const row = Array.from({ length: alpha }, (_, k) => `(local.get $r${alpha * kh + k})`);
    for (let kw = 0; kw < r; kw++) {
      body.push(
        `(v128.store (i32.add (local.get $dw) (i32.mul (local.get $planeBytes) (i32.const ${r * kh + kw}))) ${combination(gt(kw), row)})`,
      );
    }
  }
  return `(func (export "winogradUnfilter${m}x${r}") (param $src i32) (param $dw i32) (param $plane i32)
  (local $planeBytes i32) (local $end i32) ${vectors('s', alpha * alpha)} ${vectors('r', r * alpha)}
  (local.set $planeBytes (i32.shl (local.get $plane) (i32.const 2)))
  (local.set $end (i32.add (local.get $src) (local.get $planeBytes)))
  (block $done (loop $pairs
    (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
    ${body.join('\n    ')}
    (local.set $src (i32.add (local.get $src) (i32.const 16)))
    (local.set $dw (i32.add (local.get $dw) (i32.const 16)))
    (br $pairs))))`;
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

/**
 * Space-to-depth and back for stride-2 convolutions (conv-space-to-depth.ts), C % 4 = 0: xs [B, Hs, Ws,
 * 4C] holds x's zero-padded 2x2 blocks, xs[b, sy, sx, (2p + q) C + c] = x[b, 2 sy + p - padT, 2 sx + q -
 * padL, c] (zero outside x); `depthToSpace` reads x's pixels back out of such a grid (zero where a pixel's
 * block lies past the grid's end).
 */
const SPACE_TO_DEPTH_WAT = `(func $copy (param $dst i32) (param $src i32) (param $n i32)
  (local $end i32)
  (local.set $end (i32.add (local.get $dst) (local.get $n)))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
    (v128.store (local.get $dst) (v128.load (local.get $src)))
    (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
    (local.set $src (i32.add (local.get $src) (i32.const 16)))
    (br $vec))))
(func $zero (param $dst i32) (param $n i32)
  (local $end i32)
  (local.set $end (i32.add (local.get $dst) (local.get $n)))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
    (v128.store (local.get $dst) (v128.const i32x4 0 0 0 0))
    (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
    (br $vec))))
(func (export "spaceToDepth") (param $x i32) (param $xs i32) (param $B i32) (param $inH i32) (param $inW i32)
    (param $C i32) (param $Hs i32) (param $Ws i32) (param $padT i32) (param $padL i32)
  (local $cb i32) (local $k i32) (local $n i32) (local $b i32) (local $sy i32) (local $sx i32) (local $pq i32)
  (local $iy i32) (local $ix i32) (local $rest i32)
  (local.set $cb (i32.shl (local.get $C) (i32.const 2)))
  (local.set $n (i32.mul (i32.mul (local.get $B) (i32.mul (local.get $Hs) (local.get $Ws))) (i32.const 4)))
  (block $done (loop $blocks
    (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
    ;; k = ((b Hs + sy) Ws + sx) 4 + 2p + q
    (local.set $pq (i32.and (local.get $k) (i32.const 3)))
    (local.set $rest (i32.shr_u (local.get $k) (i32.const 2)))
    (local.set $sx (i32.rem_u (local.get $rest) (local.get $Ws)))
    (local.set $rest (i32.div_u (local.get $rest) (local.get $Ws)))
    (local.set $sy (i32.rem_u (local.get $rest) (local.get $Hs)))
    (local.set $b (i32.div_u (local.get $rest) (local.get $Hs)))
    (local.set $iy (i32.sub (i32.add (i32.shl (local.get $sy) (i32.const 1)) (i32.shr_u (local.get $pq) (i32.const 1))) (local.get $padT)))
    (local.set $ix (i32.sub (i32.add (i32.shl (local.get $sx) (i32.const 1)) (i32.and (local.get $pq) (i32.const 1))) (local.get $padL)))
    (if (i32.and (i32.and (i32.ge_s (local.get $iy) (i32.const 0)) (i32.lt_s (local.get $iy) (local.get $inH)))
                 (i32.and (i32.ge_s (local.get $ix) (i32.const 0)) (i32.lt_s (local.get $ix) (local.get $inW))))
      (then (call $copy (local.get $xs)
        (i32.add (local.get $x) (i32.mul (local.get $cb) (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $inH)) (local.get $iy)) (local.get $inW)) (local.get $ix))))
        (local.get $cb)))
      (else (call $zero (local.get $xs) (local.get $cb))))
    (local.set $xs (i32.add (local.get $xs) (local.get $cb)))
    (local.set $k (i32.add (local.get $k) (i32.const 1)))
    (br $blocks))))
(func (export "depthToSpace") (param $xs i32) (param $x i32) (param $B i32) (param $inH i32) (param $inW i32)
    (param $C i32) (param $Hs i32) (param $Ws i32) (param $padT i32) (param $padL i32)
  (local $cb i32) (local $k i32) (local $n i32) (local $b i32) (local $iy i32) (local $ix i32) (local $rest i32)
  (local $gy i32) (local $gx i32)
  (local.set $cb (i32.shl (local.get $C) (i32.const 2)))
  (local.set $n (i32.mul (local.get $B) (i32.mul (local.get $inH) (local.get $inW))))
  (block $done (loop $pixels
    (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
    (local.set $ix (i32.rem_u (local.get $k) (local.get $inW)))
    (local.set $rest (i32.div_u (local.get $k) (local.get $inW)))
    (local.set $iy (i32.rem_u (local.get $rest) (local.get $inH)))
    (local.set $b (i32.div_u (local.get $rest) (local.get $inH)))
    ;; the pixel's place in the padded grid
    (local.set $gy (i32.add (local.get $iy) (local.get $padT)))
    (local.set $gx (i32.add (local.get $ix) (local.get $padL)))
    (if (i32.and (i32.lt_u (i32.shr_u (local.get $gy) (i32.const 1)) (local.get $Hs)) (i32.lt_u (i32.shr_u (local.get $gx) (i32.const 1)) (local.get $Ws)))
      (then (call $copy (local.get $x)
        (i32.add (local.get $xs) (i32.mul (local.get $cb)
          (i32.add (i32.shl (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $Hs)) (i32.shr_u (local.get $gy) (i32.const 1))) (local.get $Ws))
              (i32.shr_u (local.get $gx) (i32.const 1))) (i32.const 2))
            (i32.add (i32.shl (i32.and (local.get $gy) (i32.const 1)) (i32.const 1)) (i32.and (local.get $gx) (i32.const 1))))))
        (local.get $cb)))
      (else (call $zero (local.get $x) (local.get $cb))))
    (local.set $x (i32.add (local.get $x) (local.get $cb)))
    (local.set $k (i32.add (local.get $k) (i32.const 1)))
    (br $pixels))))`;

const WINOGRAD_WAT = `(module
(import "env" "memory" (memory 0))
${PAD_WAT}
${SPACE_TO_DEPTH_WAT}
${VARIANTS.map((v) =>
  [inputTransformWat, outputTransformWat, filterTransformWat, gradientTransformWat, gradientUntransformWat]
    .map((make) => make(v))
    .join('\n'),
).join('\n')}
)`;

type TransformExport = (...args: number[]) => void;
type WinogradExports = Record<string, TransformExport>;

/** One algorithm's five passes, as the module exports them. */
interface Passes {
  filter: TransformExport;
  input: TransformExport;
  output: TransformExport;
  dy: TransformExport;
  unfilter: TransformExport;
}

/** Copies x into `padded`, the zero grid of whole tiles [B, hp, wp, CI] (PAD_WAT) of geometry `g`. */
function padGrid(
  exports: WinogradExports,
  backend: BackendWasm,
  x: TensorInfo,
  padded: TensorInfo,
  g: ConvGeometry,
): void {
  const [batch, hp, wp, c] = padded.shape as [number, number, number, number];
  (exports.winogradPad as TransformExport)(
    heapPtr(backend, x),
    heapPtr(backend, padded),
    batch,
    g.inH,
    g.inW,
    c,
    hp,
    wp,
    g.padTop,
    g.padLeft,
  );
}

function passesOf(exports: WinogradExports, v: WinogradVariant): Passes {
  const pass = (name: string): TransformExport => exports[name] as TransformExport;
  return {
    filter: pass(`winogradFilter${v.m}x${v.r}`),
    input: pass(`winogradIn${v.m}x${v.r}`),
    output: pass(`winogradOut${v.m}x${v.r}`),
    dy: pass(`winogradDy${v.m}x${v.r}`),
    unfilter: pass(`winogradUnfilter${v.m}x${v.r}`),
  };
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
  if (exports?.winogradPad === undefined) return undefined;
  instances.set(backend, exports);
  return exports;
}

/** The space-to-depth passes (SPACE_TO_DEPTH_WAT) bound to `backend`, or undefined while not compiled. */
export function spaceToDepthPasses(
  backend: BackendWasm,
): { spaceToDepth: TransformExport; depthToSpace: TransformExport } | undefined {
  const wino = transformsFor(backend);
  if (wino === undefined) return undefined;
  return {
    spaceToDepth: wino.spaceToDepth as TransformExport,
    depthToSpace: wino.depthToSpace as TransformExport,
  };
}

/**
 * Tiles per pass: V [alpha^2, tiles, CI] and M [alpha^2, tiles, CO] (or E, for the filter gradient)
 * together about 1 MiB, so the transforms read what the products just wrote from L2.
 */
export const DEFAULT_TILE_BYTES = 1024 * 1024;

/**
 * Floats from one tile position's plane to the next in V, M and E ([alpha^2][tiles][channels]): the
 * plane plus 16 floats, so that the transforms' alpha^2 streams do not fall on the same cache sets (a
 * plane of 512 tiles x 16 channels, 32 KiB, made ProGAN's 32 px input transform ~7x slower).
 */
function planeStride(tiles: number, channels: number): number {
  return tiles * channels + 16;
}

/** Whether `g` is a stride-1 3x3 convolution for F(4x4, 3x3) (channel counts in fours, 8 and up). */
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

/** How a call covers its output with tiles, and how many tiles go in one pass. */
interface Tiling {
  /** alpha^2: the products per pass. */
  planes: number;
  tH: number;
  tW: number;
  tiles: number;
  /** The padded grid's height and width: whole tiles. */
  hp: number;
  wp: number;
  chunk: number;
}

function tiling(g: ConvGeometry, v: WinogradVariant, tileBytes = DEFAULT_TILE_BYTES): Tiling {
  const planes = v.alpha * v.alpha;
  const tH = Math.ceil(g.outH / v.m);
  const tW = Math.ceil(g.outW / v.m);
  const tiles = g.batch * tH * tW;
  const chunk = Math.max(1, Math.min(tiles, Math.floor(tileBytes / (4 * planes * (g.inC + g.outC)))));
  return { planes, tH, tW, tiles, hp: v.m * tH + v.r - 1, wp: v.m * tW + v.r - 1, chunk };
}

/**
 * y = conv2d(x, filter) for a stride-1 convolution with the variant's r x r filter (a geometry that
 * {@link suitsWinograd} for the default F(4x4, 3x3); conv-space-to-depth.ts's 2x2 ones); undefined while the transforms are not compiled (the caller then uses im2col).
 * Returns y [B, OH, OW, CO]; the caller owns it.
 */
export function winogradConv(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  options: { tileBytes?: number; variant?: WinogradVariant } = {},
): TensorInfo | undefined {
  const wino = transformsFor(backend);
  if (wino === undefined) return undefined;
  const variant = options.variant ?? F4X3;
  const pass = passesOf(wino, variant);
  const { planes, tH, tW, tiles, hp, wp, chunk } = tiling(g, variant, options.tileBytes);
  const { batch, inC, outH, outW, outC } = g;
  const out = backend.makeOutput([batch, outH, outW, outC], 'float32');
  const padded = backend.makeOutput([batch, hp, wp, inC], 'float32');
  const u = backend.makeOutput([planes, inC, outC], 'float32');
  const vStride = planeStride(chunk, inC);
  const mStride = planeStride(chunk, outC);
  const v = backend.makeOutput([planes * vStride], 'float32');
  const m = backend.makeOutput([planes * mStride], 'float32');
  try {
    gemm.reserve(outC);
    // Views and byte offsets taken after every allocation.
    pass.filter(heapPtr(backend, filter), heapPtr(backend, u), inC * outC);
    padGrid(wino, backend, x, padded, g);
    const paddedPtr = heapPtr(backend, padded);
    const uPtr = heapPtr(backend, u);
    const vPtr = heapPtr(backend, v);
    const mPtr = heapPtr(backend, m);
    const outPtr = heapPtr(backend, out);
    for (let t0 = 0; t0 < tiles; t0 += chunk) {
      const count = Math.min(chunk, tiles - t0);
      pass.input(paddedPtr, vPtr, hp, wp, inC, tH, tW, t0, count, 4 * vStride);
      for (let xi = 0; xi < planes; xi++) {
        gemm.multiply(
          count,
          inC,
          outC,
          { ptr: vPtr + 4 * xi * vStride, rowStride: 4 * inC, colStride: 4 },
          { ptr: uPtr + 4 * xi * inC * outC, rowStride: 4 * outC, colStride: 4 },
          { ptr: mPtr + 4 * xi * mStride, rowStride: 4 * outC },
        );
      }
      pass.output(mPtr, outPtr, outH, outW, outC, tH, tW, t0, count, 4 * mStride);
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
 * The filter gradient of a stride-1 convolution with the variant's r x r filter, by the transposed
 * algorithm (F(3x3, 4x4) for the default F(4x4, 3x3)):
 * dW = G^T [sum over tiles of (B^T d B) . (A e A^T)] G, with d each tile of x (the forward pass's input
 * transform) and e the matching m x m block of dy. Over channels the sums are alpha^2 products
 * S[xi][ci][co] = V[xi][:, ci]^T @ E[xi][:, co], long in K (the tiles), accumulated across passes. Undefined
 * while the transforms are not compiled. Returns dW [r, r, CI, CO]; the caller owns it.
 */
export function winogradFilterGrad(
  backend: BackendWasm,
  gemm: Gemm,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
  options: { tileBytes?: number; variant?: WinogradVariant } = {},
): TensorInfo | undefined {
  const wino = transformsFor(backend);
  if (wino === undefined) return undefined;
  const variant = options.variant ?? F4X3;
  const pass = passesOf(wino, variant);
  const { planes, tH, tW, tiles, hp, wp, chunk } = tiling(g, variant, options.tileBytes);
  const { batch, inC, outH, outW, outC } = g;
  const dw = backend.makeOutput([variant.r, variant.r, inC, outC], 'float32');
  const padded = backend.makeOutput([batch, hp, wp, inC], 'float32');
  const sums = backend.makeOutput([planes, inC, outC], 'float32');
  const vStride = planeStride(chunk, inC);
  const eStride = planeStride(chunk, outC);
  const v = backend.makeOutput([planes * vStride], 'float32');
  const e = backend.makeOutput([planes * eStride], 'float32');
  try {
    gemm.reserve(outC);
    padGrid(wino, backend, x, padded, g);
    const paddedPtr = heapPtr(backend, padded);
    const sumsPtr = heapPtr(backend, sums);
    const vPtr = heapPtr(backend, v);
    const ePtr = heapPtr(backend, e);
    const dyPtr = heapPtr(backend, dy);
    for (let t0 = 0; t0 < tiles; t0 += chunk) {
      const count = Math.min(chunk, tiles - t0);
      pass.input(paddedPtr, vPtr, hp, wp, inC, tH, tW, t0, count, 4 * vStride);
      pass.dy(dyPtr, ePtr, outH, outW, outC, tH, tW, t0, count, 4 * eStride);
      for (let xi = 0; xi < planes; xi++) {
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
    pass.unfilter(sumsPtr, heapPtr(backend, dw), inC * outC);
  } catch (err) {
    backend.disposeData(dw.dataId);
    throw err;
  } finally {
    for (const t of [padded, sums, v, e]) backend.disposeData(t.dataId);
  }
  return dw;
}
