import '../../gradients.ts';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { discriminatorLoss, generatorLoss } from '../../losses.ts';
import { analyticGrads, expectFiniteDifferences } from '../../testing/finite-differences.ts';
import { buildDcgan, dcganFlopsPerImage, dcganLayout, type GanNetworks, type GanShape } from './networks.ts';

const N = 4;
const SHAPE: GanShape = { height: 28, width: 28, channels: 1, latentDim: 6, baseFilters: 4, numClasses: 0 };

let nets: GanNetworks;
let real: tf.Tensor4D;
let fake: tf.Tensor4D;
let z: tf.Tensor2D;

function uniform(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);
}

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
});

/** Builds the unconditional networks and fixed inputs for one describe block (variable names are global). */
function withNetworks(): void {
  beforeAll(() => {
    const rng = new Rng(1234);
    nets = buildDcgan(SHAPE, rng);
    // Check gradients where activations are O(1): with the N(0, 0.02) init, pre-activations sit within a
    // few 1e-2 of the (leaky) ReLU kinks, so almost every finite-difference step would straddle one.
    tf.tidy(() => {
      for (const v of [...nets.g.vars, ...nets.d.vars]) if (v.name.endsWith('/w')) v.assign(tf.mul(v, 10));
    });
    real = tf.tensor4d(uniform(rng, N * 28 * 28), [N, 28, 28, 1]);
    fake = tf.tensor4d(uniform(rng, N * 28 * 28), [N, 28, 28, 1]);
    z = tf.tensor2d(new Rng(99).fillNormal(new Float32Array(N * SHAPE.latentDim)), [N, SHAPE.latentDim]);
  });
  afterAll(() => {
    nets.dispose();
    tf.dispose([real, fake, z]);
  });
}

const dLoss = () => discriminatorLoss(nets.discriminate(real), nets.discriminate(fake));
const gLoss = () => generatorLoss(nets.discriminate(nets.generate(z)));

interface Check {
  loss: 'D' | 'G';
  param: string;
  /** Finite-difference step. @default 1e-3 */
  h?: number;
}

const CHECKS: Check[] = [
  { loss: 'D', param: 'd/c1/w' },
  // Batch norm after c2 cancels a channel-wide shift except through the leaky ReLU's slopes and the
  // zero-padded border, so this derivative is a small difference of large terms: a step of 1e-3 would
  // straddle enough kinks (784 positions per channel) to move the difference by several percent.
  { loss: 'D', param: 'd/c1/b', h: 2e-4 },
  { loss: 'D', param: 'd/c2/w' },
  { loss: 'D', param: 'd/bn2/gamma' },
  { loss: 'D', param: 'd/fc/w' },
  { loss: 'D', param: 'd/fc/b' },
  { loss: 'G', param: 'g/fc/w' },
  { loss: 'G', param: 'g/bn0/beta' },
  { loss: 'G', param: 'g/dc1/w' },
  { loss: 'G', param: 'g/dc2/w' },
  { loss: 'G', param: 'g/dc2/b' },
];

function gradientsOn(backend: 'wasm' | 'cpu'): {
  d: Map<string, Float32Array>;
  g: Map<string, Float32Array>;
} {
  tf.setBackend(backend);
  return { d: analyticGrads(dLoss, nets.d.vars), g: analyticGrads(gLoss, nets.g.vars) };
}

