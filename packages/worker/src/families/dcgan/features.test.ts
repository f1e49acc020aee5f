import { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend.ts';
import { buildDcgan } from './networks.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

describe("D's features", () => {
  it('are what its last linear layer reads: D(x) = features(x) W + b (+ the projection for cGAN)', () => {
    const nets = buildDcgan(
      { height: 28, width: 28, channels: 1, latentDim: 4, baseFilters: 4, numClasses: 3 },
      new Rng(5),
    );
    try {
      tf.tidy(() => {
        const x = tf.tensor4d(new Rng(6).fillNormal(new Float32Array(5 * 784)), [5, 28, 28, 1]);
        const y = tf.cast(tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1], 'int32'), 3), 'float32') as tf.Tensor2D;
        const f = nets.features(x);
        expect(f.shape).toEqual([5, 7 * 7 * 8]);
        const fc = tf.reshape(tf.add(tf.matMul(f, nets.d.get('fc/w')), nets.d.get('fc/b')), [5]);
        const projection = tf.sum(tf.mul(f, tf.matMul(y, nets.d.get('embed'))), 1);
        const want = tf.add(fc, projection).dataSync();
        const got = nets.discriminate(x, y).dataSync();
        for (let i = 0; i < 5; i++) expect(got[i]).toBeCloseTo(want[i]!, 5);
      });
    } finally {
      nets.dispose();
    }
  });
});
