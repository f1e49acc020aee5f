/** Model families a sweep can train today, and the hyperparameters each accepts. */
export const MODEL_NAMES = ['dcgan', 'cgan', 'wgan-gp', 'progan'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** Families named by the design that are not trainable yet; specs naming them get a clear 400. */
export const PLANNED_MODELS = ['srgan', 'pix2pix'] as const;

/** Models trained with the Wasserstein loss: their D is a critic, its scores are not probabilities. */
export const CRITIC_MODELS: ReadonlySet<ModelName> = new Set(['wgan-gp', 'progan']);

/** Models conditioned on the class label: they need a labelled set. */
export const CONDITIONAL_MODELS: ReadonlySet<ModelName> = new Set(['cgan']);

/** Models that translate one image into another: they need a paired set (none trainable yet). */
export const PAIRED_MODELS: ReadonlySet<ModelName> = new Set([]);

/** Models trained in stages of growing resolution (the spec's `stages:` list). */
export const STAGED_MODELS: ReadonlySet<ModelName> = new Set(['progan']);

/**
 * Data sets that have a quality classifier (trained by the project, in the worker's assets), and the
 * images it reads: FLD, class coverage and mode-collapse detection need one.
 */
export const QUALITY_CLASSIFIERS: Readonly<Record<string, { size: number; channels: number }>> = {
  'fashion-mnist': { size: 28, channels: 1 },
  mnist: { size: 28, channels: 1 },
};

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

const GP_LAMBDA: ParamDef = {
  kind: 'float',
  default: 10,
  min: 0,
  max: 1000,
  help: 'weight of the WGAN-GP gradient penalty',
};

/** Default overrides on the shared adversarial parameters. */
function withDefaults(overrides: Record<string, number>): Record<string, ParamDef> {
  const out: Record<string, ParamDef> = {};
  for (const [name, def] of Object.entries(ADVERSARIAL_PARAMS))
    out[name] = name in overrides ? { ...def, default: overrides[name]! } : def;
  return out;
}

/**
 * WGAN-GP (Gulrajani et al., 2017): DCGAN's generator, a critic without batch norm, the Wasserstein loss
 * with gradient penalty, and Algorithm 1's defaults (Adam 1e-4, beta1 0, beta2 0.9, five critic updates per
 * generator update).
 */
const WGAN_GP_PARAMS: Record<string, ParamDef> = {
  ...withDefaults({ lr_g: 1e-4, lr_d: 1e-4, beta1: 0, beta2: 0.9 }),
  n_critic: { kind: 'int', default: 5, min: 1, max: 100, help: 'critic updates per generator update' },
  gp_lambda: GP_LAMBDA,
};

/**
 * ProGAN (Karras et al., 2018) with the paper's training settings: Adam 1e-3, beta1 0, beta2 0.99, WGAN-GP
 * with lambda 10 and drift 0.001, one critic update per step, generator EMA 0.999. `batch_size` is the
 * fallback of stages that give none; `base_filters` is the width at 4x4 and 8x8, halved per doubling after.
 */
const PROGAN_PARAMS: Record<string, ParamDef> = {
  ...withDefaults({ lr_g: 1e-3, lr_d: 1e-3, beta1: 0, beta2: 0.99, latent_dim: 128 }),
  n_critic: { kind: 'int', default: 1, min: 1, max: 100, help: 'critic updates per generator update' },
  gp_lambda: GP_LAMBDA,
  drift: {
    kind: 'float',
    default: 0.001,
    min: 0,
    max: 1,
    help: 'weight of the drift term eps * D(x)^2 that keeps critic scores near 0',
  },
  ema_decay: {
    kind: 'float',
    default: 0.999,
    min: 0,
    max: 1,
    maxExclusive: true,
    help: "decay of the moving average of G's weights that draws samples and evaluations (0 = no averaging)",
  },
};

/** Hyperparameters per model; every trial's payload carries all of them (defaults filled). */
export const MODEL_PARAMS: Record<ModelName, Record<string, ParamDef>> = {
  dcgan: ADVERSARIAL_PARAMS,
  cgan: ADVERSARIAL_PARAMS,
  'wgan-gp': WGAN_GP_PARAMS,
  progan: PROGAN_PARAMS,
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
