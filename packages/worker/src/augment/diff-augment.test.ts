import '../gradients.ts';
import { type AugmentConfig, augmentSchema, Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { AdaptiveP } from './adaptive-p.ts';
import { DiffAugment } from './diff-augment.ts';
import { cutoutSize, maxShift } from './transforms.ts';

const config = (a: unknown): AugmentConfig => augmentSchema.parse(a);

/** Per sample of `x` (NHWC, read back): whether it differs from `y`'s. */
function changed(x: tf.Tensor4D, y: tf.Tensor4D): boolean[] {
  const [n] = x.shape;
  const a = x.dataSync();
  const b = y.dataSync();
  const px = a.length / n;
  return Array.from({ length: n }, (_, i) =>
    a.subarray(i * px, (i + 1) * px).some((v, k) => v !== b[i * px + k]),
  );
}

const ones = (n: number, h: number, w = h, c = 1) => tf.ones([n, h, w, c]) as tf.Tensor4D;

beforeAll(async () => {
  await initBackend('wasm');
});

describe('DiffAugment', () => {
  it('augments each sample with probability p, and returns the batch itself at p = 0', () => {
    tf.tidy(() => {
      const x = ones(400, 8);
      const half = new DiffAugment(config({ policy: ['cutout'], p: 0.5 }), new Rng(1));
      const frac = changed(x, half.apply(x)).filter(Boolean).length / 400;
      // Binomial(400, 0.5): sd 0.025; a cutout always zeroes pixels of a constant image.
      expect(frac).toBeGreaterThan(0.4);
      expect(frac).toBeLessThan(0.6);
      expect(changed(x, new DiffAugment(config({ p: 1 }), new Rng(2)).apply(x)).every(Boolean)).toBe(true);
      const none = new DiffAugment(config({ p: 0 }), new Rng(3));
      expect(none.apply(x)).toBe(x);
    });
  });

  it('translates by up to 1/8 of each side, every shift drawn, and cuts out a half-side square', () => {
    tf.tidy(() => {
      const [h, w] = [28, 16];
      const x = ones(300, h, w);
      const shifted = new DiffAugment(config({ policy: ['translation'] }), new Rng(4)).apply(x);
      const v = shifted.dataSync();
      const rowsSeen = new Set<number>();
      const colsSeen = new Set<number>();
      for (let b = 0; b < 300; b++) {
        // A constant image shifted by (dy, dx): |dy| zero rows and |dx| zero columns.
        let zeroRows = 0;
        let zeroCols = 0;
        for (let i = 0; i < h; i++) if (v[b * h * w + i * w + Math.floor(w / 2)] === 0) zeroRows++;
        for (let j = 0; j < w; j++) if (v[b * h * w + Math.floor(h / 2) * w + j] === 0) zeroCols++;
        rowsSeen.add(zeroRows);
        colsSeen.add(zeroCols);
      }
      expect([...rowsSeen].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4].slice(0, maxShift(h) + 1));
      expect([...colsSeen].sort((a, b) => a - b)).toEqual([0, 1, 2].slice(0, maxShift(w) + 1));

      const cut = new DiffAugment(config({ policy: ['cutout'] }), new Rng(5)).apply(x).dataSync();
      let whole = 0;
      for (let b = 0; b < 300; b++) {
        const zeros = cut.subarray(b * h * w, (b + 1) * h * w).filter((a) => a === 0).length;
        expect(zeros).toBeGreaterThan(0);
        expect(zeros).toBeLessThanOrEqual(cutoutSize(h) * cutoutSize(w));
        if (zeros === cutoutSize(h) * cutoutSize(w)) whole++;
      }
      // Centres are uniform over the image: the square lies wholly inside for about a quarter of them.
      expect(whole).toBeGreaterThan(30);
    });
  });

  it("changes brightness, saturation and contrast within the paper's ranges", () => {
    tf.tidy(() => {
      const rng = new Rng(6);
      const x = tf.tensor4d(
        Float32Array.from({ length: 200 * 4 * 4 * 3 }, () => rng.uniform() - 0.5),
        [200, 4, 4, 3],
      );
      const y = new DiffAugment(config({ policy: ['color'] }), new Rng(7)).apply(x);
      // Brightness in [-0.5, 0.5) moves each image's mean by it (saturation and contrast keep the mean).
      const shift = tf.sub(tf.mean(y, [1, 2, 3]), tf.mean(x, [1, 2, 3])).dataSync();
      expect(Math.min(...shift)).toBeGreaterThanOrEqual(-0.5 - 1e-5);
      expect(Math.max(...shift)).toBeLessThan(0.5 + 1e-5);
      expect(Math.max(...shift) - Math.min(...shift)).toBeGreaterThan(0.8);
    });
  });

  it('gives the images of a pair the same transform (pix2pix: A and B along the channels)', () => {
    tf.tidy(() => {
      const rng = new Rng(8);
      const a = tf.tensor4d(
        Float32Array.from({ length: 16 * 8 * 8 * 3 }, () => rng.uniform() * 2 - 1),
        [16, 8, 8, 3],
      );
      const y = new DiffAugment(config({}), new Rng(9), { groups: 2 }).apply(tf.concat([a, a], 3));
      const [ya, yb] = tf.split(y, 2, 3);
      expect(Array.from(ya!.dataSync())).toEqual(Array.from(yb!.dataSync()));
      expect(changed(a, ya as tf.Tensor4D).every(Boolean)).toBe(true);
    });
  });

  it('draws from the Rng it is given: the same state augments the same way', () => {
    tf.tidy(() => {
      const x = tf.randomUniform([8, 8, 8, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
      const rng = new Rng(10);
      const aug = new DiffAugment(config({ p: 0.7 }), rng);
      aug.apply(x);
      const saved = rng.getState();
      const first = aug.apply(x).dataSync();
      rng.setState(saved);
      expect(Array.from(aug.apply(x).dataSync())).toEqual(Array.from(first));
    });
  });
});

describe('ADA: adaptive p', () => {
  const settings = { target: 0.6, interval: 4, ramp_images: 1000 };

  it('moves p by sign(r_t - target) * images / ramp once per interval, clamped to [0, 1]', () => {
    const a = new AdaptiveP(settings, 0);
    for (let i = 0; i < 3; i++) a.observe(10, 10); // r_t = 1 > 0.6, interval not complete
    expect(a.p).toBe(0);
    a.observe(10, 10);
    expect(a.p).toBeCloseTo(40 / 1000, 12);
    expect(a.rt).toBe(1);
    for (let i = 0; i < 4; i++) a.observe(5, 10); // r_t = 0.5 < 0.6
    expect(a.p).toBeCloseTo(0, 12);
    for (let i = 0; i < 4; i++) a.observe(-10, 10);
    expect(a.p).toBe(0);
    const b = new AdaptiveP({ ...settings, ramp_images: 10 }, 0.9);
    for (let i = 0; i < 4; i++) b.observe(10, 10);
    expect(b.p).toBe(1);
    // A diverged D (NaN scores) leaves p alone.
    for (let i = 0; i < 4; i++) b.observe(Number.NaN, 10);
    expect(b.p).toBe(1);
  });

  it("observes D's scores on tensors, per image for a patch map, and reports p and r_t", () => {
    const aug = new DiffAugment(config({ adaptive: { interval: 2, ramp_images: 100 } }), new Rng(11));
    expect(aug.p).toBe(0);
    expect(aug.stats()).toEqual({ augment_p: 0 });
    tf.tidy(() => {
      // Patch maps [2, 2, 2, 1]: image 0 all positive (sign mean 1), image 1 half (0): r_t = 0.5 < 0.6.
      const patches = tf.tensor4d([1, 2, 3, 4, 1, -1, 2, -2], [2, 2, 2, 1]);
      aug.observe(tf.tensor1d([3, 1]));
      aug.observe(tf.tensor1d([2, 5]));
      expect(aug.stats()).toEqual({ augment_p: 4 / 100, augment_rt: 1 });
      aug.observe(patches);
      aug.observe(patches);
    });
    expect(aug.stats()).toEqual({ augment_p: 0, augment_rt: 0.5 });
    aug.dispose();
  });

  it('resumes bit-exactly: p and the interval under way come back from exportState', () => {
    const run = (restoreAt?: number) => {
      let aug = new DiffAugment(config({ adaptive: { interval: 3, ramp_images: 50 } }), new Rng(12));
      const rng = new Rng(13);
      const ps: number[] = [];
      for (let i = 0; i < 20; i++) {
        if (i === restoreAt) {
          const state = aug.exportState();
          aug.dispose();
          aug = new DiffAugment(config({ adaptive: { interval: 3, ramp_images: 50 } }), new Rng(12));
          aug.importState(JSON.parse(JSON.stringify(state)));
        }
        tf.tidy(() => aug.observe(tf.tensor1d(Float32Array.from({ length: 4 }, () => rng.uniform() - 0.2))));
        ps.push(aug.p);
      }
      aug.dispose();
      return ps;
    };
    const straight = run();
    expect(new Set(straight).size).toBeGreaterThan(2);
    expect(run(7)).toEqual(straight);
    expect(run(9)).toEqual(straight);
  });
});
