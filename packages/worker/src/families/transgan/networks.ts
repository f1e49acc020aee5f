import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { pixelShuffle } from '../../models/layers.ts';
import { init, ParamStore } from '../../models/param-store.ts';
import {
  addBlock,
  type BlockParams,
  blockMacs,
  fromWindows,
  layerNorm,
  selfAttention,
  tokenDense,
  toWindows,
  transformerBlock,
  xavier,
} from '../../models/transformer.ts';

/** What a TransGAN pair is built from (its job's parameters and the data's size). */
export interface TransganShape {
  /** Image side: the generator starts at side / 4 tokens a side. */
  side: number;
  channels: number;
  latentDim: number;
  /** Width of the generator's first stage; each pixel-shuffle upsampling divides it by 4. */
  gEmbed: number;
  dEmbed: number;
  /** Blocks of the generator's three stages (side/4, side/2, side). */
  gDepths: readonly [number, number, number];
  dDepth: number;
  heads: number;
  mlpRatio: number;
  /** Side of D's patches. */
  patch: number;
}

/** The two networks of a TransGAN trial and their forward passes. */
export interface TransganNetworks {
  readonly shape: TransganShape;
  readonly g: ParamStore;
  readonly d: ParamStore;
  /** z [N, latent] -> images [N, side, side, channels] in [-1, 1]. */
  generate(z: tf.Tensor2D): tf.Tensor4D;
  /** Images -> critic scores [N]. */
  discriminate(x: tf.Tensor4D): tf.Tensor1D;
  dispose(): void;
}

/** Position embeddings and class tokens start as TransGAN's and ViT's: N(0, 0.02). */
const EMBED_STD = 0.02;

/** Grid side and width of each generator stage. */
function stages(s: TransganShape): { grid: number; dim: number; depth: number; window: number }[] {
  const bottom = s.side / 4;
  return s.gDepths.map((depth, i) => {
    const grid = bottom * 2 ** i;
    // Stages above the first attend within windows of side/4 tokens (TransGAN's grid self-attention).
    return { grid, dim: s.gEmbed / 4 ** i, depth, window: bottom };
  });
}

function checkShape(s: TransganShape): void {
  if (s.side % 4 !== 0) throw new RangeError(`transgan needs an image side divisible by 4, got ${s.side}`);
  if (s.side % s.patch !== 0) throw new RangeError(`patch_size ${s.patch} does not tile ${s.side} px images`);
  if ((s.gEmbed / 16) % s.heads !== 0 || s.dEmbed % s.heads !== 0)
    throw new RangeError(`heads ${s.heads} must divide d_embed_dim and g_embed_dim / 16`);
}

/**
 * The generator of TransGAN (Jiang et al., 2021, Figure 1): z through a linear layer to (side/4)^2 tokens
 * with learned position embeddings, pre-LN transformer blocks per stage, pixel-shuffle upsampling between
 * stages (side x2, channels /4, new position embeddings), then each token linearly to its pixel and tanh.
 * The discriminator is a ViT (Dosovitskiy et al., 2021): linear embeddings of patch x patch pieces with a
 * class token and position embeddings, pre-LN blocks, a final layer norm and a linear head on the class
 * token. D has no batch norm (a critic's scores must be per sample for the gradient penalty).
 */
