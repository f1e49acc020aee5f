import { deriveSeed, MODEL_PARAMS, Rng, type SweepSpec } from '@gantry/shared';
import { sampleParameter } from './sample-parameter.ts';

/** One planned trial: every model parameter resolved, plus its own seed. */
export interface PlannedTrial {
  index: number;
  seed: number;
  params: Record<string, number>;
}

/** The spec's constant parameters ({value}). */
export function constantsOf(spec: SweepSpec): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, p] of Object.entries(spec.parameters)) if (p.kind === 'value') out[name] = p.value;
  return out;
}

/** Every model parameter of `spec`'s model: `chosen`'s values, the model's defaults for the rest. */
export function withDefaults(spec: SweepSpec, chosen: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, def] of Object.entries(MODEL_PARAMS[spec.model])) out[name] = chosen[name] ?? def.default;
  return out;
}

/**
 * Expands a sweep into trials (TPE: none, they are suggested as results come in). pbt-replay: budget.trials
 * copies of the recorded schedule's start. List: one trial per configuration, over the `value` constants. Grid: the cartesian product of every `values` list (last parameter varies
 * fastest, in the spec's key order). Random: `budget.trials` draws, trial i from an Rng seeded by
 * (spec.seed, i), parameters drawn in sorted-name order, so any trial can be re-derived on its own.
 */
export function planSweep(spec: SweepSpec): PlannedTrial[] {
  const names = Object.keys(spec.parameters);
  // TPE suggests its trials one by one as results come in (search/engine.ts).
  if (spec.method === 'tpe') return [];
  if (spec.method === 'pbt-replay') {
    // The same schedule, budget.trials times with their own seeds; it starts with its first point's params.
    const constants = constantsOf(spec);
    const first = spec.replay?.schedule?.[0]?.params ?? {};
    return Array.from({ length: spec.budget.trials }, (_, index) => ({
      index,
      seed: deriveSeed(spec.seed, index),
      params: withDefaults(spec, { ...first, ...constants }),
    }));
  }
  if (spec.method === 'list') {
    const constants = constantsOf(spec);
    return spec.configurations.map((c, index) => ({
      index,
      seed: deriveSeed(spec.seed, index),
      params: withDefaults(spec, { ...constants, ...c }),
    }));
  }
  if (spec.method === 'grid') {
    let combos: Record<string, number>[] = [{}];
    for (const name of names) {
      const p = spec.parameters[name]!;
      const values = p.kind === 'values' ? p.values : p.kind === 'value' ? [p.value] : [];
      combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
    }
    return combos.map((c, index) => ({
      index,
      seed: deriveSeed(spec.seed, index),
      params: withDefaults(spec, c),
    }));
  }
  const sorted = [...names].sort();
  return Array.from({ length: spec.budget.trials }, (_, index) => {
    const seed = deriveSeed(spec.seed, index);
    const rng = new Rng(seed ^ 0x9e3779b9);
    const chosen: Record<string, number> = {};
    for (const name of sorted) chosen[name] = sampleParameter(spec.parameters[name]!, rng);
    return { index, seed, params: withDefaults(spec, chosen) };
  });
}
