import { setFlagsFromString } from 'node:v8';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { instanceOnBackend, moduleFromWat } from './module-cache.ts';
import { gemmModuleWat, TILE_ROWS } from './wat.ts';

/**
 * Depth of one K block: B's packed block is KC x 8 floats per panel (8 KiB, L1-resident while a row
 * block sweeps the panels) and A's packed block KC x 4. 256 measured best of 128/256/512/1024 on the
 * DCGAN shapes, within the machine's noise of 512.
 */
export const KC = 256;

/** One matrix operand in the wasm heap: element [i][j] at byte ptr + i*rowStride + j*colStride. */
export interface MatrixRef {
  ptr: number;
  rowStride: number;
  colStride: number;
}

/** The parts of the emscripten module behind tfjs-backend-wasm that this file uses (not in its typings). */
interface EmscriptenModule {
  HEAPF32: Float32Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
}

function emscripten(backend: BackendWasm): EmscriptenModule {
  return backend.wasm as unknown as EmscriptenModule;
}

type GemmExport = (
  a: number,
  asi: number,
  ask: number,
  b: number,
  bsk: number,
  bsj: number,
  c: number,
  ldc: number,
  m: number,
  k: number,
  n: number,
  kcmax: number,
  scratch: number,
  addToC: number,
) => void;

/** The module's exports (wat.ts). */
interface GemmExports extends BatchNormPasses {
  gemm: GemmExport;
  addInto: (dst: number, src: number, n: number) => void;
  shiftedConv: (
    x: number,
    ci: number,
    blocks: number,
    shift: number,
    taps: number,
    bp: number,
    panels: number,
    y: number,
    ap: number,
  ) => void;
  shiftedReduce: (
    s: number,
    y: number,
    rows: number,
    wg: number,
    ld: number,
    ow: number,
    co: number,
    kws: number,
  ) => void;
  adam: (...args: number[]) => void;
  leakyRelu: (x: number, out: number, n: number, alpha: number) => void;
  leakyReluGrad: (dy: number, x: number, out: number, n: number, alpha: number) => void;
  prelu: (x: number, alpha: number, out: number, rows: number, c: number) => void;
  preluGrad: (
    dy: number,
    x: number,
    alpha: number,
    dx: number,
    dalpha: number,
    rows: number,
    c: number,
  ) => void;
  pixelNorm: (x: number, y: number, r: number, rows: number, c: number, eps: number) => void;
  pixelNormGrad: (dy: number, x: number, r: number, dx: number, rows: number, c: number) => void;
  upsample2x: (x: number, out: number, rows: number, w: number, c: number) => void;
  biasLeakyRelu: (y: number, b: number, out: number, rows: number, c: number, alpha: number) => void;
  [pointwiseOuter: `pointwiseOuter${number}x${number}`]: unknown;
  biasLeakyReluGrad: (
    dz: number,
    out: number,
    dpre: number,
    db: number,
    rows: number,
    c: number,
    alpha: number,
  ) => void;
}

/**
 * Batch normalisation's passes over x [rows][c] (c % 4 = 0), byte addresses in the heap; see
 * batch-norm-wat.ts (kernels/batch-norm.ts calls them).
 */
export interface BatchNormPasses {
  bnStats(x: number, rows: number, c: number, mean: number, rstd: number, eps: number): void;
  bnApply(
    x: number,
    rows: number,
    c: number,
    mean: number,
    rstd: number,
    gamma: number,
    beta: number,
    xhat: number,
    y: number,
  ): void;
  bnGradSums(dy: number, xhat: number, rows: number, c: number, dbeta: number, dgamma: number): void;
  bnGradApply(
    dy: number,
    xhat: number,
    rows: number,
    c: number,
    gamma: number,
    rstd: number,
    dbeta: number,
    dgamma: number,
    dx: number,
  ): void;
}

/** The operands of {@link Gemm.shiftedConv}: byte addresses and counts. */
export interface ShiftedConvOperands {
  x: number;
  ci: number;
  blocks: number;
  shift: number;
  taps: number;
  bp: number;
  panels: number;
  y: number;
  ap: number;
}

