import type { Family } from '../family.ts';
import { Pix2pixTrainer } from './trainer.ts';

/** pix2pix image-to-image translation (Isola et al., 2017) on a paired set. */
export const pix2pix: Family = {
  name: 'pix2pix',
  createTrainer: (job, data, opts = {}) => new Pix2pixTrainer(job, data, opts),
};
