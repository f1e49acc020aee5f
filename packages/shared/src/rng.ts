/**
 * Seedable pseudo-random generator with a serialisable state: xoshiro128** (Blackman & Vigna, 2018),
 * seeded through splitmix32 so nearby seeds give unrelated streams. Used for sweep planning and for every
 * random draw of a training run, so a trial is reproducible and a resumed trial continues the same stream.
 */
export class Rng {
  private s: Uint32Array;
  /** Second normal deviate of the last Box-Muller pair, or NaN. Part of the state. */
  private spare = Number.NaN;

  constructor(seed: number | readonly number[]) {
    this.s = new Uint32Array(4);
    if (typeof seed === 'number') {
      let x = seed >>> 0;
      for (let i = 0; i < 4; i++) {
        x = (x + 0x9e3779b9) >>> 0;
        let z = x;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        this.s[i] = (z ^ (z >>> 16)) >>> 0;
      }
      if (this.s.every((v) => v === 0)) this.s[0] = 1;
    } else {
      this.setState(seed);
    }
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const s0 = s[0]!;
    const s1 = s[1]!;
    const s2 = s[2]!;
    const s3 = s[3]!;
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    const n2 = (s2 ^ s0) >>> 0;
    const n3 = (s3 ^ s1) >>> 0;
    s[1] = (s1 ^ n2) >>> 0;
    s[0] = (s0 ^ n3) >>> 0;
    s[2] = (n2 ^ t) >>> 0;
    s[3] = rotl(n3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal deviate (Box-Muller, both deviates used). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = Number.NaN;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fills `out` with standard normal deviates. */
  fillNormal(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.normal();
    return out;
  }

  /** The full state, for checkpoints: four words plus the cached deviate (NaN encoded as null). */
  getState(): number[] {
    return [...this.s, Number.isNaN(this.spare) ? -1 : 1, Number.isNaN(this.spare) ? 0 : this.spare];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4 && state.length !== 6)
      throw new Error(`rng state must have 4 or 6 numbers, got ${state.length}`);
    for (let i = 0; i < 4; i++) this.s[i] = (state[i] ?? 0) >>> 0;
    this.spare = state.length === 6 && state[4] === 1 ? (state[5] ?? 0) : Number.NaN;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Derives a trial's seed from the sweep seed and the trial index (stable across versions). */
export function deriveSeed(sweepSeed: number, index: number): number {
  const rng = new Rng((sweepSeed ^ Math.imul(index + 1, 0x27d4eb2d)) >>> 0);
  return rng.nextU32();
}
