/**
 * `npm run train-classifier -- --dataset fashion-mnist|mnist [--epochs N] [--batch N] [--seed 1] [--out DIR]`:
 * trains the quality classifier of a built-in set (packages/worker/src/quality/train-classifier.ts) on
 * its train split, read as a worker reads a pushed version.
 */
import { parseArgs } from 'node:util';
import { CLASSIFIER_DIR } from '../packages/worker/src/quality/classifier.ts';
import { trainClassifier } from '../packages/worker/src/quality/train-classifier.ts';
import { loadBuiltinSplit } from './builtin-dataset.ts';

const { values: args } = parseArgs({
  options: {
    dataset: { type: 'string' },
    epochs: { type: 'string' },
    seed: { type: 'string', default: '1' },
    batch: { type: 'string' },
    out: { type: 'string', default: CLASSIFIER_DIR },
  },
});
const DATASETS = ['fashion-mnist', 'mnist'];
const dataset = args.dataset ?? '';
if (!DATASETS.includes(dataset)) {
  process.stderr.write(`--dataset must be one of ${DATASETS.join(', ')}\n`);
  process.exit(2);
}
// MNIST here is 8,000 training images: more and smaller batches for enough steps.
await trainClassifier({
  dataset,
  train: await loadBuiltinSplit(dataset, 'train'),
  test: await loadBuiltinSplit(dataset, 'test'),
  epochs: Number(args.epochs ?? (dataset === 'mnist' ? 30 : 10)),
  batch: Number(args.batch ?? (dataset === 'mnist' ? 32 : 64)),
  seed: Number(args.seed),
  out: args.out,
  say: (s) => process.stdout.write(`${s}\n`),
});
