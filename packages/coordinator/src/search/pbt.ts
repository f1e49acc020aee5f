/**
 * Population-based training's rules (Jaderberg et al. 2017, "Population Based Training of Neural
 * Networks"), pure, as Ray Tune's PopulationBasedTraining runs them: which trials are in the top and bottom
 * quantiles, which donor a bottom trial copies, and how explore changes the copied hyperparameters.
 * Values are losses: lower is better.
 */
import {
  checkParamValue,
  MODEL_PARAMS,
  type ModelName,
  type ParamDef,
  type ParameterSpec,
  type PbtSpec,
  type Rng,
} from '@gantry/shared';
import { sampleParameter } from '../planner/sample-parameter.ts';
import { compareIds } from './asha.ts';

/**
 * Bottom and top quantiles of a population by value (lower is better), as Ray's PBT: k = ceil(n *
 * quantile), at most floor(n / 2); top = the k best, bottom = the k worst (ties by trial id); both empty for n < 2.
 * `top` is best first, `bottom` worst first. (n * quantile is taken as whole when within 1e-9 of it, so
 * 50 * 0.14 gives k = 7 where floating point would give ceil(7.000000000000001) = 8.)
 */
export function pbtQuantiles(
  pop: readonly { trial: string; value: number }[],
  quantile: number,
): { top: string[]; bottom: string[] } {
  const n = pop.length;
  if (n < 2) return { top: [], bottom: [] };
  const k = Math.min(Math.ceil(n * quantile - 1e-9), Math.floor(n / 2));
  const ranked = [...pop]
    .sort((a, b) => a.value - b.value || compareIds(a.trial, b.trial))
    .map((p) => p.trial);
  return { top: ranked.slice(0, k), bottom: ranked.slice(n - k).reverse() };
}

/**
 * Explore (Ray's PBT explore): for each name in `names`: with probability resample_probability a fresh
 * draw from its spec (a values list: a random element; a distribution: as random search draws it,
 * sampleParameter); otherwise a distribution is multiplied by perturb[0] or perturb[1] (each with
 * probability 1/2), clipped into [min, max] and rounded for int_uniform; a values list moves to the
 * neighbouring element (index -1 or +1, each with probability 1/2, clamped at the ends; a value not in the
 * list moves from its nearest element). With `model`, a result outside the model's limits
 * (MODEL_PARAMS[model][name]) is clipped in; where clipping cannot make it acceptable (an exclusive bound)
 * the value in force is kept. `explored[name]`: 'resample', 'x<factor>', '+1', '-1' (or '=' when clamped to
 * the same index). Other entries of `params` are copied as they are.
 * @throws Error naming the parameter when it has no current value or no searched spec.
 */
export function pbtExplore(
  params: Readonly<Record<string, number>>,
  names: readonly string[],
  parameters: Readonly<Record<string, ParameterSpec>>,
  spec: Pick<PbtSpec, 'resample_probability' | 'perturb'>,
  rng: Rng,
  model?: ModelName,
): { params: Record<string, number>; explored: Record<string, string> } {
  const out: Record<string, number> = { ...params };
  const explored: Record<string, string> = {};
  for (const name of names) {
    const current = params[name];
    if (current === undefined) throw new Error(`pbt explore: trial has no value for parameter '${name}'`);
    const p = parameters[name];
    if (!p || p.kind === 'value')
      throw new Error(`pbt explore: parameter '${name}' is not searched (no values or distribution)`);
    let value: number;
    if (rng.uniform() < spec.resample_probability) {
      value = sampleParameter(p, rng);
      explored[name] = 'resample';
    } else if (p.kind === 'values') {
      const at = nearestIndex(p.values, current);
      const shift = rng.uniform() < 0.5 ? -1 : 1;
      const to = Math.min(Math.max(at + shift, 0), p.values.length - 1);
      value = p.values[to]!;
      explored[name] = to === at ? '=' : shift < 0 ? '-1' : '+1';
    } else {
      const factor = rng.uniform() < 0.5 ? spec.perturb[0] : spec.perturb[1];
      const scaled = current * factor;
      const rounded = p.distribution === 'int_uniform' ? Math.round(scaled) : scaled;
      value = Math.min(Math.max(rounded, p.min), p.max);
      explored[name] = `x${factor}`;
    }
    const def = model === undefined ? undefined : MODEL_PARAMS[model][name];
    out[name] = def ? clipToDef(def, value, current) : value;
  }
  return { params: out, explored };
}

/** Uniform draw of one donor from `top` (never `self`); undefined when there is none. */
export function pbtDonor(top: readonly string[], self: string, rng: Rng): string | undefined {
  const candidates = top.filter((t) => t !== self);
  if (candidates.length === 0) return undefined;
  return candidates[rng.int(candidates.length)];
}

/** Index of the element of a non-empty list closest to `v` (the first of equals). */
function nearestIndex(values: readonly number[], v: number): number {
  let best = 0;
  for (let i = 1; i < values.length; i++)
    if (Math.abs(values[i]! - v) < Math.abs(values[best]! - v)) best = i;
  return best;
}

/** `v` moved into a model parameter's limits; `fallback` when the nearest bound is itself excluded. */
function clipToDef(def: ParamDef, v: number, fallback: number): number {
  if (checkParamValue(def, v) === undefined) return v;
  let c = Math.min(Math.max(v, def.min), def.max);
  if (def.kind === 'int') c = Math.round(c);
  if (def.oneOf) {
    const inRange = def.oneOf.filter((x) => checkParamValue({ ...def, oneOf: undefined }, x) === undefined);
    if (inRange.length > 0) c = inRange[nearestIndex(inRange, c)]!;
  }
  return checkParamValue(def, c) === undefined ? c : fallback;
}
