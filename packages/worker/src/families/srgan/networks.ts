import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { batchNorm, conv, dense, pixelShuffle, prelu } from '../../models/layers.ts';
import { type NormMode, NormStats } from '../../models/norm-stats.ts';
import { init, ParamStore } from '../../models/param-store.ts';

/**
 * SRGAN's networks (Ledig et al., 2017, figure 4), sized by parameters so that they train on a CPU at
 * 16 -> 64 and 7 -> 28.
 *
 * G (SRResNet): LR -> conv 9x9 f, PReLU -> B x [conv 3x3 f, BN, PReLU, conv 3x3 f, BN, + skip]
 *   -> conv 3x3 f, BN, + the long skip from the first PReLU -> log2(scale) x [conv 3x3 4f, pixel shuffle x2,
 *   PReLU] -> conv 9x9 C -> tanh. Its batch norms keep running statistics (NormStats): super-resolving one
 *   image at a time must not normalise by that image alone.
 * D: HR -> conv 3x3 f, LReLU(0.2) -> conv 3x3/2 f, BN, LReLU -> then per level i (widths 2f, 4f, 8f):
 *   conv 3x3 w_i, BN, LReLU, conv 3x3/2 w_i, BN, LReLU -> dense 16f, LReLU -> dense 1. The paper's 96 px
 *   network has 4 strided convs (96 -> 6); here the stride-2 convs stop at a side of 4 or less (64 -> 4, 28
 *   -> 4, 16 -> 4) and the dense layer is 16f wide (the paper's 1024 at f = 64).
 * Convs are He-initialised (the PReLU and LReLU networks of the paper), BN scales 1, PReLU slopes 0.25.
 */
export interface SrganShape {
  /** High-resolution side (square); the input is side / scale. */
  side: number;
  scale: 2 | 4;
  channels: number;
  blocks: number;
  baseFilters: number;
}

export interface SrganNetworks {
  shape: SrganShape;
  g: ParamStore;
  d: ParamStore;
  /** Running batch-norm statistics of G. */
  gStats: NormStats;
  /** G: LR images [N, side/scale, side/scale, C] in [-1, 1] -> SR images [N, side, side, C] in [-1, 1]. */
  generate(lr: tf.Tensor4D, mode: NormMode): tf.Tensor4D;
  /** D: HR images -> logits [N]. */
  discriminate(hr: tf.Tensor4D): tf.Tensor1D;
  dispose(): void;
}

/** D's conv layers: [width, stride] in order, from the image; stride-2 convs until the side is 4 or less. */
export function srganDLayers(side: number, f: number): { layers: [number, number][]; finalSide: number } {
  const layers: [number, number][] = [[f, 1]];
  let s = side;
  let width = f;
  for (let level = 0; s > 4; level++) {
    if (level > 0) layers.push([width, 1]);
    layers.push([width, 2]);
    s = Math.ceil(s / 2);
    width = Math.min(width * 2, 8 * f);
  }
  return { layers, finalSide: s };
}

const he = (rng: Rng, fanIn: number) => init.normal(rng, Math.sqrt(2 / fanIn));

