import { at, LOOP_LOCALS, laneSum, load, overChannels, overRows, perRow } from './row-loops-wat.ts';

/**
 * WebAssembly text of the gemm module's fused per-channel passes over x [rows][c] (c % 4 = 0, SIMD
 * across channels): PReLU, ProGAN's pixel norm and its convolutions' bias + LeakyRelu, each forward and
 * back (kernels/prelu.ts, pixel-norm.ts, bias-leaky-relu.ts), and the 2x nearest upsampling
 * (kernels/resize-nearest.ts). Part of the module of wat.ts.
 */
export function channelPassesWat(): string {
  // One image row's pixels, each copied to its 2x2 block of the output rows at $o and $o + $ob, by loads
  // and stores of `type` (v128 or f32) through the local `v`, `bytes` at a time.
  const copyPixels = (type: string, v: string, bytes: number) => `(loop $px
          (local.set $j (i32.const 0))
          (loop $vec
            (local.set ${v} (${type}.load (i32.add (local.get $x) (local.get $j))))
            ${[
              '(local.get $o)',
              '(i32.add (local.get $o) (local.get $cb))',
              '(i32.add (local.get $o) (local.get $ob))',
              '(i32.add (i32.add (local.get $o) (local.get $ob)) (local.get $cb))',
            ]
              .map((dst) => `(${type}.store (i32.add ${dst} (local.get $j)) (local.get ${v}))`)
              .join('\n            ')}
            (local.set $j (i32.add (local.get $j) (i32.const ${bytes})))
            (br_if $vec (i32.lt_u (local.get $j) (local.get $cb))))
          (local.set $x (i32.add (local.get $x) (local.get $cb)))
          (local.set $o (i32.add (local.get $o) (i32.shl (local.get $cb) (i32.const 1))))
          (br_if $px (i32.lt_u (local.get $x) (local.get $rowEnd))))`;
  const positive = (v: string) => `(f32x4.gt ${v} (f32x4.splat (f32.const 0)))`;
  return `
;; out[r][j] = x[r][j] > 0 ? x[r][j] : alpha[j] * x[r][j] (PReLU, a slope per channel; NaN stays NaN)
(func (export "prelu") (param $x i32) (param $alpha i32) (param $out i32) (param $rows i32) (param $c i32)
  ${LOOP_LOCALS} (local $v v128)
  ${overRows(
    ['$x', '$out'],
    `(local.set $v ${load('$x')})
      (v128.store ${at('$out')}
        (v128.bitselect (local.get $v) (f32x4.mul (local.get $v) ${load('$alpha')}) ${positive('(local.get $v)')}))`,
  )})

;; PReLU's gradients: dx[r][j] = x > 0 ? dy : alpha[j] * dy, and dalpha[j] = the sum over rows, in row
;; order, of (x > 0 ? 0 : dy * x)
(func (export "preluGrad") (param $dy i32) (param $x i32) (param $alpha i32) (param $dx i32) (param $dalpha i32)
    (param $rows i32) (param $c i32)
  ${LOOP_LOCALS} (local $v v128) (local $g v128) (local $pos v128)
  ${overChannels(`(v128.store ${at('$dalpha')} (v128.const i32x4 0 0 0 0))`)}
  ${overRows(
    ['$x', '$dy', '$dx'],
    `(local.set $v ${load('$x')})
      (local.set $g ${load('$dy')})
      (local.set $pos ${positive('(local.get $v)')})
      (v128.store ${at('$dx')}
        (v128.bitselect (local.get $g) (f32x4.mul (local.get $g) ${load('$alpha')}) (local.get $pos)))
      (v128.store ${at('$dalpha')}
        (f32x4.add ${load('$dalpha')} (v128.andnot (f32x4.mul (local.get $g) (local.get $v)) (local.get $pos))))`,
  )})

;; Pixel norm (ProGAN): r[row] = 1 / sqrt(sum(x^2) / c + eps), y = x * r
(func (export "pixelNorm") (param $x i32) (param $y i32) (param $r i32) (param $rows i32) (param $c i32) (param $eps f32)
  ${LOOP_LOCALS} (local $v v128) (local $acc v128) (local $s f32) (local $rr v128)
  ${perRow(
    ['$x', '$y'],
    `(local.set $acc (v128.const i32x4 0 0 0 0))
    ${overChannels(`(local.set $v ${load('$x')})
      (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v) (local.get $v))))`)}
    (local.set $s ${laneSum('(local.get $acc)')})
    (local.set $s (f32.div (f32.const 1)
      (f32.sqrt (f32.add (f32.div (local.get $s) (f32.convert_i32_u (local.get $c))) (local.get $eps)))))
    (f32.store (local.get $r) (local.get $s))
    (local.set $rr (f32x4.splat (local.get $s)))
    ${overChannels(`(v128.store ${at('$y')} (f32x4.mul ${load('$x')} (local.get $rr)))`)}`,
    '(local.set $r (i32.add (local.get $r) (i32.const 4)))',
  )})

;; Pixel norm's gradient from x and the forward pass's r: dx = r dy - x r^3 sum(dy x) / c
(func (export "pixelNormGrad") (param $dy i32) (param $x i32) (param $r i32) (param $dx i32) (param $rows i32) (param $c i32)
  ${LOOP_LOCALS} (local $acc v128) (local $s f32) (local $q f32) (local $rr v128) (local $k v128)
  ${perRow(
    ['$x', '$dy', '$dx'],
    `(local.set $acc (v128.const i32x4 0 0 0 0))
    ${overChannels(`(local.set $acc (f32x4.add (local.get $acc) (f32x4.mul ${load('$dy')} ${load('$x')})))`)}
    (local.set $s ${laneSum('(local.get $acc)')})
    (local.set $q (f32.load (local.get $r)))
    (local.set $rr (f32x4.splat (local.get $q)))
    (local.set $k (f32x4.splat (f32.mul (f32.mul (local.get $q) (f32.mul (local.get $q) (local.get $q)))
      (f32.div (local.get $s) (f32.convert_i32_u (local.get $c))))))
    ${overChannels(`(v128.store ${at('$dx')}
        (f32x4.sub (f32x4.mul ${load('$dy')} (local.get $rr)) (f32x4.mul ${load('$x')} (local.get $k))))`)}`,
    '(local.set $r (i32.add (local.get $r) (i32.const 4)))',
  )})

;; out = leakyRelu(y + b[j]) (a bias per channel, then the slope alpha): the values of an Add then LeakyRelu
(func (export "biasLeakyRelu") (param $y i32) (param $b i32) (param $out i32) (param $rows i32) (param $c i32) (param $alpha f32)
  ${LOOP_LOCALS} (local $v v128) (local $a v128)
  (local.set $a (f32x4.splat (local.get $alpha)))
  ${overRows(
    ['$y', '$out'],
    `(local.set $v (f32x4.add ${load('$y')} ${load('$b')}))
      (v128.store ${at('$out')}
        (v128.bitselect (local.get $v) (f32x4.mul (local.get $v) (local.get $a)) ${positive('(local.get $v)')}))`,
  )})

;; Its gradients from the output (alpha > 0: out > 0 exactly where y + b > 0): dpre = out > 0 ? dz :
;; alpha * dz (NaN where out is NaN), the gradient of y, and db[j] = the sum over rows, in row order, of dpre
(func (export "biasLeakyReluGrad") (param $dz i32) (param $out i32) (param $dpre i32) (param $db i32) (param $rows i32)
    (param $c i32) (param $alpha f32)
  ${LOOP_LOCALS} (local $v v128) (local $g v128) (local $a v128)
  (local.set $a (f32x4.splat (local.get $alpha)))
  ${overChannels(`(v128.store ${at('$db')} (v128.const i32x4 0 0 0 0))`)}
  ${overRows(
    ['$out', '$dz', '$dpre'],
    `(local.set $v ${load('$out')})
      (local.set $g ${load('$dz')})
      (local.set $g
        (v128.bitselect (local.get $v)
          (v128.bitselect (local.get $g) (f32x4.mul (local.get $g) (local.get $a)) ${positive('(local.get $v)')})
          (f32x4.ne (local.get $v) (local.get $v))))
      (v128.store ${at('$dpre')} (local.get $g))
      (v128.store ${at('$db')} (f32x4.add ${load('$db')} (local.get $g)))`,
  )})

;; Nearest-neighbour 2x upsampling: out [rows*2][w*2][c] from x [rows][w][c], each pixel copied into a
;; 2x2 block (ProGAN's); by vectors where c is a multiple of 4, else float by float
(func (export "upsample2x") (param $x i32) (param $out i32) (param $rows i32) (param $w i32) (param $c i32)
  (local $end i32) (local $rowEnd i32) (local $j i32) (local $cb i32) (local $ob i32) (local $o i32)
  (local $v v128) (local $f f32)
  (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
  ;; one output row's bytes
  (local.set $ob (i32.shl (i32.mul (local.get $w) (local.get $cb)) (i32.const 1)))
  (local.set $end (i32.add (local.get $x) (i32.mul (local.get $rows) (i32.shr_u (local.get $ob) (i32.const 1)))))
  (block $done (loop $row
    (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
    (local.set $rowEnd (i32.add (local.get $x) (i32.shr_u (local.get $ob) (i32.const 1))))
    (local.set $o (local.get $out))
    (if (i32.eqz (i32.and (local.get $c) (i32.const 3)))
      (then ${copyPixels('v128', '$v', 16)})
      (else ${copyPixels('f32', '$f', 4)}))
    (local.set $out (i32.add (local.get $out) (i32.shl (local.get $ob) (i32.const 1))))
    (br $row))))
`;
}

