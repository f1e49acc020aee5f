import { type Rng, STAGE_RESOLUTIONS } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { biasLeakyRelu } from '../../kernels/bias-leaky-relu.ts';
import { conv, dense, pixelShuffle } from '../../models/layers.ts';
import { init, ParamStore } from '../../models/param-store.ts';
import { downsample2x, equalizedScale, fadeIn, minibatchStd, pixelNorm, upsample2x } from './blocks.ts';

/**
 * The networks of progressive growing (Karras et al., 2018, "Progressive Growing of GANs", Table 2) for
 * images up to 256x256, NHWC, every conv 'same' padded, LeakyReLU 0.2, equalised learning rate everywhere.
 * c_r = proganChannels(r, baseFilters); R = the stage's resolution.
 *
 * G: pixelNorm(z) -> dense latent -> 4*4*c4 (the paper's 4x4 deconv of a 1x1 input), per-channel bias ->
 *    LReLU -> pixelNorm -> conv3x3 c4 -> LReLU -> pixelNorm; then per r = 8..R: upsample2x -> 2 x (conv3x3
 *    c_r -> LReLU -> pixelNorm). toRGB_r: conv1x1 c_r -> C, linear. Output: R == 4 ? toRGB_4(h_4) :
 *    fadeIn(upsample2x(toRGB_{R/2}(h_{R/2})), toRGB_R(h_R), alpha).
 * D: fromRGB_r: conv1x1 C -> c_r, LReLU. Block r: conv3x3 c_r -> LReLU -> conv3x3 c_{r/2} -> LReLU ->
 *    downsample2x. Input: R == 4 ? fromRGB_4(x) : fadeIn(fromRGB_{R/2}(downsample2x(x)),
 *    block_R(fromRGB_R(x)), alpha); then blocks R/2..8; then at 4x4 minibatchStd -> conv3x3 c4 -> LReLU ->
 *    dense 16*c4 -> c4 -> LReLU -> dense c4 -> 1 (an unbounded WGAN critic score).
 *
 * Weights are stored N(0, 1) and multiplied at run time by equalizedScale(fan_in) (gain sqrt 2; gain 1 for
 * toRGB and D's last dense; the official code's sqrt(2)/4 on G's first dense is not used: pixelNorm follows
 * it); biases start at zero. Both fade-in paths are always computed, so every variable of the stage gets a
 * gradient (zero where alpha mutes its path). Only ops whose gradients tfjs can differentiate again are used
 * (see blocks.ts), as the WGAN-GP penalty differentiates D's input gradient.
 *
 * Parameter names (local to the store's scope; `/w` and `/b` under each layer) depend only on the
 * resolution a layer belongs to, so a trainer carries stage R/2's weights into stage R by name, new
 * layers keeping their fresh init:
 *   G: b4/dense, b4/conv, b{r}/conv1, b{r}/conv2 (r = 8..R), torgb{R/2} (R > 4), torgb{R}
 *   D: b4/conv, b4/dense1, b4/dense2, b{r}/conv1, b{r}/conv2 (r = 8..R), fromrgb{R/2} (R > 4), fromrgb{R}
 * Stage R holds every block up to R and the toRGB/fromRGB of R and R/2 only (the only ones it uses). They
 * are created in this order, G's before D's, each weight drawing from the given Rng.
 */
export interface ProganShape {
  /** Image channels (1 for MNIST). */
  channels: number;
  latentDim: number;
  /** Feature maps at 4x4 and 8x8; halved at each doubling after (16x16: base/2, 32x32: base/4), never below 8. */
  baseFilters: number;
  /** Resolution of this stage: a power of two from 4 to 256 (else throw a clear Error). */
  resolution: number;
}

/** How the networks are built. */
export interface ProganOptions {
  /**
   * Scopes of the two ParamStores. tfjs variable names are process-global, so two stages alive at once
   * need different scopes.
   * @default { g: 'g', d: 'd' }
   */
  scopes?: { g: string; d: string };
}

