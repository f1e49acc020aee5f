import { batchNormWat } from './batch-norm-wat.ts';
import { channelPassesWat, pointwiseOuterWat } from './channel-passes-wat.ts';

/** Rows of C per micro-kernel tile (edges go through a scratch tile of as many rows); see below. */
export const TILE_ROWS = 5;

/**
 * WebAssembly text of Gantry's matrix product, C = A @ B in float32, compiled at run time (gemm.ts) into
 * a module that shares the wasm backend's memory, so operands are used where tfjs keeps them.
 *
 * The layout is the classic one of GotoBLAS / BLIS, cut down to what one core needs:
 * - K is cut into blocks of `kc`; for each block, B's rows are packed into panels of 8 columns
 *   ([kc][8] each, zero-padded past N), so the micro-kernel reads B contiguously from cache;
 * - for each block of TILE_ROWS (5) rows of A, the [5][kc] slice is packed k-major ([kc][5]), zero-padded
 *   past M;
 * - the micro-kernel computes a 5x8 tile of C in 10 SIMD accumulators: per k, two loads of B, one vector
 *   load of A's rows 0-3 broadcast lane by lane by shuffles (vpshufd) and one splat load of row 4, then 10
 *   multiply-adds (`f32x4.relaxed_madd`, a fused multiply-add where the CPU has one, when `fma`;
 *   otherwise a multiply then an add). V8 (TurboFan) issues a step's loads ahead of its multiply-adds, so
 *   with one splat load per row the broadcasts are all live at once: 5 splats + 2 B + 10 accumulators are
 *   17 of x86-64's 15 allocatable SIMD registers and 2 accumulators spilled (38% slower than 4x8); a
 *   shuffle is computed next to its use, so 10 + 2 + 2 + 1 fit. 6x8 spills either way (~20% slower
 *   than 4x8). 5x8 over 4x8 (medians of 9, interleaved in one process): the DCGAN 28 layer's
 *   [3136,1024] @ [1024,128] 19.1 -> 16.9 ms, its filter gradient 20.8 -> 18.5 ms, its input gradient
 *   ([3136,128] @ [128,1024]^T) 18.7 -> 16.1 ms; CPU per DCGAN 28 step 322 -> 286 ms, WGAN-GP 1,540 -> 1,361 ms.
 * Tiles at the bottom and right edges go through a 5x8 scratch tile so C needs no padding.
 *
 * Strides are in bytes, so transposed operands cost nothing: A[i][k] is at a + i*asi + k*ask and B[k][j]
 * at b + k*bsk + j*bsj. Packing is vectorised where the strides allow: B rows of whole panels with
 * bsj = 4, or B transposed (bsk = 4: whole panels, 4x4 blocks transposed by shuffles, each column read
 * along its run; pix2pix's transposed convs read their filters so, step ~590 -> ~490 ms CPU); rows 0-3 of a full block of A with asi = 4 (A transposed: one vector per k) or
 * ask = 4 (row-major: 4x4 blocks transposed by shuffles); the rest (row 4 of each block) is scalar. Vector packing of A took the DCGAN layer's
 * [3136,1024] @ [1024,128] from 21.8 to 19.7 ms and its filter gradient's [1024,3136] (A^T) @
 * [3136,128] from 24.2 to 21.6 ms (medians of 9, unloaded dev machine).
 *
 * `tileRows` (>= 4) is there to compare tile heights; the module the product uses has TILE_ROWS.
 */
