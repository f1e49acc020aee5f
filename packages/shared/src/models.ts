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
  /** The only values allowed (within the range), e.g. a super-resolution scale of 2 or 4. */
  oneOf?: readonly number[];
  help: string;
  /**
   * False for a parameter that leaves the networks' tensors as they are (a learning rate, a loss weight, the
   * batch size): init_from's shape check builds one set of networks for trials that differ only in these.
   * @default true
   */
  shapesNetworks?: boolean;
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

/**
 * Paired built-in sets whose B side is a set with a committed classifier: G(A) is scored with that set's
 * classifier (its features and classes of the target domain).
 */
export const QUALITY_CLASSIFIER_OF: Readonly<Record<string, string>> = {
  'emoji-google2twitter': 'emoji-twitter',
  'fashion-mnist-render2photo': 'fashion-mnist',
};

/** The name of the committed classifier that scores `dataset`'s images (its own, or its B side's set). */
export function qualityClassifierName(dataset: string): string {
  return QUALITY_CLASSIFIER_OF[dataset] ?? dataset;
}

/** Resolutions a progressive-growing stage may train at; a data set's images are padded to a power of two. */
export const STAGE_RESOLUTIONS = [4, 8, 16, 32, 64, 128, 256] as const;

/**
 * Training phases of a family staged by phase (srgan): MSE pretraining of the generator, then adversarial
 * training of both networks, each its own queue job.
 */
export const STAGE_PHASES = ['pretrain', 'adversarial'] as const;
export type StagePhase = (typeof STAGE_PHASES)[number];

/**
 * One stage of a staged trial, as given in the spec (`stages:`) and carried by its job. Global steps
 * [start_step, start_step + fade_steps + stable_steps) belong to it. Progressive growing names a stage by
 * its `resolution`: alpha rises linearly from 0 to 1 over the fade steps (none for the first stage), then
 * stays 1. A family staged by phase names it by its `phase` (and has no fade).
 */
export interface StageSpec {
  resolution?: number;
  phase?: StagePhase;
  fade_steps: number;
  stable_steps: number;
  batch_size: number;
}

/** Returns the problem with `value` for parameter `def`, or undefined when it is acceptable. */
export function checkParamValue(def: ParamDef, value: unknown): string | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'must be a finite number';
  if (def.kind === 'int' && !Number.isInteger(value)) return 'must be an integer';
  if (def.oneOf && !def.oneOf.includes(value)) return `must be one of ${def.oneOf.join(', ')}`;
  if (def.minExclusive ? value <= def.min : value < def.min) {
    return `must be ${def.minExclusive ? '>' : '>='} ${def.min}`;
  }
  if (def.maxExclusive ? value >= def.max : value > def.max) {
    return `must be ${def.maxExclusive ? '<' : '<='} ${def.max}`;
  }
  return undefined;
}
