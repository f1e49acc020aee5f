/**
 * The figures of README's "TransGAN": TransGAN against DCGAN at equal compute on a built-in set, with and
 * without DiffAugment. First the step time of each configuration, measured interleaved in this process
 * (rounds of a few steps each, the median of the rounds); then DCGAN trains `--dcgan-steps` steps and each
 * other configuration the steps that take the same wall time at the measured ratio of step times (so the
 * budget does not depend on the machine's load, only the ratio does), and each is scored as a worker's
 * evaluation scores it (FLD against the train split, with the set's classifier), halfway and at the end.
 *
 *   tsx scripts/measure-transgan.ts [--set fashion-mnist] [--dcgan-steps 1200] [--policy translation,cutout]
 *       [--rounds 3] [--probe-steps 3] [--samples 2000] [--seed 11] [--only dcgan,transgan,transgan-aug]
 *       [--steps-dcgan N --steps-transgan N --steps-transgan-aug N] (skip the timing) [--out /tmp/gantry-measure]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MODEL_PARAMS, type ModelName, parseTrialJob, type TrialJob } from '../packages/shared/src/index.ts';
import { initBackend } from '../packages/worker/src/backend.ts';
import type { Trainer } from '../packages/worker/src/families/family.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import { QualityEvaluator } from '../packages/worker/src/quality/evaluator.ts';
import { encodeImageGrid } from '../packages/worker/src/sample-grid.ts';
import { loadBuiltinSplit } from './builtin-dataset.ts';

const { values: a } = parseArgs({
  options: {
    set: { type: 'string', default: 'fashion-mnist' },
    'dcgan-steps': { type: 'string', default: '1200' },
    policy: { type: 'string', default: 'translation,cutout' },
    rounds: { type: 'string', default: '3' },
    'probe-steps': { type: 'string', default: '3' },
    samples: { type: 'string', default: '2000' },
    seed: { type: 'string', default: '11' },
    only: { type: 'string', default: 'dcgan,transgan,transgan-aug' },
    'steps-dcgan': { type: 'string' },
    'steps-transgan': { type: 'string' },
    'steps-transgan-aug': { type: 'string' },
    out: { type: 'string', default: '/tmp/gantry-measure' },
  },
});
const say = (s: string) => process.stdout.write(`${s}\n`);

interface Config {
  label: 'dcgan' | 'transgan' | 'transgan-aug';
  model: ModelName;
  augment?: { policy: string[]; p: number };
}
const CONFIGS: Config[] = [
  { label: 'dcgan', model: 'dcgan' },
  { label: 'transgan', model: 'transgan' },
  { label: 'transgan-aug', model: 'transgan', augment: { policy: a.policy.split(','), p: 1 } },
];
const given = (c: Config) => a[`steps-${c.label}` as 'steps-dcgan'];
const configs = CONFIGS.filter((c) => a.only.split(',').includes(c.label));
if (!configs.some((c) => c.label === 'dcgan') && !configs.every((c) => given(c)))
  throw new Error('without dcgan in --only, give every configuration its --steps-<label>');

await initBackend('wasm');
await mkdir(a.out, { recursive: true });
const train = await loadBuiltinSplit(a.set, 'train');
const evaluator = await QualityEvaluator.load(a.set);

function jobOf(c: Config, steps: number): TrialJob {
  const params = Object.fromEntries(Object.entries(MODEL_PARAMS[c.model]).map(([k, d]) => [k, d.default]));
  return parseTrialJob({
    v: 2,
    sweepId: 'measure',
    trialId: 'measure-t000',
    index: 0,
    model: c.model,
    dataset: { name: a.set, version: '0123456789abcdef', image_size: train.height, channels: train.channels },
    seed: Number(a.seed),
    steps,
    checkpointEvery: steps,
    params,
    ...(c.augment ? { augment: c.augment } : {}),
  });
}

/** Median milliseconds per step of each configuration, measured in interleaved rounds. */
function stepTimes(): Map<string, number> {
  const times = new Map(configs.map((c) => [c.label, [] as number[]]));
  const probe = Number(a['probe-steps']);
  for (let r = 0; r < Number(a.rounds); r++) {
    for (const c of configs) {
      const t = familyOf(c.model).createTrainer(jobOf(c, 1000), train);
      t.trainStep(); // the first step compiles and allocates
      const t0 = performance.now();
      for (let i = 0; i < probe; i++) t.trainStep();
      times.get(c.label)!.push((performance.now() - t0) / probe);
      t.dispose();
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return new Map([...times].map(([k, v]) => [k, median(v)]));
}

const times = configs.every(given) ? undefined : stepTimes();
/** The wall time of the DCGAN run at the measured step time. */
const budgetMs = Number(a['dcgan-steps']) * (times?.get('dcgan') ?? Number.NaN);
for (const c of configs) {
  const ms = times?.get(c.label);
  if (ms !== undefined)
    say(
      `STEP ${c.label}: ${ms.toFixed(0)} ms/step (median of ${a.rounds} interleaved rounds), ${(ms / times!.get('dcgan')!).toFixed(2)}x dcgan's`,
    );
}

async function run(c: Config, steps: number): Promise<void> {
  const trainer: Trainer = familyOf(c.model).createTrainer(jobOf(c, steps), train);
  say(
    `${c.label}: ${steps} steps, params ${JSON.stringify(trainer.job.params)}${c.augment ? `, augment ${JSON.stringify(c.augment)}` : ''}`,
  );
  const t0 = performance.now();
  const checkpoints = new Set([Math.round(steps / 2), steps]);
  while (trainer.step < steps) {
    const s = trainer.trainStep();
    if (s.step % 50 === 0)
      say(`  ${c.label} step ${s.step}: d ${s.d_loss.toFixed(3)} g ${s.g_loss.toFixed(3)}`);
    if (checkpoints.has(s.step)) {
      const q = evaluator.evaluate(trainer, Number(a.samples));
      say(
        `RESULT ${c.label} ${a.set} step ${s.step}/${steps} (${((performance.now() - t0) / 1000).toFixed(0)} s): fld ${q.fld.toFixed(2)} class_coverage ${q.class_coverage?.toFixed(2)} class_kl ${q.class_kl?.toFixed(3)} diversity ${q.diversity_ratio.toFixed(3)}`,
      );
    }
    if (s.step % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  const { height, width, channels } = trainer.sampleShape;
  const png = encodeImageGrid(trainer.sample(64), {
    count: 64,
    height,
    width,
    channels: channels as 1 | 3,
    cols: 8,
    padding: 2,
    scale: 2,
  });
  await writeFile(join(a.out, `transgan-measure-${c.label}.png`), png);
  trainer.dispose();
}

for (const c of configs) {
  const steps = given(c)
    ? Number(given(c))
    : c.label === 'dcgan'
      ? Number(a['dcgan-steps'])
      : Math.max(1, Math.floor(budgetMs / times!.get(c.label)!));
  await run(c, steps);
}
evaluator.dispose();
