import type { ParamDef, StagePhase } from './models.ts';

/**
 * The spec side of each model family: its hyperparameters with their defaults, and what it asks of a data
 * set and of the queue. One entry per family; the worker's registry (packages/worker/src/families/) maps
 * the same names to networks, losses and training steps. Everything else asks about capabilities, never
 * about a model's name.
 */
export interface FamilySpec {
  /** Every trial's payload carries all of them, defaults filled. */
  params: Record<string, ParamDef>;
  /** D is a Wasserstein critic: its scores are not probabilities (dominance detection is skipped). */
  critic: boolean;
  /** G and D see the class label: the set must have classes. */
  conditional: boolean;
  /** Translates image A into image B: the set must be paired. */
  paired: boolean;
  /** Trains in stages (the spec's `stages:`), each its own queue job. */
  staged: boolean;
  /**
   * A staged family whose stages are training phases, named by `phase:` in this order (a prefix of it may
   * be given), rather than the resolutions of progressive growing.
   */
  phases?: readonly StagePhase[];
  /** What its quality evaluation reports, each a metric a sweep can rank by (with the losses). */
  qualityMetrics: readonly string[];
  /**
   * What its generator takes: noise (it draws samples) or an image (it super-resolves or translates one,
   * and is scored on the held-out split's examples).
   */
  input: 'noise' | 'image';
  /** Upper bounds that the image side puts on parameters (pix2pix's PatchGAN depth), checked on submit. */
  paramLimits?(side: number): Record<string, number>;
  /**
   * Image sides its networks are built for; a staged family grows on a power-of-two canvas, so any side up
   * to its largest stage fits (28 is padded to 32).
   */
  imageSides: readonly number[];
  /** One line for `--help` and errors. */
  summary: string;
}

const ADVERSARIAL_PARAMS: Record<string, ParamDef> = {
  lr_g: {
    kind: 'float',
    default: 2e-4,
    min: 0,
    minExclusive: true,
    max: 1,
    help: 'generator Adam learning rate',
    shapesNetworks: false,
  },
  lr_d: {
    kind: 'float',
    default: 2e-4,
    min: 0,
    minExclusive: true,
    max: 1,
    help: 'discriminator Adam learning rate',
    shapesNetworks: false,
  },
  beta1: {
    kind: 'float',
    default: 0.5,
    min: 0,
    max: 1,
    maxExclusive: true,
    help: 'Adam beta1 (both networks)',
    shapesNetworks: false,
  },
  beta2: {
    kind: 'float',
    default: 0.999,
    min: 0,
    max: 1,
    maxExclusive: true,
    help: 'Adam beta2 (both networks)',
    shapesNetworks: false,
  },
  batch_size: {
    kind: 'int',
    default: 64,
    min: 1,
    max: 1024,
    help: 'images per training step',
    shapesNetworks: false,
  },
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
  shapesNetworks: false,
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
  n_critic: {
    kind: 'int',
    default: 5,
    min: 1,
    max: 100,
    help: 'critic updates per generator update',
    shapesNetworks: false,
  },
  gp_lambda: GP_LAMBDA,
};

/**
 * ProGAN (Karras et al., 2018) with the paper's training settings: Adam 1e-3, beta1 0, beta2 0.99, WGAN-GP
 * with lambda 10 and drift 0.001, one critic update per step, generator EMA 0.999. `batch_size` is the
 * fallback of stages that give none; `base_filters` is the width at 4x4 and 8x8, halved per doubling after.
 */
