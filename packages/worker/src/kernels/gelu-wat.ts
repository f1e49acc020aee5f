/**
 * WAT of the fused GELU kernels (gelu.ts): f32x4 SIMD over n floats of the wasm backend's memory, the tail
 * through the same vector code one lane at a time, so every element is computed alike.
 *
 * exp(x): x clamped to [-87, 88], k = nearest(x log2 e), r = x - k ln 2 (Cody and Waite's two-part ln 2),
 * e^r by its Taylor polynomial of degree 6 (|r| <= 0.35: remainder < 1.3e-7 relative), times 2^k built
 * in the exponent bits. erf(z): Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), tfjs' own Erf formula.
 */
export function geluModuleWat(): string {
  const c = (v: number) => `(f32x4.splat (f32.const ${v}))`;
  return `(module
(import "env" "memory" (memory 0))

(func $exp (param $x v128) (result v128) (local $k v128) (local $r v128) (local $p v128)
  (local.set $x (f32x4.max (f32x4.min (local.get $x) ${c(88)}) ${c(-87)}))
  (local.set $k (f32x4.nearest (f32x4.mul (local.get $x) ${c(Math.LOG2E)})))
  (local.set $r (f32x4.sub (f32x4.sub (local.get $x) (f32x4.mul (local.get $k) ${c(0.693359375)}))
    (f32x4.mul (local.get $k) ${c(-2.1219444e-4)})))
  (local.set $p ${c(1 / 720)})
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${c(1 / 120)}))
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${c(1 / 24)}))
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${c(1 / 6)}))
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${c(0.5)}))
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${c(1)}))
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${c(1)}))
  (f32x4.mul (local.get $p)
    (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $k)) (i32x4.splat (i32.const 127)))
      (i32.const 23))))

(func $erf (param $z v128) (result v128) (local $a v128) (local $t v128) (local $p v128) (local $e v128)
  (local.set $a (f32x4.abs (local.get $z)))
  (local.set $t (f32x4.div ${c(1)} (f32x4.add ${c(1)} (f32x4.mul (local.get $a) ${c(0.3275911)}))))
  (local.set $p ${c(1.061405429)})
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) ${c(-1.453152027)}))
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) ${c(1.421413741)}))
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) ${c(-0.284496736)}))
  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) ${c(0.254829592)}))
  (local.set $p (f32x4.mul (local.get $p) (local.get $t)))
  (local.set $e (f32x4.sub ${c(1)} (f32x4.mul (local.get $p)
    (call $exp (f32x4.neg (f32x4.mul (local.get $a) (local.get $a)))))))
  ;; erf is odd: the sign of z on |erf|
  (v128.or (v128.and (local.get $z) (i32x4.splat (i32.const 0x80000000))) (local.get $e)))

;; 0.5 x (1 + erf(x / sqrt 2))
(func $gelu4 (param $x v128) (result v128)
  (f32x4.mul (f32x4.mul (local.get $x) ${c(0.5)})
    (f32x4.add ${c(1)} (call $erf (f32x4.mul (local.get $x) ${c(Math.SQRT1_2)})))))

;; dy (Phi(x) + x phi(x)), Phi(x) = 0.5 (1 + erf(x / sqrt 2)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
(func $geluGrad4 (param $x v128) (param $dy v128) (result v128)
  (f32x4.mul (local.get $dy)
    (f32x4.add
      (f32x4.mul ${c(0.5)} (f32x4.add ${c(1)} (call $erf (f32x4.mul (local.get $x) ${c(Math.SQRT1_2)}))))
      (f32x4.mul (f32x4.mul (local.get $x) ${c(1 / Math.sqrt(2 * Math.PI))})
        (call $exp (f32x4.mul (f32x4.mul (local.get $x) (local.get $x)) ${c(-0.5)}))))))

(func (export "gelu") (param $x i32) (param $out i32) (param $n i32)
  (local $i i32) (local $end i32) (local $vend i32)
  (local.set $end (i32.shl (local.get $n) (i32.const 2)))
  (local.set $vend (i32.and (local.get $end) (i32.const -16)))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $i) (local.get $vend)))
    (v128.store (i32.add (local.get $out) (local.get $i))
      (call $gelu4 (v128.load (i32.add (local.get $x) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 16)))
    (br $vec)))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
    (f32.store (i32.add (local.get $out) (local.get $i))
      (f32x4.extract_lane 0 (call $gelu4 (f32x4.splat (f32.load (i32.add (local.get $x) (local.get $i)))))))
    (local.set $i (i32.add (local.get $i) (i32.const 4)))
    (br $one))))

(func (export "geluGrad") (param $x i32) (param $dy i32) (param $out i32) (param $n i32)
  (local $i i32) (local $end i32) (local $vend i32)
  (local.set $end (i32.shl (local.get $n) (i32.const 2)))
  (local.set $vend (i32.and (local.get $end) (i32.const -16)))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $i) (local.get $vend)))
    (v128.store (i32.add (local.get $out) (local.get $i))
      (call $geluGrad4 (v128.load (i32.add (local.get $x) (local.get $i)))
        (v128.load (i32.add (local.get $dy) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 16)))
    (br $vec)))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
    (f32.store (i32.add (local.get $out) (local.get $i))
      (f32x4.extract_lane 0 (call $geluGrad4
        (f32x4.splat (f32.load (i32.add (local.get $x) (local.get $i))))
        (f32x4.splat (f32.load (i32.add (local.get $dy) (local.get $i)))))))
    (local.set $i (i32.add (local.get $i) (i32.const 4)))
    (br $one))))
)`;
}
