import { describe, expect, it } from 'vitest';
import { deriveSeed, Rng } from './rng.ts';

const take = (n: number, f: () => number) => Array.from({ length: n }, f);

function meanVar(xs: readonly number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
  return { mean, variance };
}

describe('Rng', () => {
  it('gives the same stream for the same seed', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    expect(take(1000, () => a.nextU32())).toEqual(take(1000, () => b.nextU32()));
  });

  it('gives different streams for nearby seeds', () => {
    const a = take(
      8,
      (
        (r) => () =>
          r.nextU32()
      )(new Rng(1)),
    );
    const b = take(
      8,
      (
        (r) => () =>
          r.nextU32()
      )(new Rng(2)),
    );
    expect(a).not.toEqual(b);
    // No word of the first few in common: nearby seeds are decorrelated by splitmix.
    expect(a.filter((x) => b.includes(x))).toEqual([]);
  });

  it('produces 32-bit unsigned integers and uniforms in [0, 1)', () => {
    const r = new Rng(3);
    const badWords = take(10_000, () => r.nextU32()).filter(
      (u) => !(Number.isInteger(u) && u >= 0 && u <= 0xffffffff),
    );
    const badUniforms = take(10_000, () => r.uniform()).filter((x) => !(x >= 0 && x < 1));
    expect(badWords).toEqual([]);
    expect(badUniforms).toEqual([]);
  });

  it('continues identically after a getState/setState round trip', () => {
    const a = new Rng(9);
    take(37, () => a.uniform());
    const state = a.getState();
    const b = new Rng(0);
    b.setState(state);
    expect(take(100, () => b.uniform())).toEqual(take(100, () => a.uniform()));
  });

  it('round-trips through JSON, as a checkpoint stores it', () => {
    const a = new Rng(11);
    a.normal();
    const b = new Rng(JSON.parse(JSON.stringify(a.getState())) as number[]);
    expect(take(10, () => b.normal())).toEqual(take(10, () => a.normal()));
  });

  it('keeps the cached Box-Muller deviate in its state', () => {
    const a = new Rng(5);
    a.normal(); // draws a pair, returns one, caches the other
    const state = a.getState();
    const b = new Rng(123);
    b.setState(state);
    const fromA = take(5, () => a.normal());
    const fromB = take(5, () => b.normal());
    expect(fromB).toEqual(fromA);
    // Restoring only the four generator words loses the cached deviate: the next value differs.
    const c = new Rng(state.slice(0, 4));
    const fresh = new Rng(5);
    fresh.normal();
    expect(c.normal()).not.toBe(fresh.normal());
  });

  it('rejects a state of the wrong length', () => {
    expect(() => new Rng(1).setState([1, 2, 3])).toThrow();
  });

  it('draws uniforms with mean 1/2 and variance 1/12 over 100k draws', () => {
    const r = new Rng(2024);
    const { mean, variance } = meanVar(take(100_000, () => r.uniform()));
    // Standard errors: 0.29/sqrt(1e5) ~ 0.0009 for the mean, ~0.0003 for the variance.
    expect(mean).toBeCloseTo(0.5, 2);
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.002);
  });

  it('draws normals with mean 0 and variance 1 over 100k draws', () => {
    const r = new Rng(77);
    const { mean, variance } = meanVar(take(100_000, () => r.normal()));
    expect(Math.abs(mean)).toBeLessThan(0.015);
    expect(Math.abs(variance - 1)).toBeLessThan(0.02);
  });

  it('fills a Float32Array with normals from the same stream as normal()', () => {
    const a = new Rng(8);
    const b = new Rng(8);
    const out = a.fillNormal(new Float32Array(7));
    expect(Array.from(out)).toEqual(take(7, () => Math.fround(b.normal())));
  });

  it('draws int(n) over 0..n-1 uniformly (chi-square test)', () => {
    const n = 10;
    const draws = 100_000;
    const counts = new Array<number>(n).fill(0);
    const r = new Rng(31337);
    for (let i = 0; i < draws; i++) {
      const k = r.int(n);
      if (!(Number.isInteger(k) && k >= 0 && k < n)) throw new Error(`int(${n}) gave ${k}`);
      counts[k] = (counts[k] ?? 0) + 1;
    }
    expect(counts.every((c) => c > 0)).toBe(true);
    const expected = draws / n;
    const chi2 = counts.reduce((a, c) => a + (c - expected) ** 2 / expected, 0);
    // 9 degrees of freedom: P(chi2 > 27.9) = 0.001.
    expect(chi2).toBeLessThan(27.9);
  });
});

describe('deriveSeed', () => {
  it('is frozen: (7, 0) gives the value recorded when the contract was set', () => {
    // Changing this breaks reproducibility of every stored sweep.
    expect(deriveSeed(7, 0)).toBe(742993631);
  });

  it('is stable across calls and differs across trial indexes and sweep seeds', () => {
    const seeds = Array.from({ length: 1000 }, (_, i) => deriveSeed(7, i));
    expect(Array.from({ length: 1000 }, (_, i) => deriveSeed(7, i))).toEqual(seeds);
    expect(new Set(seeds).size).toBe(seeds.length);
    expect(deriveSeed(8, 0)).not.toBe(deriveSeed(7, 0));
    for (const s of seeds) expect(Number.isInteger(s) && s >= 0 && s <= 0xffffffff).toBe(true);
  });
});