/** The (I, V) shapes {@link pointwiseOuterWat} generates: I splat rows by V vectors, I * V <= 12 accumulators. */
export const POINTWISE_OUTER_SHAPES: readonly (readonly [number, number])[] = [1, 2, 3, 4].flatMap((i) =>
  [1, 2, 3, 4].filter((v) => i * v <= 12).map((v) => [i, v] as const),
);

/**
 * Exports `pointwiseOuter{I}x{V}` for each of {@link POINTWISE_OUTER_SHAPES}: s[i][j] = sum over p < rows,
 * in order, of a[p][i] * b[p][j] for i < I and j < 4V, with row strides lda and ldb in bytes (a 1x1
 * convolution's filter gradient x^T @ dy where one side has at most 4 channels: ProGAN's fromRGB and
 * toRGB). All I x V accumulators stay in registers: per row, V vector loads of b, I splat loads of a and
 * I x V multiply-adds.
 */
export function pointwiseOuterWat(madd: (a: string, b: string, c: string) => string): string {
  return POINTWISE_OUTER_SHAPES.map(([I, V]) => {
    const rows = Array.from({ length: I }, (_, i) => i);
    const cols = Array.from({ length: V }, (_, v) => v);
    const acc = rows.flatMap((i) => cols.map((v) => `$s${i}_${v}`));
    return `(func (export "pointwiseOuter${I}x${V}") (param $a i32) (param $lda i32) (param $b i32) (param $ldb i32) (param $s i32) (param $rows i32)
  ${acc.map((x) => `(local ${x} v128)`).join(' ')}
  ${cols.map((v) => `(local $b${v} v128)`).join(' ')} (local $av v128) (local $end i32)
  (local.set $end (i32.add (local.get $a) (i32.mul (local.get $rows) (local.get $lda))))
  (block $done (loop $p
    (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
    ${cols.map((v) => `(local.set $b${v} (v128.load offset=${16 * v} (local.get $b)))`).join('\n    ')}
    ${rows
      .map(
        (i) => `(local.set $av (v128.load32_splat offset=${4 * i} (local.get $a)))
    ${cols.map((v) => `(local.set $s${i}_${v} ${madd('(local.get $av)', `(local.get $b${v})`, `(local.get $s${i}_${v})`)})`).join('\n    ')}`,
      )
      .join('\n    ')}
    (local.set $a (i32.add (local.get $a) (local.get $lda)))
    (local.set $b (i32.add (local.get $b) (local.get $ldb)))
    (br $p)))
  ${rows.flatMap((i) => cols.map((v) => `(v128.store offset=${16 * (i * V + v)} (local.get $s) (local.get $s${i}_${v}))`)).join('\n  ')})
`;
  }).join('\n');
}