/** The operands of {@link Gemm.shiftedReduce}: byte addresses and counts. */
export interface ShiftedReduceOperands {
  s: number;
  y: number;
  rows: number;
  wg: number;
  ld: number;
  ow: number;
  co: number;
  kws: number;
}

/** Byte addresses of one Adam update's operands and results (see {@link Gemm.adam}). */
export interface AdamOperands {
  x: number;
  m: number;
  v: number;
  g: number;
  xOut: number;
  mOut: number;
  vOut: number;
}

/** One Adam step's coefficients: the moments' decays and the bias-corrected step size alpha. */
export interface AdamCoefficients {
  beta1: number;
  beta2: number;
  alpha: number;
  epsilon: number;
}

/** Gantry's matrix product bound to one wasm backend's memory (see wat.ts for the method). */
export class Gemm {
  private scratchPtr = 0;
  private scratchBytes = 0;
  private readonly run: GemmExport;

  constructor(
    private readonly backend: BackendWasm,
    private readonly exports: GemmExports,
    /** Whether multiply-adds are fused (relaxed SIMD available). */
    readonly fused: boolean,
  ) {
    this.run = exports.gemm;
  }

  /**
   * dst[i] += src[i] for i < n, float32 at byte addresses dst and src in this backend's heap (runs that do
   * not overlap), in SIMD: col2im's window rows (transposed-conv-gemm.ts).
   */
  addInto(dst: number, src: number, n: number): void {
    this.exports.addInto(dst, src, n);
  }

  /**
   * The kernel rows of a stride-1 convolution with its kernel columns on the output side (see
   * kernels/conv-shifted-output.ts and the `shiftedConv` export in wat.ts): y [blocks*TILE_ROWS,
   * 8*panels] = sum over t < taps of the rows of ci floats from x + t*shift*TILE_ROWS rows, times
   * panel-packed filter slices bp ([panels][taps][ci][8]); ap is scratch for
   * (blocks + (taps - 1)*shift)*TILE_ROWS*ci floats. Byte addresses in this heap; blocks, taps >= 1.
   */
  shiftedConv(p: ShiftedConvOperands): void {
    this.exports.shiftedConv(p.x, p.ci, p.blocks, p.shift, p.taps, p.bp, p.panels, p.y, p.ap);
  }

  /**
   * y[(oy*ow + ox)*co + c] = sum over kw < kws of s[(oy*wg + ox + kw)*ld + kw*co + c] for oy < rows,
   * ox < ow, c < co <= 8, in SIMD (the `shiftedReduce` export in wat.ts): the shifted-output convolution's
   * kernel columns summed back. Byte addresses in this heap; s needs 8 floats of slack after its last row.
   */
  shiftedReduce(p: ShiftedReduceOperands): void {
    this.exports.shiftedReduce(p.s, p.y, p.rows, p.wg, p.ld, p.ow, p.co, p.kws);
  }

  /** Batch normalisation's SIMD passes (positional arguments, as the module exports them). */
  get batchNorm(): BatchNormPasses {
    return this.exports;
  }

  /** out[i] = x[i] > 0 ? x[i] : alpha * x[i] for n float32s at byte addresses of this heap, in SIMD. */
  leakyRelu(x: number, out: number, n: number, alpha: number): void {
    this.exports.leakyRelu(x, out, n, Math.fround(alpha));
  }

  /** out[i] = x[i] > 0 ? dy[i] : alpha * dy[i] (NaN where x[i] is) for n float32s of this heap, in SIMD. */
  leakyReluGrad(dy: number, x: number, out: number, n: number, alpha: number): void {
    this.exports.leakyReluGrad(dy, x, out, n, Math.fround(alpha));
  }

  /**
   * out[r][j] = x[r][j] > 0 ? x[r][j] : alpha[j] * x[r][j] over [rows][c] float32s of this heap (PReLU),
   * in SIMD; c must be a positive multiple of 4.
   */
  prelu(x: number, alpha: number, out: number, rows: number, c: number): void {
    this.exports.prelu(x, alpha, out, rows, c);
  }

