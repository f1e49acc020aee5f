import '../../gradients.ts';
import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { gradientPenalty } from '../../losses.ts';
import { conv } from '../../models/layers.ts';
import { ParamStore } from '../../models/param-store.ts';
import { downsample2x, upsample2x } from './blocks.ts';
import {
  buildProgan,
  type ProganNetworks,
  type ProganOptions,
  type ProganShape,
  proganChannels,
  proganFlopsPerImage,
  proganParams,
  upsampledConv3x3,
} from './networks.ts';

beforeAll(async () => {
  await initBackend('cpu');
  await initBackend('wasm');
});

const RESOLUTIONS = [4, 8, 16, 32] as const;
const BACKENDS = ['cpu', 'wasm'] as const;

const stage = (resolution: number, baseFilters = 8, channels = 1): ProganShape => ({
  channels,
  latentDim: 8,
  baseFilters,
  resolution,
});

/** Builds the networks, runs `f` and disposes them even if `f` throws (tfjs variable names are global). */
function withNets<T>(
  shape: ProganShape,
  seed: number,
  f: (nets: ProganNetworks) => T,
  opts?: ProganOptions,
): T {
  const nets = buildProgan(shape, new Rng(seed), opts);
  try {
    return f(nets);
  } finally {
    nets.dispose();
  }
}

const normals = (seed: number, n: number) => new Rng(seed).fillNormal(new Float32Array(n));
const latents = (n: number, seed = 5) => tf.tensor2d(normals(seed, n * 8), [n, 8]);
const images = (n: number, r: number, c = 1, seed = 6) =>
  tf.tensor4d(normals(seed, n * r * r * c), [n, r, r, c]);
const read = (t: tf.Tensor) => Float32Array.from(t.dataSync());
const localNames = (s: ParamStore) => s.vars.map((v) => v.name.slice(s.scope.length + 1));
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  return Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
};
const rms = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);

/** Copies into `to`, through export/import, every array whose local name `from` also has; returns how many. */
function copyShared(from: ParamStore, to: ParamStore): number {
  const given = new Map(from.export().map((a) => [a.name.slice(from.scope.length + 1), a.data]));
  let copied = 0;
  to.import(
    to.export().map((a) => {
      const data = given.get(a.name.slice(to.scope.length + 1));
      if (!data) return a;
      copied += 1;
      return { ...a, data };
    }),
  );
  return copied;
}

function setVar(v: tf.Variable, data: Float32Array): void {
  tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
}

