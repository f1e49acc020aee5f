import { Rng } from '@gantry/shared';
import { type Dataset, FASHION_MNIST_CLASSES } from '../data/datasets.ts';

/** Random 28x28 images in [-1, 1] with random labels: exercises training without loading a file. */
export function fakeDataset(seed = 7, count = 256): Dataset {
  const rng = new Rng(seed);
  return {
    name: 'fashion-mnist',
    images: Float32Array.from({ length: count * 784 }, () => rng.uniform() * 2 - 1),
    labels: Uint8Array.from({ length: count }, () => rng.int(10)),
    count,
    height: 28,
    width: 28,
    channels: 1,
    numClasses: 10,
    classNames: FASHION_MNIST_CLASSES,
  };
}
