import { Rng } from '@gantry/shared';
import type { Dataset } from '../data/datasets.ts';

/**
 * Random 28x28 images in [-1, 1] with random labels of 10 classes: exercises training without a data set;
 * `paired` adds a random B image to each.
 */
export function fakeDataset(seed = 7, count = 256, paired = false): Dataset {
  const rng = new Rng(seed);
  const random = () => Float32Array.from({ length: count * 784 }, () => rng.uniform() * 2 - 1);
  return {
    name: 'fake',
    images: random(),
    ...(paired ? { imagesB: random() } : {}),
    labels: Uint8Array.from({ length: count }, () => rng.int(10)),
    count,
    height: 28,
    width: 28,
    channels: 1,
    numClasses: 10,
    classNames: Array.from({ length: 10 }, (_, i) => `class ${i}`),
  };
}
