import { wassersteinStep } from '../../training/wasserstein-step.ts';
import type { AdversarialUpdate } from '../dcgan/trainer.ts';

/**
 * WGAN-GP's step (Gulrajani et al., 2017, Algorithm 1): `n_critic` critic updates on the Wasserstein loss
 * with the gradient penalty (weight `gp_lambda`), then one generator update. The critic has no batch norm,
 * which would make each sample's score depend on the others and void the per-sample penalty.
 */
export const wassersteinUpdate: AdversarialUpdate = {
  critic: true,
  dUpdates: (p) => p.n_critic!,
  // The penalty adds D forward and backward on the mixed batch and the backward of that backward.
  extraDForwards: 5,
  step: (c) =>
    wassersteinStep({
      generate: (z) => c.nets.generate(z),
      critic: (x) => c.nets.discriminate(x),
      gVars: c.nets.g.vars,
      dVars: c.nets.d.vars,
      optG: c.optG,
      optD: c.optD,
      realBatch: () => c.realBatch().x,
      noise: () => c.noise(),
      rng: c.rng,
      nCritic: c.params.n_critic!,
      gpLambda: c.params.gp_lambda!,
      augment: c.augment,
      // transgan's `drift` (the eps term of TransGAN's loss); wgan-gp has none.
      drift: c.params.drift ?? 0,
    }),
};
