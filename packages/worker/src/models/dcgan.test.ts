import '../gradients.ts';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { discriminatorLoss, generatorLoss } from '../losses.ts';
import { buildDcgan, dcganFlopsPerImage, type GanNetworks, type GanShape } from './dcgan.ts';

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
  const rng = new Rng(1234);
  nets = buildDcgan(SHAPE, rng);
  real = tf.tensor4d(uniform(rng, N * 28 * 28), [N, 28, 28, 1]);
  fake = tf.tensor4d(uniform(rng, N * 28 * 28), [N, 28, 28, 1]);
  z = tf.tensor2d(new Rng(99).fillNormal(new Float32Array(N * SHAPE.latentDim)), [N, SHAPE.latentDim]);
});

afterAll(() => {
  nets.dispose();
  tf.dispose([real, fake, z]);
});

const dLoss = () => discriminatorLoss(nets.discriminate(real), nets.discriminate(fake));
const gLoss = () => generatorLoss(nets.discriminate(nets.generate(z)));

function lossValue(f: () => tf.Scalar): number {
  return tf.tidy(() => f().dataSync()[0]!);
}

/** Analytic gradients of `f` w.r.t. every variable of `vars`, by variable name. */
function analytic(f: () => tf.Scalar, vars: tf.Variable[]): Map<string, Float32Array> {
  return tf.tidy(() => {
    const { grads } = tf.variableGrads(f, vars);
    return new Map(Object.entries(grads).map(([k, g]) => [k, Float32Array.from(g.dataSync())]));
  });
}

/** Central difference of `f` in entry `i` of `v`; restores `v` afterwards. */
function centralDifference(f: () => tf.Scalar, v: tf.Variable, i: number, h: number): number {
  const base = Float32Array.from(v.dataSync());
  const at = (delta: number) => {
    const x = Float32Array.from(base);
    x[i] = x[i]! + delta;
    tf.tidy(() => v.assign(tf.tensor(x, v.shape)));
    return lossValue(f);
  };
  // float64 difference of the two float32 losses.
  const up = at(h);
  const down = at(-h);
  tf.tidy(() => v.assign(tf.tensor(base, v.shape)));
  return (up - down) / (2 * h);
}

/** Indices of the `k` entries of largest |g|: those whose finite difference rises clear of float32 noise. */
function largest(g: Float32Array, k: number): number[] {
  return Array.from(g.keys())
    .sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!))
    .slice(0, k);
}

interface Check {
  loss: 'D' | 'G';
  param: string;
}

const CHECKS: Check[] = [
  { loss: 'D', param: 'd/c1/w' },
  { loss: 'D', param: 'd/c1/b' },
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

function gradientsOn(backend: 'wasm' | 'cpu'): { d: Map<string, Float32Array>; g: Map<string, Float32Array> } {
  tf.setBackend(backend);
  return { d: analytic(dLoss, nets.d.vars), g: analytic(gLoss, nets.g.vars) };
}

describe('DCGAN networks', () => {
  it('generates [N, 28, 28, 1] images in [-1, 1] and D gives one logit per image', () => {
    tf.setBackend('wasm');
    const [imgShape, min, max, logitShape] = tf.tidy(() => {
      const img = nets.generate(tf.mul(z, 20) as tf.Tensor2D); // large z pushes tanh towards saturation
      return [img.shape, tf.min(img).dataSync()[0]!, tf.max(img).dataSync()[0]!, nets.discriminate(img).shape];
    });
    expect(imgShape).toEqual([N, 28, 28, 1]);
    expect(min).toBeGreaterThanOrEqual(-1);
    expect(max).toBeLessThanOrEqual(1);
    expect(max).toBeGreaterThan(min);
    expect(logitShape).toEqual([N]);
  });

  it('builds a cGAN that refuses to run without labels and conditions on them', () => {
    tf.setBackend('wasm');
    const cgan = buildDcgan({ ...SHAPE, numClasses: 3 }, new Rng(5));
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
        expect(tf.max(tf.abs(tf.sub(cgan.discriminate(real, y0), cgan.discriminate(real, y2)))).dataSync()[0]).toBeGreaterThan(0);
      });
    } finally {
      cgan.dispose();
    }
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`has loss gradients that match central finite differences (${backend})`, () => {
      const grads = gradientsOn(backend);
      const h = 1e-2;
      for (const { loss, param } of CHECKS) {
        const store = loss === 'D' ? nets.d : nets.g;
        const g = (loss === 'D' ? grads.d : grads.g).get(param);
        expect(g, param).toBeDefined();
        const v = store.get(param.slice(2));
        for (const i of largest(g!, 2)) {
          const fd = centralDifference(loss === 'D' ? dLoss : gLoss, v, i, h);
          const a = g![i]!;
          expect(Math.abs(a - fd), `${loss} loss, ${param}[${i}]: analytic ${a} vs finite difference ${fd}`).toBeLessThanOrEqual(
            0.05 * Math.abs(fd) + 2e-5,
          );
        }
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
          expect(Math.abs(w[i]! - c[i]!), `${name}[${i}]: wasm ${w[i]} vs cpu ${c[i]}`).toBeLessThanOrEqual(1e-3 * scale);
        }
      }
    }
  });
});

describe('dcganFlopsPerImage', () => {
  it('counts 2 flops per multiply-add of every layer (8x8x1 images, 3 latents, 2 filters)', () => {
    const shape: GanShape = { height: 8, width: 8, channels: 1, latentDim: 3, baseFilters: 2, numClasses: 0 };
    // Layer by layer, convolutions counted over every output position with the full 4x4 window ('same').
    // G: dense 3 -> 2x2x4 = 16 outputs:                       3 * 16              =  48
    //    deconv 2x2x4 -> 4x4x2: each of 4 inputs hits 4x4x2:   4 * (16 * 4 * 2)    = 512
    //    deconv 4x4x2 -> 8x8x1: each of 16 inputs hits 4x4x1:  16 * (16 * 2 * 1)   = 512
    const gMacs = 48 + 512 + 512;
    // D: conv 8x8x1 -> 4x4x2: 32 outputs of 4x4x1 taps:      32 * 16             = 512
    //    conv 4x4x2 -> 2x2x4: 16 outputs of 4x4x2 taps:      16 * 32             = 512
    //    dense 16 -> 1:                                                            16
    const dMacs = 512 + 512 + 16;
    expect(dcganFlopsPerImage(shape)).toEqual({ g: 2 * gMacs, d: 2 * dMacs });
  });

  it('adds the label inputs of G and the projection of D for a cGAN', () => {
    const shape: GanShape = { height: 8, width: 8, channels: 1, latentDim: 3, baseFilters: 2, numClasses: 4 };
    // G's dense layer sees 3 + 4 inputs: 7 * 16 = 112 instead of 48.
    // D adds <embed(y), features>: 16 multiply-adds (the embedding of a one-hot label is a row lookup).
    expect(dcganFlopsPerImage(shape)).toEqual({ g: 2 * (112 + 512 + 512), d: 2 * (512 + 512 + 16 + 16) });
  });

  it('scales with the 28x28 shape the worker trains', () => {
    const f = 8;
    const { g, d } = dcganFlopsPerImage({ ...SHAPE, latentDim: 100, baseFilters: f });
    const gMacs = 100 * 7 * 7 * 2 * f + 7 * 7 * 16 * 2 * f * f + 14 * 14 * 16 * f;
    const dMacs = 14 * 14 * f * 16 + 7 * 7 * 2 * f * 16 * f + 7 * 7 * 2 * f;
    expect({ g, d }).toEqual({ g: 2 * gMacs, d: 2 * dMacs });
  });
});