const PROGAN_PARAMS: Record<string, ParamDef> = {
  ...withDefaults({ lr_g: 1e-3, lr_d: 1e-3, beta1: 0, beta2: 0.99, latent_dim: 128 }),
  n_critic: {
    kind: 'int',
    default: 1,
    min: 1,
    max: 100,
    help: 'critic updates per generator update',
    shapesNetworks: false,
  },
  gp_lambda: GP_LAMBDA,
  drift: {
    kind: 'float',
    default: 0.001,
    min: 0,
    max: 1,
    help: 'weight of the drift term eps * D(x)^2 that keeps critic scores near 0',
    shapesNetworks: false,
  },
  ema_decay: {
    kind: 'float',
    default: 0.999,
    min: 0,
    max: 1,
    maxExclusive: true,
    help: "decay of the moving average of G's weights that draws samples and evaluations (0 = no averaging)",
    shapesNetworks: false,
  },
};

/** What the generative families' evaluation reports (scores.ts in the worker). */
const GENERATIVE_METRICS = ['fld', 'class_coverage', 'class_kl'] as const;

/** Adam and batch size, shared by the image-conditioned families. */
function adamParams(d: { lr: number; beta1: number; batch: number }): Record<string, ParamDef> {
  return {
    lr_g: { ...ADVERSARIAL_PARAMS.lr_g!, default: d.lr },
    lr_d: { ...ADVERSARIAL_PARAMS.lr_d!, default: d.lr },
    beta1: { ...ADVERSARIAL_PARAMS.beta1!, default: d.beta1 },
    beta2: ADVERSARIAL_PARAMS.beta2!,
    batch_size: { ...ADVERSARIAL_PARAMS.batch_size!, default: d.batch },
  };
}

/**
 * SRGAN (Ledig et al., 2017) with the paper's settings: Adam beta1 0.9, 1e-4 for the MSE pretraining of the
 * generator (stage `pretrain`) and for both networks in the adversarial stage, adversarial weight 1e-3,
 * batch 16, 16 residual blocks of 64 filters.
 */
const SRGAN_PARAMS: Record<string, ParamDef> = {
  ...adamParams({ lr: 1e-4, beta1: 0.9, batch: 16 }),
  lr_pretrain: {
    kind: 'float',
    default: 1e-4,
    min: 0,
    minExclusive: true,
    max: 1,
    help: "generator Adam learning rate of the MSE pretraining stage (lr_g is the adversarial stage's)",
    shapesNetworks: false,
  },
  scale: {
    kind: 'int',
    default: 4,
    min: 2,
    max: 4,
    oneOf: [2, 4],
    help: 'upscaling factor: the low-resolution input is image_size / scale px (x2 pixel-shuffle blocks)',
  },
  blocks: { kind: 'int', default: 16, min: 1, max: 32, help: 'residual blocks of the generator' },
  base_filters: {
    kind: 'int',
    default: 64,
    min: 4,
    max: 512,
    help: "width: the generator's filters, and the first of the discriminator's (doubled every two convs)",
  },
  adv_weight: {
    kind: 'float',
    default: 1e-3,
    min: 0,
    max: 1,
    help: 'weight of the adversarial loss against the MSE content loss in the adversarial stage',
    shapesNetworks: false,
  },
};

/**
 * pix2pix (Isola et al., 2017) with the paper's settings: Adam 2e-4, beta1 0.5, L1 weight 100, a 70x70
 * PatchGAN (3 strided layers), dropout 0.5 in the three innermost decoder blocks.
 */
const PIX2PIX_PARAMS: Record<string, ParamDef> = {
  ...adamParams({ lr: 2e-4, beta1: 0.5, batch: 16 }),
  base_filters: {
    kind: 'int',
    default: 64,
    min: 4,
    max: 512,
    help: "width: filters of the U-Net's first conv and the PatchGAN's (doubled per level, at most 8x)",
  },
  l1_weight: {
    kind: 'float',
    default: 100,
    min: 0,
    max: 10000,
    help: 'weight of the L1 loss to B',
    shapesNetworks: false,
  },
  n_layers: {
    kind: 'int',
    default: 3,
    min: 1,
    max: 6,
    help: 'strided convs of the PatchGAN discriminator: 1, 2, 3, 4 = 16, 34, 70, 142 px receptive field',
  },
  dropout: {
    kind: 'float',
    default: 0.5,
    min: 0,
    max: 1,
    maxExclusive: true,
    help: "dropout of the U-Net's three innermost decoder blocks, its only noise (kept on at inference)",
    shapesNetworks: false,
  },
};

