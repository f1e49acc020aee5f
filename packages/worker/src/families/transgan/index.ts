import { GanTrainer } from '../dcgan/trainer.ts';
import type { Family } from '../family.ts';
import { wassersteinUpdate } from '../wgan-gp/update.ts';
import { buildTransgan, type TransganShape, transganFlopsPerImage } from './networks.ts';

/** The networks of a transgan job at its data's size, from its parameters. */
export function transganShape(
  params: Record<string, number>,
  data: { height: number; channels: number },
): TransganShape {
  return {
    side: data.height,
    channels: data.channels,
    latentDim: params.latent_dim!,
    gEmbed: params.g_embed_dim!,
    dEmbed: params.d_embed_dim!,
    gDepths: [params.g_depth_1!, params.g_depth_2!, params.g_depth_3!],
    dDepth: params.d_depth!,
    heads: params.heads!,
    mlpRatio: params.mlp_ratio!,
    patch: params.patch_size!,
  };
}

/**
 * TransGAN (Jiang et al., 2021): a transformer generator and a ViT critic (networks.ts), trained as its
 * reference code trains on CIFAR-10, WGAN-GP with a drift term (`n_critic` critic updates per generator
 * update), by the DCGAN-shaped trainer with its own networks.
 */
export const transgan: Family = {
  name: 'transgan',
  createTrainer: (job, data, opts = {}) => {
    if (data.height !== data.width)
      throw new RangeError(`transgan needs square images, got ${data.height}x${data.width}`);
    return new GanTrainer(job, data, {
      ...opts,
      conditional: false,
      update: wassersteinUpdate,
      networks: (j, d, rng) => {
        const nets = buildTransgan(transganShape(j.params, d), rng);
        return { nets, flopsPerImage: transganFlopsPerImage(nets.shape) };
      },
    });
  },
};
