import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { heapPtr } from './gemm/index.ts';
import { instanceOnBackend, moduleFromWat } from './gemm/module-cache.ts';

/**
 * im2col (the same matrix as im2col.ts: row (b, oh, ow) - col0, column (kh, kw, ci)) as WebAssembly that
 * shares the backend's memory: each window row is copied by a SIMD loop (by `memory.copy` from 128 floats
 * up) and the padding zeroed the same way, where the JS version copies rows of fewer than 32 floats one
 * float at a time. For ProGAN's 64 px layers (8 channels, 3x3: rows of 24 floats, 4.7M floats per call)
 * that loop was 22 ms of a 26 ms forward conv; here 3.5-4 ms (min of 15; 9.2 ms with a `memory.copy` per
 * row, a call into V8).
 */
const IM2COL_WAT = `(module
(import "env" "memory" (memory 0))
;; n bytes (a multiple of 4) from src to dst, which do not overlap: vectors, then floats; memory.copy for
;; long runs (it is a call into V8, ~30 ns, which short window rows would pay per row)
(func $copy (param $dst i32) (param $src i32) (param $n i32)
  (local $end i32)
  (if (i32.ge_u (local.get $n) (i32.const 512)) (then (memory.copy (local.get $dst) (local.get $src) (local.get $n)) (return)))
  (local.set $end (i32.add (local.get $dst) (i32.and (local.get $n) (i32.const -16))))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
    (v128.store (local.get $dst) (v128.load (local.get $src)))
    (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
    (local.set $src (i32.add (local.get $src) (i32.const 16)))
    (br $vec)))
  (local.set $end (i32.add (local.get $end) (i32.and (local.get $n) (i32.const 15))))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
    (f32.store (local.get $dst) (f32.load (local.get $src)))
    (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
    (local.set $src (i32.add (local.get $src) (i32.const 4)))
    (br $one))))
;; n bytes (a multiple of 4) of zeros at dst, the same way
(func $zero (param $dst i32) (param $n i32)
  (local $end i32)
  (if (i32.ge_u (local.get $n) (i32.const 512)) (then (memory.fill (local.get $dst) (i32.const 0) (local.get $n)) (return)))
  (local.set $end (i32.add (local.get $dst) (i32.and (local.get $n) (i32.const -16))))
  (block $done (loop $vec
    (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
    (v128.store (local.get $dst) (v128.const i32x4 0 0 0 0))
    (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
    (br $vec)))
  (local.set $end (i32.add (local.get $end) (i32.and (local.get $n) (i32.const 15))))
  (block $done (loop $one
    (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
    (f32.store (local.get $dst) (f32.const 0))
    (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
    (br $one))))
(func (export "im2col") (param $x i32) (param $o i32) (param $inH i32) (param $inW i32) (param $inC i32)
    (param $outH i32) (param $outW i32) (param $kH i32) (param $kW i32) (param $sH i32) (param $sW i32)
    (param $padT i32) (param $padL i32) (param $col0 i32) (param $cols i32)
  (local $b i32) (local $oh i32) (local $ow i32) (local $j i32) (local $kh i32) (local $ih i32) (local $iw0 i32)
  (local $kwLo i32) (local $kwHi i32) (local $row i32) (local $cb i32) (local $lo i32) (local $hi i32)
  (local.set $row (i32.shl (i32.mul (local.get $kW) (local.get $inC)) (i32.const 2)))
  (local.set $cb (i32.shl (local.get $inC) (i32.const 2)))
  (local.set $b (i32.div_u (local.get $col0) (i32.mul (local.get $outH) (local.get $outW))))
  (local.set $oh (i32.div_u (i32.sub (local.get $col0) (i32.mul (local.get $b) (i32.mul (local.get $outH) (local.get $outW)))) (local.get $outW)))
  (local.set $ow (i32.sub (local.get $col0) (i32.mul (i32.add (i32.mul (local.get $b) (local.get $outH)) (local.get $oh)) (local.get $outW))))
  (block $end (loop $rows
    (br_if $end (i32.ge_u (local.get $j) (local.get $cols)))
    (local.set $iw0 (i32.sub (i32.mul (local.get $ow) (local.get $sW)) (local.get $padL)))
    ;; taps inside the image along the width: kw in [kwLo, kwHi)
    (local.set $kwLo (select (i32.sub (i32.const 0) (local.get $iw0)) (i32.const 0) (i32.lt_s (local.get $iw0) (i32.const 0))))
    (if (i32.gt_s (local.get $kwLo) (local.get $kW)) (then (local.set $kwLo (local.get $kW))))
    (local.set $kwHi (i32.sub (local.get $inW) (local.get $iw0)))
    (if (i32.gt_s (local.get $kwHi) (local.get $kW)) (then (local.set $kwHi (local.get $kW))))
    (if (i32.lt_s (local.get $kwHi) (local.get $kwLo)) (then (local.set $kwHi (local.get $kwLo))))
    (local.set $lo (i32.mul (local.get $kwLo) (local.get $cb)))
    (local.set $hi (i32.mul (local.get $kwHi) (local.get $cb)))
    (local.set $kh (i32.const 0))
    (loop $taps
      (local.set $ih (i32.add (i32.sub (i32.mul (local.get $oh) (local.get $sH)) (local.get $padT)) (local.get $kh)))
      (if (i32.or (i32.or (i32.lt_s (local.get $ih) (i32.const 0)) (i32.ge_s (local.get $ih) (local.get $inH)))
            (i32.eq (local.get $kwHi) (local.get $kwLo)))
        (then (call $zero (local.get $o) (local.get $row)))
        (else
          (call $zero (local.get $o) (local.get $lo))
          (call $copy (i32.add (local.get $o) (local.get $lo))
            (i32.add (local.get $x) (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $inH)) (local.get $ih)) (local.get $inW))
              (i32.add (local.get $iw0) (local.get $kwLo))) (local.get $cb)))
            (i32.sub (local.get $hi) (local.get $lo)))
          (call $zero (i32.add (local.get $o) (local.get $hi)) (i32.sub (local.get $row) (local.get $hi)))))
      (local.set $o (i32.add (local.get $o) (local.get $row)))
      (local.set $kh (i32.add (local.get $kh) (i32.const 1)))
      (br_if $taps (i32.lt_u (local.get $kh) (local.get $kH))))
    (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
    (if (i32.eq (local.get $ow) (local.get $outW)) (then
      (local.set $ow (i32.const 0))
      (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
      (if (i32.eq (local.get $oh) (local.get $outH)) (then
        (local.set $oh (i32.const 0))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $rows))))
)`;

