import { GanTrainer } from '../dcgan/trainer.ts';
import type { Family } from '../family.ts';
import { wassersteinUpdate } from './update.ts';

/** WGAN-GP: DCGAN's generator, a critic without batch norm, the Wasserstein loss with gradient penalty. */
export const wganGp: Family = {
  name: 'wgan-gp',
  createTrainer: (job, data, opts = {}) =>
    new GanTrainer(job, data, { ...opts, conditional: false, update: wassersteinUpdate }),
};