export function gemmModuleWat(fma: boolean, tileRows: number = TILE_ROWS): string {
  const madd = (a: string, b: string, c: string) =>
    fma ? `(f32x4.relaxed_madd ${a} ${b} ${c})` : `(f32x4.add (f32x4.mul ${a} ${b}) ${c})`;
  const R = tileRows;
  const S = 4 * R;
  const rows = Array.from({ length: R }, (_, r) => r);
  const acc = rows.flatMap((r) => [`$c${r}0`, `$c${r}1`]);
  // One k of a tile: B's 8 columns, A's rows broadcast one by one, 2 multiply-adds per row.
  const kStep = `(local.set $b0 (v128.load (local.get $bp)))
    (local.set $b1 (v128.load offset=16 (local.get $bp)))
    (local.set $a4 (v128.load (local.get $ap)))
    ${rows
      .map(
        (r) => `(local.set $av ${
          r < 4 ? shuffle('$a4', '$a4', [r, r, r, r]) : `(v128.load32_splat offset=${4 * r} (local.get $ap))`
        })
    (local.set $c${r}0 ${madd('(local.get $av)', '(local.get $b0)', `(local.get $c${r}0)`)})
    (local.set $c${r}1 ${madd('(local.get $av)', '(local.get $b1)', `(local.get $c${r}1)`)})`,
      )
      .join('\n    ')}`;
  // kc steps of a tile from $ap and $bp, both advancing.
  const kLoop = `(local.set $end (i32.add (local.get $ap) (i32.mul (local.get $kc) (i32.const ${S}))))
  (loop $k
    ${kStep}
    (local.set $ap (i32.add (local.get $ap) (i32.const ${S})))
    (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
    (br_if $k (i32.lt_u (local.get $ap) (local.get $end))))`;
  const storeTile = rows
    .map(
      (r) => `(v128.store (local.get $cr) (local.get $c${r}0))
  (v128.store offset=16 (local.get $cr) (local.get $c${r}1))
  (local.set $cr (i32.add (local.get $cr) (local.get $ldc)))`,
    )
    .join('\n  ');
  return `(module
(import "env" "memory" (memory 0))

;; ${R}x8 tile of C (row stride ldc bytes) = [accumulate ? C : 0] + Ap[kc][${R}] @ Bp[kc][8]
(func $tile (param $ap i32) (param $bp i32) (param $c i32) (param $ldc i32) (param $kc i32) (param $accumulate i32)
  ${acc.map((v) => `(local ${v} v128)`).join(' ')}
  (local $b0 v128) (local $b1 v128) (local $av v128) (local $a4 v128) (local $end i32) (local $cr i32)
  (if (local.get $accumulate) (then
    (local.set $cr (local.get $c))
    ${rows
      .map(
        (r) => `(local.set $c${r}0 (v128.load (local.get $cr)))
    (local.set $c${r}1 (v128.load offset=16 (local.get $cr)))
    (local.set $cr (i32.add (local.get $cr) (local.get $ldc)))`,
      )
      .join('\n    ')}))
  ${kLoop}
  (local.set $cr (local.get $c))
  ${storeTile})

;; ${R}x8 tile of C (row stride ldc bytes) = sum over t < taps of Ap_t[kc][${R}] @ Bp_t[kc][8], where Ap_t is at
;; ap + t*tapStride bytes and the Bp_t follow one another from bp (conv-shifted-output.ts: the kernel rows)
(func $tileTaps (param $ap i32) (param $tapStride i32) (param $bp i32) (param $c i32) (param $ldc i32) (param $kc i32) (param $taps i32)
  ${acc.map((v) => `(local ${v} v128)`).join(' ')}
  (local $b0 v128) (local $b1 v128) (local $av v128) (local $a4 v128) (local $end i32) (local $cr i32) (local $a0 i32)
  (loop $tap
    (local.set $a0 (local.get $ap))
    ${kLoop}
    (local.set $ap (i32.add (local.get $a0) (local.get $tapStride)))
    (local.set $taps (i32.sub (local.get $taps) (i32.const 1)))
    (br_if $tap (local.get $taps)))
  (local.set $cr (local.get $c))
  ${storeTile})

;; Ap[kc][${R}] from rows [0, rows) of A (rows <= ${R}; missing rows are zeros)
(func $packA (param $a i32) (param $asi i32) (param $ask i32) (param $rows i32) (param $kc i32) (param $dst i32)
  (if (i32.eq (local.get $rows) (i32.const ${R})) (then
    (call $pack4 (local.get $a) (local.get $asi) (local.get $ask) (local.get $kc) (local.get $dst))
    (call $packRows (local.get $a) (local.get $asi) (local.get $ask) (i32.const 4) (local.get $rows) (local.get $kc) (local.get $dst))
    (return)))
  (call $packRows (local.get $a) (local.get $asi) (local.get $ask) (i32.const 0) (local.get $rows) (local.get $kc) (local.get $dst)))

;; rows [r0, ${R}) of Ap[kc][${R}] from A's rows (zeros from row $rows on), one float at a time
(func $packRows (param $a i32) (param $asi i32) (param $ask i32) (param $r i32) (param $rows i32) (param $kc i32) (param $dst i32)
  (local $k i32) (local $src i32) (local $d i32)
  (block $done (loop $r
    (br_if $done (i32.ge_u (local.get $r) (i32.const ${R})))
    (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $r) (i32.const 2))))
    (if (i32.lt_u (local.get $r) (local.get $rows))
      (then
        (local.set $src (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $asi))))
        (local.set $k (i32.const 0))
        (loop $k
          (f32.store (local.get $d) (f32.load (local.get $src)))
          (local.set $src (i32.add (local.get $src) (local.get $ask)))
          (local.set $d (i32.add (local.get $d) (i32.const ${S})))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $k (i32.lt_u (local.get $k) (local.get $kc)))))
      (else
        (local.set $k (i32.const 0))
        (loop $k
          (f32.store (local.get $d) (f32.const 0))
          (local.set $d (i32.add (local.get $d) (i32.const ${S})))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $k (i32.lt_u (local.get $k) (local.get $kc))))))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br $r))))

;; rows 0-3 of Ap[kc][${R}] from 4 rows of A, by vectors where the strides allow
(func $pack4 (param $a i32) (param $asi i32) (param $ask i32) (param $kc i32) (param $dst i32)
  (local $end i32)
  (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
  (if (i32.eq (local.get $asi) (i32.const 4)) (then
    ;; A transposed: the 4 rows of each k are 4 contiguous floats, one vector
    (local.set $end (i32.add (local.get $dst) (i32.mul (local.get $kc) (i32.const ${S}))))
    (loop $k
      (v128.store (local.get $dst) (v128.load (local.get $a)))
      (local.set $a (i32.add (local.get $a) (local.get $ask)))
      (local.set $dst (i32.add (local.get $dst) (i32.const ${S})))
      (br_if $k (i32.lt_u (local.get $dst) (local.get $end))))
    (return)))
  (if (i32.and (i32.eq (local.get $ask) (i32.const 4)) (i32.ge_u (local.get $kc) (i32.const 4))) (then
    ;; A row-major: 4x4 blocks (4 rows, 4 k) loaded as 4 row vectors, transposed by shuffles
    (local.set $end (i32.add (local.get $dst) (i32.mul (i32.and (local.get $kc) (i32.const -4)) (i32.const ${S}))))
    (loop $k4
      (local.set $v0 (v128.load (local.get $a)))
      (local.set $v1 (v128.load (i32.add (local.get $a) (local.get $asi))))
      (local.set $v2 (v128.load (i32.add (local.get $a) (i32.shl (local.get $asi) (i32.const 1)))))
      (local.set $v3 (v128.load (i32.add (local.get $a) (i32.mul (local.get $asi) (i32.const 3)))))
      (local.set $t0 ${shuffle('$v0', '$v1', [0, 4, 1, 5])})
      (local.set $t1 ${shuffle('$v0', '$v1', [2, 6, 3, 7])})
      (local.set $t2 ${shuffle('$v2', '$v3', [0, 4, 1, 5])})
      (local.set $t3 ${shuffle('$v2', '$v3', [2, 6, 3, 7])})
      (v128.store (local.get $dst) ${shuffle('$t0', '$t2', [0, 1, 4, 5])})
      (v128.store offset=${S} (local.get $dst) ${shuffle('$t0', '$t2', [2, 3, 6, 7])})
      (v128.store offset=${2 * S} (local.get $dst) ${shuffle('$t1', '$t3', [0, 1, 4, 5])})
      (v128.store offset=${3 * S} (local.get $dst) ${shuffle('$t1', '$t3', [2, 3, 6, 7])})
      (local.set $a (i32.add (local.get $a) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const ${4 * S})))
      (br_if $k4 (i32.lt_u (local.get $dst) (local.get $end))))
    ;; the last kc % 4 values of k, by the scalar loop below
    (local.set $kc (i32.and (local.get $kc) (i32.const 3)))
    (if (i32.eqz (local.get $kc)) (then (return)))))
  (call $packRows4 (local.get $a) (local.get $asi) (local.get $ask) (local.get $kc) (local.get $dst)))

;; rows 0-3 of Ap[kc][${R}], one float at a time
(func $packRows4 (param $a i32) (param $asi i32) (param $ask i32) (param $kc i32) (param $dst i32)
  (local $r i32) (local $k i32) (local $src i32) (local $d i32)
  (loop $r
    (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $r) (i32.const 2))))
    (local.set $src (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $asi))))
    (local.set $k (i32.const 0))
    (loop $k
      (f32.store (local.get $d) (f32.load (local.get $src)))
      (local.set $src (i32.add (local.get $src) (local.get $ask)))
      (local.set $d (i32.add (local.get $d) (i32.const ${S})))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $k (i32.lt_u (local.get $k) (local.get $kc))))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br_if $r (i32.lt_u (local.get $r) (i32.const 4)))))

;; Bp: panel p holds [kc][8] of columns [8p, 8p + 8) of B's rows [0, kc); columns past n are zeros
(func $packB (param $b i32) (param $bsk i32) (param $bsj i32) (param $kc i32) (param $n i32) (param $dst i32)
  (local $k i32) (local $j i32) (local $row i32) (local $src i32) (local $d i32) (local $panel i32) (local $full i32)
  (local $kc4 i32) (local $q i32)
  (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
  (local.set $panel (i32.shl (local.get $kc) (i32.const 5)))
  (local.set $full (i32.and (local.get $n) (i32.const -8)))
  (if (i32.and (i32.eq (local.get $bsk) (i32.const 4)) (i32.ne (local.get $bsj) (i32.const 4))) (then
    ;; B transposed (k contiguous within a column, as a filter read as its transpose): whole panels, 4 k at
    ;; a time, 4x4 blocks (4 columns, 4 k) loaded as 4 column vectors and transposed by shuffles, so each
    ;; column is read along its run instead of one float per cache line; the rest by the loop below
    (local.set $kc4 (i32.and (local.get $kc) (i32.const -4)))
    (local.set $j (i32.const 0))
    (block $pdone (loop $pan
      (br_if $pdone (i32.ge_u (local.get $j) (local.get $full)))
      (local.set $d (i32.add (local.get $dst) (i32.mul (i32.shr_u (local.get $j) (i32.const 3)) (local.get $panel))))
      (local.set $q (i32.const 0))
      (loop $half
        (local.set $src (i32.add (local.get $b) (i32.mul (i32.add (local.get $j) (local.get $q)) (local.get $bsj))))
        (local.set $row (i32.add (local.get $d) (i32.shl (local.get $q) (i32.const 2))))
        (local.set $k (i32.const 0))
        (block $kdone (loop $k4
          (br_if $kdone (i32.ge_u (local.get $k) (local.get $kc4)))
          (local.set $v0 (v128.load (local.get $src)))
          (local.set $v1 (v128.load (i32.add (local.get $src) (local.get $bsj))))
          (local.set $v2 (v128.load (i32.add (local.get $src) (i32.shl (local.get $bsj) (i32.const 1)))))
          (local.set $v3 (v128.load (i32.add (local.get $src) (i32.mul (local.get $bsj) (i32.const 3)))))
          (local.set $t0 ${shuffle('$v0', '$v1', [0, 4, 1, 5])})
          (local.set $t1 ${shuffle('$v0', '$v1', [2, 6, 3, 7])})
          (local.set $t2 ${shuffle('$v2', '$v3', [0, 4, 1, 5])})
          (local.set $t3 ${shuffle('$v2', '$v3', [2, 6, 3, 7])})
          (v128.store (local.get $row) ${shuffle('$t0', '$t2', [0, 1, 4, 5])})
          (v128.store offset=32 (local.get $row) ${shuffle('$t0', '$t2', [2, 3, 6, 7])})
          (v128.store offset=64 (local.get $row) ${shuffle('$t1', '$t3', [0, 1, 4, 5])})
          (v128.store offset=96 (local.get $row) ${shuffle('$t1', '$t3', [2, 3, 6, 7])})
          (local.set $src (i32.add (local.get $src) (i32.const 16)))
          (local.set $row (i32.add (local.get $row) (i32.const 128)))
          (local.set $k (i32.add (local.get $k) (i32.const 4)))
          (br $k4)))
        (local.set $q (i32.add (local.get $q) (i32.const 4)))
        (br_if $half (i32.lt_u (local.get $q) (i32.const 8))))
      (local.set $j (i32.add (local.get $j) (i32.const 8)))
      (br $pan)))))
  (local.set $k (i32.const 0))
  (loop $k
    (local.set $row (i32.add (local.get $b) (i32.mul (local.get $k) (local.get $bsk))))
    (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $k) (i32.const 5))))
    (local.set $j (i32.const 0))
    (if (i32.lt_u (local.get $k) (local.get $kc4)) (then
      ;; whole panels of these rows are packed above
      (local.set $d (i32.add (local.get $d) (i32.mul (i32.shr_u (local.get $full) (i32.const 3)) (local.get $panel))))
      (local.set $j (local.get $full))))
    (if (i32.eq (local.get $bsj) (i32.const 4))
      (then
        (local.set $src (local.get $row))
        (block $done (loop $vec
          (br_if $done (i32.ge_u (local.get $j) (local.get $full)))
          (v128.store (local.get $d) (v128.load (local.get $src)))
          (v128.store offset=16 (local.get $d) (v128.load offset=16 (local.get $src)))
          (local.set $src (i32.add (local.get $src) (i32.const 32)))
          (local.set $d (i32.add (local.get $d) (local.get $panel)))
          (local.set $j (i32.add (local.get $j) (i32.const 8)))
          (br $vec)))))
    ;; remaining columns one by one (all of them when B's columns are strided)
    (block $done (loop $col
      (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
      (f32.store
        (i32.add (local.get $d) (i32.shl (i32.and (local.get $j) (i32.const 7)) (i32.const 2)))
        (f32.load (i32.add (local.get $row) (i32.mul (local.get $j) (local.get $bsj)))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (if (i32.eqz (i32.and (local.get $j) (i32.const 7)))
        (then (local.set $d (i32.add (local.get $d) (local.get $panel)))))
      (br $col)))
    ;; zeros up to the end of the last panel
    (block $done (loop $pad
      (br_if $done (i32.eqz (i32.and (local.get $j) (i32.const 7))))
      (f32.store (i32.add (local.get $d) (i32.shl (i32.and (local.get $j) (i32.const 7)) (i32.const 2))) (f32.const 0))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $pad)))
    (local.set $k (i32.add (local.get $k) (i32.const 1)))
    (br_if $k (i32.lt_u (local.get $k) (local.get $kc)))))

${batchNormWat()}
${pointwiseOuterWat(madd)}
;; dst[i] += src[i] for i < n (float32; col2im's window rows); the runs may not overlap
(func (export "addInto") (param $dst i32) (param $src i32) (param $n i32)
  (local $end i32) (local $vend i32)
  (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $n) (i32.const 2))))
  (local.set $vend (i32.add (local.get $dst) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $dst) (local.get $vend)))
    (v128.store (local.get $dst) (f32x4.add (v128.load (local.get $dst)) (v128.load (local.get $src))))
    (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
    (local.set $src (i32.add (local.get $src) (i32.const 16)))
    (br $vec)))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
    (f32.store (local.get $dst) (f32.add (f32.load (local.get $dst)) (f32.load (local.get $src))))
    (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
    (local.set $src (i32.add (local.get $src) (i32.const 4)))
    (br $one))))

;; out[i] = x[i] > 0 ? x[i] : alpha * x[i] for i < n (leaky ReLU; NaN stays NaN)
(func (export "leakyRelu") (param $x i32) (param $out i32) (param $n i32) (param $alpha f32)
  (local $i i32) (local $end i32) (local $vend i32) (local $v v128) (local $a v128) (local $s f32)
  (local.set $a (f32x4.splat (local.get $alpha)))
  (local.set $end (i32.shl (local.get $n) (i32.const 2)))
  (local.set $vend (i32.and (local.get $end) (i32.const -16)))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $i) (local.get $vend)))
    (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
    (v128.store (i32.add (local.get $out) (local.get $i))
      (v128.bitselect (local.get $v) (f32x4.mul (local.get $v) (local.get $a))
        (f32x4.gt (local.get $v) (f32x4.splat (f32.const 0)))))
    (local.set $i (i32.add (local.get $i) (i32.const 16)))
    (br $vec)))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
    (local.set $s (f32.load (i32.add (local.get $x) (local.get $i))))
    (f32.store (i32.add (local.get $out) (local.get $i))
      (select (local.get $s) (f32.mul (local.get $s) (local.get $alpha)) (f32.gt (local.get $s) (f32.const 0))))
    (local.set $i (i32.add (local.get $i) (i32.const 4)))
    (br $one))))

;; out[i] = x[i] > 0 ? dy[i] : alpha * dy[i] for i < n (leaky ReLU's gradient, dy * step(x, alpha) with the
;; same products; a NaN x gives NaN, as step(NaN) does)
(func (export "leakyReluGrad") (param $dy i32) (param $x i32) (param $out i32) (param $n i32) (param $alpha f32)
  (local $i i32) (local $end i32) (local $vend i32) (local $v v128) (local $g v128) (local $a v128)
  (local $s f32) (local $t f32)
  (local.set $a (f32x4.splat (local.get $alpha)))
  (local.set $end (i32.shl (local.get $n) (i32.const 2)))
  (local.set $vend (i32.and (local.get $end) (i32.const -16)))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $i) (local.get $vend)))
    (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
    (local.set $g (v128.load (i32.add (local.get $dy) (local.get $i))))
    (v128.store (i32.add (local.get $out) (local.get $i))
      (v128.bitselect (local.get $v)
        (v128.bitselect (local.get $g) (f32x4.mul (local.get $g) (local.get $a))
          (f32x4.gt (local.get $v) (f32x4.splat (f32.const 0))))
        (f32x4.ne (local.get $v) (local.get $v))))
    (local.set $i (i32.add (local.get $i) (i32.const 16)))
    (br $vec)))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
    (local.set $s (f32.load (i32.add (local.get $x) (local.get $i))))
    (local.set $t (f32.load (i32.add (local.get $dy) (local.get $i))))
    (f32.store (i32.add (local.get $out) (local.get $i))
      (select (local.get $s)
        (select (local.get $t) (f32.mul (local.get $t) (local.get $alpha)) (f32.gt (local.get $s) (f32.const 0)))
        (f32.ne (local.get $s) (local.get $s))))
    (local.set $i (i32.add (local.get $i) (i32.const 4)))
    (br $one))))

${channelPassesWat()}
;; One Adam step (Kingma & Ba, 2015) over n floats, into new arrays: m' = b1 m + (1 - b1) g,
;; v' = b2 v + (1 - b2) g^2, x' = x - alpha m' / (sqrt(v') + eps), each operation rounded as tfjs's ops
;; round it (no fused multiply-adds), so the values are those of the unfused update
(func (export "adam") (param $x i32) (param $m i32) (param $v i32) (param $g i32)
    (param $xo i32) (param $mo i32) (param $vo i32) (param $n i32)
    (param $b1 f32) (param $c1 f32) (param $b2 f32) (param $c2 f32) (param $alpha f32) (param $eps f32)
  (local $i i32) (local $end i32) (local $vend i32) (local $gv v128) (local $mv v128) (local $vv v128)
  (local $gs f32) (local $ms f32) (local $vs f32)
  (local.set $end (i32.shl (local.get $n) (i32.const 2)))
  (local.set $vend (i32.and (local.get $end) (i32.const -16)))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $i) (local.get $vend)))
    (local.set $gv (v128.load (i32.add (local.get $g) (local.get $i))))
    (local.set $mv (f32x4.add
      (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $i))) (f32x4.splat (local.get $b1)))
      (f32x4.mul (local.get $gv) (f32x4.splat (local.get $c1)))))
    (local.set $vv (f32x4.add
      (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $i))) (f32x4.splat (local.get $b2)))
      (f32x4.mul (f32x4.mul (local.get $gv) (local.get $gv)) (f32x4.splat (local.get $c2)))))
    (v128.store (i32.add (local.get $mo) (local.get $i)) (local.get $mv))
    (v128.store (i32.add (local.get $vo) (local.get $i)) (local.get $vv))
    (v128.store (i32.add (local.get $xo) (local.get $i)) (f32x4.sub
      (v128.load (i32.add (local.get $x) (local.get $i)))
      (f32x4.mul
        (f32x4.div (local.get $mv) (f32x4.add (f32x4.sqrt (local.get $vv)) (f32x4.splat (local.get $eps))))
        (f32x4.splat (local.get $alpha)))))
    (local.set $i (i32.add (local.get $i) (i32.const 16)))
    (br $vec)))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
    (local.set $gs (f32.load (i32.add (local.get $g) (local.get $i))))
    (local.set $ms (f32.add
      (f32.mul (f32.load (i32.add (local.get $m) (local.get $i))) (local.get $b1))
      (f32.mul (local.get $gs) (local.get $c1))))
    (local.set $vs (f32.add
      (f32.mul (f32.load (i32.add (local.get $v) (local.get $i))) (local.get $b2))
      (f32.mul (f32.mul (local.get $gs) (local.get $gs)) (local.get $c2))))
    (f32.store (i32.add (local.get $mo) (local.get $i)) (local.get $ms))
    (f32.store (i32.add (local.get $vo) (local.get $i)) (local.get $vs))
    (f32.store (i32.add (local.get $xo) (local.get $i)) (f32.sub
      (f32.load (i32.add (local.get $x) (local.get $i)))
      (f32.mul
        (f32.div (local.get $ms) (f32.add (f32.sqrt (local.get $vs)) (local.get $eps)))
        (local.get $alpha))))
    (local.set $i (i32.add (local.get $i) (i32.const 4)))
    (br $one))))

;; The kernel rows of a stride-1 convolution with its kernel columns on the output side
;; (kernels/conv-shifted-output.ts): Y[blocks*${R}][8*panels] = sum_t A_t @ Bp_t, where A_t's rows are the
;; rows of ci contiguous floats from x + (t*shift*${R} + row)*ci*4 (a zero-padded image grid whose width is
;; shift*${R}, so that tap t's row blocks are whole blocks of the packed rows) and Bp_t is panel j's [ci][8]
;; at bp + ((j*taps + t)*ci)*32 bytes. The rows are packed once for all the taps (ap: scratch of
;; (blocks + (taps - 1)*shift)*${R}*ci floats); each 5x8 tile of Y sums its taps in turn.
(func (export "shiftedConv") (param $x i32) (param $ci i32) (param $blocks i32) (param $shift i32) (param $taps i32)
    (param $bp i32) (param $panels i32) (param $y i32) (param $ap i32)
  (local $blk i32) (local $total i32) (local $asi i32) (local $ablk i32) (local $j i32)
  (local $ldc i32) (local $yrow i32) (local $bpanel i32)
  (local.set $asi (i32.shl (local.get $ci) (i32.const 2)))
  (local.set $ablk (i32.mul (local.get $ci) (i32.const ${S})))
  (local.set $total (i32.add (local.get $blocks) (i32.mul (i32.sub (local.get $taps) (i32.const 1)) (local.get $shift))))
  (local.set $blk (i32.const 0))
  (loop $pack
    (call $packA (i32.add (local.get $x) (i32.mul (local.get $blk) (i32.mul (local.get $asi) (i32.const ${R}))))
      (local.get $asi) (i32.const 4) (i32.const ${R}) (local.get $ci)
      (i32.add (local.get $ap) (i32.mul (local.get $blk) (local.get $ablk))))
    (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
    (br_if $pack (i32.lt_u (local.get $blk) (local.get $total))))
  (local.set $ldc (i32.shl (local.get $panels) (i32.const 5)))
  (local.set $blk (i32.const 0))
  (loop $rows
    (local.set $yrow (i32.add (local.get $y) (i32.mul (local.get $blk) (i32.mul (local.get $ldc) (i32.const ${R})))))
    (local.set $j (i32.const 0))
    (loop $panel
      (local.set $bpanel (i32.add (local.get $bp)
        (i32.shl (i32.mul (i32.mul (local.get $j) (local.get $taps)) (local.get $ci)) (i32.const 5))))
      (call $tileTaps
        (i32.add (local.get $ap) (i32.mul (local.get $blk) (local.get $ablk)))
        (i32.mul (local.get $shift) (local.get $ablk))
        (local.get $bpanel)
        (i32.add (local.get $yrow) (i32.shl (local.get $j) (i32.const 5)))
        (local.get $ldc) (local.get $ci) (local.get $taps))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $panel (i32.lt_u (local.get $j) (local.get $panels))))
    (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
    (br_if $rows (i32.lt_u (local.get $blk) (local.get $blocks)))))

;; y[(oy*ow + ox)*co + c] = sum over kw < kws of s[(oy*wg + ox + kw)*ld + kw*co + c] for oy < rows, ox < ow,
;; c < co <= 8 (conv-shifted-output.ts: the kernel columns' sums shifted back by their kw). By vectors of 4
;; (two where co > 4) read past the co wanted (s needs 8 floats of slack after its last row) and stored over
;; the next pixels', which are written after; the pixels whose vectors would end past y lane by lane.
(func (export "shiftedReduce") (param $s i32) (param $y i32) (param $rows i32) (param $wg i32) (param $ld i32)
    (param $ow i32) (param $co i32) (param $kws i32)
  (local $oy i32) (local $ox i32) (local $kw i32) (local $src i32) (local $step i32) (local $out i32)
  (local $v0 v128) (local $v1 v128) (local $two i32) (local $last i32)
  (local.set $step (i32.shl (i32.add (local.get $ld) (local.get $co)) (i32.const 2)))
  (local.set $out (i32.shl (local.get $co) (i32.const 2)))
  (local.set $two (i32.gt_u (local.get $co) (i32.const 4)))
  ;; vector stores while a whole vector (two) still ends inside y: from $last on, lane by lane
  (local.set $last (i32.sub
    (i32.add (local.get $y) (i32.mul (i32.mul (local.get $rows) (local.get $ow)) (local.get $out)))
    (select (i32.const 32) (i32.const 16) (local.get $two))))
  (local.set $oy (i32.const 0))
  (loop $row
    (local.set $ox (i32.const 0))
    (loop $px
      (local.set $src (i32.add (local.get $s)
        (i32.shl (i32.mul (i32.add (i32.mul (local.get $oy) (local.get $wg)) (local.get $ox)) (local.get $ld)) (i32.const 2))))
      (local.set $v0 (v128.load (local.get $src)))
      (local.set $v1 (v128.load offset=16 (local.get $src)))
      (local.set $kw (i32.const 1))
      (block $done (loop $k
        (br_if $done (i32.ge_u (local.get $kw) (local.get $kws)))
        (local.set $src (i32.add (local.get $src) (local.get $step)))
        (local.set $v0 (f32x4.add (local.get $v0) (v128.load (local.get $src))))
        (local.set $v1 (f32x4.add (local.get $v1) (v128.load offset=16 (local.get $src))))
        (local.set $kw (i32.add (local.get $kw) (i32.const 1)))
        (br $k)))
      (if (i32.le_u (local.get $y) (local.get $last))
        (then
          (v128.store (local.get $y) (local.get $v0))
          (if (local.get $two) (then (v128.store offset=16 (local.get $y) (local.get $v1)))))
        (else
          (if (i32.gt_u (local.get $co) (i32.const 0)) (then (f32.store offset=0 (local.get $y) (f32x4.extract_lane 0 (local.get $v0))))) (if (i32.gt_u (local.get $co) (i32.const 1)) (then (f32.store offset=4 (local.get $y) (f32x4.extract_lane 1 (local.get $v0))))) (if (i32.gt_u (local.get $co) (i32.const 2)) (then (f32.store offset=8 (local.get $y) (f32x4.extract_lane 2 (local.get $v0))))) (if (i32.gt_u (local.get $co) (i32.const 3)) (then (f32.store offset=12 (local.get $y) (f32x4.extract_lane 3 (local.get $v0)))))
          (if (i32.gt_u (local.get $co) (i32.const 4)) (then (f32.store offset=16 (local.get $y) (f32x4.extract_lane 0 (local.get $v1))))) (if (i32.gt_u (local.get $co) (i32.const 5)) (then (f32.store offset=20 (local.get $y) (f32x4.extract_lane 1 (local.get $v1))))) (if (i32.gt_u (local.get $co) (i32.const 6)) (then (f32.store offset=24 (local.get $y) (f32x4.extract_lane 2 (local.get $v1))))) (if (i32.gt_u (local.get $co) (i32.const 7)) (then (f32.store offset=28 (local.get $y) (f32x4.extract_lane 3 (local.get $v1)))))))
      (local.set $y (i32.add (local.get $y) (local.get $out)))
      (local.set $ox (i32.add (local.get $ox) (i32.const 1)))
      (br_if $px (i32.lt_u (local.get $ox) (local.get $ow))))
    (local.set $oy (i32.add (local.get $oy) (i32.const 1)))
    (br_if $row (i32.lt_u (local.get $oy) (local.get $rows)))))

;; C[m][n] (row stride ldc bytes) = A @ B, or C += A @ B when addToC is non-zero; m, k, n > 0.
;; Scratch: kcmax * 8 * ceil(n / 8) + ${R} * kcmax + ${8 * R} floats.
(func (export "gemm") (param $a i32) (param $asi i32) (param $ask i32) (param $b i32) (param $bsk i32) (param $bsj i32)
    (param $c i32) (param $ldc i32) (param $m i32) (param $k i32) (param $n i32) (param $kcmax i32) (param $scratch i32)
    (param $addToC i32)
  (local $k0 i32) (local $kc i32) (local $i i32) (local $j i32) (local $ap i32) (local $bp i32) (local $tile i32)
  (local $rows i32) (local $cols i32) (local $crow i32) (local $r i32) (local $q i32) (local $accumulate i32)
  (local.set $ap (i32.add (local.get $scratch)
    (i32.shl (i32.mul (local.get $kcmax) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))) (i32.const 2))))
  (local.set $tile (i32.add (local.get $ap) (i32.mul (local.get $kcmax) (i32.const ${S}))))
  (local.set $k0 (i32.const 0))
  (loop $kblock
    (local.set $kc (i32.sub (local.get $k) (local.get $k0)))
    (if (i32.gt_u (local.get $kc) (local.get $kcmax)) (then (local.set $kc (local.get $kcmax))))
    (local.set $accumulate (i32.or (i32.ne (local.get $k0) (i32.const 0)) (i32.ne (local.get $addToC) (i32.const 0))))
    (call $packB (i32.add (local.get $b) (i32.mul (local.get $k0) (local.get $bsk)))
      (local.get $bsk) (local.get $bsj) (local.get $kc) (local.get $n) (local.get $scratch))
    (local.set $i (i32.const 0))
    (loop $rowblock
      (local.set $rows (i32.sub (local.get $m) (local.get $i)))
      (if (i32.gt_u (local.get $rows) (i32.const ${R})) (then (local.set $rows (i32.const ${R}))))
      (call $packA
        (i32.add (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $asi))) (i32.mul (local.get $k0) (local.get $ask)))
        (local.get $asi) (local.get $ask) (local.get $rows) (local.get $kc) (local.get $ap))
      (local.set $crow (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $ldc))))
      (local.set $bp (local.get $scratch))
      (local.set $j (i32.const 0))
      (loop $panel
        (local.set $cols (i32.sub (local.get $n) (local.get $j)))
        (if (i32.gt_u (local.get $cols) (i32.const 8)) (then (local.set $cols (i32.const 8))))
        (if (i32.and (i32.eq (local.get $rows) (i32.const ${R})) (i32.eq (local.get $cols) (i32.const 8)))
          (then
            (call $tile (local.get $ap) (local.get $bp) (i32.add (local.get $crow) (i32.shl (local.get $j) (i32.const 2)))
              (local.get $ldc) (local.get $kc) (local.get $accumulate)))
          (else
            ;; edge tile: through the scratch tile, copying the valid part in (when accumulating) and out
            (if (local.get $accumulate) (then
              (local.set $r (i32.const 0))
              (loop $in
                (local.set $q (i32.const 0))
                (loop $inc
                  (if (i32.and (i32.lt_u (local.get $r) (local.get $rows)) (i32.lt_u (local.get $q) (local.get $cols)))
                    (then (f32.store
                      (i32.add (local.get $tile) (i32.shl (i32.add (i32.shl (local.get $r) (i32.const 3)) (local.get $q)) (i32.const 2)))
                      (f32.load (i32.add (i32.add (local.get $crow) (i32.mul (local.get $r) (local.get $ldc)))
                        (i32.shl (i32.add (local.get $j) (local.get $q)) (i32.const 2)))))))
                  (local.set $q (i32.add (local.get $q) (i32.const 1)))
                  (br_if $inc (i32.lt_u (local.get $q) (i32.const 8))))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br_if $in (i32.lt_u (local.get $r) (i32.const ${R}))))))
            (call $tile (local.get $ap) (local.get $bp) (local.get $tile) (i32.const 32) (local.get $kc) (local.get $accumulate))
            (local.set $r (i32.const 0))
            (loop $out
              (local.set $q (i32.const 0))
              (loop $outc
                (f32.store
                  (i32.add (i32.add (local.get $crow) (i32.mul (local.get $r) (local.get $ldc)))
                    (i32.shl (i32.add (local.get $j) (local.get $q)) (i32.const 2)))
                  (f32.load (i32.add (local.get $tile) (i32.shl (i32.add (i32.shl (local.get $r) (i32.const 3)) (local.get $q)) (i32.const 2)))))
                (local.set $q (i32.add (local.get $q) (i32.const 1)))
                (br_if $outc (i32.lt_u (local.get $q) (local.get $cols))))
              (local.set $r (i32.add (local.get $r) (i32.const 1)))
              (br_if $out (i32.lt_u (local.get $r) (local.get $rows))))))
        (local.set $bp (i32.add (local.get $bp) (i32.shl (local.get $kc) (i32.const 5))))
        (local.set $j (i32.add (local.get $j) (i32.const 8)))
        (br_if $panel (i32.lt_u (local.get $j) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const ${R})))
      (br_if $rowblock (i32.lt_u (local.get $i) (local.get $m))))
    (local.set $k0 (i32.add (local.get $k0) (local.get $kc)))
    (br_if $kblock (i32.lt_u (local.get $k0) (local.get $k)))))
)`;
}

/** `i8x16.shuffle` of two v128 locals picking four 32-bit lanes (0-3 from x, 4-7 from y). */
function shuffle(x: string, y: string, lanes: readonly number[]): string {
  const bytes = lanes.flatMap((l) => [0, 1, 2, 3].map((b) => 4 * l + b));
  return `(i8x16.shuffle ${bytes.join(' ')} (local.get ${x}) (local.get ${y}))`;
}
