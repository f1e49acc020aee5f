/** Model families a sweep can train today, and the hyperparameters each accepts. */
export const MODEL_NAMES = ['dcgan', 'cgan'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** Families named by the design that are not trainable yet; specs naming them get a clear 400. */
export const PLANNED_MODELS = ['wgan-gp', 'progan', 'srgan', 'pix2pix'] as const;

export const DATASET_NAMES = ['fashion-mnist', 'mnist'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

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

const ADVERSARIAL_PARAMS: Record<string, ParamDef> = {
  lr_g: {
    kind: 'float',
    default: 2e-4,
    min: 0,
    minExclusive: true,
    max: 1,
    help: 'generator Adam learning rate',
  },
  lr_d: {
    kind: 'float',
    default: 2e-4,
    min: 0,
    minExclusive: true,
    max: 1,
    help: 'discriminator Adam learning rate',
  },
  beta1: {
    kind: 'float',
    default: 0.5,
    min: 0,
    max: 1,
    maxExclusive: true,
    help: 'Adam beta1 (both networks)',
  },
  beta2: {
    kind: 'float',
    default: 0.999,
    min: 0,
    max: 1,
    maxExclusive: true,
    help: 'Adam beta2 (both networks)',
  },
  batch_size: { kind: 'int', default: 64, min: 1, max: 1024, help: 'images per training step' },
  latent_dim: { kind: 'int', default: 100, min: 1, max: 1024, help: 'size of the generator noise vector z' },
  base_filters: {
    kind: 'int',
    default: 64,
    min: 4,
    max: 512,
    help: 'width: filters of the first discriminator conv (the generator mirrors it)',
  },
};

/** Hyperparameters per model; every trial's payload carries all of them (defaults filled). */
export const MODEL_PARAMS: Record<ModelName, Record<string, ParamDef>> = {
  dcgan: ADVERSARIAL_PARAMS,
  cgan: ADVERSARIAL_PARAMS,
};

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
