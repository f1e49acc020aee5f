import { padDataset } from '../../data/datasets.ts';
import type { Family } from '../family.ts';
import { ProganTrainer, proganCanvas } from './trainer.ts';

/** Progressive growing (Karras et al., 2018): one stage per job, on the images padded to a power of two. */
export const progan: Family = {
  name: 'progan',
  createTrainer: (job, data, opts = {}) =>
    new ProganTrainer(job, padDataset(data, proganCanvas(job.dataset.image_size)), opts),
};
