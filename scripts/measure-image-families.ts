/**
 * The figures of README's "Super-resolution and translation": trains srgan (MSE pretraining, then the
 * adversarial stage, as two trainers like the two queue jobs) or pix2pix on a built-in set in this process
 * and scores each stage on the held-out split as a worker's evaluation does (PSNR/SSIM against bicubic,
 * L1, FLD, class accuracy), writing each sample grid to the output folder.
 *
 *   tsx scripts/measure-image-families.ts srgan [--set emoji] [--pretrain 1500] [--adversarial 1000]
 *   tsx scripts/measure-image-families.ts pix2pix [--set emoji-google2twitter] [--steps 1500]
 *       [--blocks 8 --filters 32 --batch 16 --lr-pretrain 1e-4 --samples 500 --out /tmp/gantry-measure]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  jobStage,
  MODEL_PARAMS,
  type ModelName,
  parseTrialJob,
  qualityClassifierName,
  type StageSpec,
} from '../packages/shared/src/index.ts';
import { initBackend } from '../packages/worker/src/backend.ts';
import type { Trainer } from '../packages/worker/src/families/family.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import { QualityEvaluator } from '../packages/worker/src/quality/evaluator.ts';
import { hasImageTask, scoreImageTask } from '../packages/worker/src/quality/image-task.ts';
import { encodeImageGrid } from '../packages/worker/src/sample-grid.ts';
import { loadBuiltinSplit } from './builtin-dataset.ts';

const { values: a, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    set: { type: 'string' },
    pretrain: { type: 'string', default: '1500' },
    adversarial: { type: 'string', default: '1000' },
    steps: { type: 'string', default: '1500' },
    blocks: { type: 'string', default: '8' },
    filters: { type: 'string', default: '32' },
    batch: { type: 'string', default: '16' },
    'lr-pretrain': { type: 'string' },
    samples: { type: 'string', default: '500' },
    out: { type: 'string', default: '/tmp/gantry-measure' },
  },
});
const model = positionals[0] as ModelName;
if (model !== 'srgan' && model !== 'pix2pix')
  throw new Error('usage: measure-image-families.ts srgan|pix2pix');
const set = a.set ?? (model === 'srgan' ? 'emoji' : 'emoji-google2twitter');
const say = (s: string) => process.stdout.write(`${s}\n`);

await initBackend('wasm');
await mkdir(a.out, { recursive: true });
const train = await loadBuiltinSplit(set, 'train');
const test = await loadBuiltinSplit(set, 'test');
const evaluator = await QualityEvaluator.load(qualityClassifierName(set));
const defaults = Object.fromEntries(Object.entries(MODEL_PARAMS[model]).map(([k, d]) => [k, d.default]));
const params: Record<string, number> = {
  ...defaults,
  base_filters: Number(a.filters),
  batch_size: Number(a.batch),
};
if (model === 'srgan') params.blocks = Number(a.blocks);
if (a['lr-pretrain']) params.lr_pretrain = Number(a['lr-pretrain']);
const stages: StageSpec[] = [
  { phase: 'pretrain', fade_steps: 0, stable_steps: Number(a.pretrain), batch_size: Number(a.batch) },
  { phase: 'adversarial', fade_steps: 0, stable_steps: Number(a.adversarial), batch_size: Number(a.batch) },
];
const steps = model === 'srgan' ? stages.reduce((n, s) => n + s.stable_steps, 0) : Number(a.steps);
say(`${model} on ${set}: ${train.count} train / ${test.count} held-out, params ${JSON.stringify(params)}`);

const job = (stage?: number) =>
  parseTrialJob({
    v: 2,
    sweepId: 'measure',
    trialId: 'measure-t000',
    index: 0,
    model,
    dataset: { name: set, version: '0123456789abcdef', image_size: train.height, channels: train.channels },
    seed: 11,
    steps,
    checkpointEvery: steps,
    params,
    ...(stage !== undefined ? { stage: jobStage(stages, stage, params) } : {}),
  });

/** Trains `trainer` to `end`, printing progress, then scores it and writes its grid. */
async function run(trainer: Trainer, end: number, label: string): Promise<void> {
  const t0 = performance.now();
  let last = t0;
  while (trainer.step < end) {
    const s = trainer.trainStep();
    if (s.step % 100 === 0 || s.step === end) {
      const now = performance.now();
      say(
        `  ${label} step ${s.step}: d ${s.d_loss.toFixed(3)} g ${s.g_loss.toFixed(4)} (${((now - last) / 100).toFixed(0)} ms/step)`,
      );
      last = now;
    }
  }
  if (!hasImageTask(trainer)) throw new Error('not an image-conditioned trainer');
  const q = scoreImageTask(trainer, test, evaluator, Number(a.samples));
  const f = (x?: number, d = 3) => (x === undefined ? '-' : x.toFixed(d));
  say(
    `RESULT ${model} ${set} ${label} step ${trainer.step} (${((performance.now() - t0) / 1000).toFixed(0)} s): psnr ${f(q.psnr, 2)} ssim ${f(q.ssim, 4)} l1 ${f(q.l1, 4)} fld ${f(q.fld, 2)} diversity ${f(q.diversity_ratio)} | bicubic psnr ${f(q.psnr_bicubic, 2)} ssim ${f(q.ssim_bicubic, 4)} | class acc ${f(q.class_accuracy)} (on B ${f(q.class_accuracy_real)})`,
  );
  const grid = trainer.sampleGrid ?? { count: 64, cols: 8 };
  const { height, width, channels } = trainer.sampleShape;
  const png = encodeImageGrid(trainer.sample(grid.count), {
    count: grid.count,
    height,
    width,
    channels: channels as 1 | 3,
    cols: grid.cols,
    padding: 2,
    scale: height >= 64 ? 1 : 2,
  });
  await writeFile(join(a.out, `${model}-${set}-${label}.png`), png);
}

if (model === 'srgan') {
  const pre = familyOf('srgan').createTrainer(job(0), train, { heldOut: test });
  await run(pre, stages[0]!.stable_steps, 'pretrain');
  const state = pre.exportState();
  pre.dispose();
  const adv = familyOf('srgan').createTrainer(job(1), train, { heldOut: test });
  adv.importState(state);
  await run(adv, steps, 'adversarial');
} else {
  const t = familyOf('pix2pix').createTrainer(job(), train, { heldOut: test });
  await run(t, steps, 'final');
}