describe('DCGAN networks', () => {
  withNetworks();

  it('generates [N, 28, 28, 1] images in [-1, 1] and D gives one logit per image', () => {
    tf.setBackend('wasm');
    const [imgShape, min, max, logitShape] = tf.tidy(() => {
      const img = nets.generate(tf.mul(z, 20) as tf.Tensor2D); // large z pushes tanh towards saturation
      return [
        img.shape,
        tf.min(img).dataSync()[0]!,
        tf.max(img).dataSync()[0]!,
        nets.discriminate(img).shape,
      ];
    });
    expect(imgShape).toEqual([N, 28, 28, 1]);
    expect(min).toBeGreaterThanOrEqual(-1);
    expect(max).toBeLessThanOrEqual(1);
    expect(max).toBeGreaterThan(min);
    expect(logitShape).toEqual([N]);
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`has loss gradients that match central finite differences (${backend})`, () => {
      const grads = gradientsOn(backend);
      for (const { loss, param, h = 1e-3 } of CHECKS) {
        const f = loss === 'D' ? dLoss : gLoss;
        const g = (loss === 'D' ? grads.d : grads.g).get(param);
        expect(g, param).toBeDefined();
        const v = (loss === 'D' ? nets.d : nets.g).get(param.slice(2));
        // Piecewise smooth losses (ReLU, leaky ReLU): entries with a kink within h are skipped.
        expectFiniteDifferences(f, v, g!, `${loss} loss, ${param}`, { h });
      }
    });
  }

  it('gives the same gradients on wasm and cpu', () => {
    const wasm = gradientsOn('wasm');
    const cpu = gradientsOn('cpu');
    tf.setBackend('wasm');
    for (const which of ['d', 'g'] as const) {
      for (const [name, c] of cpu[which]) {
        const w = wasm[which].get(name)!;
        let scale = 0;
        for (const x of c) scale = Math.max(scale, Math.abs(x));
        expect(scale, `${name} has a gradient`).toBeGreaterThan(0);
        for (let i = 0; i < c.length; i++) {
          expect(Math.abs(w[i]! - c[i]!), `${name}[${i}]: wasm ${w[i]} vs cpu ${c[i]}`).toBeLessThanOrEqual(
            1e-3 * scale,
          );
        }
      }
    }
  });
});

describe('cGAN networks', () => {
  it('builds a cGAN that refuses to run without labels and conditions on them', () => {
    tf.setBackend('wasm');
    const cgan = buildDcgan({ ...SHAPE, numClasses: 3 }, new Rng(5));
    const z = tf.tensor2d(new Rng(99).fillNormal(new Float32Array(N * SHAPE.latentDim)), [
      N,
      SHAPE.latentDim,
    ]);
    const real = tf.tensor4d(uniform(new Rng(7), N * 28 * 28), [N, 28, 28, 1]);
    try {
      expect(cgan.g.get('fc/w').shape).toEqual([SHAPE.latentDim + 3, 7 * 7 * 2 * SHAPE.baseFilters]);
      expect(cgan.d.get('embed').shape).toEqual([3, 7 * 7 * 2 * SHAPE.baseFilters]);
      tf.tidy(() => {
        expect(() => cgan.generate(z)).toThrow(/labels/);
        expect(() => cgan.discriminate(real)).toThrow(/labels/);
        const y0 = tf.oneHot(tf.tensor1d([0, 0, 0, 0], 'int32'), 3).toFloat() as tf.Tensor2D;
        const y2 = tf.oneHot(tf.tensor1d([2, 2, 2, 2], 'int32'), 3).toFloat() as tf.Tensor2D;
        const img = cgan.generate(z, y0);
        expect(img.shape).toEqual([N, 28, 28, 1]);
        expect(cgan.discriminate(img, y0).shape).toEqual([N]);
        // Different labels give different images and different logits.
        expect(tf.max(tf.abs(tf.sub(img, cgan.generate(z, y2)))).dataSync()[0]).toBeGreaterThan(0);
        expect(
          tf.max(tf.abs(tf.sub(cgan.discriminate(real, y0), cgan.discriminate(real, y2)))).dataSync()[0],
        ).toBeGreaterThan(0);
      });
    } finally {
      cgan.dispose();
      tf.dispose([z, real]);
    }
  });
});