type Im2colExport = (...args: number[]) => void;

let compiled: object | undefined;
/** Compiled once per process, from the first import on; until it is ready callers use im2col.ts. */
const compiling: Promise<void> = (async () => {
  try {
    // Assembled once per machine and kept (gemm/module-cache.ts), as the gemm module is.
    compiled = await moduleFromWat('gantry-im2col', IM2COL_WAT, { bulk_memory: true, simd: true });
  } catch {
    compiled = undefined;
  }
})();

/** Resolves once the module is compiled (or failed to be); the kernels work either way. */
export function im2colWasmReady(): Promise<void> {
  return compiling;
}

const instances = new WeakMap<BackendWasm, Im2colExport>();

function instanceFor(backend: BackendWasm): Im2colExport | undefined {
  const existing = instances.get(backend);
  if (existing !== undefined || compiled === undefined) return existing;
  const run = instanceOnBackend(compiled, backend)?.im2col as Im2colExport | undefined;
  if (run === undefined) return undefined;
  instances.set(backend, run);
  return run;
}

/**
 * Writes the im2col rows [col0, col0 + cols) of x into `patches` [cols, KH*KW*CI] and returns true, or
 * returns false (writing nothing) while the module is not compiled.
 */
export function im2colWasm(
  backend: BackendWasm,
  patches: TensorInfo,
  x: TensorInfo,
  g: ConvGeometry,
  col0: number,
  cols: number,
): boolean {
  const run = instanceFor(backend);
  if (run === undefined) return false;
  run(
    heapPtr(backend, x),
    heapPtr(backend, patches),
    g.inH,
    g.inW,
    g.inC,
    g.outH,
    g.outW,
    g.kH,
    g.kW,
    g.strideH,
    g.strideW,
    g.padTop,
    g.padLeft,
    col0,
    cols,
  );
  return true;
}
