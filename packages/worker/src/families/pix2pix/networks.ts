import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { batchNorm, conv, deconv } from '../../models/layers.ts';
import { type NormMode, NormStats } from '../../models/norm-stats.ts';
import { init, ParamStore } from '../../models/param-store.ts';

/**
 * pix2pix's networks (Isola et al., 2017, appendix 6.1.1), sized by the image:
 * G (U-Net): log2(side) encoder convs 4x4/2 down to 1x1, widths f, 2f, 4f, 8f, 8f, ... (LReLU 0.2 before
 *   each but the first, BN after each but the first and the innermost); decoder transposed convs 4x4/2 back
 *   up (ReLU before each, BN after each but the last), each output concatenated with the encoder's of the
 *   same side (the skips); dropout `dropout` after the three innermost decoder blocks, its only noise (no
 *   z); tanh out. The paper's 256 px network is this with side 256 and f 64 (8 levels).
 * D (PatchGAN on concat(A, B)): conv 4x4/2 f, LReLU -> (n_layers - 1) x [conv 4x4/2, BN, LReLU], widths
 *   doubling to at most 8f -> conv 4x4/1, BN, LReLU -> conv 4x4/1 to one logit per patch. Its receptive
 *   field is {@link patchReceptiveField}: 70 px at n_layers 3, the paper's default.
 * Weights N(0, 0.02), BN scales N(1, 0.02), as in the paper's code. G's batch norms keep running
 * statistics (NormStats) for translating one image at a time.
 */
export interface Pix2pixShape {
  /** Side of the square canvas the networks run on: a power of two. */
  side: number;
  /** Channels of A and of B. */
  channels: number;
  baseFilters: number;
  nLayers: number;
}