export interface ProganNetworks {
  shape: ProganShape;
  g: ParamStore;
  d: ParamStore;
  /**
   * z [N, latent] -> images [N, R, R, C] (linear output, no tanh). alpha in [0,1] blends the new top
   * block with the 2x-upsampled output of the previous resolution's toRGB (alpha = 1: new block only;
   * at resolution 4 alpha is ignored). `params` defaults to `g`; the trainer passes an EMA copy: a
   * ParamStore with another scope but the same local names (ParamStore.get(name) prefixes its own scope).
   */
  generate(z: tf.Tensor2D, alpha: number, params?: ParamStore): tf.Tensor4D;
  /**
   * images [N, R, R, C] -> critic scores [N] (WGAN critic: unbounded, no sigmoid). Same alpha blending on
   * the input side.
   */
  discriminate(x: tf.Tensor4D, alpha: number): tf.Tensor1D;
  dispose(): void;
}

/** One parameter of a stage: its name within the store's scope and its shape. */
export interface ProganParam {
  name: string;
  shape: number[];
}

/** The width no halving goes below (a smaller baseFilters is kept as it is). */
const MIN_FILTERS = 8;
const SLOPE = 0.2;

/** Thrown (RangeError) for a shape the networks cannot be built for; says which field and why. */
function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(`ProGAN: ${what}`);
}

function checkResolution(resolution: number): void {
  check(
    (STAGE_RESOLUTIONS as readonly number[]).includes(resolution),
    `resolution must be one of ${STAGE_RESOLUTIONS.join(', ')}, got ${resolution}`,
  );
}

function checkShape(shape: ProganShape): void {
  const { channels, latentDim, baseFilters, resolution } = shape;
  checkResolution(resolution);
  for (const [name, v] of Object.entries({ channels, latentDim, baseFilters }))
    check(Number.isInteger(v) && v >= 1, `${name} must be a positive integer, got ${v}`);
}

/** Feature maps at `resolution`: baseFilters at 4x4 and 8x8, halved per doubling after, not below 8. */
export function proganChannels(resolution: number, baseFilters: number): number {
  checkResolution(resolution);
  check(
    Number.isInteger(baseFilters) && baseFilters >= 1,
    `baseFilters must be a positive integer, got ${baseFilters}`,
  );
  const halvings = Math.max(0, Math.log2(resolution) - 3);
  return Math.max(Math.min(baseFilters, MIN_FILTERS), Math.floor(baseFilters / 2 ** halvings));
}

/** Resolutions 8, 16, ... up to `top`: the blocks above 4x4. */
function blockResolutions(top: number): number[] {
  const out: number[] = [];
  for (let r = 8; r <= top; r *= 2) out.push(r);
  return out;
}

/** The stage's RGB layers: R/2 (the fade-in's old path) and R. */
function rgbResolutions(top: number): number[] {
  return top > 4 ? [top / 2, top] : [top];
}

/** Every parameter of stage `shape.resolution`, in creation order (see the naming above). */
export function proganParams(shape: ProganShape): { g: ProganParam[]; d: ProganParam[] } {
  checkShape(shape);
  const { channels: C, latentDim: L, baseFilters, resolution: R } = shape;
  const c = (r: number) => proganChannels(r, baseFilters);
  const g: ProganParam[] = [];
  const d: ProganParam[] = [];
  const layer = (to: ProganParam[], name: string, w: number[], bias = w[w.length - 1]!) =>
    to.push({ name: `${name}/w`, shape: w }, { name: `${name}/b`, shape: [bias] });

  layer(g, 'b4/dense', [L, 16 * c(4)], c(4));
  layer(g, 'b4/conv', [3, 3, c(4), c(4)]);
  for (const r of blockResolutions(R)) {
    layer(g, `b${r}/conv1`, [3, 3, c(r / 2), c(r)]);
    layer(g, `b${r}/conv2`, [3, 3, c(r), c(r)]);
  }
  for (const r of rgbResolutions(R)) layer(g, `torgb${r}`, [1, 1, c(r), C]);

  layer(d, 'b4/conv', [3, 3, c(4) + 1, c(4)]);
  layer(d, 'b4/dense1', [16 * c(4), c(4)]);
  layer(d, 'b4/dense2', [c(4), 1]);
  for (const r of blockResolutions(R)) {
    layer(d, `b${r}/conv1`, [3, 3, c(r), c(r)]);
    layer(d, `b${r}/conv2`, [3, 3, c(r), c(r / 2)]);
  }
  for (const r of rgbResolutions(R)) layer(d, `fromrgb${r}`, [1, 1, C, c(r)]);
  return { g, d };
}

/** The layer's weight times its equalised-LR constant (fan_in: every axis of the weight but the last). */
function scaled<T extends tf.Tensor>(p: ParamStore, layer: string, gain = Math.SQRT2): T {
  const w = p.get(`${layer}/w`);
  return tf.mul(w, equalizedScale(w.size / w.shape[w.rank - 1]!, gain)) as T;
}