describe('ProGAN networks: stages and parameters', () => {
  it('has baseFilters maps at 4x4 and 8x8, halved per doubling after, never halved below 8', () => {
    const widths = (base: number) => RESOLUTIONS.map((r) => proganChannels(r, base));
    expect(widths(64)).toEqual([64, 64, 32, 16]);
    expect(widths(24)).toEqual([24, 24, 12, 8]);
    expect(widths(20)).toEqual([20, 20, 10, 8]);
    expect(widths(8)).toEqual([8, 8, 8, 8]);
    expect(widths(4)).toEqual([4, 4, 4, 4]);
    expect(proganChannels(64, 64)).toBe(8);
    expect(proganChannels(256, 512)).toBe(16);
    expect(() => proganChannels(512, 8)).toThrow(RangeError);
    expect(() => proganChannels(8, 0)).toThrow(RangeError);
  });

  it('rejects a resolution that is not a power of two from 4 to 256 (and non-positive sizes) before creating anything', () => {
    const before = tf.memory().numTensors;
    for (const resolution of [2, 6, 12, 48, 512, 8.5, Number.NaN])
      expect(() => buildProgan(stage(resolution), new Rng(1))).toThrow(RangeError);
    expect(() => buildProgan({ ...stage(8), latentDim: 0 }, new Rng(1))).toThrow(RangeError);
    expect(() => buildProgan({ ...stage(8), channels: 1.5 }, new Rng(1))).toThrow(RangeError);
    expect(() => proganFlopsPerImage(stage(3))).toThrow(RangeError);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a second live stage in the same scopes and keeps the first intact', async () => {
    await tf.setBackend('cpu');
    withNets(stage(8), 1, (first) => {
      const size = first.g.size();
      expect(() => buildProgan(stage(16), new Rng(2))).toThrow(/already registered/);
      expect(first.g.size()).toBe(size);
      expect(tf.tidy(() => first.generate(latents(2), 0.5).shape)).toEqual([2, 8, 8, 1]);
      // In other scopes it can live beside the first (the fade-in tests build stage R/2 that way).
      withNets(stage(16), 2, (second) => expect(second.g.scope).toBe('g16'), {
        scopes: { g: 'g16', d: 'd16' },
      });
    });
  });

  it('names layers by resolution: stage R keeps stage R/2 but its R/4 RGB layers, and adds block R and RGB R', async () => {
    await tf.setBackend('cpu');
    expect(proganParams(stage(16)).g.map((p) => p.name)).toEqual(
      ['b4/dense', 'b4/conv', 'b8/conv1', 'b8/conv2', 'b16/conv1', 'b16/conv2', 'torgb8', 'torgb16'].flatMap(
        (l) => [`${l}/w`, `${l}/b`],
      ),
    );
    expect(proganParams(stage(16)).d.map((p) => p.name)).toEqual(
      ['b4/conv', 'b4/dense1', 'b4/dense2', 'b8/conv1', 'b8/conv2', 'b16/conv1', 'b16/conv2']
        .concat(['fromrgb8', 'fromrgb16'])
        .flatMap((l) => [`${l}/w`, `${l}/b`]),
    );
    const stores = RESOLUTIONS.map((r) =>
      withNets(stage(r, 16), 1, (nets) => {
        const specs = proganParams(nets.shape);
        for (const [store, list] of [
          [nets.g, specs.g],
          [nets.d, specs.d],
        ] as const) {
          expect(localNames(store)).toEqual(list.map((p) => p.name));
          expect(store.vars.map((v) => v.shape)).toEqual(list.map((p) => p.shape));
        }
        const shapes = (s: ParamStore) =>
          new Map(s.vars.map((v, i) => [localNames(s)[i]!, v.shape.join('x')]));
        return { g: shapes(nets.g), d: shapes(nets.d), size: [nets.g.size(), nets.d.size()] };
      }),
    );
    for (let k = 1; k < RESOLUTIONS.length; k++) {
      const [r, lo, hi] = [RESOLUTIONS[k]!, stores[k - 1]!, stores[k]!];
      for (const [net, rgb] of [
        ['g', 'torgb'],
        ['d', 'fromrgb'],
      ] as const) {
        const dropped = [...lo[net].keys()].filter((n) => !hi[net].has(n));
        const added = [...hi[net].keys()].filter((n) => !lo[net].has(n));
        expect(dropped).toEqual(r > 8 ? [`${rgb}${r / 4}/w`, `${rgb}${r / 4}/b`] : []);
        expect(added.sort()).toEqual(
          [`b${r}/conv1/b`, `b${r}/conv1/w`, `b${r}/conv2/b`, `b${r}/conv2/w`].concat([
            `${rgb}${r}/b`,
            `${rgb}${r}/w`,
          ]),
        );
        for (const [name, s] of hi[net]) if (lo[net].has(name)) expect(s, name).toBe(lo[net].get(name));
      }
    }
    // Stage 4 at base 16, latent 8, 1 channel, counted by hand:
    // G: dense 8*256 + 16, conv 9*16*16 + 16, toRGB 16 + 1; D: conv 9*17*16 + 16, dense 256*16 + 16,
    // dense 16 + 1, fromRGB 16 + 16.
    expect(stores[0]!.size).toEqual([2048 + 16 + 2304 + 16 + 17, 2448 + 16 + 4096 + 16 + 17 + 32]);
    // Stage 8 adds two 3x3 16 -> 16 convs per network, toRGB8 (17) and fromRGB8 (32).
    expect(stores[1]!.size).toEqual([
      stores[0]!.size[0]! + 2 * 2320 + 17,
      stores[0]!.size[1]! + 2 * 2320 + 32,
    ]);
  });

  it('draws every weight N(0, 1) from the Rng in creation order, biases zero, reproducibly', async () => {
    await tf.setBackend('cpu');
    const first = withNets(stage(8), 42, (nets) => {
      const rng = new Rng(42);
      for (const v of [...nets.g.vars, ...nets.d.vars]) {
        const data = read(v);
        if (v.name.endsWith('/b')) expect(maxAbs(data), v.name).toBe(0);
        else expect(data, v.name).toEqual(rng.fillNormal(new Float32Array(v.size)));
      }
      return [...nets.g.export(), ...nets.d.export()];
    });
    const again = withNets(stage(8), 42, (nets) => [...nets.g.export(), ...nets.d.export()]);
    expect(again).toEqual(first);
  });

  it('counts FLOPs as 2 x weight size x output positions over every layer, 20736 / 23056 at 4x4 base 8', async () => {
    await tf.setBackend('cpu');
    expect(proganFlopsPerImage(stage(4))).toEqual({ g: 20736, d: 23056 });
    for (const r of RESOLUTIONS) {
      withNets(stage(r, 32, 3), 1, (nets) => {
        const count = (s: ParamStore) =>
          s.vars.reduce((sum, v, i) => {
            const name = localNames(s)[i]!;
            if (!name.endsWith('/w')) return sum;
            const res = Number(/^(?:b|torgb|fromrgb)(\d+)\//.exec(name)![1]);
            return sum + 2 * v.size * (name.includes('dense') ? 1 : res * res);
          }, 0);
        expect(proganFlopsPerImage(nets.shape)).toEqual({ g: count(nets.g), d: count(nets.d) });
      });
    }
  });

  it('generates from the params it is given (an EMA copy in another scope) at every layer', async () => {
    await tf.setBackend('cpu');
    withNets(stage(16), 3, (nets) => {
      const z = latents(3);
      const before = read(tf.tidy(() => nets.generate(z, 0.6)));
      const ema = new ParamStore('g_ema');
      for (const [i, v] of nets.g.vars.entries()) ema.add(localNames(nets.g)[i]!, v.shape, () => read(v));
      // Scramble every weight and bias of G: a layer that read `g` instead of `params` would show.
      for (const [i, v] of nets.g.vars.entries()) setVar(v, normals(100 + i, v.size));
      expect(maxDiff(read(tf.tidy(() => nets.generate(z, 0.6, ema))), before)).toBe(0);
      expect(maxDiff(read(tf.tidy(() => nets.generate(z, 0.6))), before)).toBeGreaterThan(0.1);
      ema.dispose();
      z.dispose();
    });
  });
});

/** NHWC activations in float64 for the reference forward pass. */
interface Act {
  n: number;
  h: number;
  w: number;
  c: number;
  v: Float64Array;
}

/** k x k convolution, stride 1, zero 'same' padding, weight [k, k, c, cout] times `scale`, plus bias. */
function refConv(x: Act, wt: Float32Array, k: number, cout: number, scale: number, b: Float32Array): Act {
  const { n, h, w, c } = x;
  const pad = (k - 1) / 2;
  const v = new Float64Array(n * h * w * cout);
  for (let s = 0; s < n; s++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++)
        for (let o = 0; o < cout; o++) {
          let acc = 0;
          for (let di = 0; di < k; di++)
            for (let dj = 0; dj < k; dj++) {
              const [ii, jj] = [i + di - pad, j + dj - pad];
              if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
              for (let ci = 0; ci < c; ci++)
                acc += x.v[((s * h + ii) * w + jj) * c + ci]! * wt[((di * k + dj) * c + ci) * cout + o]!;
            }
          v[((s * h + i) * w + j) * cout + o] = acc * scale + b[o]!;
        }
  return { n, h, w, c: cout, v };
}

const refLrelu = (x: Act): Act => ({ ...x, v: x.v.map((a) => (a > 0 ? a : 0.2 * a)) });
/** Each value over the root mean square of its pixel's channels (eps 1e-8). */
const refPixelNorm = (x: Act): Act => ({
  ...x,
  v: x.v.map((a, i) => {
    const p = i - (i % x.c);
    const ms = x.v.subarray(p, p + x.c).reduce((s, q) => s + q * q, 0) / x.c;
    return a / Math.sqrt(ms + 1e-8);
  }),
});
const at = (x: Act, s: number, i: number, j: number, ch: number) =>
  x.v[((s * x.h + i) * x.w + j) * x.c + ch]!;
function refResample(x: Act, factor: 2 | 0.5): Act {
  const [h, w] = [x.h * factor, x.w * factor];
  const v = new Float64Array(x.n * h * w * x.c);
  for (let s = 0; s < x.n; s++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++)
        for (let ch = 0; ch < x.c; ch++) {
          const o = ((s * h + i) * w + j) * x.c + ch;
          if (factor === 2) v[o] = at(x, s, i >> 1, j >> 1, ch);
          else
            v[o] =
              (at(x, s, 2 * i, 2 * j, ch) +
                at(x, s, 2 * i + 1, 2 * j, ch) +
                at(x, s, 2 * i, 2 * j + 1, ch) +
                at(x, s, 2 * i + 1, 2 * j + 1, ch)) /
              4;
        }
  return { ...x, h, w, v };
}
/** Appends the batch standard deviation (eps 1e-8) of each value, averaged over all of them, as a channel. */
function refMinibatchStd(x: Act): Act {
  const per = x.h * x.w * x.c;
  let total = 0;
  for (let k = 0; k < per; k++) {
    const col = Array.from({ length: x.n }, (_, s) => x.v[s * per + k]!);
    const mean = col.reduce((a, b) => a + b, 0) / x.n;
    total += Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / x.n + 1e-8);
  }
  const c = x.c + 1;
  const v = new Float64Array(x.n * x.h * x.w * c);
  for (let p = 0; p < x.n * x.h * x.w; p++) {
    v.set(x.v.subarray(p * x.c, (p + 1) * x.c), p * c);
    v[p * c + x.c] = total / per;
  }
  return { ...x, c, v };
}
const refBlend = (old: Act, fresh: Act, alpha: number): Act => ({
  ...fresh,
  v: fresh.v.map((a, i) => (1 - alpha) * old.v[i]! + alpha * a),
});
const reshape = (x: Act, h: number, w: number, c: number): Act => ({ ...x, h, w, c });
/** He's constant sqrt(gain^2 / fan_in), written out rather than taken from equalizedScale. */
const he = (fanIn: number, gain2 = 2) => Math.sqrt(gain2 / fanIn);

