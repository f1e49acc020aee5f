import type { Dataset } from '../data/datasets.ts';

/** Per-class counts of a labelled set. */
export function classCounts(data: Pick<Dataset, 'labels' | 'count' | 'numClasses'>): number[] {
  const counts = new Array<number>(data.numClasses).fill(0);
  for (let i = 0; i < data.count; i++) counts[data.labels[i]!]! += 1;
  return counts;
}

/** The first `perClass` images of each class of `data`, in stored order (as `subset_per_class` picks). */
export function firstPerClass(data: Dataset, perClass: number): Dataset {
  const px = data.height * data.width * data.channels;
  const seen = new Array<number>(data.numClasses).fill(0);
  const keep: number[] = [];
  for (let i = 0; i < data.count; i++) {
    const label = data.labels[i]!;
    if (seen[label]! >= perClass) continue;
    seen[label]! += 1;
    keep.push(i);
  }
  if (keep.length === data.count) return data;
  const images = new Float32Array(keep.length * px);
  const labels = new Uint8Array(keep.length);
  keep.forEach((from, i) => {
    images.set(data.images.subarray(from * px, (from + 1) * px), i * px);
    labels[i] = data.labels[from]!;
  });
  const { imagesB: _b, ...rest } = data;
  return { ...rest, images, labels, count: keep.length };
}

/** `a` followed by `b`: two labelled sets of the same shape and classes as one. */
export function concatSets(a: Dataset, b: Dataset): Dataset {
  if (a.height !== b.height || a.width !== b.width || a.channels !== b.channels)
    throw new RangeError(
      `cannot join ${a.height}x${a.width}x${a.channels} images with ${b.height}x${b.width}x${b.channels}`,
    );
  const images = new Float32Array(a.images.length + b.images.length);
  images.set(a.images);
  images.set(b.images, a.images.length);
  const labels = new Uint8Array(a.count + b.count);
  labels.set(a.labels);
  labels.set(b.labels, a.count);
  const { imagesB: _b, ...rest } = a;
  return { ...rest, images, labels, count: a.count + b.count };
}