  /**
   * PReLU's gradients in one SIMD pass over [rows][c] (c a positive multiple of 4): dx = x > 0 ? dy :
   * alpha * dy, and dalpha[j] = the sum over rows, in row order, of (x > 0 ? 0 : dy * x).
   */
  preluGrad(dy: number, x: number, alpha: number, dx: number, dalpha: number, rows: number, c: number): void {
    this.exports.preluGrad(dy, x, alpha, dx, dalpha, rows, c);
  }

  /**
   * ProGAN's pixel norm over [rows][c] float32s of this heap (c a positive multiple of 4), in SIMD:
   * r[row] = 1 / sqrt(sum(x^2) / c + eps), y = x * r.
   */
  pixelNorm(x: number, y: number, r: number, rows: number, c: number, eps: number): void {
    this.exports.pixelNorm(x, y, r, rows, c, Math.fround(eps));
  }

  /** Pixel norm's gradient from x and the forward pass's r, in SIMD: dx = r dy - x r^3 sum(dy x) / c. */
  pixelNormGrad(dy: number, x: number, r: number, dx: number, rows: number, c: number): void {
    this.exports.pixelNormGrad(dy, x, r, dx, rows, c);
  }

  /**
   * Nearest-neighbour 2x upsampling in this heap: out [rows * 2][w * 2][c] from x [rows][w][c] (each
   * pixel into a 2x2 block), by vectors where c % 4 = 0; rows, w, c >= 1.
   */
  upsample2x(x: number, out: number, rows: number, w: number, c: number): void {
    this.exports.upsample2x(x, out, rows, w, c);
  }

  /**
   * out = leakyRelu(y + b) over [rows][c] float32s of this heap, b [c] (c a positive multiple of 4), in
   * SIMD: the values of an Add then LeakyRelu.
   */
  biasLeakyRelu(y: number, b: number, out: number, rows: number, c: number, alpha: number): void {
    this.exports.biasLeakyRelu(y, b, out, rows, c, Math.fround(alpha));
  }

  /**
   * Its gradients from its output (alpha > 0), in one SIMD pass: dpre = out > 0 ? dz : alpha * dz (NaN
   * where out is NaN) and db[j] = the sum over rows, in row order, of dpre.
   */
  biasLeakyReluGrad(
    dz: number,
    out: number,
    dpre: number,
    db: number,
    rows: number,
    c: number,
    alpha: number,
  ): void {
    this.exports.biasLeakyReluGrad(dz, out, dpre, db, rows, c, Math.fround(alpha));
  }

  /**
   * s [I][4V] = sum over p < rows, in order, of a[p][i] * b[p][j], row strides lda and ldb in bytes, in
   * SIMD with every sum in registers (a 1x1 filter gradient where one side has at most 4 channels); false
   * where the module has no such shape (see POINTWISE_OUTER_SHAPES in channel-passes-wat.ts).
   */
  pointwiseOuter(
    i: number,
    v: number,
    a: number,
    lda: number,
    b: number,
    ldb: number,
    s: number,
    rows: number,
  ): boolean {
    const run = this.exports[`pointwiseOuter${i}x${v}`] as
      | ((a: number, lda: number, b: number, ldb: number, s: number, rows: number) => void)
      | undefined;
    if (run === undefined) return false;
    run(a, lda, b, ldb, s, rows);
    return true;
  }

  /**
   * One Adam step over n float32s of this heap, written to new arrays (kernels/adam-update.ts): the
   * operations of optim/adam.ts in the same order and float32 rounding, in one SIMD pass.
   */
  adam(p: AdamOperands, n: number, c: AdamCoefficients): void {
    const f = Math.fround;
    this.exports.adam(
      p.x,
      p.m,
      p.v,
      p.g,
      p.xOut,
      p.mOut,
      p.vOut,
      n,
      f(c.beta1),
      f(1 - c.beta1),
      f(c.beta2),
      f(1 - c.beta2),
      f(c.alpha),
      f(c.epsilon),
    );
  }