/**
 * TransGAN (Jiang et al., 2021) with its reference code's CIFAR-10 training settings (Adam 1e-4, beta1 0,
 * beta2 0.99, WGAN-GP with lambda 10 and the 0.001 drift term of its `wgangp-eps` loss, 4 critic updates
 * per generator update, 4 heads, MLP ratio 4, D patches of 4 px) at CPU scale: a generator of 2, 2, 1
 * blocks (reference 5, 4, 2) starting at 128 channels (1024), a 3-block discriminator of 64 (384), batch 32
 * (128/64), z of 128 (256-1024).
 */
const TRANSGAN_PARAMS: Record<string, ParamDef> = {
  ...adamParams({ lr: 1e-4, beta1: 0, batch: 32 }),
  beta2: { ...ADVERSARIAL_PARAMS.beta2!, default: 0.99 },
  latent_dim: { ...ADVERSARIAL_PARAMS.latent_dim!, default: 128 },
  g_embed_dim: {
    kind: 'int',
    default: 128,
    min: 128,
    max: 512,
    oneOf: [128, 256, 512],
    help: "width of the generator's first stage (side/4 tokens a side); each pixel-shuffle upsampling divides it by 4",
  },
  d_embed_dim: {
    kind: 'int',
    default: 64,
    min: 16,
    max: 512,
    oneOf: [16, 32, 64, 96, 128, 192, 256, 384, 512],
    help: "width of the discriminator's tokens",
  },
  g_depth_1: {
    kind: 'int',
    default: 2,
    min: 1,
    max: 12,
    help: 'generator blocks at side/4 (global attention)',
  },
  g_depth_2: {
    kind: 'int',
    default: 2,
    min: 0,
    max: 12,
    help: 'generator blocks at side/2 (attention within windows of side/4 tokens a side)',
  },
  g_depth_3: {
    kind: 'int',
    default: 1,
    min: 0,
    max: 12,
    help: 'generator blocks at the full side (attention within windows of side/4 tokens a side)',
  },
  d_depth: { kind: 'int', default: 3, min: 1, max: 12, help: 'discriminator blocks' },
  heads: {
    kind: 'int',
    default: 4,
    min: 1,
    max: 4,
    oneOf: [1, 2, 4],
    help: 'attention heads of every block',
    // Heads split the same projections: no tensor changes shape.
    shapesNetworks: false,
  },
  mlp_ratio: {
    kind: 'int',
    default: 4,
    min: 1,
    max: 8,
    help: "hidden width of each block's MLP, in block widths",
  },
  patch_size: {
    kind: 'int',
    default: 4,
    min: 2,
    max: 4,
    oneOf: [2, 4],
    help: "side of the discriminator's patches (one token each, plus the class token)",
  },
  n_critic: { ...WGAN_GP_PARAMS.n_critic!, default: 4 },
  gp_lambda: GP_LAMBDA,
  drift: PROGAN_PARAMS.drift!,
};

/** Sides of the DCGAN-shaped networks: 7 * 2^k and 4 * 2^k (k >= 1) up to 256. */
const DCGAN_SIDES = [8, 14, 16, 28, 32, 56, 64, 112, 128, 224, 256] as const;

