import type { ParameterSpec, Rng } from '@gantry/shared';

/** Draws one value of a parameter for random search. */
export function sampleParameter(p: ParameterSpec, rng: Rng): number {
  switch (p.kind) {
    case 'value':
      return p.value;
    case 'values':
      return p.values[rng.int(p.values.length)]!;
    case 'distribution':
      switch (p.distribution) {
        case 'uniform':
          return p.min + rng.uniform() * (p.max - p.min);
        case 'log_uniform':
          return Math.exp(Math.log(p.min) + rng.uniform() * (Math.log(p.max) - Math.log(p.min)));
        case 'int_uniform':
          return p.min + rng.int(p.max - p.min + 1);
      }
  }
}