const refAddBias = (x: Act, b: Float32Array): Act => ({ ...x, v: x.v.map((a, i) => a + b[i % x.c]!) });

/**
 * ProGAN's G and D at stage 16 with baseFilters 16 (widths 16, 16, 8 at 4, 8, 16), written out from the
 * paper in float64 on the stores' arrays by local name, with the equalised-LR constants spelled out.
 */
function refProgan(gp: Map<string, Float32Array>, dp: Map<string, Float32Array>, C: number, L: number) {
  const conv3 = (p: Map<string, Float32Array>, x: Act, n: string, cout: number) =>
    refConv(x, p.get(`${n}/w`)!, 3, cout, he(9 * x.c), p.get(`${n}/b`)!);
  const conv1 = (p: Map<string, Float32Array>, x: Act, n: string, cout: number, gain2 = 2) =>
    refConv(x, p.get(`${n}/w`)!, 1, cout, he(x.c, gain2), p.get(`${n}/b`)!);
  const lp = (x: Act) => refPixelNorm(refLrelu(x));
  const up = (x: Act) => refResample(x, 2);
  const down = (x: Act) => refResample(x, 0.5);

  const generate = (z: Float32Array, n: number, alpha: number): Act => {
    const zn = refPixelNorm({ n, h: 1, w: 1, c: L, v: Float64Array.from(z) });
    const fc = refConv(zn, gp.get('b4/dense/w')!, 1, 256, he(L), new Float32Array(256));
    let h = lp(refAddBias(reshape(fc, 4, 4, 16), gp.get('b4/dense/b')!));
    h = lp(conv3(gp, h, 'b4/conv', 16));
    const h8 = lp(conv3(gp, lp(conv3(gp, up(h), 'b8/conv1', 16)), 'b8/conv2', 16));
    const h16 = lp(conv3(gp, lp(conv3(gp, up(h8), 'b16/conv1', 8)), 'b16/conv2', 8));
    return refBlend(up(conv1(gp, h8, 'torgb8', C, 1)), conv1(gp, h16, 'torgb16', C, 1), alpha);
  };

  const discriminate = (x: Act, alpha: number): Float64Array => {
    const block = (h: Act, r: number, cout: number) =>
      down(refLrelu(conv3(dp, refLrelu(conv3(dp, h, `b${r}/conv1`, h.c)), `b${r}/conv2`, cout)));
    let h = refBlend(
      refLrelu(conv1(dp, down(x), 'fromrgb8', 16)),
      block(refLrelu(conv1(dp, x, 'fromrgb16', 8)), 16, 16),
      alpha,
    );
    h = block(h, 8, 16);
    h = refLrelu(conv3(dp, refMinibatchStd(h), 'b4/conv', 16));
    h = refLrelu(conv1(dp, reshape(h, 1, 1, 256), 'b4/dense1', 16));
    return conv1(dp, h, 'b4/dense2', 1, 1).v;
  };
  return { generate, discriminate };
}

