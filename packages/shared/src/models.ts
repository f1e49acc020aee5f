/** Families named by the design that are not trainable yet; specs naming them get a clear 400. */
export const PLANNED_MODELS = ['srgan', 'pix2pix', 'transgan'] as const;

/** How one hyperparameter may be set: numeric range, integrality and its default. */
export interface ParamDef {
  kind: 'float' | 'int';
  default: number;
  /** Inclusive lower bound unless `minExclusive`. */
  min: number;
  minExclusive?: boolean;
  /** Inclusive upper bound unless `maxExclusive`. */
  max: number;
  maxExclusive?: boolean;
  help: string;
}

/**
 * Data sets that have a quality classifier (trained by the project, in the worker's assets), and the
 * images it reads: FLD, class coverage and mode-collapse detection need one.
 */
export const QUALITY_CLASSIFIERS: Readonly<Record<string, { size: number; channels: number }>> = {
  'fashion-mnist': { size: 28, channels: 1 },
  mnist: { size: 28, channels: 1 },
  emoji: { size: 64, channels: 3 },
  'emoji-twitter': { size: 64, channels: 3 },
};

/** Resolutions a progressive-growing stage may train at; a data set's images are padded to a power of two. */
export const STAGE_RESOLUTIONS = [4, 8, 16, 32, 64, 128, 256] as const;

/**
 * One stage of progressive growing, as given in the spec (`stages:`) and carried by its job. Global steps
 * [start_step, start_step + fade_steps + stable_steps) belong to it: alpha rises linearly from 0 to 1 over
 * the fade steps (none for the first stage), then stays 1.
 */
export interface StageSpec {
  resolution: number;
  fade_steps: number;
  stable_steps: number;
  batch_size: number;
}

/** Returns the problem with `value` for parameter `def`, or undefined when it is acceptable. */
export function checkParamValue(def: ParamDef, value: unknown): string | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'must be a finite number';
  if (def.kind === 'int' && !Number.isInteger(value)) return 'must be an integer';
  if (def.minExclusive ? value <= def.min : value < def.min) {
    return `must be ${def.minExclusive ? '>' : '>='} ${def.min}`;
  }
  if (def.maxExclusive ? value >= def.max : value > def.max) {
    return `must be ${def.maxExclusive ? '<' : '<='} ${def.max}`;
  }
  return undefined;
}