export const FAMILIES = {
  dcgan: {
    params: ADVERSARIAL_PARAMS,
    critic: false,
    conditional: false,
    paired: false,
    staged: false,
    imageSides: DCGAN_SIDES,
    qualityMetrics: GENERATIVE_METRICS,
    input: 'noise',
    summary: 'DCGAN (Radford et al., 2016), non-saturating loss',
  },
  cgan: {
    params: ADVERSARIAL_PARAMS,
    critic: false,
    conditional: true,
    paired: false,
    staged: false,
    imageSides: DCGAN_SIDES,
    qualityMetrics: GENERATIVE_METRICS,
    input: 'noise',
    summary: 'conditional DCGAN with a projection discriminator (Miyato & Koyama, 2018)',
  },
  'wgan-gp': {
    params: WGAN_GP_PARAMS,
    critic: true,
    conditional: false,
    paired: false,
    staged: false,
    imageSides: DCGAN_SIDES,
    qualityMetrics: GENERATIVE_METRICS,
    input: 'noise',
    summary: 'WGAN with gradient penalty (Gulrajani et al., 2017)',
  },
  progan: {
    params: PROGAN_PARAMS,
    critic: true,
    conditional: false,
    paired: false,
    staged: true,
    imageSides: [4, 8, 16, 28, 32, 64, 128, 256],
    qualityMetrics: GENERATIVE_METRICS,
    input: 'noise',
    summary: 'progressive growing (Karras et al., 2018), stages as jobs',
  },
  srgan: {
    params: SRGAN_PARAMS,
    critic: false,
    conditional: false,
    paired: false,
    staged: true,
    phases: ['pretrain', 'adversarial'],
    // The high-resolution side; the input is side / scale (2 or 4) px.
    imageSides: [16, 28, 32, 56, 64, 112, 128, 224, 256],
    qualityMetrics: ['psnr', 'ssim', 'fld', 'psnr_bicubic', 'ssim_bicubic'],
    input: 'image',
    summary: 'SRGAN super-resolution (Ledig et al., 2017): MSE pretraining, then adversarial, stages as jobs',
  },
  pix2pix: {
    params: PIX2PIX_PARAMS,
    critic: false,
    conditional: false,
    paired: true,
    staged: false,
    // A 28 px set is padded to 32 (the U-Net halves the side down to 1 px).
    imageSides: [16, 28, 32, 64, 128, 256],
    qualityMetrics: ['l1', 'psnr', 'ssim', 'fld', 'class_accuracy', 'class_accuracy_real'],
    input: 'image',
    // The U-Net runs on the side padded to a power of two; the PatchGAN's strided convs must leave patches
    // of 4 px or more of it.
    paramLimits: (side) => ({ n_layers: Math.ceil(Math.log2(side)) - 2 }),
    summary: 'pix2pix image-to-image translation (Isola et al., 2017) on a paired set',
  },
  transgan: {
    params: TRANSGAN_PARAMS,
    critic: true,
    conditional: false,
    paired: false,
    staged: false,
    // The generator starts at side/4 tokens a side and doubles twice; D's patches (2 or 4 px) tile every one.
    imageSides: [16, 28, 32, 56, 64],
    qualityMetrics: GENERATIVE_METRICS,
    input: 'noise',
    summary: 'TransGAN (Jiang et al., 2021): transformer generator and ViT discriminator, WGAN-GP',
  },
} as const satisfies Record<string, FamilySpec>;

export type ModelName = keyof typeof FAMILIES;

/**
 * The quality metrics `model` reports, which a sweep can rank by: its family's evaluation, and for a
 * conditional family `aug_gain` (aug-gain.ts: a classifier's gain from its generated images).
 */
export function reportedQualityMetrics(model: ModelName): readonly string[] {
  const family: FamilySpec = FAMILIES[model];
  return family.conditional ? [...family.qualityMetrics, 'aug_gain'] : family.qualityMetrics;
}

/** Model families a sweep can train. */
export const MODEL_NAMES = Object.keys(FAMILIES) as ModelName[];

/** Hyperparameters per model (FAMILIES' params). */
export const MODEL_PARAMS = Object.fromEntries(MODEL_NAMES.map((m) => [m, FAMILIES[m].params])) as Record<
  ModelName,
  Record<string, ParamDef>
>;

/** The spec side of `model`. */
export function familySpec(model: ModelName): FamilySpec {
  return FAMILIES[model];
}