const byLocalName = (s: ParamStore) =>
  new Map(s.export().map((a) => [a.name.slice(s.scope.length + 1), a.data] as const));

describe('ProGAN networks: forward passes', () => {
  for (const backend of BACKENDS) {
    it(`${backend}: G and D give [N, R, R, C] images and [N] scores at 4, 8, 16 and 32, inside tidy`, async () => {
      await tf.setBackend(backend);
      for (const r of RESOLUTIONS) {
        withNets(stage(r, 8, 3), r, (nets) => {
          const before = tf.memory().numTensors;
          const [img, score] = tf.tidy(() => {
            const x = nets.generate(latents(3), 0.5);
            return [read(x), read(nets.discriminate(x, 0.5))];
          });
          expect(tf.memory().numTensors).toBe(before);
          expect(img.length).toBe(3 * r * r * 3);
          expect(score.length).toBe(3);
          expect([...img, ...score].every(Number.isFinite)).toBe(true);
          tf.tidy(() => {
            expect(nets.generate(latents(3), 0.5).shape).toEqual([3, r, r, 3]);
            expect(nets.discriminate(images(3, r, 3), 0.5).shape).toEqual([3]);
            expect(() => nets.discriminate(images(3, r * 2, 3), 0.5)).toThrow(RangeError);
            expect(() => nets.generate(tf.zeros([3, 7]) as tf.Tensor2D, 0.5)).toThrow(RangeError);
            if (r === 4) {
              // At 4x4 there is nothing to fade from: alpha is ignored.
              expect(maxDiff(read(nets.generate(latents(3), 0)), read(nets.generate(latents(3), 1)))).toBe(0);
            } else expect(() => nets.generate(latents(3), 1.5)).toThrow(/alpha/);
          });
        });
      }
    });

    it(`${backend}: G and D match a float64 reference of the paper's networks at 16x16 with alpha 0.3`, async () => {
      await tf.setBackend(backend);
      withNets(stage(16, 16, 3), 7, (nets) => {
        // Non-zero biases, so that where each is added is checked too.
        const biases = [...nets.g.vars, ...nets.d.vars].filter((v) => v.name.endsWith('/b'));
        for (const [i, v] of biases.entries())
          setVar(
            v,
            normals(200 + i, v.size).map((b) => 0.3 * b),
          );
        const ref = refProgan(byLocalName(nets.g), byLocalName(nets.d), 3, 8);
        const n = 3;
        const z = normals(8, n * 8);
        const x = normals(9, n * 16 * 16 * 3);
        const want = ref.generate(z, n, 0.3).v;
        const got = read(tf.tidy(() => nets.generate(tf.tensor2d(z, [n, 8]), 0.3)));
        expect(maxAbs(want)).toBeGreaterThan(0.5);
        expect(maxDiff(got, want)).toBeLessThan(1e-4 * maxAbs(want));
        const wantD = ref.discriminate({ n, h: 16, w: 16, c: 3, v: Float64Array.from(x) }, 0.3);
        const gotD = read(tf.tidy(() => nets.discriminate(tf.tensor4d(x, [n, 16, 16, 3]), 0.3)));
        expect(maxAbs(wantD)).toBeGreaterThan(0.1);
        expect(maxDiff(gotD, wantD)).toBeLessThan(1e-4 * Math.max(1, maxAbs(wantD)));
      });
    });
  }
});

