import { Rng } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import {
  bicubicAxisWeights,
  bicubicResize,
  clampUnit,
  type ImageBatchShape,
  imagePairScores,
  metricPlanes,
  PSNR_CAP_DB,
  psnrPerImage,
  SSIM_WINDOW,
  ssimPerImage,
} from './image-metrics.ts';

const C1 = (0.01 * 255) ** 2;
const C2 = (0.03 * 255) ** 2;

/** The [-1, 1] value that a 0..255 gray level k stands for. */
const unit = (k: number) => k / 127.5 - 1;

function randomImages(rng: Rng, shape: ImageBatchShape): Float32Array {
  const n = shape.count * shape.height * shape.width * shape.channels;
  return Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);
}

function filled(shape: ImageBatchShape, value: (i: number) => number): Float32Array {
  return Float32Array.from({ length: shape.count * shape.height * shape.width * shape.channels }, (_, i) =>
    value(i),
  );
}

/** Largest |a[i] - b[i]|; Infinity when the lengths differ. */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** Every image mirrored left-right. */
function flipWidth(images: Float32Array, { count, height, width, channels }: ImageBatchShape): Float32Array {
  const out = new Float32Array(images.length);
  for (let n = 0; n < count; n++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        for (let c = 0; c < channels; c++) {
          const row = (n * height + y) * width;
          out[(row + width - 1 - x) * channels + c] = images[(row + x) * channels + c]!;
        }
  return out;
}

describe('bicubic resize (MATLAB imresize)', () => {
  it('downscales 4 -> 2 with the antialiased weights worked out by hand', () => {
    // s = 1/2: output 0 is centred at u = 0.5, the kernel is 0.5 * cubic(d / 2) over 8 taps j = -3..4 at
    // d = u - j = 3.5 .. -3.5. cubic(0.25) = 0.8671875, cubic(0.75) = 0.2265625, cubic(1.25) = -0.0703125,
    // cubic(1.75) = -0.0234375, so the weights are -3/256, -9/256, 29/256, 111/256, 111/256, 29/256,
    // -9/256, -3/256 (sum 1). Mirroring j = -1, -2, -3 to 0, 1, 2 and j = 4 to 3 gives per input pixel:
    const a = [
      [35 / 64, 51 / 128, 13 / 128, -3 / 64],
      [-3 / 64, 13 / 128, 51 / 128, 35 / 64],
    ];
    const x = [
      [0.1, -0.4, 0.9, 0.3],
      [-0.7, 0.2, 0.5, -0.1],
      [0.6, 0.8, -0.9, 0.0],
      [-0.2, 0.4, 0.1, -0.6],
    ];
    const out = bicubicResize(
      Float32Array.from(x.flat()),
      { count: 1, height: 4, width: 4, channels: 1 },
      2,
      2,
    );
    // out = A X A^T.
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 2; j++) {
        let expected = 0;
        for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expected += a[i]![r]! * x[r]![c]! * a[j]![c]!;
        expect(out[i * 2 + j]).toBeCloseTo(expected, 6);
      }
    }
  });

  it('upscales 2 -> 4 with symmetric borders and overshoots without clamping', () => {
    // s = 2: output 0 at u = -0.25 takes cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25) from j = -2..1;
    // symmetric mirroring reads j = -2 as pixel 1 and j = -1 as pixel 0: weights (1.09375, -0.09375).
    // Output 1 at u = 0.25: j = -1..2 with cubic(1.25), cubic(0.25), cubic(0.75), cubic(1.75): (0.796875, 0.203125).
    // (Replicated edges would give 1.0703125 for output 0, 'reflect' padding 0.84375.)
    const out = bicubicResize(
      Float32Array.from([-1, 1]),
      { count: 1, height: 1, width: 2, channels: 1 },
      1,
      4,
    );
    const expected = [-1.1875, -0.59375, 0.59375, 1.1875];
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-6);
    expect(Array.from(clampUnit(out))).toEqual([-1, -0.59375, 0.59375, 1]);
  });

  it('keeps a constant image constant, enlarging and shrinking, for every channel', () => {
    const shape = { count: 2, height: 9, width: 7, channels: 3 };
    const images = filled(shape, (i) => [0.25, -0.5, 0.75][i % 3]!);
    for (const [h, w] of [
      [3, 2],
      [20, 15],
      [9, 7],
      [4, 13],
    ] as const) {
      const out = bicubicResize(images, shape, h, w);
      expect(out.length).toBe(2 * h * w * 3);
      expect(
        maxAbsDiff(
          out,
          out.map((_, i) => [0.25, -0.5, 0.75][i % 3]!),
        ),
      ).toBeLessThan(1e-6);
    }
  });

  it('has weights summing to 1, taps inside the image, and the identity at equal sizes', () => {
    for (const [from, to] of [
      [64, 16],
      [64, 32],
      [10, 3],
      [3, 10],
      [16, 64],
      [5, 5],
    ] as const) {
      const { taps, indices, weights } = bicubicAxisWeights(from, to);
      expect(taps).toBe(Math.ceil(to < from ? (4 * from) / to : 4) + 2);
      for (let i = 0; i < to; i++) {
        let sum = 0;
        for (let k = 0; k < taps; k++) sum += weights[i * taps + k]!;
        expect(sum).toBeCloseTo(1, 12);
      }
      for (const j of indices) expect(j >= 0 && j < from).toBe(true);
    }
    const shape = { count: 3, height: 6, width: 5, channels: 3 };
    const images = randomImages(new Rng(1), shape);
    expect(bicubicResize(images, shape, 6, 5)).toEqual(images);
  });

  it('halves a linear ramp to the ramp at the new pixel centres, away from the borders', () => {
    // Symmetric weights reproduce a linear function; output x is centred at input 2x + 0.5. The 4/s = 8
    // wide kernel reaches 4 pixels either side, so outputs 2..13 of 16 never touch a mirrored tap.
    const shape = { count: 1, height: 2, width: 32, channels: 1 };
    const ramp = filled(shape, (i) => ((i % 32) - 16) / 16);
    const out = bicubicResize(ramp, shape, 1, 16);
    for (let x = 2; x < 14; x++) expect(out[x]).toBeCloseTo((2 * x + 0.5 - 16) / 16, 6);
  });

  it('commutes with a left-right flip and keeps a symmetric image symmetric when enlarging', () => {
    const shape = { count: 2, height: 5, width: 6, channels: 3 };
    const images = randomImages(new Rng(2), shape);
    const out = { ...shape, height: 12, width: 15 };
    const flippedThenResized = bicubicResize(flipWidth(images, shape), shape, 12, 15);
    const resizedThenFlipped = flipWidth(bicubicResize(images, shape, 12, 15), out);
    expect(maxAbsDiff(flippedThenResized, resizedThenFlipped)).toBeLessThan(1e-6);
    const palindrome = Float32Array.from([0.9, -0.3, 0.4, 0.4, -0.3, 0.9]);
    const up = bicubicResize(palindrome, { count: 1, height: 1, width: 6, channels: 1 }, 1, 14);
    for (let x = 0; x < 14; x++) expect(up[x]).toBeCloseTo(up[13 - x]!, 6);
  });

  it('rejects shapes that do not match the data', () => {
    const images = new Float32Array(16);
    expect(() => bicubicResize(images, { count: 1, height: 4, width: 4, channels: 3 }, 2, 2)).toThrow(
      RangeError,
    );
    expect(() => bicubicResize(images, { count: 1, height: 4, width: 4, channels: 1 }, 0, 2)).toThrow(
      RangeError,
    );
  });
});

