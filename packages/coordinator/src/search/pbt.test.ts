import { type ParameterSpec, Rng } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { pbtDonor, pbtExplore, pbtQuantiles } from './pbt.ts';

/** An Rng whose uniform() draws are given in order (int(n) reads them too: floor(u * n)). */
class ScriptedRng extends Rng {
  constructor(private readonly draws: number[]) {
    super(0);
  }
  override uniform(): number {
    const u = this.draws.shift();
    if (u === undefined) throw new Error('ScriptedRng: out of draws');
    return u;
  }
  get left(): number {
    return this.draws.length;
  }
}

const pop = (n: number) =>
  // t00 best (value 0) ... t(n-1) worst.
  Array.from({ length: n }, (_, i) => ({ trial: `t${String(i).padStart(2, '0')}`, value: i }));
const ids = (...i: number[]) => i.map((x) => `t${String(x).padStart(2, '0')}`);

describe('pbtQuantiles', () => {
  it('is empty for a population of one', () => {
    expect(pbtQuantiles(pop(1), 0.25)).toEqual({ top: [], bottom: [] });
    expect(pbtQuantiles(pop(1), 0.5)).toEqual({ top: [], bottom: [] });
  });
  it('takes k = min(ceil(n * q), floor(n / 2)) from each end', () => {
    // n = 2: ceil(0.5) = 1 and ceil(1) = 1.
    expect(pbtQuantiles(pop(2), 0.25)).toEqual({ top: ids(0), bottom: ids(1) });
    expect(pbtQuantiles(pop(2), 0.5)).toEqual({ top: ids(0), bottom: ids(1) });
    // n = 4: ceil(1) = 1; ceil(2) = 2.
    expect(pbtQuantiles(pop(4), 0.25)).toEqual({ top: ids(0), bottom: ids(3) });
    expect(pbtQuantiles(pop(4), 0.5)).toEqual({ top: ids(0, 1), bottom: ids(3, 2) });
    // n = 5: ceil(1.25) = 2; ceil(2.5) = 3, capped at floor(2.5) = 2, so the middle trial is in neither.
    expect(pbtQuantiles(pop(5), 0.25)).toEqual({ top: ids(0, 1), bottom: ids(4, 3) });
    expect(pbtQuantiles(pop(5), 0.5)).toEqual({ top: ids(0, 1), bottom: ids(4, 3) });
    // n = 10: ceil(2.5) = 3; ceil(5) = 5.
    expect(pbtQuantiles(pop(10), 0.25)).toEqual({ top: ids(0, 1, 2), bottom: ids(9, 8, 7) });
    expect(pbtQuantiles(pop(10), 0.5)).toEqual({ top: ids(0, 1, 2, 3, 4), bottom: ids(9, 8, 7, 6, 5) });
    // n = 50, q = 0.14: 50 * 0.14 = 7 (7.000000000000001 in floating point, whose ceil would be 8).
    expect(pbtQuantiles(pop(50), 0.14).top).toHaveLength(7);
  });
  it('ranks by value whatever the order given, ties by trial id', () => {
    const p = [
      { trial: 'd', value: 1 },
      { trial: 'b', value: 5 },
      { trial: 'a', value: 1 },
      { trial: 'c', value: 5 },
    ];
    // Ranked a (1), d (1), b (5), c (5); k = 1.
    expect(pbtQuantiles(p, 0.25)).toEqual({ top: ['a'], bottom: ['c'] });
  });
});

const parameters: Record<string, ParameterSpec> = {
  lr_g: { kind: 'distribution', distribution: 'log_uniform', min: 1e-5, max: 1e-2 },
  lr_d: { kind: 'values', values: [1e-4, 2e-4, 4e-4] },
  latent_dim: { kind: 'distribution', distribution: 'int_uniform', min: 16, max: 128 },
  batch_size: { kind: 'value', value: 32 },
};
const spec = { resample_probability: 0.25, perturb: [0.8, 1.2] as [number, number] };