describe('ProGAN networks: fade-in and equalised learning rate', () => {
  for (const backend of BACKENDS) {
    it(`${backend}: at alpha 0 stage R is stage R/2 (G upsampled, D on downsampled images); at alpha 1 it ignores RGB R/2`, async () => {
      await tf.setBackend(backend);
      for (const r of [8, 16, 32]) {
        withNets(
          stage(r / 2),
          10 + r,
          (lo) => {
            withNets(stage(r), 20 + r, (hi) => {
              // Stage R takes every array of stage R/2 by name but the RGB layers of R/4.
              const kept = lo.g.vars.length - (r > 8 ? 2 : 0);
              expect(copyShared(lo.g, hi.g)).toBe(kept);
              expect(copyShared(lo.d, hi.d)).toBe(kept + (lo.d.vars.length - lo.g.vars.length));
              const z = latents(4);
              const x = images(4, r);
              const outputs = () =>
                tf.tidy(() => ({
                  g0: read(hi.generate(z, 0)),
                  g1: read(hi.generate(z, 1)),
                  gq: read(hi.generate(z, 0.25)),
                  d0: read(hi.discriminate(x, 0)),
                  d1: read(hi.discriminate(x, 1)),
                }));
              const out = outputs();
              const [loG, loD] = tf.tidy(() => [
                read(upsample2x(lo.generate(z, 1))),
                read(lo.discriminate(downsample2x(x), 1)),
              ]);
              expect(maxDiff(out.g0, loG)).toBeLessThan(1e-5 * maxAbs(loG));
              expect(maxDiff(out.d0, loD)).toBeLessThan(1e-5 * Math.max(1, maxAbs(loD)));
              // G's output is linear in alpha; the new block does change it.
              const blend = out.g0.map((a, i) => 0.75 * a + 0.25 * out.g1[i]!);
              expect(maxDiff(out.gq, blend)).toBeLessThan(1e-5 * maxAbs(blend));
              expect(maxDiff(out.g1, out.g0)).toBeGreaterThan(0.1);
              expect(maxDiff(out.d1, out.d0)).toBeGreaterThan(1e-3);
              // Moving the RGB layers of R/2 changes alpha 0 and leaves alpha 1 untouched.
              for (const name of [`torgb${r / 2}/w`, `torgb${r / 2}/b`])
                setVar(hi.g.get(name), normals(r, hi.g.get(name).size));
              for (const name of [`fromrgb${r / 2}/w`, `fromrgb${r / 2}/b`])
                setVar(hi.d.get(name), normals(r + 1, hi.d.get(name).size));
              const moved = outputs();
              expect(maxDiff(moved.g1, out.g1)).toBe(0);
              expect(maxDiff(moved.d1, out.d1)).toBe(0);
              expect(maxDiff(moved.g0, out.g0)).toBeGreaterThan(0.1);
              expect(maxDiff(moved.d0, out.d0)).toBeGreaterThan(1e-3);
              tf.dispose([z, x]);
            });
          },
          { scopes: { g: 'g_lo', d: 'd_lo' } },
        );
      }
    });

    it(`${backend}: with N(0, 1) stored weights, images and critic scores stay O(1) at every resolution`, async () => {
      await tf.setBackend(backend);
      // Without the run-time constants G's images would be sqrt(c_R) = 2.8 to 5.7 times larger (only toRGB
      // is not followed by pixel norm) and D's scores larger by a factor ~sqrt(fan_in / 2) per layer.
      for (const r of RESOLUTIONS) {
        const [g, d] = withNets(stage(r, 32), 30 + r, (nets) =>
          tf.tidy(() => [read(nets.generate(latents(4), 1)), read(nets.discriminate(images(4, r), 1))]),
        );
        expect(rms(g!), `G at ${r}`).toBeGreaterThan(0.3);
        expect(rms(g!), `G at ${r}`).toBeLessThan(2.5);
        expect(rms(d!), `D at ${r}`).toBeGreaterThan(0.02);
        expect(rms(d!), `D at ${r}`).toBeLessThan(5);
      }
    });
  }
});

