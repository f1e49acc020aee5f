import { Rng } from '@gantry/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.ts';
import { columnMoments, fitLinearProbe, type LabelledFeatures, probeAccuracy } from './linear-probe.ts';

/** `perClass` points per class around class means `spread` apart in `dim` dimensions (unit noise). */
function blobs(
  seed: number,
  classes: number,
  perClass: number,
  dim: number,
  spread: number,
): LabelledFeatures {
  const centres = new Rng(1000 + dim).fillNormal(new Float32Array(classes * dim));
  const rng = new Rng(seed);
  const count = classes * perClass;
  const features = new Float32Array(count * dim);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % classes;
    labels[i] = c;
    for (let j = 0; j < dim; j++) features[i * dim + j] = spread * centres[c * dim + j]! + rng.normal();
  }
  return { features, labels, count, dim };
}

/**
 * The gradient of the probe's objective in float64, written out on its own: mean cross-entropy of
 * softmax(x W + b) over the standardised features, + l2 / 2 |W|^2.
 */
function gradient64(
  data: LabelledFeatures,
  k: number,
  w: Float32Array,
  b: Float32Array,
  l2: number,
): number[] {
  const { count: n, dim } = data;
  const { mean, std } = columnMoments(data.features, n, dim);
  const g = new Float64Array(dim * k + k);
  for (let i = 0; i < n; i++) {
    const x = Array.from({ length: dim }, (_, j) => (data.features[i * dim + j]! - mean[j]!) / std[j]!);
    const z = Array.from({ length: k }, (_, c) => b[c]! + x.reduce((s, xj, j) => s + xj * w[j * k + c]!, 0));
    const top = Math.max(...z);
    const e = z.map((v) => Math.exp(v - top));
    const sum = e.reduce((s, v) => s + v, 0);
    for (let c = 0; c < k; c++) {
      const r = e[c]! / sum - (data.labels[i] === c ? 1 : 0);
      for (let j = 0; j < dim; j++) g[j * k + c]! += (x[j]! * r) / n;
      g[dim * k + c]! += r / n;
    }
  }
  for (let j = 0; j < dim * k; j++) g[j]! += l2 * w[j]!;
  return Array.from(g);
}

const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

beforeAll(async () => {
  await initBackend('cpu');
});

describe('fitLinearProbe', () => {
  it('reaches the regularised optimum: the float64 gradient there is ~0 (overlapping classes)', () => {
    const data = blobs(1, 3, 30, 6, 0.6);
    const l2 = 0.05;
    const probe = fitLinearProbe(data, 3, { l2, iterations: 600, lr: 0.1 });
    const atZero = norm(gradient64(data, 3, new Float32Array(18), new Float32Array(3), l2));
    const atFit = norm(gradient64(data, 3, probe.weights, probe.bias, l2));
    expect(atFit).toBeLessThan(1e-3 * atZero);
    expect(probe.losses.at(-1)!).toBeLessThan(probe.losses[0]!);
    // Not separable: the optimum does not classify every training point.
    expect(probeAccuracy(probe, data)).toBeLessThan(1);
  });

  it('separates separable classes on held-out points, and finds nothing in random labels', () => {
    const train = blobs(2, 4, 10, 20, 3);
    const test = blobs(3, 4, 100, 20, 3);
    expect(probeAccuracy(fitLinearProbe(train, 4), test)).toBe(1);
    const shuffled = { ...train, labels: Int32Array.from(train.labels, (_, i) => new Rng(i).int(4)) };
    expect(probeAccuracy(fitLinearProbe(shuffled, 4), test)).toBeLessThan(0.6);
  });

  it('standardises by the training set and keeps constant features harmless', () => {
    const data = blobs(4, 2, 20, 3, 6);
    for (let i = 0; i < data.count; i++) data.features[i * 3 + 2] = 5;
    const { mean, std } = columnMoments(data.features, data.count, 3);
    expect([mean[2], std[2]]).toEqual([5, 1]);
    const probe = fitLinearProbe(data, 2);
    expect(probe.weights.every(Number.isFinite)).toBe(true);
    expect(probeAccuracy(probe, data)).toBeGreaterThan(0.9);
  });
});
