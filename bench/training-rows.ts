/**
 * The bench's training rows: each family at the size it is measured at, and the PyTorch script (with its
 * options) that builds the same networks from the same numbers. The sizes are the constants below and the
 * families' defaults (MODEL_PARAMS), passed to PyTorch explicitly.
 */
import { jobStage, MODEL_PARAMS, type ModelName, type StageSpec } from '../packages/shared/src/index.ts';
import type { CompiledRow, TrainingRowKey } from './args.ts';
import type { TrainingRow } from './compare-training.ts';

/** DCGAN, both networks: the trial's batch, width and latent size (the families' defaults). */
const DCGAN = { batch_size: 64, base_filters: 64, latent_dim: 100 };
/**
 * SRGAN x4 at 64 px (16 px inputs), the sizes of the README's SRGAN measurements: 8 residual blocks of 32
 * filters, batch 16 (the paper's 16 blocks of 64 are 4-5x the work per image).
 */
const SRGAN = { side: 64, params: { scale: 4, blocks: 8, base_filters: 32, batch_size: 16 } };
/** pix2pix on 64 px pairs (a U-Net of 6 levels, the 70 px PatchGAN), at half the paper's width; batch 8. */
const PIX2PIX = { side: 64, params: { base_filters: 32, n_layers: 3, batch_size: 8 } };
/** ProGAN: the family's widths (64 at 4x4 and 8x8, halved per doubling after) and latent, stages of batch 32. */
const PROGAN_BATCH = 32;

/** A family's default for `name`. */
const def = (model: ModelName, name: string): number => MODEL_PARAMS[model][name]!.default;

type RowBase = Omit<TrainingRow, 'steps' | 'warmup'>;

function dcganRow(net: { dataset: string; size: number; channels: 1 | 3 }): RowBase {
  const { batch_size, base_filters, latent_dim } = DCGAN;
  return {
    title: `DCGAN ${net.size}x${net.size}x${net.channels} (${net.dataset}), batch ${batch_size}, base_filters ${base_filters}, latent ${latent_dim}`,
    model: 'dcgan',
    dataset: net.dataset,
    image: { size: net.size, channels: net.channels },
    params: DCGAN,
    pytorch: {
      script: 'dcgan_pytorch.py',
      args: { latent: latent_dim, filters: base_filters, size: net.size, channels: net.channels },
    },
  };
}

/** WGAN-GP at the family's defaults (n_critic 5, lambda 10, Adam 1e-4, 0, 0.9) on Fashion-MNIST. */
function wganGpRow(): RowBase {
  const m = 'wgan-gp';
  const p = {
    batch_size: def(m, 'batch_size'),
    base_filters: def(m, 'base_filters'),
    latent_dim: def(m, 'latent_dim'),
  };
  return {
    title: `WGAN-GP 28x28x1 (fashion-mnist), batch ${p.batch_size}, base_filters ${p.base_filters}, latent ${p.latent_dim}, n_critic ${def(m, 'n_critic')}, gradient penalty ${def(m, 'gp_lambda')}`,
    model: m,
    dataset: 'fashion-mnist',
    image: { size: 28, channels: 1 },
    params: p,
    pytorch: {
      script: 'wgan_gp_pytorch.py',
      args: {
        latent: p.latent_dim,
        filters: p.base_filters,
        size: 28,
        channels: 1,
        'n-critic': def(m, 'n_critic'),
        'gp-lambda': def(m, 'gp_lambda'),
        lr: def(m, 'lr_d'),
        beta1: def(m, 'beta1'),
        beta2: def(m, 'beta2'),
      },
    },
  };
}

/**
 * A ProGAN stage at `resolution` in its stable phase (fade_steps 0: alpha 1, both fade-in paths still
 * computed), after the stages below it, at the family's defaults: Fashion-MNIST padded to 32 for 32,
 * emoji for 64.
 */
function proganRow(resolution: 32 | 64): RowBase {
  const m = 'progan';
  const net =
    resolution === 32
      ? { dataset: 'fashion-mnist', size: 28, channels: 1 as const }
      : { dataset: 'emoji', size: 64, channels: 3 as const };
  const p = {
    base_filters: def(m, 'base_filters'),
    latent_dim: def(m, 'latent_dim'),
    batch_size: PROGAN_BATCH,
  };
  const stages: StageSpec[] = [];
  for (let r = 4; r <= resolution; r *= 2)
    stages.push({ resolution: r, fade_steps: 0, stable_steps: 100_000, batch_size: PROGAN_BATCH });
  return {
    title: `ProGAN ${resolution}x${resolution}x${net.channels} stage (${net.dataset}), stable phase, batch ${PROGAN_BATCH}, base_filters ${p.base_filters}, latent ${p.latent_dim}`,
    model: m,
    dataset: net.dataset,
    image: { size: net.size, channels: net.channels },
    params: p,
    stage: jobStage(stages, stages.length - 1, p),
    pytorch: {
      script: 'progan_pytorch.py',
      args: {
        resolution,
        channels: net.channels,
        latent: p.latent_dim,
        filters: p.base_filters,
        'n-critic': def(m, 'n_critic'),
        'gp-lambda': def(m, 'gp_lambda'),
        drift: def(m, 'drift'),
        'ema-decay': def(m, 'ema_decay'),
        lr: def(m, 'lr_d'),
        beta1: def(m, 'beta1'),
        beta2: def(m, 'beta2'),
      },
    },
  };
}