export function buildTransgan(shape: TransganShape, rng: Rng): TransganNetworks {
  checkShape(shape);
  const { side, channels, latentDim, dEmbed, heads, mlpRatio, patch } = shape;
  const gStages = stages(shape);
  const g = new ParamStore('g');
  const first = gStages[0]!;
  const tokens0 = first.grid * first.grid;
  const gIn = {
    w: g.add('in_w', [latentDim, tokens0 * first.dim], xavier(rng, latentDim, first.dim)),
    b: g.add('in_b', [tokens0 * first.dim], init.zeros()),
  };
  const gStageParams = gStages.map((st, i) => ({
    pos: g.add(`pos${i}`, [st.grid * st.grid, st.dim], init.normal(rng, EMBED_STD)),
    blocks: Array.from({ length: st.depth }, (_, j) =>
      addBlock(g, `s${i}/b${j}`, { dim: st.dim, mlpRatio }, rng),
    ),
  }));
  const last = gStages[gStages.length - 1]!;
  const gOut = {
    w: g.add('out_w', [last.dim, channels], xavier(rng, last.dim, channels)),
    b: g.add('out_b', [channels], init.zeros()),
  };

  const d = new ParamStore('d');
  const grid = side / patch;
  const patchDim = patch * patch * channels;
  const dp = {
    patchW: d.add('patch_w', [patchDim, dEmbed], xavier(rng, patchDim, dEmbed)),
    // A bias drawn as PyTorch's conv bias (variance 1 / (3 fan-in)), not zeros: a blank patch (cutout's,
    // translation's padding) is then a token of clear spread, not one that layer norm blows up.
    patchB: d.add('patch_b', [dEmbed], init.normal(rng, 1 / Math.sqrt(3 * patchDim))),
    cls: d.add('cls', [1, 1, dEmbed], init.normal(rng, EMBED_STD)),
    pos: d.add('pos', [grid * grid + 1, dEmbed], init.normal(rng, EMBED_STD)),
    blocks: Array.from({ length: shape.dDepth }, (_, j) =>
      addBlock(d, `b${j}`, { dim: dEmbed, mlpRatio }, rng),
    ),
    lnG: d.add('ln_gamma', [dEmbed], init.ones()),
    lnB: d.add('ln_beta', [dEmbed], init.zeros()),
    headW: d.add('head_w', [dEmbed, 1], xavier(rng, dEmbed, 1)),
    headB: d.add('head_b', [1], init.zeros()),
  };

  /** A block over an [N, grid, grid, C] stage, attending globally or within windows. */
  const stageBlock = (x: tf.Tensor3D, p: BlockParams, st: (typeof gStages)[number]) => {
    if (st.window === st.grid) return transformerBlock(x, p, heads);
    const n = x.shape[0];
    const gridShape: [number, number, number, number] = [n, st.grid, st.grid, st.dim];
    return transformerBlock(x, p, heads, (h) => {
      const windows = toWindows(tf.reshape(h, gridShape), st.window);
      return tf.reshape(fromWindows(selfAttention(windows, p, heads), gridShape, st.window), h.shape);
    });
  };

  // A tidy of its own: the critic's updates generate outside any tape, inside the step's one tidy, which
  // would otherwise hold every intermediate of n_critic forward passes of G (its last stage's attention
  // scores alone are 20 MB each) until the step ends. Under a tape the gradients keep what they need.
  const generate = (z: tf.Tensor2D): tf.Tensor4D => tf.tidy(() => generateUntidied(z));
  const generateUntidied = (z: tf.Tensor2D): tf.Tensor4D => {
    const n = z.shape[0];
    let x = tf.reshape(tf.add(tf.matMul(z, gIn.w), gIn.b), [n, tokens0, first.dim]) as tf.Tensor3D;
    gStages.forEach((st, i) => {
      if (i > 0) {
        const prev = gStages[i - 1]!;
        const up = pixelShuffle(tf.reshape(x, [n, prev.grid, prev.grid, prev.dim]), 2);
        x = tf.reshape(up, [n, st.grid * st.grid, st.dim]);
      }
      const sp = gStageParams[i]!;
      x = tf.add(x, sp.pos);
      for (const p of sp.blocks) x = stageBlock(x, p, st);
    });
    return tf.reshape(tf.tanh(tokenDense(x, gOut.w as tf.Tensor2D, gOut.b as tf.Tensor1D)), [
      n,
      side,
      side,
      channels,
    ]);
  };

  const discriminate = (x: tf.Tensor4D): tf.Tensor1D => {
    const n = x.shape[0];
    const tokens = grid * grid;
    const pieces = tf.reshape(toWindows(x, patch), [n * tokens, patchDim]);
    const embedded = tf.reshape(tf.add(tf.matMul(pieces, dp.patchW), dp.patchB), [n, tokens, dEmbed]);
    let h = tf.add(tf.concat([tf.broadcastTo(dp.cls, [n, 1, dEmbed]), embedded], 1), dp.pos) as tf.Tensor3D;
    for (const p of dp.blocks) h = transformerBlock(h, p, heads);
    const cls = tf.reshape(
      tf.slice(layerNorm(h, dp.lnG as tf.Tensor1D, dp.lnB as tf.Tensor1D), [0, 0, 0], [n, 1, dEmbed]),
      [n, dEmbed],
    );
    return tf.reshape(tf.add(tf.matMul(cls, dp.headW), dp.headB), [n]);
  };

  return {
    shape,
    g,
    d,
    generate,
    discriminate,
    dispose() {
      g.dispose();
      d.dispose();
    },
  };
}

/** Floating-point operations of one forward pass per image, approximately (2 per multiply-add). */
export function transganFlopsPerImage(s: TransganShape): { g: number; d: number } {
  const gStages = stages(s);
  const first = gStages[0]!;
  const last = gStages[gStages.length - 1]!;
  let g = s.latentDim * first.grid * first.grid * first.dim + s.side * s.side * last.dim * s.channels;
  for (const st of gStages) g += st.depth * blockMacs(st.grid * st.grid, st.dim, s.mlpRatio, st.window ** 2);
  const tokens = (s.side / s.patch) ** 2;
  const d =
    tokens * s.patch * s.patch * s.channels * s.dEmbed +
    s.dDepth * blockMacs(tokens + 1, s.dEmbed, s.mlpRatio) +
    s.dEmbed;
  return { g: 2 * g, d: 2 * d };
}
