/**
 * `npm run train-classifier -- --dataset fashion-mnist|mnist|emoji|emoji-twitter [--epochs N] [--batch N]
 * [--shift PX] [--flip|--no-flip] [--sampling natural|sqrt|balanced] [--labels classes|rotation] [--seed 1]
 * [--out DIR]`: trains the quality classifier of a built-in set (packages/worker/src/quality/
 * train-classifier.ts) on its train split, read as a worker reads a pushed version; what is not given
 * comes from the set's recipe (CLASSIFIER_RECIPES).
 */
import { parseArgs } from 'node:util';
import { CLASSIFIER_DIR } from '../packages/worker/src/quality/classifier.ts';
import type { ClassSampling } from '../packages/worker/src/quality/classifier-batches.ts';
import {
  CLASSIFIER_RECIPES,
  type TrainClassifierOptions,
  trainClassifier,
} from '../packages/worker/src/quality/train-classifier.ts';
import { loadBuiltinSplit } from './builtin-dataset.ts';

const { values: args } = parseArgs({
  allowNegative: true,
  options: {
    dataset: { type: 'string' },
    epochs: { type: 'string' },
    seed: { type: 'string', default: '1' },
    batch: { type: 'string' },
    shift: { type: 'string' },
    flip: { type: 'boolean' },
    sampling: { type: 'string' },
    labels: { type: 'string' },
    out: { type: 'string', default: CLASSIFIER_DIR },
  },
});
const fail = (message: string): never => {
  process.stderr.write(`${message}\n`);
  process.exit(2);
};
const DATASETS = Object.keys(CLASSIFIER_RECIPES);
const dataset = args.dataset ?? '';
if (!DATASETS.includes(dataset)) fail(`--dataset must be one of ${DATASETS.join(', ')}`);
const whole = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : fail(`--${name} must be a whole number, not ${v}`);
};
const SAMPLINGS: readonly string[] = ['natural', 'sqrt', 'balanced'];
if (args.sampling !== undefined && !SAMPLINGS.includes(args.sampling))
  fail(`--sampling must be one of ${SAMPLINGS.join(', ')}`);

if (args.labels !== undefined && args.labels !== 'classes' && args.labels !== 'rotation')
  fail('--labels must be classes or rotation');

const overrides: Partial<TrainClassifierOptions> = {
  labels: args.labels as 'classes' | 'rotation' | undefined,
  epochs: whole('epochs', args.epochs),
  batch: whole('batch', args.batch),
  shift: whole('shift', args.shift),
  flip: args.flip,
  sampling: args.sampling as ClassSampling | undefined,
};
try {
  await trainClassifier({
    dataset,
    train: await loadBuiltinSplit(dataset, 'train'),
    test: await loadBuiltinSplit(dataset, 'test'),
    ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)),
    seed: whole('seed', args.seed),
    out: args.out,
    say: (s) => process.stdout.write(`${s}\n`),
  });
} catch (err) {
  if (err instanceof RangeError) fail(err.message);
  throw err;
}