export interface Pix2pixNetworks {
  shape: Pix2pixShape;
  g: ParamStore;
  d: ParamStore;
  gStats: NormStats;
  /** Encoder levels (log2 side). */
  depth: number;
  /** Decoder blocks with dropout: the innermost `dropoutBlocks`. */
  dropoutBlocks: number;
  /**
   * G: A [N, side, side, C] -> B [N, side, side, C] in [-1, 1]; `masks` are the dropout masks of the
   * innermost decoder blocks (kept/(1-p) scaled, from {@link dropoutMaskShapes}), none without dropout.
   */
  generate(a: tf.Tensor4D, mode: NormMode, masks?: tf.Tensor4D[]): tf.Tensor4D;
  /** D: (A, B) -> one logit per patch, flattened [N * patches]. */
  discriminate(a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor1D;
  /** Shapes [side, side, width] (per image) of the dropout masks `generate` takes. */
  dropoutMaskShapes(): [number, number, number][];
  dispose(): void;
}

/** Receptive field in pixels of a PatchGAN with `nLayers` strided 4x4 convs and two 4x4 stride-1 convs. */
export function patchReceptiveField(nLayers: number): number {
  let r = 1;
  for (const stride of [1, 1, ...Array<number>(nLayers).fill(2)]) r = (r - 1) * stride + 4;
  return r;
}

const width = (f: number, i: number) => f * Math.min(2 ** i, 8);

export function buildPix2pix(shape: Pix2pixShape, rng: Rng): Pix2pixNetworks {
  const { side, channels: c, baseFilters: f, nLayers } = shape;
  const depth = Math.log2(side);
  if (!Number.isInteger(depth) || depth < 4)
    throw new Error(`pix2pix runs on a power-of-two canvas of 16 px or more, got ${side}`);
  if (nLayers > depth - 2)
    throw new Error(
      `n_layers ${nLayers} is too many for ${side} px: at most ${depth - 2} (patches of 4 px or more)`,
    );
  const dropoutBlocks = Math.min(3, depth - 1);
  const wInit = init.normal(rng, 0.02);
  const gammaInit = init.normal(rng, 0.02, 1);
  const g = new ParamStore('g');
  const gStats = new NormStats('g_bn');
  const bn = (store: ParamStore, name: string, ch: number) => {
    store.add(`${name}/gamma`, [ch], gammaInit);
    store.add(`${name}/beta`, [ch], init.zeros());
  };
  // Encoder level i (0-based) maps to width(i); level 0 and the innermost have biases, the others BN.
  for (let i = 0; i < depth; i++) {
    const cin = i === 0 ? c : width(f, i - 1);
    g.add(`enc${i}/w`, [4, 4, cin, width(f, i)], wInit);
    if (i === 0 || i === depth - 1) g.add(`enc${i}/b`, [width(f, i)], init.zeros());
    else {
      bn(g, `enc${i}/bn`, width(f, i));
      gStats.add(`enc${i}/bn`, width(f, i));
    }
  }
  // Decoder block j goes from encoder level j (side 2^(depth-1-j)) up to level j-1's side; j = depth-1 is the
  // innermost. Its input is level j's output (innermost) or that concatenated with the skip.
  for (let j = depth - 1; j >= 0; j--) {
    const cin = j === depth - 1 ? width(f, j) : 2 * width(f, j);
    const cout = j === 0 ? c : width(f, j - 1);
    g.add(`dec${j}/w`, [4, 4, cout, cin], wInit);
    if (j === 0) g.add('dec0/b', [c], init.zeros());
    else {
      bn(g, `dec${j}/bn`, cout);
      gStats.add(`dec${j}/bn`, cout);
    }
  }

  const d = new ParamStore('d');
  const dWidths = [...Array.from({ length: nLayers }, (_, i) => width(f, i)), width(f, nLayers)];
  dWidths.forEach((w, i) => {
    d.add(`conv${i}/w`, [4, 4, i === 0 ? 2 * c : dWidths[i - 1]!, w], wInit);
    if (i === 0) d.add('conv0/b', [w], init.zeros());
    else bn(d, `bn${i}`, w);
  });
  d.add('out/w', [4, 4, dWidths.at(-1)!, 1], wInit);
  d.add('out/b', [1], init.zeros());

  const G = (n: string) => g.get(n) as tf.Tensor;
  const gBn = (x: tf.Tensor4D, name: string, mode: NormMode) =>
    gStats.apply(name, x, G(`${name}/gamma`) as tf.Tensor1D, G(`${name}/beta`) as tf.Tensor1D, mode);
  const maskShapes: [number, number, number][] = [];
  for (let k = 0; k < dropoutBlocks; k++) {
    const j = depth - 1 - k;
    const s = 2 ** (k + 1);
    maskShapes.push([s, s, width(f, j - 1)]);
  }

  return {
    shape,
    g,
    d,
    gStats,
    depth,
    dropoutBlocks,
    dropoutMaskShapes: () => maskShapes.map((s) => [...s] as [number, number, number]),
    generate(a, mode, masks = []) {
      const skips: tf.Tensor4D[] = [];
      let x = a;
      for (let i = 0; i < depth; i++) {
        if (i > 0) x = tf.leakyRelu(x, 0.2);
        const bias = i === 0 || i === depth - 1 ? (G(`enc${i}/b`) as tf.Tensor1D) : undefined;
        x = conv(x, G(`enc${i}/w`) as tf.Tensor4D, 2, bias);
        if (!bias) x = gBn(x, `enc${i}/bn`, mode);
        skips.push(x);
      }
      for (let j = depth - 1; j >= 0; j--) {
        if (j < depth - 1) x = tf.concat([x, skips[j]!], 3);
        x = deconv(
          tf.relu(x),
          G(`dec${j}/w`) as tf.Tensor4D,
          2,
          j === 0 ? (G('dec0/b') as tf.Tensor1D) : undefined,
        );
        if (j === 0) break;
        x = gBn(x, `dec${j}/bn`, mode);
        const k = depth - 1 - j;
        if (k < masks.length) x = tf.mul(x, masks[k]!);
      }
      return tf.tanh(x);
    },
    discriminate(a, b) {
      let x = tf.concat([a, b], 3);
      dWidths.forEach((_, i) => {
        const stride = i < nLayers ? 2 : 1;
        x = conv(
          x,
          d.get(`conv${i}/w`) as tf.Tensor4D,
          stride,
          i === 0 ? (d.get('conv0/b') as tf.Tensor1D) : undefined,
        );
        if (i > 0)
          x = batchNorm(x, d.get(`bn${i}/gamma`) as tf.Tensor1D, d.get(`bn${i}/beta`) as tf.Tensor1D);
        x = tf.leakyRelu(x, 0.2);
      });
      const logits = conv(x, d.get('out/w') as tf.Tensor4D, 1, d.get('out/b') as tf.Tensor1D);
      return tf.reshape(logits, [-1]);
    },
    dispose() {
      g.dispose();
      d.dispose();
      gStats.dispose();
    },
  };
}

/** Multiply-adds x2 of one image through G and D (forward). */
export function pix2pixFlopsPerImage(shape: Pix2pixShape): { g: number; d: number } {
  const { side, channels: c, baseFilters: f, nLayers } = shape;
  const depth = Math.log2(side);
  let g = 0;
  for (let i = 0; i < depth; i++) {
    const out = side / 2 ** (i + 1);
    const cin = i === 0 ? c : width(f, i - 1);
    g += 2 * out * out * 16 * cin * width(f, i);
    // The decoder block back up to this level's input side (transposed: same multiply-adds).
    const dIn = i === depth - 1 ? width(f, i) : 2 * width(f, i);
    const dOut = i === 0 ? c : width(f, i - 1);
    g += 2 * out * out * 16 * dIn * dOut;
  }
  let d = 0;
  let s = side;
  let cin = 2 * c;
  for (let i = 0; i <= nLayers; i++) {
    if (i < nLayers) s /= 2;
    d += 2 * s * s * 16 * cin * width(f, i);
    cin = width(f, i);
  }
  d += 2 * s * s * 16 * cin;
  return { g, d };
}