describe("ProGAN G's conv over an upsampled input", () => {
  it('wasm: upsampledConv3x3 and its gradients match cpu conv(upsample2x(x)) at G 32 px shapes, no leaks', async () => {
    const rng = new Rng(12);
    const arr = (n: number) => rng.fillNormal(new Float32Array(n));
    const [xs, ws, bs, rs] = [arr(2 * 16 * 16 * 32), arr(9 * 32 * 16), arr(16), arr(2 * 32 * 32 * 16)];
    const run = (f: (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D) => tf.Tensor4D) => {
      const x = tf.tensor4d(xs, [2, 16, 16, 32]);
      const w = tf.tensor4d(ws, [3, 3, 32, 16]);
      const b = tf.tensor1d(bs);
      const r = tf.tensor4d(rs, [2, 32, 32, 16]);
      const before = tf.memory().numTensors;
      const out = tf.tidy(() => {
        const loss = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
          tf.sum(tf.mul(f(xx as tf.Tensor4D, ww as tf.Tensor4D, bb as tf.Tensor1D), r));
        return [f(x, w, b), ...tf.grads(loss)([x, w, b])].map(read);
      });
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w, b, r]);
      return out;
    };
    await tf.setBackend('cpu');
    const want = run((x, w, b) => conv(upsample2x(x), w, 1, b));
    await tf.setBackend('wasm');
    const got = run(upsampledConv3x3);
    for (const [k, g] of got.entries())
      expect(maxDiff(g, want[k]!), `${k}`).toBeLessThan(1e-5 * maxAbs(want[k]!));
  });
});

