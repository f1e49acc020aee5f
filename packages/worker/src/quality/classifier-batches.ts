import type { Rng } from '@gantry/shared';
import type { Dataset } from '../data/datasets.ts';

/**
 * How a batch draws its images: `natural` shuffles the train split each epoch; `sqrt` and `balanced`
 * draw each image's class with probability proportional to sqrt(class size) (Mahajan et al., 2018) or
 * uniformly, then an image of that class, `count / batch` batches an epoch.
 */
export type ClassSampling = 'natural' | 'sqrt' | 'balanced';

/** A random shift (dy, dx) and flip of one training image. */
export interface Augmentation {
  dy: number;
  dx: number;
  flip: boolean;
}

/**
 * Writes image `j` of `data`, flipped left-right when `a.flip`, then shifted by (dy, dx) pixels, to `out`
 * at `o`; `background` fills what moves in.
 */
export function augmented(
  data: Dataset,
  j: number,
  a: Augmentation,
  background: number,
  out: Float32Array,
  o: number,
): void {
  const { height: h, width: w, channels: c, images: src } = data;
  const base = j * h * w * c;
  for (let y = 0; y < h; y++) {
    const sy = y - a.dy;
    for (let x = 0; x < w; x++) {
      const shifted = x - a.dx;
      const sx = a.flip ? w - 1 - shifted : shifted;
      const inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
      const d = o + (y * w + x) * c;
      const s = base + (sy * w + sx) * c;
      for (let k = 0; k < c; k++) out[d + k] = inside ? (src[s + k] as number) : background;
    }
  }
}

/**
 * The train-split indices of each batch of one epoch, drawn as `sampling` says. `natural` keeps the
 * original order of draws (shuffle, then per image the shift), so the committed MNIST classifiers retrain
 * exactly; the others draw a class from `classCdf`, then an image of it.
 */
export class BatchSampler {
  private readonly order: Int32Array;
  private readonly byClass: Int32Array[];
  private readonly classCdf: Float64Array;

  constructor(
    train: Dataset,
    private readonly sampling: ClassSampling,
    private readonly rng: Rng,
  ) {
    this.order = Int32Array.from({ length: train.count }, (_, i) => i);
    const members: number[][] = Array.from({ length: Math.max(1, train.numClasses) }, () => []);
    for (let i = 0; i < train.count; i++) members[train.labels[i]!]!.push(i);
    this.byClass = members.map((m) => Int32Array.from(m));
    const weight = this.byClass.map((m) =>
      m.length === 0 ? 0 : sampling === 'sqrt' ? Math.sqrt(m.length) : 1,
    );
    const total = weight.reduce((a, b) => a + b, 0);
    let acc = 0;
    this.classCdf = Float64Array.from(weight, (v) => {
      acc += v / total;
      return acc;
    });
  }

  /** Starts an epoch: a fresh shuffle for `natural` sampling. */
  startEpoch(): void {
    if (this.sampling !== 'natural') return;
    const order = this.order;
    for (let i = order.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
  }

  /** Train-split index of image `i` of batch `b` of this epoch. */
  pick(b: number, i: number, batch: number): number {
    if (this.sampling === 'natural') return this.order[b * batch + i]!;
    const u = this.rng.uniform();
    let k = 0;
    while (k < this.classCdf.length - 1 && u >= this.classCdf[k]!) k += 1;
    const m = this.byClass[k]!;
    return m[this.rng.int(m.length)]!;
  }
}

/**
 * Rotates the square `size` x `size` image of `c` channels at `o` in `buf` by `k` quarter turns
 * counter-clockwise, in place: rotation prediction's inputs (Gidaris et al., 2018).
 */
export function rotateQuarter(buf: Float32Array, o: number, size: number, c: number, k: number): void {
  const turns = ((k % 4) + 4) % 4;
  if (turns === 0) return;
  const src = buf.slice(o, o + size * size * c);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // Destination (y, x) takes the source pixel that a turn of `turns` quarters brings there.
      const [sy, sx] =
        turns === 1 ? [x, size - 1 - y] : turns === 2 ? [size - 1 - y, size - 1 - x] : [size - 1 - x, y];
      for (let ch = 0; ch < c; ch++) buf[o + (y * size + x) * c + ch] = src[(sy * size + sx) * c + ch]!;
    }
  }
}

/** The rotation-prediction view of a split: image i turned by i mod 4 quarters, labelled i mod 4. */
export function rotatedSplit(data: Dataset): Dataset {
  const px = data.height * data.width * data.channels;
  const images = data.images.slice();
  const labels = new Uint8Array(data.count);
  for (let i = 0; i < data.count; i++) {
    rotateQuarter(images, i * px, data.height, data.channels, i % 4);
    labels[i] = i % 4;
  }
  return { ...data, images, labels, numClasses: 4, classNames: ROTATIONS };
}

/** The classes of rotation prediction. */
export const ROTATIONS: readonly string[] = ['0 deg', '90 deg', '180 deg', '270 deg'];
