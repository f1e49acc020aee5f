import type { Family } from '../family.ts';
import { GanTrainer, nonSaturatingUpdate } from './trainer.ts';

/** DCGAN (Radford et al., 2016): networks.ts, the non-saturating loss, Adam. */
export const dcgan: Family = {
  name: 'dcgan',
  createTrainer: (job, data, opts = {}) =>
    new GanTrainer(job, data, { ...opts, conditional: false, update: nonSaturatingUpdate }),
};