const bias = (p: ParamStore, layer: string) => p.get(`${layer}/b`) as tf.Tensor as tf.Tensor1D;

/** 'same' convolution, stride 1, with the layer's scaled weight and bias. */
function convLayer(p: ParamStore, layer: string, x: tf.Tensor4D, gain?: number): tf.Tensor4D {
  return conv(x, scaled(p, layer, gain), 1, bias(p, layer));
}

/**
 * Taps of a 3x3 kernel folded onto the input rows (or columns) that an output row of phase a (row 2i + a)
 * of a conv over a nearest-upsampled input reads: phase 0 reads x rows i-1 (kernel row 0) and i (rows 1
 * and 2), phase 1 rows i (rows 0 and 1) and i+1 (row 2). FOLD[a][u][ky]: kernel row ky's share of tap u
 * (offset u - 1) of phase a. 'same' padding agrees: a zero row of up(x) is a zero row of x.
 */
const FOLD = [
  [
    [1, 0, 0],
    [0, 1, 1],
    [0, 0, 0],
  ],
  [
    [0, 0, 0],
    [1, 1, 0],
    [0, 0, 1],
  ],
];

/** [(u, v, a, b), (ky, kx)]: both axes folded, rows in the order the folded kernel wants them. */
const FOLD_2D: number[][] = [];
for (let u = 0; u < 3; u++)
  for (let v = 0; v < 3; v++)
    for (let a = 0; a < 2; a++)
      for (let b = 0; b < 2; b++) {
        const row: number[] = [];
        for (let ky = 0; ky < 3; ky++)
          for (let kx = 0; kx < 3; kx++) row.push(FOLD[a]![u]![ky]! * FOLD[b]![v]![kx]!);
        FOLD_2D.push(row);
      }

/**
 * conv3x3 'same' of upsample2x(x), computed at x's resolution: one 3x3 conv with 4x the output channels
 * (a kernel per output phase (a, b), folded from the layer's kernel by {@link FOLD}) and a pixel shuffle.
 * Equal to the plain form up to rounding, with the same operation count, but the product has 4x as many
 * columns and a quarter of the rows (G's 8- and 16-channel convs at 32 and 64 px run 2.5x faster on wasm),
 * and no upsample. The fold is one product with a constant [36, 9] matrix and a rank-4 transpose (tfjs-wasm's
 * rank-6 transpose is 20x slower). Differentiable (matMul, reshape, transpose, conv) as far as G needs.
 */
export function upsampledConv3x3(x: tf.Tensor4D, w: tf.Tensor4D, b?: tf.Tensor1D): tf.Tensor4D {
  const [, , ci, co] = w.shape;
  const folded = tf.matMul(tf.tensor2d(FOLD_2D), tf.reshape(w, [9, ci * co]));
  // [(u, v), (a, b), ci, co] -> [u, v, ci, (a, b, co)]: pixelShuffle's channel order (a * 2 + b) * co + c.
  const k = tf.reshape(tf.transpose(tf.reshape(folded, [9, 4, ci, co]), [0, 2, 1, 3]), [3, 3, ci, 4 * co]);
  const y = pixelShuffle(conv(x, k as tf.Tensor4D, 1), 2);
  return b === undefined ? y : tf.add(y, b);
}

/** lrelu(upsampledConv3x3(x) + b) of the layer's scaled weight and bias (one fused op while training). */
const upConvLrelu = (p: ParamStore, layer: string, x: tf.Tensor4D) =>
  biasLeakyRelu(upsampledConv3x3(x, scaled<tf.Tensor4D>(p, layer)), bias(p, layer), SLOPE);

/** lrelu(conv3x3(x) + b), the bias and the activation one fused op while training (kernels/bias-leaky-relu.ts). */
function convLrelu(p: ParamStore, layer: string, x: tf.Tensor4D): tf.Tensor4D {
  return biasLeakyRelu(conv(x, scaled(p, layer), 1), bias(p, layer), SLOPE);
}

function denseLayer(p: ParamStore, layer: string, x: tf.Tensor2D, gain?: number): tf.Tensor2D {
  return dense(x, scaled(p, layer, gain), bias(p, layer));
}

const lrelu = <T extends tf.Tensor>(x: T): T => tf.leakyRelu(x, SLOPE);

