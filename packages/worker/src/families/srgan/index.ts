import type { Family } from '../family.ts';
import { SrganTrainer } from './trainer.ts';

/** SRGAN super-resolution (Ledig et al., 2017): MSE pretraining, then adversarial, one stage per job. */
export const srgan: Family = {
  name: 'srgan',
  createTrainer: (job, data, opts = {}) => new SrganTrainer(job, data, opts),
};