describe('PSNR, SSIM and L1 (BasicSR)', () => {
  const gray = { count: 1, height: 16, width: 16, channels: 1 };

  it('converts pure colours to BT.601 luma on the 0..255 scale', () => {
    const colours = [
      [255, 0, 0, 16 + 65.481],
      [0, 255, 0, 16 + 128.553],
      [0, 0, 255, 16 + 24.966],
      [255, 255, 255, 235],
      [0, 0, 0, 16],
    ];
    const images = Float32Array.from(colours.flatMap(([r, g, b]) => [unit(r!), unit(g!), unit(b!)]));
    const planes = metricPlanes(images, { count: 5, height: 1, width: 1, channels: 3 });
    expect(planes.planes).toBe(1);
    expect(
      maxAbsDiff(
        planes.data,
        colours.map((c) => c[3]!),
      ),
    ).toBeLessThan(1e-10);
    const rgb = metricPlanes(images, { count: 5, height: 1, width: 1, channels: 3 }, { yChannel: false });
    expect(Array.from(rgb.data.subarray(0, 3))).toEqual([255, 0, 0]);
  });

  it('is 20 log10(255 / d) for an error of d gray levels at every pixel, and Infinity when identical', () => {
    const target = filled(gray, () => unit(128));
    const output = filled(gray, (i) => unit(i % 2 === 0 ? 128 + 6 : 128 - 6));
    expect(psnrPerImage(output, target, gray)[0]).toBeCloseTo(20 * Math.log10(255 / 6), 10);
    expect(psnrPerImage(target, target, gray)[0]).toBe(Number.POSITIVE_INFINITY);
  });

  it('scores the Y channel: an error of d levels in red alone is an error of 65.481 d / 255 in Y', () => {
    const shape = { count: 1, height: 12, width: 12, channels: 3 };
    const target = filled(shape, () => unit(100));
    const output = filled(shape, (i) => unit(i % 3 === 0 ? 110 : 100));
    const dy = (65.481 * 10) / 255;
    expect(psnrPerImage(output, target, shape)[0]).toBeCloseTo(20 * Math.log10(255 / dy), 8);
    // Over RGB, the MSE is 100 on one channel in three.
    const rgb = psnrPerImage(output, target, shape, { yChannel: false })[0];
    expect(rgb).toBeCloseTo(10 * Math.log10((255 * 255) / (100 / 3)), 8);
  });

  it('ignores the cropped border and, by default, errors below half a gray level', () => {
    const target = filled(gray, () => unit(50));
    const inBorder = (i: number) => i % 16 < 2 || i % 16 >= 14 || i < 32 || i >= 224;
    const output = filled(gray, (i) => (inBorder(i) ? unit(200) : unit(50)));
    expect(psnrPerImage(output, target, gray)[0]).toBeLessThan(20);
    expect(psnrPerImage(output, target, gray, { cropBorder: 2 })[0]).toBe(Number.POSITIVE_INFINITY);
    const nudged = filled(gray, () => unit(50.3));
    expect(psnrPerImage(nudged, target, gray)[0]).toBe(Number.POSITIVE_INFINITY);
    const unquantised = psnrPerImage(nudged, target, gray, { quantize: false })[0]!;
    expect(unquantised).toBeCloseTo(20 * Math.log10(255 / 0.3), 3);
    expect(() => psnrPerImage(output, target, gray, { cropBorder: 8 })).toThrow(RangeError);
    expect(() => psnrPerImage(output, target, gray, { cropBorder: 1.5 })).toThrow(RangeError);
  });

  it('gives SSIM 1 for identical images and the closed form (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) for constants', () => {
    const images = randomImages(new Rng(3), { ...gray, count: 2 });
    expect(maxAbsDiff(ssimPerImage(images, images, { ...gray, count: 2 }), [1, 1])).toBeLessThan(1e-12);
    const m1 = 100;
    const m2 = 140;
    const closed = (2 * m1 * m2 + C1) / (m1 * m1 + m2 * m2 + C1);
    expect(
      ssimPerImage(
        filled(gray, () => unit(m1)),
        filled(gray, () => unit(m2)),
        gray,
      )[0],
    ).toBeCloseTo(closed, 10);
    // Gray RGB has luma 16 + 219 k / 255 (the BT.601 coefficients sum to 219).
    const rgb = { ...gray, channels: 3 };
    const y1 = 16 + (219 * m1) / 255;
    const y2 = 16 + (219 * m2) / 255;
    const closedY = (2 * y1 * y2 + C1) / (y1 * y1 + y2 * y2 + C1);
    expect(
      ssimPerImage(
        filled(rgb, () => unit(m1)),
        filled(rgb, () => unit(m2)),
        rgb,
      )[0],
    ).toBeCloseTo(closedY, 10);
  });

  it('matches SSIM computed with the full 11x11 window at every valid position', () => {
    const shape = { count: 1, height: 14, width: 17, channels: 1 };
    const rng = new Rng(4);
    const a = randomImages(rng, shape);
    const b = a.map((v) => Math.max(-1, Math.min(1, v + 0.3 * (rng.uniform() - 0.5))));
    const pa = metricPlanes(a, shape).data;
    const pb = metricPlanes(b, shape).data;
    // The window the way cv2.getGaussianKernel writes it, then brute-force local moments.
    const g = Array.from({ length: 11 }, (_, i) => Math.exp(-((i - 5) ** 2) / 4.5));
    const gs = g.reduce((s, v) => s + v, 0);
    expect(
      maxAbsDiff(
        SSIM_WINDOW,
        g.map((v) => v / gs),
      ),
    ).toBeLessThan(1e-15);
    let total = 0;
    for (let y = 0; y + 11 <= 14; y++) {
      for (let x = 0; x + 11 <= 17; x++) {
        let [m1, m2, s11, s22, s12] = [0, 0, 0, 0, 0];
        for (let i = 0; i < 11; i++) {
          for (let j = 0; j < 11; j++) {
            const w = (g[i]! * g[j]!) / (gs * gs);
            const u = pa[(y + i) * 17 + x + j]!;
            const v = pb[(y + i) * 17 + x + j]!;
            m1 += w * u;
            m2 += w * v;
            s11 += w * u * u;
            s22 += w * v * v;
            s12 += w * u * v;
          }
        }
        const cov = s12 - m1 * m2;
        total +=
          ((2 * m1 * m2 + C1) * (2 * cov + C2)) /
          ((m1 * m1 + m2 * m2 + C1) * (s11 - m1 * m1 + s22 - m2 * m2 + C2));
      }
    }
    expect(ssimPerImage(a, b, shape)[0]).toBeCloseTo(total / (4 * 7), 12);
    expect(() => ssimPerImage(a, b, shape, { cropBorder: 2 })).toThrow(RangeError);
  });

  it('averages SSIM over channels when not on Y', () => {
    const shape = { count: 1, height: 12, width: 13, channels: 3 };
    const rng = new Rng(5);
    const a = randomImages(rng, shape);
    const b = randomImages(rng, shape);
    const channel = (x: Float32Array, c: number) => x.filter((_, i) => i % 3 === c);
    const one = { ...shape, channels: 1 };
    const perChannel = [0, 1, 2].map((c) => ssimPerImage(channel(a, c), channel(b, c), one)[0]!);
    const mean = perChannel.reduce((s, v) => s + v, 0) / 3;
    expect(ssimPerImage(a, b, shape, { yChannel: false })[0]).toBeCloseTo(mean, 12);
  });

  it('reports mean PSNR with identical pairs capped, mean SSIM, and L1 on the [-1, 1] scale', () => {
    const two = { ...gray, count: 2 };
    const target = filled(two, () => unit(128));
    const output = filled(two, (i) => (i < 256 ? unit(128) : unit(i % 2 === 0 ? 131 : 125)));
    const scores = imagePairScores(output, target, two);
    expect(scores.psnr).toBeCloseTo((PSNR_CAP_DB + 20 * Math.log10(255 / 3)) / 2, 10);
    const ssim = ssimPerImage(output, target, two);
    expect(scores.ssim).toBeCloseTo((1 + ssim[1]!) / 2, 12);
    expect(scores.l1).toBeCloseTo(3 / 127.5 / 2, 6);
  });
});