describe('ProGAN critic under the WGAN-GP penalty', () => {
  for (const backend of BACKENDS) {
    it(`${backend}: the penalty's gradient w.r.t. D's weights at stage 8, alpha 0.5, matches central differences`, async () => {
      await tf.setBackend(backend);
      withNets(stage(8), 77, (nets) => {
        const n = 4;
        const real = images(n, 8, 1, 41);
        const fake = images(n, 8, 1, 42);
        const eps = tf.tensor1d([0.1, 0.4, 0.6, 0.95]);
        const penalty = () => gradientPenalty((x) => nets.discriminate(x, 0.5), real, fake, eps);
        const value = () => tf.tidy(() => penalty().dataSync()[0]!);
        const { value: v, grads } = tf.variableGrads(penalty, nets.d.vars);
        const analytic = new Map(Object.entries(grads).map(([k, g]) => [k, read(g)]));
        tf.dispose([v, ...Object.values(grads)]);
        // The last bias does not move D's input gradient, and the biases after the minibatch-std layer move it
        // only through LeakyReLU gates (piecewise constant; the gradient a tape records for LeakyReLU has no
        // edge to its input, gradients.ts): tfjs gives them no gradient at all (taken as 0 below).
        expect(nets.d.vars.map((v) => v.name).filter((name) => !analytic.has(name))).toEqual([
          'd/b4/conv/b',
          'd/b4/dense1/b',
          'd/b4/dense2/b',
        ]);
        // A LeakyReLU kink makes the penalty jump (D's input gradient is piecewise constant in the gates), so
        // central differences at two steps that disagree straddle one and are skipped. Biases and the 1x1
        // fromRGB weights move a whole channel, 256 pre-activations at 8x8, and rarely avoid a kink; 3x3
        // convs and dense layers mostly do. Float32 noise of the differences measured about 3e-4.
        const checked = new Map<string, number>();
        for (const [k, v] of nets.d.vars.entries()) {
          const base = read(v);
          const central = (i: number, h: number) => {
            const bumped = Float32Array.from(base);
            bumped[i] = base[i]! + h;
            setVar(v, bumped);
            const plus = value();
            bumped[i] = base[i]! - h;
            setVar(v, bumped);
            const minus = value();
            setVar(v, base);
            return (plus - minus) / (2 * h);
          };
          const stride = Math.max(1, Math.floor(v.size / (v.name.endsWith('/w') ? 8 : 2)));
          for (let i = k % stride; i < v.size; i += stride) {
            const coarse = central(i, 4e-3);
            const fine = central(i, 2e-3);
            if (Math.abs(coarse - fine) > 1e-3 * Math.max(1, Math.abs(fine))) continue;
            const a = analytic.get(v.name)?.[i] ?? 0;
            expect(Math.abs(a - fine), `${v.name}[${i}]: ${a} vs ${fine}`).toBeLessThan(
              2e-3 * Math.max(1, Math.abs(fine)),
            );
            checked.set(v.name, (checked.get(v.name) ?? 0) + 1);
          }
        }
        expect([...checked.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(40);
        for (const layer of ['b8/conv1', 'b8/conv2', 'b4/conv', 'b4/dense1', 'b4/dense2', 'fromrgb4'])
          expect(checked.get(`d/${layer}/w`) ?? 0, layer).toBeGreaterThanOrEqual(3);
        tf.dispose([real, fake, eps]);
      });
    }, 60_000);
  }
});