  /**
   * c[m][n] = a[m][k] @ b[k][n], or c[m][n] += a @ b with `addToC`, all float32 in this backend's heap; c
   * has unit column stride and must not overlap a or b. Call `reserve(n)` first when the operands are
   * views taken from the heap: it may grow the heap (which moves nothing, but detaches typed-array views).
   */
  multiply(
    m: number,
    k: number,
    n: number,
    a: MatrixRef,
    b: MatrixRef,
    c: { ptr: number; rowStride: number },
    addToC = false,
  ): void {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
      if (addToC) return;
      for (let i = 0; i < m; i++) {
        const row = (c.ptr + i * c.rowStride) >>> 2;
        emscripten(this.backend).HEAPF32.fill(0, row, row + n);
      }
      return;
    }
    this.reserve(n);
    this.run(
      a.ptr,
      a.rowStride,
      a.colStride,
      b.ptr,
      b.rowStride,
      b.colStride,
      c.ptr,
      c.rowStride,
      m,
      k,
      n,
      KC,
      this.scratchPtr,
      addToC ? 1 : 0,
    );
  }

  /** Makes sure the scratch for products with n columns exists (packed B, packed A and the edge tile). */
  reserve(n: number): void {
    const bytes = 4 * (KC * 8 * Math.ceil(n / 8) + TILE_ROWS * KC + 8 * TILE_ROWS);
    if (bytes <= this.scratchBytes) return;
    const wasm = emscripten(this.backend);
    if (this.scratchPtr !== 0) wasm._free(this.scratchPtr);
    this.scratchPtr = wasm._malloc(bytes);
    if (this.scratchPtr === 0) throw new Error(`gemm: could not allocate ${bytes} bytes of wasm scratch`);
    this.scratchBytes = bytes;
  }
}

/** Byte address of a tensor's data in the wasm heap. */
export function heapPtr(backend: BackendWasm, t: TensorInfo): number {
  return backend.typedArrayFromHeap(t).byteOffset;
}

let compiled: Promise<{ module: object; fused: boolean } | undefined> | undefined;
const instances = new WeakMap<BackendWasm, Gemm>();
let disabled = false;

/**
 * Compiles the product once per process. It is used only with fused multiply-adds: relaxed SIMD is
 * enabled in V8 here (Node 20 ships it behind a flag; later versions by default). Without it, the plain
 * multiply-then-add kernel measured no faster than XNNPACK, which the stock kernels then keep using.
 */
function compile(): Promise<{ module: object; fused: boolean } | undefined> {
  compiled ??= (async () => {
    try {
      setFlagsFromString('--experimental-wasm-relaxed-simd');
      // Assembled once per machine and kept (module-cache.ts): wabt costs ~0.1 s of start-up.
      const module = await moduleFromWat('gantry-gemm', gemmModuleWat(true), {
        simd: true,
        relaxed_simd: true,
      });
      return { module, fused: true };
    } catch {
      return undefined;
    }
  })();
  return compiled;
}

/**
 * Binds the product to `backend`'s memory. Returns undefined (and the wasm kernels keep to XNNPACK) where
 * relaxed SIMD cannot be compiled or the product is turned off (setGemmEnabled).
 */
export async function initGemm(backend: BackendWasm): Promise<Gemm | undefined> {
  if (disabled) return undefined;
  const existing = instances.get(backend);
  if (existing) return existing;
  const c = await compile();
  if (c === undefined) return undefined;
  const exports = instanceOnBackend(c.module, backend);
  if (exports === undefined) return undefined;
  const gemm = new Gemm(backend, exports as unknown as GemmExports, c.fused);
  instances.set(backend, gemm);
  return gemm;
}

/** The product bound to `backend`, if initGemm succeeded and it is enabled. */
export function gemmFor(backend: BackendWasm): Gemm | undefined {
  return disabled ? undefined : instances.get(backend);
}

/** Turns Gantry's product off or back on (GANTRY_WASM_GEMM; benchmarks and tests compare it with XNNPACK). */
export function setGemmEnabled(enabled: boolean): void {
  disabled = !enabled;
}
