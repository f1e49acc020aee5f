import { Rng } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import type { Dataset } from '../data/datasets.ts';
import type { DrawOptions } from '../families/family.ts';
import { type ConditionalGenerator, compileProtocolOptions, runAugmentationProtocol } from './protocol.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

const SIDE = 16;
const CLASSES = 4;
const PX = SIDE * SIDE;

/**
 * A bar through a noisy 16x16 image, its class its direction (horizontal, vertical, diagonal,
 * anti-diagonal) at a random offset: easy to learn from many examples, not from two.
 */
function bar(rng: Rng, label: number, out: Float32Array, o: number): void {
  const offset = rng.int(SIDE - 4) + 2;
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      const on =
        label === 0
          ? y === offset
          : label === 1
            ? x === offset
            : label === 2
              ? x - y === offset - SIDE / 2
              : x + y === offset + SIDE / 2;
      const v = (on ? 1 : -1) + rng.normal() * 0.5;
      out[o + y * SIDE + x] = Math.max(-1, Math.min(1, v));
    }
  }
}

/** `perClass` bars of each class, classes interleaved (as a data set stores them). */
function bars(seed: number, perClass: number, name = 'bars'): Dataset {
  const rng = new Rng(seed);
  const count = perClass * CLASSES;
  const images = new Float32Array(count * PX);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % CLASSES;
    bar(rng, labels[i]!, images, i * PX);
  }
  return {
    name,
    images,
    labels,
    count,
    height: SIDE,
    width: SIDE,
    channels: 1,
    numClasses: CLASSES,
    classNames: ['horizontal', 'vertical', 'diagonal', 'anti-diagonal'],
  };
}

/** A stand-in generator: `make(rng, label, out, offset)` writes each image; seeded like Trainer.draw. */
function generator(
  make: (rng: Rng, label: number, out: Float32Array, o: number) => void,
): ConditionalGenerator {
  return {
    sampleShape: { height: SIDE, width: SIDE, channels: 1 },
    draw(count: number, opts: DrawOptions) {
      const rng = new Rng(opts.seed);
      const out = new Float32Array(count * PX);
      for (let i = 0; i < count; i++) make(rng, opts.label ?? i % CLASSES, out, i * PX);
      return out;
    },
  };
}

/** Draws from the data's own distribution: a perfect generator. */
const perfect = generator(bar);
/** Uniform noise whatever the class. */
const noise = generator((rng, _label, out, o) => {
  for (let p = 0; p < PX; p++) out[o + p] = rng.uniform() * 2 - 1;
});
/** Good images of the wrong class: the next one. */
const mislabelled = generator((rng, label, out, o) => bar(rng, (label + 1) % CLASSES, out, o));

const train = bars(1, 2);
const test = bars(2, 50);
const base = { train, test, realPerClass: 2, steps: 40, batch: 16 };

describe('the augmentation protocol', () => {
  it('gains from a generator of the data distribution, and GAN-train then nears the real-data accuracy', async () => {
    const arms: string[] = [];
    const r = await runAugmentationProtocol({
      ...base,
      generator: perfect,
      syntheticPerClass: [40],
      seeds: 2,
      onProgress: (p) => void arms.push(`${p.seed}/${p.seeds} ${p.arm}`),
    });
    expect(arms).toEqual([
      '1/2 real',
      '1/2 real+40',
      '1/2 generated',
      '2/2 real',
      '2/2 real+40',
      '2/2 generated',
    ]);
    expect(r.real.values).toHaveLength(2);
    expect(r.test_images).toBe(200);
    const [many] = r.augmented;
    expect(many!.synthetic_per_class).toBe(40);
    // Two real bars per class leave the task barely learnt (chance is 0.25); forty more per class help.
    expect(r.real.mean).toBeLessThan(0.55);
    expect(many!.accuracy.mean).toBeGreaterThan(0.65);
    expect(many!.gain).toBeGreaterThan(0.2);
    expect(many!.gain).toBeCloseTo(many!.accuracy.mean - r.real.mean, 12);
    expect(many!.paired.mean).toBeCloseTo(many!.gain, 12);
    // Trained on generated images alone, as good as on real ones of that number.
    expect(r.gan_train.synthetic_per_class).toBe(40);
    expect(r.gan_train.mean).toBeGreaterThan(0.65);
    expect(Math.abs(r.gan_train.mean - many!.accuracy.mean)).toBeLessThan(0.1);
    // The real classifier does as well on generated images as on real test images.
    expect(r.gan_test.images).toBe(160);
    expect(Math.abs(r.gan_test.mean - r.real.mean)).toBeLessThan(0.15);
    expect(r.real.sd).not.toBeNull();
  }, 60_000);

  it('does not gain from noise: GAN-train is chance; images of the wrong class make GAN-train worse than chance and GAN-test worse than real accuracy', async () => {
    const fromNoise = await runAugmentationProtocol({
      ...base,
      generator: noise,
      syntheticPerClass: [40],
      seeds: 1,
    });
    expect(fromNoise.gan_train.mean).toBeLessThan(0.4);
    expect(fromNoise.augmented[0]!.gain).toBeLessThan(0.1);
    expect(fromNoise.real.sd).toBeNull();
    const wrong = await runAugmentationProtocol({
      ...base,
      generator: mislabelled,
      syntheticPerClass: [40],
      seeds: 1,
    });
    expect(wrong.gan_train.mean).toBeLessThan(0.15);
    // The real classifier is right about a third of the time on real bars, less on mislabelled ones.
    expect(wrong.gan_test.mean).toBeLessThan(wrong.real.mean - 0.05);
    expect(wrong.augmented[0]!.gain).toBeLessThan(0);
  }, 60_000);

  it('refuses a train split without exactly K images of each class, and shapes that differ', () => {
    const opts = { ...base, generator: perfect, syntheticPerClass: [4], seeds: 1 };
    expect(() => compileProtocolOptions({ ...opts, realPerClass: 3 })).toThrow(
      /holds 2 images of class 0 \(horizontal\), not K = 3/,
    );
    const small = { ...perfect, sampleShape: { height: 8, width: 8, channels: 1 } };
    expect(() => compileProtocolOptions({ ...opts, generator: small })).toThrow(/8x8x1/);
    expect(() => compileProtocolOptions({ ...opts, syntheticPerClass: [] })).toThrow(/no M/);
    expect(() => compileProtocolOptions({ ...opts, seeds: 0 })).toThrow(/seeds must be/);
  });
});