describe('dcganFlopsPerImage', () => {
  it('counts 2 flops per multiply-add of every layer (16x16x1 images, 3 latents, 2 filters)', () => {
    const shape: GanShape = {
      height: 16,
      width: 16,
      channels: 1,
      latentDim: 3,
      baseFilters: 2,
      numClasses: 0,
    };
    // 16 = 4 * 2^2: two stride-2 layers, widths 2 (next to the image) and 4 (at 4x4).
    // Layer by layer, convolutions counted over every output position with the full 4x4 window ('same').
    // G: dense 3 -> 4x4x4 = 64 outputs:                        3 * 64              =  192
    //    deconv 4x4x4 -> 8x8x2: each of 16 inputs hits 4x4x2:   16 * (16 * 4 * 2)   = 2048
    //    deconv 8x8x2 -> 16x16x1: each of 64 inputs hits 4x4x1: 64 * (16 * 2 * 1)   = 2048
    const gMacs = 192 + 2048 + 2048;
    // D: conv 16x16x1 -> 8x8x2: 128 outputs of 4x4x1 taps:    128 * 16            = 2048
    //    conv 8x8x2 -> 4x4x4: 64 outputs of 4x4x2 taps:        64 * 32             = 2048
    //    dense 64 -> 1:                                                             64
    const dMacs = 2048 + 2048 + 64;
    expect(dcganFlopsPerImage(shape)).toEqual({ g: 2 * gMacs, d: 2 * dMacs });
  });

  it('adds the label inputs of G and the projection of D for a cGAN', () => {
    const shape: GanShape = {
      height: 16,
      width: 16,
      channels: 1,
      latentDim: 3,
      baseFilters: 2,
      numClasses: 4,
    };
    // G's dense layer sees 3 + 4 inputs: 7 * 64 = 448 instead of 192.
    // D adds <embed(y), features>: 64 multiply-adds (the embedding of a one-hot label is a row lookup).
    expect(dcganFlopsPerImage(shape)).toEqual({ g: 2 * (448 + 2048 + 2048), d: 2 * (2048 + 2048 + 64 + 64) });
  });
});

describe('DCGAN at other sizes', () => {
  it('lays out 28 from 7x7 and powers of two from 4x4, widths doubling up to 8 f', () => {
    expect(dcganLayout({ height: 28, width: 28, baseFilters: 8 })).toEqual({
      s0: 7,
      depth: 2,
      widths: [8, 16],
    });
    expect(dcganLayout({ height: 64, width: 64, baseFilters: 8 })).toEqual({
      s0: 4,
      depth: 4,
      widths: [8, 16, 32, 64],
    });
    expect(dcganLayout({ height: 256, width: 256, baseFilters: 8 }).widths).toEqual([8, 16, 32, 64, 64, 64]);
    expect(() => dcganLayout({ height: 48, width: 48, baseFilters: 8 })).toThrow(/7 \* 2\^k or 4 \* 2\^k/);
    expect(() => dcganLayout({ height: 32, width: 16, baseFilters: 8 })).toThrow(/square/);
  });

  for (const [side, channels, classes] of [
    [32, 3, 0],
    [64, 3, 5],
    [16, 4, 0],
  ] as const) {
    it(`maps noise to ${side}x${side}x${channels} images in [-1, 1] and images to one logit each${classes ? ' (conditional)' : ''}`, () => {
      const shape: GanShape = {
        height: side,
        width: side,
        channels,
        latentDim: 5,
        baseFilters: 2,
        numClasses: classes,
      };
      const built = buildDcgan(shape, new Rng(3));
      try {
        tf.tidy(() => {
          const labels = classes
            ? (tf.oneHot(tf.tensor1d([0, 1, 4], 'int32'), classes).toFloat() as tf.Tensor2D)
            : undefined;
          const x = built.generate(tf.randomNormal([3, 5]) as tf.Tensor2D, labels);
          expect(x.shape).toEqual([3, side, side, channels]);
          const v = x.dataSync();
          expect(Math.max(...v)).toBeLessThanOrEqual(1);
          expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
          expect(built.discriminate(x, labels).shape).toEqual([3]);
        });
      } finally {
        built.dispose();
      }
    });
  }
});
