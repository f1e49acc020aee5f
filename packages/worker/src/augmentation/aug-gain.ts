import type { AugGainConfig } from '@gantry/shared';
import type { Dataset } from '../data/datasets.ts';
import { type ConditionalGenerator, runAugmentationProtocol } from './protocol.ts';

export interface AugGainOptions {
  generator: ConditionalGenerator;
  /** The trial's train split: its K real images per class (dataset.subset_per_class). */
  train: Dataset;
  /** The whole test split. */
  test: Dataset;
  realPerClass: number;
  config: AugGainConfig;
  say?: (line: string) => void;
}

/**
 * The sweep metric `aug_gain` of a trial's generator (README, "GAN data augmentation"): the protocol's
 * gain, mean(accuracy with M generated per class) - mean(accuracy with the K real ones alone), over the
 * spec's seeds. Minutes of classifier training: the trainer process measures it at the last evaluation only.
 */
export async function measureAugGain(o: AugGainOptions): Promise<number> {
  const r = await runAugmentationProtocol({
    generator: o.generator,
    train: o.train,
    test: o.test,
    realPerClass: o.realPerClass,
    syntheticPerClass: [o.config.synthetic_per_class],
    seeds: o.config.seeds,
    steps: o.config.classifier_steps,
    onProgress: (p) => o.say?.(`aug_gain: seed ${p.seed} of ${p.seeds}, ${p.arm}`),
  });
  const arm = r.augmented[0]!;
  o.say?.(
    `aug_gain ${arm.gain.toFixed(4)}: accuracy ${r.real.mean.toFixed(4)} real only, ${arm.accuracy.mean.toFixed(4)} with ${arm.synthetic_per_class} generated per class (${r.seconds} s)`,
  );
  return arm.gain;
}