export function buildProgan(shape: ProganShape, rng: Rng, options: ProganOptions = {}): ProganNetworks {
  const specs = proganParams(shape);
  const scopes = options.scopes ?? { g: 'g', d: 'd' };
  const { channels: C, latentDim: L, resolution: R } = shape;
  const c4 = proganChannels(4, shape.baseFilters);

  const g = new ParamStore(scopes.g);
  const d = new ParamStore(scopes.d);
  try {
    for (const [store, list] of [
      [g, specs.g],
      [d, specs.d],
    ] as const)
      for (const { name, shape: s } of list)
        store.add(name, s, name.endsWith('/w') ? init.normal(rng, 1) : init.zeros());
  } catch (e) {
    // A name already taken (another live stage in the same scopes): leave no half-built store behind.
    g.dispose();
    d.dispose();
    throw e;
  }

  const toRgb = (p: ParamStore, r: number, h: tf.Tensor4D) => convLayer(p, `torgb${r}`, h, 1);
  const fromRgb = (r: number, x: tf.Tensor4D) => convLrelu(d, `fromrgb${r}`, x);
  const dBlock = (r: number, h: tf.Tensor4D) =>
    downsample2x(convLrelu(d, `b${r}/conv2`, convLrelu(d, `b${r}/conv1`, h)));

  return {
    shape,
    g,
    d,
    generate(z, alpha, params = g) {
      const n = z.shape[0];
      check(z.shape[1] === L, `generate expects z of shape [N, ${L}], got [${z.shape.join(', ')}]`);
      const zn = tf.reshape(pixelNorm(tf.reshape(z, [n, 1, 1, L]) as tf.Tensor4D), [n, L]) as tf.Tensor2D;
      let h = tf.reshape(tf.matMul(zn, scaled(params, 'b4/dense')), [n, 4, 4, c4]) as tf.Tensor4D;
      h = pixelNorm(biasLeakyRelu(h, bias(params, 'b4/dense'), SLOPE));
      h = pixelNorm(convLrelu(params, 'b4/conv', h));
      let prev = h;
      for (const r of blockResolutions(R)) {
        prev = h;
        h = pixelNorm(upConvLrelu(params, `b${r}/conv1`, h));
        h = pixelNorm(convLrelu(params, `b${r}/conv2`, h));
      }
      const fresh = toRgb(params, R, h);
      return R === 4 ? fresh : fadeIn(upsample2x(toRgb(params, R / 2, prev)), fresh, alpha);
    },
    discriminate(x, alpha) {
      const [n, ...hwc] = x.shape;
      check(
        hwc.join('x') === [R, R, C].join('x'),
        `discriminate expects images [N, ${R}, ${R}, ${C}], got [${x.shape.join(', ')}]`,
      );
      let h = fromRgb(R, x);
      if (R > 4) h = fadeIn(fromRgb(R / 2, downsample2x(x)), dBlock(R, h), alpha);
      for (const r of blockResolutions(R / 2).reverse()) h = dBlock(r, h);
      h = convLrelu(d, 'b4/conv', minibatchStd(h));
      const f = lrelu(denseLayer(d, 'b4/dense1', tf.reshape(h, [n, 16 * c4]) as tf.Tensor2D));
      return tf.reshape(denseLayer(d, 'b4/dense2', f, 1), [n]) as tf.Tensor1D;
    },
    dispose() {
      g.dispose();
      d.dispose();
    },
  };
}

/**
 * Multiply-adds * 2 of one forward pass of G and of D per image at this stage: convolutions and dense
 * layers, both fade-in paths included (both are computed); biases, activations and normalisation left out.
 */
export function proganFlopsPerImage(shape: ProganShape): { g: number; d: number } {
  checkShape(shape);
  const { channels: C, latentDim: L, baseFilters, resolution: R } = shape;
  const c = (r: number) => proganChannels(r, baseFilters);
  let g = L * 16 * c(4) + 16 * 9 * c(4) * c(4);
  let d = 16 * 9 * (c(4) + 1) * c(4) + 16 * c(4) * c(4) + c(4);
  for (const r of blockResolutions(R)) {
    g += r * r * 9 * (c(r / 2) * c(r) + c(r) * c(r));
    d += r * r * 9 * (c(r) * c(r) + c(r) * c(r / 2));
  }
  for (const r of rgbResolutions(R)) {
    g += r * r * c(r) * C;
    d += r * r * C * c(r);
  }
  return { g: 2 * g, d: 2 * d };
}