/** Explore of one parameter with scripted draws: [resample?, direction]. */
function explore1(name: string, current: number, draws: number[]) {
  const rng = new ScriptedRng(draws);
  const r = pbtExplore({ [name]: current }, [name], parameters, spec, rng);
  expect(rng.left).toBe(0);
  return { value: r.params[name], how: r.explored[name] };
}

describe('pbtExplore', () => {
  it('multiplies a distribution by perturb[0] or perturb[1], each with probability 1/2', () => {
    // 0.9 >= 0.25: no resample; 0.1 < 0.5: factor 0.8; 0.7: factor 1.2.
    const down = explore1('lr_g', 1e-3, [0.9, 0.1]);
    expect(down.how).toBe('x0.8');
    expect(down.value).toBeCloseTo(8e-4, 15);
    const up = explore1('lr_g', 1e-3, [0.9, 0.7]);
    expect(up.how).toBe('x1.2');
    expect(up.value).toBeCloseTo(1.2e-3, 15);
  });
  it('clips a perturbed value into [min, max]', () => {
    // 9e-3 * 1.2 = 1.08e-2 > 1e-2; 1.1e-5 * 0.8 = 8.8e-6 < 1e-5.
    expect(explore1('lr_g', 9e-3, [0.9, 0.7])).toEqual({ value: 1e-2, how: 'x1.2' });
    expect(explore1('lr_g', 1.1e-5, [0.9, 0.1])).toEqual({ value: 1e-5, how: 'x0.8' });
    // 120 * 1.2 = 144 > 128.
    expect(explore1('latent_dim', 120, [0.9, 0.7])).toEqual({ value: 128, how: 'x1.2' });
  });
  it('rounds int_uniform parameters', () => {
    expect(explore1('latent_dim', 47, [0.9, 0.7]).value).toBe(56); // 56.4
    expect(explore1('latent_dim', 47, [0.9, 0.1]).value).toBe(38); // 37.6
    expect(explore1('latent_dim', 50, [0.9, 0.7]).value).toBe(60);
  });
  it('moves a values list to a neighbour, clamped at the ends', () => {
    expect(explore1('lr_d', 2e-4, [0.9, 0.2])).toEqual({ value: 1e-4, how: '-1' });
    expect(explore1('lr_d', 2e-4, [0.9, 0.6])).toEqual({ value: 4e-4, how: '+1' });
    expect(explore1('lr_d', 4e-4, [0.9, 0.6])).toEqual({ value: 4e-4, how: '=' });
    expect(explore1('lr_d', 1e-4, [0.9, 0.2])).toEqual({ value: 1e-4, how: '=' });
    // A value not in the list moves from its nearest element (2.5e-4 is 0.5e-4 from 2e-4): -1 -> 1e-4.
    expect(explore1('lr_d', 2.5e-4, [0.9, 0.2])).toEqual({ value: 1e-4, how: '-1' });
  });
  it('resamples from the spec as random search draws', () => {
    // 0.1 < 0.25: resample. log_uniform at u = 0.5: exp((ln 1e-5 + ln 1e-2) / 2) = sqrt(1e-7).
    const lr = explore1('lr_g', 1e-3, [0.1, 0.5]);
    expect(lr.how).toBe('resample');
    expect(lr.value).toBeCloseTo(Math.sqrt(1e-7), 15);
    // values: int(3) at u = 0.9 -> index 2.
    expect(explore1('lr_d', 1e-4, [0.1, 0.9])).toEqual({ value: 4e-4, how: 'resample' });
    // int_uniform: 16 + int(113) at u = 0.5 -> 16 + 56 = 72.
    expect(explore1('latent_dim', 50, [0.2, 0.5])).toEqual({ value: 72, how: 'resample' });
  });
  it('resamples with resample_probability over many draws (binomial margin)', () => {
    const rng = new Rng(20240914);
    const n = 10_000;
    let resampled = 0;
    let up = 0;
    for (let i = 0; i < n; i++) {
      const { explored } = pbtExplore({ lr_g: 1e-3 }, ['lr_g'], parameters, spec, rng);
      if (explored.lr_g === 'resample') resampled++;
      else if (explored.lr_g === 'x1.2') up++;
    }
    // Mean 2500, sd sqrt(10000 * 0.25 * 0.75) = 43.3: within 4 sd.
    expect(Math.abs(resampled - 2500)).toBeLessThan(4 * 43.3);
    // Of the ~7500 perturbed, half go up: sd sqrt(7500 / 4) = 43.3.
    expect(Math.abs(up - (n - resampled) / 2)).toBeLessThan(4 * 43.3);
  });
  it("clips a result into the model's limits", () => {
    const loose: Record<string, ParameterSpec> = {
      // Wider than dcgan allows (batch_size <= 1024, beta1 < 1), as a spec that skipped validation.
      batch_size: { kind: 'distribution', distribution: 'int_uniform', min: 1, max: 4096 },
      beta1: { kind: 'distribution', distribution: 'uniform', min: 0.5, max: 1.5 },
      d_embed_dim: { kind: 'values', values: [64, 100] },
    };
    const run = (model: 'dcgan' | 'transgan' | undefined, name: string, current: number, draws: number[]) =>
      pbtExplore({ [name]: current }, [name], loose, spec, new ScriptedRng(draws), model).params[name];
    // 1000 * 1.2 = 1200: within the spec, above dcgan's 1024.
    expect(run(undefined, 'batch_size', 1000, [0.9, 0.7])).toBe(1200);
    expect(run('dcgan', 'batch_size', 1000, [0.9, 0.7])).toBe(1024);
    // 0.9 * 1.2 = 1.08; clipped to 1, which beta1 excludes: the value in force stays.
    expect(run('dcgan', 'beta1', 0.9, [0.9, 0.7])).toBe(0.9);
    // 64 -> +1 -> 100, not one of transgan's d_embed_dim values: the nearest, 96.
    expect(run('transgan', 'd_embed_dim', 64, [0.9, 0.7])).toBe(96);
  });
  it('keeps the other params and explores every name given', () => {
    const rng = new ScriptedRng([0.9, 0.1, 0.9, 0.6]);
    const r = pbtExplore({ lr_g: 1e-3, lr_d: 2e-4, batch_size: 32 }, ['lr_g', 'lr_d'], parameters, spec, rng);
    expect(r.params.batch_size).toBe(32);
    expect(r.params.lr_d).toBe(4e-4);
    expect(r.explored).toEqual({ lr_g: 'x0.8', lr_d: '+1' });
  });
  it('names the parameter it cannot explore', () => {
    const rng = new Rng(1);
    expect(() => pbtExplore({ lr_g: 1e-3 }, ['lr_d'], parameters, spec, rng)).toThrow(/'lr_d'/);
    expect(() => pbtExplore({ batch_size: 32 }, ['batch_size'], parameters, spec, rng)).toThrow(
      /'batch_size'/,
    );
    expect(() => pbtExplore({ beta2: 0.9 }, ['beta2'], parameters, spec, rng)).toThrow(/'beta2'/);
  });
});

describe('pbtDonor', () => {
  it('draws uniformly from the top, never the trial itself', () => {
    // Candidates [a, c]: int(2) at 0.3 -> a, at 0.7 -> c.
    expect(pbtDonor(['a', 'b', 'c'], 'b', new ScriptedRng([0.3]))).toBe('a');
    expect(pbtDonor(['a', 'b', 'c'], 'b', new ScriptedRng([0.7]))).toBe('c');
    const rng = new Rng(7);
    const seen = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const d = pbtDonor(['a', 'b', 'c'], 'b', rng)!;
      seen.set(d, (seen.get(d) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(['a', 'c']);
  });
  it('is undefined when the top has nobody else', () => {
    expect(pbtDonor(['b'], 'b', new Rng(1))).toBeUndefined();
    expect(pbtDonor([], 'b', new Rng(1))).toBeUndefined();
  });
});
