/**
 * The figure of README's "Warm start (init_from)": a dcgan trained on one built-in set, then trained on
 * another from scratch and warm-started from it (the worker's warmState: the source's networks, the new
 * trial's own step, Rng and fresh optimizers), the FLD of each on the target set every `--every` steps
 * (the worker's quality evaluation of `--samples` generated images).
 *
 *   tsx scripts/measure-warm-start.ts [--source fashion-mnist] [--target mnist] [--source-steps 1000]
 *       [--steps 600] [--every 100] [--nets g,d] [--filters 32] [--latent 64] [--batch 32] [--samples 512]
 */
import { parseArgs } from 'node:util';
import { MODEL_PARAMS, parseTrialJob, qualityClassifierName } from '../packages/shared/src/index.ts';
import { initBackend } from '../packages/worker/src/backend.ts';
import type { Dataset } from '../packages/worker/src/data/datasets.ts';
import type { Trainer, TrainerState } from '../packages/worker/src/families/family.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import { QualityEvaluator } from '../packages/worker/src/quality/evaluator.ts';
import { warmState } from '../packages/worker/src/warm-start.ts';
import { loadBuiltinSplit } from './builtin-dataset.ts';

const { values: a } = parseArgs({
  options: {
    source: { type: 'string', default: 'fashion-mnist' },
    target: { type: 'string', default: 'mnist' },
    'source-steps': { type: 'string', default: '1000' },
    steps: { type: 'string', default: '600' },
    every: { type: 'string', default: '100' },
    nets: { type: 'string', default: 'g,d' },
    filters: { type: 'string', default: '32' },
    latent: { type: 'string', default: '64' },
    batch: { type: 'string', default: '32' },
    samples: { type: 'string', default: '512' },
  },
});
const say = (s: string) => process.stdout.write(`${s}\n`);
const nets = a.nets.split(',') as ('g' | 'd')[];
const every = Number(a.every);

await initBackend('wasm');
const params: Record<string, number> = {
  ...Object.fromEntries(Object.entries(MODEL_PARAMS.dcgan).map(([k, d]) => [k, d.default])),
  base_filters: Number(a.filters),
  latent_dim: Number(a.latent),
  batch_size: Number(a.batch),
};

const job = (set: string, data: Dataset, steps: number, seed: number) =>
  parseTrialJob({
    v: 2,
    sweepId: 'measure',
    trialId: 'measure-t000',
    index: 0,
    model: 'dcgan',
    dataset: { name: set, version: '0123456789abcdef', image_size: data.height, channels: data.channels },
    seed,
    steps,
    checkpointEvery: steps,
    params,
  });

/** Trains to `end`, scoring FLD at step 0 and every `every` steps; returns [step, fld] pairs. */
async function run(t: Trainer, end: number, evaluator: QualityEvaluator, label: string) {
  const curve: [number, number][] = [];
  const t0 = performance.now();
  const score = () => {
    const fld = evaluator.evaluate(t, Number(a.samples)).fld;
    curve.push([t.step, fld]);
    say(
      `  ${label} step ${t.step}: fld ${fld.toFixed(2)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
    );
  };
  score();
  while (t.step < end) {
    t.trainStep();
    if (t.step % every === 0 || t.step === end) score();
    if (t.step % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  return curve;
}

const source = await loadBuiltinSplit(a.source, 'train');
const target = await loadBuiltinSplit(a.target, 'train');
if (source.height !== target.height || source.channels !== target.channels)
  throw new Error('the two sets must have the same image size and channels');
say(
  `dcgan ${JSON.stringify(params)}: ${a.source} ${a['source-steps']} steps, then ${a.target} ${a.steps} steps`,
);

// One classifier at a time too (tfjs variable names are global): the source's, then the target's.
const sourceEval = await QualityEvaluator.load(qualityClassifierName(a.source));
const src = familyOf('dcgan').createTrainer(job(a.source, source, Number(a['source-steps']), 1), source);
await run(src, Number(a['source-steps']), sourceEval, `source ${a.source}`);
const trained: TrainerState = src.exportState();
src.dispose();
sourceEval.dispose();
const targetEval = await QualityEvaluator.load(qualityClassifierName(a.target));

const curves: Record<string, [number, number][]> = {};
for (const mode of ['scratch', 'warm'] as const) {
  const t = familyOf('dcgan').createTrainer(job(a.target, target, Number(a.steps), 2), target);
  if (mode === 'warm') t.importState(warmState(t.exportState(), trained, nets));
  curves[mode] = await run(t, Number(a.steps), targetEval, `${mode} ${a.target}`);
  t.dispose();
}
const finalScratch = curves.scratch!.at(-1)![1];
const reach = curves.warm!.find(([, fld]) => fld <= finalScratch)?.[0];
say(`RESULT steps | ${curves.scratch!.map(([s]) => s).join(' | ')}`);
for (const mode of ['scratch', 'warm'] as const)
  say(`RESULT ${mode} fld | ${curves[mode]!.map(([, f]) => f.toFixed(1)).join(' | ')}`);
say(
  `RESULT the warm start (${nets.join('+')}) reaches the scratch run's final FLD ${finalScratch.toFixed(1)} at step ${reach ?? `> ${a.steps}`}`,
);