export function buildSrgan(shape: SrganShape, rng: Rng): SrganNetworks {
  const { channels: c, blocks, baseFilters: f, scale, side } = shape;
  if (side % scale !== 0)
    throw new Error(`srgan: a side of ${side} px is not divisible by the scale ${scale}`);
  const ups = Math.log2(scale);
  const g = new ParamStore('g');
  const gStats = new NormStats('g_bn');
  const convParams = (name: string, k: number, cin: number, cout: number, bias: boolean) => {
    g.add(`${name}/w`, [k, k, cin, cout], he(rng, k * k * cin));
    if (bias) g.add(`${name}/b`, [cout], init.zeros());
  };
  const bnParams = (name: string, ch: number) => {
    g.add(`${name}/gamma`, [ch], init.ones());
    g.add(`${name}/beta`, [ch], init.zeros());
    gStats.add(name, ch);
  };
  convParams('in', 9, c, f, true);
  g.add('in/prelu', [f], (n) => new Float32Array(n).fill(0.25));
  for (let b = 0; b < blocks; b++) {
    convParams(`res${b}/conv1`, 3, f, f, false);
    bnParams(`res${b}/bn1`, f);
    g.add(`res${b}/prelu`, [f], (n) => new Float32Array(n).fill(0.25));
    convParams(`res${b}/conv2`, 3, f, f, false);
    bnParams(`res${b}/bn2`, f);
  }
  convParams('mid', 3, f, f, false);
  bnParams('mid/bn', f);
  for (let u = 0; u < ups; u++) {
    convParams(`up${u}`, 3, f, 4 * f, true);
    g.add(`up${u}/prelu`, [f], (n) => new Float32Array(n).fill(0.25));
  }
  convParams('out', 9, f, c, true);

  const d = new ParamStore('d');
  const { layers, finalSide } = srganDLayers(side, f);
  let cin = c;
  layers.forEach(([width], i) => {
    d.add(`conv${i}/w`, [3, 3, cin, width], he(rng, 9 * cin));
    if (i === 0) d.add(`conv${i}/b`, [width], init.zeros());
    else {
      d.add(`bn${i}/gamma`, [width], init.ones());
      d.add(`bn${i}/beta`, [width], init.zeros());
    }
    cin = width;
  });
  const flat = finalSide * finalSide * cin;
  d.add('fc1/w', [flat, 16 * f], he(rng, flat));
  d.add('fc1/b', [16 * f], init.zeros());
  d.add('fc2/w', [16 * f, 1], init.normal(rng, Math.sqrt(1 / (16 * f))));
  d.add('fc2/b', [1], init.zeros());

  const G = (n: string) => g.get(n) as tf.Tensor;
  const gConv = (x: tf.Tensor4D, name: string, bias: boolean) =>
    conv(x, G(`${name}/w`) as tf.Tensor4D, 1, bias ? (G(`${name}/b`) as tf.Tensor1D) : undefined);
  const gBn = (x: tf.Tensor4D, name: string, mode: NormMode) =>
    gStats.apply(name, x, G(`${name}/gamma`) as tf.Tensor1D, G(`${name}/beta`) as tf.Tensor1D, mode);

  return {
    shape,
    g,
    d,
    gStats,
    generate(lr, mode) {
      const head = prelu(gConv(lr, 'in', true), G('in/prelu') as tf.Tensor1D);
      let x = head;
      for (let b = 0; b < blocks; b++) {
        let y = gBn(gConv(x, `res${b}/conv1`, false), `res${b}/bn1`, mode);
        y = prelu(y, G(`res${b}/prelu`) as tf.Tensor1D);
        y = gBn(gConv(y, `res${b}/conv2`, false), `res${b}/bn2`, mode);
        x = tf.add(x, y);
      }
      x = tf.add(head, gBn(gConv(x, 'mid', false), 'mid/bn', mode));
      for (let u = 0; u < ups; u++)
        x = prelu(pixelShuffle(gConv(x, `up${u}`, true), 2), G(`up${u}/prelu`) as tf.Tensor1D);
      return tf.tanh(gConv(x, 'out', true));
    },
    discriminate(hr) {
      let x = hr;
      layers.forEach(([, stride], i) => {
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
      const n = hr.shape[0];
      const h = tf.leakyRelu(
        dense(tf.reshape(x, [n, flat]), d.get('fc1/w') as tf.Tensor2D, d.get('fc1/b') as tf.Tensor1D),
        0.2,
      );
      return tf.reshape(dense(h, d.get('fc2/w') as tf.Tensor2D, d.get('fc2/b') as tf.Tensor1D), [n]);
    },
    dispose() {
      g.dispose();
      d.dispose();
      gStats.dispose();
    },
  };
}

/** Multiply-adds x2 of one image through G and D (forward). */
export function srganFlopsPerImage(shape: SrganShape): { g: number; d: number } {
  const { side, scale, channels: c, blocks, baseFilters: f } = shape;
  const convFlops = (s: number, k: number, cin: number, cout: number) => 2 * s * s * k * k * cin * cout;
  let lr = side / scale;
  let g = convFlops(lr, 9, c, f) + blocks * 2 * convFlops(lr, 3, f, f) + convFlops(lr, 3, f, f);
  for (let u = 0; u < Math.log2(scale); u++) {
    g += convFlops(lr, 3, f, 4 * f);
    lr *= 2;
  }
  g += convFlops(side, 9, f, c);
  const { layers, finalSide } = srganDLayers(side, f);
  let d = 0;
  let s = side;
  let cin = c;
  for (const [width, stride] of layers) {
    s = Math.ceil(s / stride);
    d += convFlops(s, 3, cin, width);
    cin = width;
  }
  d += 2 * finalSide * finalSide * cin * 16 * f + 2 * 16 * f;
  return { g, d };
}
