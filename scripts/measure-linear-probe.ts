/**
 * The figures of README's "The discriminator as a feature extractor": trains a dcgan on Fashion-MNIST's
 * train split in this process (wasm), as a worker trains a trial, then fits a linear probe
 * (packages/worker/src/quality/linear-probe.ts) on K labelled train images per class, over several seeds
 * of which K, and tests it on the whole test split, on: the trained D's features (its activations before
 * the last linear layer), a randomly initialised D's (same architecture), and the raw pixels.
 *
 *   tsx scripts/measure-linear-probe.ts [--steps 1500] [--filters 32] [--batch 64] [--k 10,100]
 *       [--seeds 5] [--iterations 500] [--l2 0.01] [--lr 0.01] [--json /tmp/measure-linear-probe.json]
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { MODEL_PARAMS, parseTrialJob, Rng } from '../packages/shared/src/index.ts';
import { initBackend } from '../packages/worker/src/backend.ts';
import type { Dataset } from '../packages/worker/src/data/datasets.ts';
import { buildDcgan, type GanNetworks } from '../packages/worker/src/families/dcgan/networks.ts';
import type { GanTrainer } from '../packages/worker/src/families/dcgan/trainer.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import {
  fitLinearProbe,
  type LabelledFeatures,
  probeAccuracy,
} from '../packages/worker/src/quality/linear-probe.ts';
import { extractFeatures } from '../packages/worker/src/quality/network-features.ts';
import { loadBuiltinSplit } from './builtin-dataset.ts';

const { values: a } = parseArgs({
  options: {
    steps: { type: 'string', default: '1500' },
    filters: { type: 'string', default: '32' },
    batch: { type: 'string', default: '64' },
    k: { type: 'string', default: '10,100' },
    seeds: { type: 'string', default: '5' },
    iterations: { type: 'string', default: '500' },
    l2: { type: 'string', default: '0.01' },
    lr: { type: 'string', default: '0.01' },
    json: { type: 'string', default: '/tmp/measure-linear-probe.json' },
  },
});
const say = (s: string) => process.stdout.write(`${s}\n`);
const ks = a.k.split(',').map(Number);
const seeds = Number(a.seeds);
const steps = Number(a.steps);
const probeOpts = { iterations: Number(a.iterations), l2: Number(a.l2), lr: Number(a.lr) };
/** D's batch norms normalise by the batch: features are taken in fixed batches of this many images. */
const FEATURE_BATCH = 500;

const backend = await initBackend('wasm');
const train = await loadBuiltinSplit('fashion-mnist', 'train');
const test = await loadBuiltinSplit('fashion-mnist', 'test');
const px = train.height * train.width * train.channels;
const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS.dcgan).map(([k, d]) => [k, d.default]));
const params: Record<string, number> = {
  ...defaults,
  base_filters: Number(a.filters),
  batch_size: Number(a.batch),
};
say(
  `measure-linear-probe: dcgan on fashion-mnist, ${JSON.stringify(params)}, ${steps} steps; probe ${JSON.stringify(probeOpts)}, K = ${ks.join(', ')} per class, ${seeds} seeds; ${backend.device}`,
);

// Per seed, the first K of each class in a seeded shuffle of the train split (the K = 10 sets inside the
// K = 100 ones); features are taken once for the union of every seed's largest set.
const kMax = Math.max(...ks);
const chosen = Array.from({ length: seeds }, (_, s) => {
  const order = Array.from({ length: train.count }, (_, i) => i);
  const rng = new Rng(100 + s);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const taken = new Map<number, number[]>();
  for (const i of order) {
    const c = train.labels[i]!;
    const list = taken.get(c) ?? [];
    if (list.length < kMax) list.push(i);
    taken.set(c, list);
  }
  return taken;
});
const pool = [...new Set(chosen.flatMap((t) => [...t.values()].flat()))].sort((x, y) => x - y);
const poolAt = new Map(pool.map((i, row) => [i, row]));
const poolImages = new Float32Array(pool.length * px);
for (const [row, i] of pool.entries()) poolImages.set(train.images.subarray(i * px, (i + 1) * px), row * px);

