/**
 * WebAssembly text of batch normalisation's passes (Ioffe & Szegedy, 2015) over x [rows][c] (NHWC
 * flattened: rows = N*H*W, c channels, c % 4 = 0), SIMD across channels, for kernels/batch-norm.ts; part of
 * the module of wat.ts. Per-channel vectors (mean, rstd, gamma, ...) are [c] float32 arrays. Each
 * operation is the float32 one of models/layers.ts' tfjs ops, in the same order; only the sums run in
 * another order (row by row).
 */
import { at, LOOP_LOCALS, load, overChannels, overRows } from './row-loops-wat.ts';

export function batchNormWat(): string {
  return `
;; mean[c] = sum_i x[i] / rows; rstd[c] = 1 / sqrt(sum_i (x[i] - mean)^2 / rows + eps)
(func (export "bnStats") (param $x i32) (param $rows i32) (param $c i32) (param $mean i32) (param $rstd i32) (param $eps f32)
  ${LOOP_LOCALS} (local $xr i32) (local $d v128) (local $inv v128)
  (local.set $inv (f32x4.splat (f32.div (f32.const 1) (f32.convert_i32_u (local.get $rows)))))
  ${overChannels(`(v128.store ${at('$mean')} (v128.const i32x4 0 0 0 0))
    (v128.store ${at('$rstd')} (v128.const i32x4 0 0 0 0))`)}
  (local.set $xr (local.get $x))
  ${overRows(['$xr'], `(v128.store ${at('$mean')} (f32x4.add ${load('$mean')} ${load('$xr')}))`)}
  ${overChannels(`(v128.store ${at('$mean')} (f32x4.mul ${load('$mean')} (local.get $inv)))`)}
  (local.set $xr (local.get $x))
  ${overRows(
    ['$xr'],
    `(local.set $d (f32x4.sub ${load('$xr')} ${load('$mean')}))
      (v128.store ${at('$rstd')} (f32x4.add ${load('$rstd')} (f32x4.mul (local.get $d) (local.get $d))))`,
  )}
  ${overChannels(`(v128.store ${at('$rstd')} (f32x4.div (f32x4.splat (f32.const 1))
      (f32x4.sqrt (f32x4.add (f32x4.mul ${load('$rstd')} (local.get $inv)) (f32x4.splat (local.get $eps))))))`)})

;; xhat = (x - mean) * rstd; y = xhat * gamma + beta
(func (export "bnApply") (param $x i32) (param $rows i32) (param $c i32) (param $mean i32) (param $rstd i32)
    (param $gamma i32) (param $beta i32) (param $xhat i32) (param $y i32)
  ${LOOP_LOCALS} (local $h v128)
  ${overRows(
    ['$x', '$xhat', '$y'],
    `(local.set $h (f32x4.mul (f32x4.sub ${load('$x')} ${load('$mean')}) ${load('$rstd')}))
      (v128.store ${at('$xhat')} (local.get $h))
      (v128.store ${at('$y')} (f32x4.add (f32x4.mul (local.get $h) ${load('$gamma')}) ${load('$beta')}))`,
  )})

;; dbeta = sum_i dy[i]; dgamma = sum_i dy[i] * xhat[i]
(func (export "bnGradSums") (param $dy i32) (param $xhat i32) (param $rows i32) (param $c i32) (param $dbeta i32) (param $dgamma i32)
  ${LOOP_LOCALS}
  ${overChannels(`(v128.store ${at('$dbeta')} (v128.const i32x4 0 0 0 0))
    (v128.store ${at('$dgamma')} (v128.const i32x4 0 0 0 0))`)}
  ${overRows(
    ['$dy', '$xhat'],
    `(v128.store ${at('$dbeta')} (f32x4.add ${load('$dbeta')} ${load('$dy')}))
      (v128.store ${at('$dgamma')} (f32x4.add ${load('$dgamma')} (f32x4.mul ${load('$dy')} ${load('$xhat')})))`,
  )})

;; dx = (gamma * rstd / m) * ((dy * m - dbeta) - xhat * dgamma), m = rows
(func (export "bnGradApply") (param $dy i32) (param $xhat i32) (param $rows i32) (param $c i32) (param $gamma i32)
    (param $rstd i32) (param $dbeta i32) (param $dgamma i32) (param $dx i32)
  ${LOOP_LOCALS} (local $m v128)
  (local.set $m (f32x4.splat (f32.convert_i32_u (local.get $rows))))
  ${overRows(
    ['$dy', '$xhat', '$dx'],
    `(v128.store ${at('$dx')} (f32x4.mul
        (f32x4.div (f32x4.mul ${load('$gamma')} ${load('$rstd')}) (local.get $m))
        (f32x4.sub (f32x4.sub (f32x4.mul ${load('$dy')} (local.get $m)) ${load('$dbeta')})
          (f32x4.mul ${load('$xhat')} ${load('$dgamma')}))))`,
  )})
`;
}
