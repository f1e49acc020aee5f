/**
 * The figures of README's "GAN data augmentation": for each K, trains a cgan on the first K images per
 * class of Fashion-MNIST's train split in this process (wasm), as a worker trains a trial with
 * `dataset: {name: fashion-mnist, subset_per_class: K}`, then runs the augmentation protocol
 * (packages/worker/src/augmentation/protocol.ts) on the same K real images per class against the whole
 * test split, and prints the table.
 *
 *   tsx scripts/measure-augmentation.ts [--k 10,100] [--m 100,1000] [--seeds 5] [--gan-steps 1500]
 *       [--filters 32] [--batch 64] [--classifier-steps 300] [--json /tmp/measure-augmentation.json]
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type AugmentationResult,
  MODEL_PARAMS,
  parseTrialJob,
  type Spread,
} from '../packages/shared/src/index.ts';
import { runAugmentationProtocol } from '../packages/worker/src/augmentation/protocol.ts';
import { initBackend } from '../packages/worker/src/backend.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import { QualityEvaluator } from '../packages/worker/src/quality/evaluator.ts';
import { loadBuiltinSplit } from './builtin-dataset.ts';

const { values: a } = parseArgs({
  options: {
    k: { type: 'string', default: '10,100' },
    m: { type: 'string', default: '100,1000' },
    seeds: { type: 'string', default: '5' },
    'gan-steps': { type: 'string', default: '1500' },
    filters: { type: 'string', default: '32' },
    batch: { type: 'string', default: '64' },
    'classifier-steps': { type: 'string', default: '300' },
    json: { type: 'string', default: '/tmp/measure-augmentation.json' },
    // Trained generators are kept here (state JSON per K and settings) and reused by a rerun.
    cache: { type: 'string', default: '/tmp/measure-augmentation-gans' },
  },
});
const list = (s: string) => s.split(',').map(Number);
const say = (s: string) => process.stdout.write(`${s}\n`);
const SET = 'fashion-mnist';

const backend = await initBackend('wasm');
const test = await loadBuiltinSplit(SET, 'test');
const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS.cgan).map(([k, d]) => [k, d.default]));
const params = { ...defaults, base_filters: Number(a.filters), batch_size: Number(a.batch) };
const ganSteps = Number(a['gan-steps']);
say(
  `measure-augmentation: cgan on ${SET}, params ${JSON.stringify(params)}, ${ganSteps} steps; protocol M = ${a.m}, ${a.seeds} seeds, ${a['classifier-steps']} classifier steps; ${backend.device}`,
);

const pct = (v: number) => (100 * v).toFixed(1);
const cell = (s: Spread) => `${pct(s.mean)} ± ${s.sd === null ? '-' : pct(s.sd)}`;
const results: {
  k: number;
  ganSeconds: number;
  condAccuracy?: number;
  fld: number;
  result: AugmentationResult;
}[] = [];

for (const k of list(a.k)) {
  const train = await loadBuiltinSplit(SET, 'train', { subset_per_class: k });
  const job = parseTrialJob({
    v: 2,
    sweepId: 'measure',
    trialId: 'measure-t000',
    index: 0,
    model: 'cgan',
    dataset: { name: SET, version: '0123456789abcdef', image_size: 28, channels: 1, subset_per_class: k },
    seed: 11,
    steps: ganSteps,
    checkpointEvery: ganSteps,
    params,
  });
  const trainer = familyOf('cgan').createTrainer(job, train);
  const cached = join(a.cache, `cgan-k${k}-f${a.filters}-b${a.batch}-s${ganSteps}.json`);
  const saved = await readFile(cached, 'utf8').catch(() => undefined);
  if (saved) {
    trainer.importState(JSON.parse(saved, (_k, v) => (v?.f32 ? Float32Array.from(v.f32) : v)));
    say(`  K=${k} cgan: trained before, read from ${cached}`);
  }
  const t0 = performance.now();
  while (trainer.step < ganSteps) {
    const s = trainer.trainStep();
    if (s.step % 250 === 0)
      say(
        `  K=${k} cgan step ${s.step}: d ${s.d_loss.toFixed(3)} g ${s.g_loss.toFixed(3)} (${((performance.now() - t0) / s.step).toFixed(0)} ms/step)`,
      );
  }
  const ganSeconds = Math.round((performance.now() - t0) / 1000);
  if (!saved) {
    await mkdir(a.cache, { recursive: true });
    const state = JSON.stringify(trainer.exportState(), (_k, v) =>
      v instanceof Float32Array ? { f32: Array.from(v) } : v,
    );
    await writeFile(cached, state);
  }
  // The committed classifier's variables share the protocol's names (one classifier at a time).
  const quality = await QualityEvaluator.load(SET);
  const q = quality.evaluate(trainer, 1000);
  quality.dispose();
  say(
    `  K=${k} cgan: ${ganSeconds} s; FLD ${q.fld.toFixed(2)}, class accuracy of its samples ${q.cond_accuracy === undefined ? '-' : pct(q.cond_accuracy)}% (committed classifier)`,
  );
  const result = await runAugmentationProtocol({
    generator: trainer as Required<typeof trainer>,
    train,
    test,
    realPerClass: k,
    syntheticPerClass: list(a.m),
    seeds: Number(a.seeds),
    steps: Number(a['classifier-steps']),
    onProgress: (p) => void say(`  K=${k} seed ${p.seed}/${p.seeds}: ${p.arm}`),
  });
  trainer.dispose();
  results.push({ k, ganSeconds, fld: q.fld, condAccuracy: q.cond_accuracy, result });
  await writeFile(a.json, `${JSON.stringify({ params, ganSteps, results }, null, 1)}\n`);
  say(`  K=${k}: protocol ${result.seconds} s`);
}

say('');
say('| K | M | accuracy (real + M) | gain (paired sd) | GAN-train | GAN-test |');
say('| --- | --- | --- | --- | --- | --- |');
for (const { k, result: r } of results) {
  say(`| ${k} | 0 | ${cell(r.real)} | | | |`);
  for (const arm of r.augmented) {
    const big = arm.synthetic_per_class === r.gan_train.synthetic_per_class;
    say(
      `| ${k} | ${arm.synthetic_per_class} | ${cell(arm.accuracy)} | ${arm.gain >= 0 ? '+' : ''}${pct(arm.gain)} (${arm.paired.sd === null ? '-' : pct(arm.paired.sd)}) | ${big ? cell(r.gan_train) : ''} | ${big ? cell(r.gan_test) : ''} |`,
    );
  }
}
say(`(accuracy in % of the ${test.count} test images, mean ± sample sd over ${a.seeds} seeds)`);