/** Rows of `features` [n, dim] for the train images `idx` (of the pool), labelled. */
function subset(features: Float32Array, dim: number, idx: number[]): LabelledFeatures {
  const out = new Float32Array(idx.length * dim);
  for (const [r, i] of idx.entries()) {
    const row = poolAt.get(i)!;
    out.set(features.subarray(row * dim, (row + 1) * dim), r * dim);
  }
  return { features: out, labels: idx.map((i) => train.labels[i]!), count: idx.length, dim };
}

/** D's features of `count` images, in fixed batches. */
async function featuresOf(nets: GanNetworks, images: Float32Array, count: number) {
  const { features, dim } = await extractFeatures(nets, images, count, train, FEATURE_BATCH);
  return { data: features, dim };
}

interface Row {
  features: string;
  dim: number;
  k: number;
  accuracies: number[];
  mean: number;
  sd: number;
}
const rows: Row[] = [];

function probeAll(name: string, trainFeatures: Float32Array, dim: number, testFeatures: Float32Array): void {
  const testSet: LabelledFeatures = { features: testFeatures, labels: test.labels, count: test.count, dim };
  for (const k of ks) {
    const accuracies = chosen.map((taken) => {
      const idx = [...taken.values()].flatMap((list) => list.slice(0, k));
      const t0 = performance.now();
      const probe = fitLinearProbe(subset(trainFeatures, dim, idx), train.numClasses, probeOpts);
      const acc = probeAccuracy(probe, testSet);
      say(`  ${name} K=${k}: ${(100 * acc).toFixed(2)}% (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      return acc;
    });
    const mean = accuracies.reduce((s, v) => s + v, 0) / accuracies.length;
    const sd = Math.sqrt(
      accuracies.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(1, accuracies.length - 1),
    );
    rows.push({ features: name, dim, k, accuracies, mean, sd });
  }
}

const job = parseTrialJob({
  v: 2,
  sweepId: 'measure',
  trialId: 'measure-t000',
  index: 0,
  model: 'dcgan',
  dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
  seed: 11,
  steps,
  checkpointEvery: steps,
  params,
});
const trainer = familyOf('dcgan').createTrainer(job, train as Dataset) as GanTrainer;
const t0 = performance.now();
while (trainer.step < steps) {
  const s = trainer.trainStep();
  if (s.step % 250 === 0)
    say(
      `  dcgan step ${s.step}: d ${s.d_loss.toFixed(3)} g ${s.g_loss.toFixed(3)} (${((performance.now() - t0) / s.step).toFixed(0)} ms/step)`,
    );
  if (s.step % 10 === 0) await new Promise((r) => setImmediate(r));
}
const ganSeconds = (performance.now() - t0) / 1000;
const nets = trainer.nets as GanNetworks;
const trained = await featuresOf(nets, poolImages, pool.length);
const trainedTest = await featuresOf(nets, test.images, test.count);
trainer.dispose();
probeAll('trained D', trained.data, trained.dim, trainedTest.data);

// The same architecture, freshly initialised (one trainer's variables at a time: the trained ones are gone).
const random = buildDcgan(
  {
    height: 28,
    width: 28,
    channels: 1,
    latentDim: params.latent_dim!,
    baseFilters: params.base_filters!,
    numClasses: 0,
  },
  new Rng(12),
);
const randomTrain = await featuresOf(random, poolImages, pool.length);
const randomTest = await featuresOf(random, test.images, test.count);
random.dispose();
probeAll('random D', randomTrain.data, randomTrain.dim, randomTest.data);
probeAll('raw pixels', poolImages, px, test.images);

say(`\ndcgan: ${steps} steps in ${ganSeconds.toFixed(0)} s; test split ${test.count} images`);
say('| features | dim | K per class | test accuracy (mean ± sd over seeds) |');
say('| --- | --- | --- | --- |');
for (const r of rows)
  say(`| ${r.features} | ${r.dim} | ${r.k} | ${(100 * r.mean).toFixed(1)} ± ${(100 * r.sd).toFixed(1)} % |`);
await writeFile(a.json, JSON.stringify({ params, steps, ganSeconds, probeOpts, seeds, rows }, null, 2));