/** SRGAN's stage 0 (G alone on the MSE) or stage 1 (adversarial), each trained from scratch. */
function srganRow(phase: 'pretrain' | 'adversarial'): RowBase {
  const { side, params: p } = SRGAN;
  const stages: StageSpec[] = (['pretrain', 'adversarial'] as const).map((ph) => ({
    phase: ph,
    fade_steps: 0,
    stable_steps: 100_000,
    batch_size: p.batch_size,
  }));
  return {
    title: `SRGAN x${p.scale} ${side / p.scale}->${side}x3 (emoji), ${phase === 'pretrain' ? 'pretrain stage (G alone)' : 'adversarial stage'}, batch ${p.batch_size}, blocks ${p.blocks}, base_filters ${p.base_filters}`,
    model: 'srgan',
    dataset: 'emoji',
    image: { size: side, channels: 3 },
    params: p,
    stage: jobStage(stages, phase === 'pretrain' ? 0 : 1, p),
    pytorch: {
      script: 'srgan_pytorch.py',
      args: {
        stage: phase,
        size: side,
        scale: p.scale,
        channels: 3,
        blocks: p.blocks,
        filters: p.base_filters,
        'adv-weight': def('srgan', 'adv_weight'),
      },
    },
  };
}

function pix2pixRow(): RowBase {
  const { side, params: p } = PIX2PIX;
  // The family's defaults, passed to PyTorch too.
  const defaults = { dropout: def('pix2pix', 'dropout'), l1_weight: def('pix2pix', 'l1_weight') };
  return {
    title: `pix2pix ${side}x${side}x3 (emoji-google2twitter), batch ${p.batch_size}, base_filters ${p.base_filters}, n_layers ${p.n_layers}`,
    model: 'pix2pix',
    dataset: 'emoji-google2twitter',
    image: { size: side, channels: 3 },
    params: { ...p, ...defaults },
    pytorch: {
      script: 'pix2pix_pytorch.py',
      args: {
        size: side,
        channels: 3,
        filters: p.base_filters,
        'n-layers': p.n_layers,
        dropout: defaults.dropout,
        'l1-weight': defaults.l1_weight,
      },
    },
  };
}

/** TransGAN at the family's defaults on Fashion-MNIST (bench/transgan_pytorch.py builds the same). */
function transganRow(): RowBase {
  const m = 'transgan';
  const names = [
    'batch_size',
    'latent_dim',
    'g_embed_dim',
    'd_embed_dim',
    'g_depth_1',
    'g_depth_2',
    'g_depth_3',
    'd_depth',
    'heads',
    'mlp_ratio',
    'patch_size',
    'n_critic',
    'gp_lambda',
    'drift',
  ];
  const p = Object.fromEntries(names.map((n) => [n, def(m, n)]));
  return {
    title: `TransGAN 28x28x1 (fashion-mnist), batch ${p.batch_size}, G ${p.g_embed_dim} wide, depths ${p.g_depth_1}/${p.g_depth_2}/${p.g_depth_3}, D ${p.d_embed_dim} wide, depth ${p.d_depth}, n_critic ${p.n_critic}`,
    model: m,
    dataset: 'fashion-mnist',
    image: { size: 28, channels: 1 },
    params: p,
    pytorch: {
      script: 'transgan_pytorch.py',
      args: {
        size: 28,
        channels: 1,
        latent: p.latent_dim!,
        'g-embed': p.g_embed_dim!,
        'd-embed': p.d_embed_dim!,
        'g-depths': [p.g_depth_1, p.g_depth_2, p.g_depth_3].join(','),
        'd-depth': p.d_depth!,
        heads: p.heads!,
        'mlp-ratio': p.mlp_ratio!,
        patch: p.patch_size!,
        'n-critic': p.n_critic!,
        'gp-lambda': p.gp_lambda!,
        drift: p.drift!,
        lr: def(m, 'lr_d'),
      },
    },
  };
}

const ROWS: Record<TrainingRowKey, () => RowBase> = {
  dcgan_28: () => dcganRow({ dataset: 'fashion-mnist', size: 28, channels: 1 }),
  dcgan_64: () => dcganRow({ dataset: 'emoji', size: 64, channels: 3 }),
  wgan_gp: wganGpRow,
  progan_32: () => proganRow(32),
  progan_64: () => proganRow(64),
  srgan_adversarial: () => srganRow('adversarial'),
  srgan_pretrain: () => srganRow('pretrain'),
  pix2pix: pix2pixRow,
  transgan: transganRow,
};

/** The compiled row's network, with its steps per repeat and warm-up. */
export function trainingRow(row: CompiledRow): TrainingRow {
  return { ...ROWS[row.key](), steps: row.steps, warmup: row.warmup };
}
