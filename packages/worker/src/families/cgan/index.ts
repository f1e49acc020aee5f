import { GanTrainer, nonSaturatingUpdate } from '../dcgan/trainer.ts';
import type { Family } from '../family.ts';

/**
 * cGAN (Mirza & Osindero, 2014): DCGAN's networks with the one-hot label concatenated to z in G and a
 * projection discriminator (Miyato & Koyama, 2018); sample grids show one class per row.
 */
export const cgan: Family = {
  name: 'cgan',
  createTrainer: (job, data, opts = {}) =>
    new GanTrainer(job, data, { ...opts, conditional: true, update: nonSaturatingUpdate }),
};
