import type { TrialJob } from '@gantry/shared';
import { type Dataset, padDataset } from './data/datasets.ts';
import { ProganTrainer, proganCanvas } from './progan-trainer.ts';
import { GanTrainer, type Trainer } from './trainer.ts';

/**
 * The training loop for a job's model: ProganTrainer for progan (on the data padded to its canvas),
 * GanTrainer for the others. Only one trainer may exist per process at a time (tfjs variable names are
 * global): dispose it before creating the next.
 */
export function createTrainer(job: TrialJob, data: Dataset, faultNanAtStep?: number): Trainer {
  if (job.model === 'progan')
    return new ProganTrainer(job, padDataset(data, proganCanvas(job.dataset.image_size)), faultNanAtStep);
  return new GanTrainer(job, data, faultNanAtStep);
}
