import { AUGMENTATION_LIMITS, type AugmentationRecord, type Spread } from '@gantry/shared';
import { type Command, InvalidArgumentError } from 'commander';
import type { ApiClient } from './api-client.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

/** What `gantry augment` was asked for. */
interface AugmentOptions {
  realPerClass: number;
  syntheticPerClass: number;
  seeds: number;
  step?: number;
  classifierSteps?: number;
  testPerClass?: number;
  wait: boolean;
  json?: boolean;
}

/** How often a waiting `gantry augment` asks for the record. */
const POLL_MS = 1000;

function wholeNumber(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('must be a whole number');
  return n;
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const spread = (s: Spread) => `${pct(s.mean)}${s.sd === null ? '' : ` ± ${(100 * s.sd).toFixed(1)}`}`;

/** The table of a completed augmentation: one row per arm, the gain, GAN-train and GAN-test. */
export function renderAugmentation(r: AugmentationRecord): string[] {
  const res = r.result;
  if (!res) return [`augmentation ${r.id}: ${r.state}${r.error ? ` (${r.error})` : ''}`];
  const { recipe } = res;
  const lines = [
    `augmentation ${r.id} of trial ${r.trialId} (checkpoint of step ${r.checkpoint.step}):`,
    `  K = ${res.real_per_class} real images per class, ${res.seeds} seeds, ${recipe.steps} classifier steps of batch ${recipe.batch}, tested on ${res.test_images} real test images`,
    '',
  ];
  const rows: [string, string][] = [[`real only (K = ${res.real_per_class})`, spread(res.real)]];
  for (const arm of res.augmented) {
    rows.push([`real + ${arm.synthetic_per_class} generated per class`, spread(arm.accuracy)]);
    const sd = arm.paired.sd === null ? '' : ` (paired sd ${(100 * arm.paired.sd).toFixed(1)})`;
    rows.push([`  gain`, `${arm.gain >= 0 ? '+' : ''}${(100 * arm.gain).toFixed(1)} points${sd}`]);
  }
  rows.push([
    `GAN-train (${res.gan_train.synthetic_per_class} generated per class only)`,
    spread(res.gan_train),
  ]);
  rows.push([`GAN-test (real-only classifier on ${res.gan_test.images} generated)`, spread(res.gan_test)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  lines.push(`  ${'arm'.padEnd(width)}  test accuracy (mean ± sd over seeds)`);
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(width)}  ${v}`);
  lines.push('', `  ${res.seconds} s on ${r.worker ?? 'a worker'}`);
  return lines;
}

async function waitForEnd(client: ApiClient, id: string): Promise<AugmentationRecord> {
  let shown = '';
  for (;;) {
    const r = await client.get<AugmentationRecord>(`/v1/augmentations/${encodeURIComponent(id)}`);
    const now =
      r.state === 'running' && r.progress
        ? `seed ${r.progress.seed} of ${r.progress.seeds}: training on ${r.progress.arm}`
        : r.state;
    if (now !== shown) {
      process.stderr.write(`${id}: ${now}${r.error && r.state !== 'failed' ? ` (${r.error})` : ''}\n`);
      shown = now;
    }
    if (r.state === 'completed' || r.state === 'failed') return r;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export function registerAugmentCommand(program: Command, api: () => ApiClient): void {
  program
    .command('augment')
    .description(
      'measure a conditional trial\'s generator as training data (README, "GAN data augmentation"): the set\'s classifier trained on K real images per class, without and with M generated per class, over S seeds, tested on the whole test split; with GAN-train and GAN-test',
    )
    .argument(
      '<trialId>',
      'a trial of a conditional model (cgan) trained on dataset: {name, subset_per_class: K}',
    )
    .requiredOption(
      '-k, --real-per-class <K>',
      "real images per class: must be the trial's dataset.subset_per_class (the images its generator saw)",
      wholeNumber,
    )
    .requiredOption(
      '-m, --synthetic-per-class <M>',
      `generated images per class added (at most ${AUGMENTATION_LIMITS.maxSyntheticPerClass})`,
      wholeNumber,
    )
    .requiredOption(
      '--seeds <S>',
      `classifiers per arm, each from its own seed (at most ${AUGMENTATION_LIMITS.maxSeeds})`,
      wholeNumber,
    )
    .option('-s, --step <n>', 'the checkpoint of this step (default: the latest)', wholeNumber)
    .option(
      '--classifier-steps <n>',
      `Adam steps of each classifier (default ${AUGMENTATION_LIMITS.classifierSteps.default}, the protocol's; fewer for tests and quick looks only)`,
      wholeNumber,
    )
    .option(
      '--test-per-class <n>',
      'test on the first n test images of each class only (default: the whole test split; for tests and quick looks only)',
      wholeNumber,
    )
    .option('--no-wait', 'queue it, print its id and return (see GET /v1/augmentations/<id>)')
    .option('--json', 'print the record as JSON')
    .addHelpText(
      'after',
      `
The generator must have seen only the same K real images per class, or the gain is leakage: a trial on
all of a set, or on another subset_per_class, is refused. Progress goes to stderr; the table to stdout.

Example:
  gantry augment <trialId> --real-per-class 10 --synthetic-per-class 100 --seeds 5`,
    )
    .action(async (trialId: string, opts: AugmentOptions) => {
      const client = api();
      const body = {
        real_per_class: opts.realPerClass,
        synthetic_per_class: opts.syntheticPerClass,
        seeds: opts.seeds,
        ...(opts.step !== undefined ? { step: opts.step } : {}),
        ...(opts.classifierSteps !== undefined ? { classifier_steps: opts.classifierSteps } : {}),
        ...(opts.testPerClass !== undefined ? { test_per_class: opts.testPerClass } : {}),
      };
      const queued = await client.post<AugmentationRecord>(
        `/v1/trials/${encodeURIComponent(trialId)}/augment`,
        { text: JSON.stringify(body), type: 'application/json' },
      );
      if (!opts.wait) {
        if (opts.json) say(JSON.stringify(queued, null, 2));
        else say(`queued augmentation ${queued.id} (checkpoint of step ${queued.checkpoint.step})`);
        return;
      }
      const done = await waitForEnd(client, queued.id);
      if (opts.json) say(JSON.stringify(done, null, 2));
      else for (const line of renderAugmentation(done)) say(line);
      if (done.state === 'failed') {
        process.stderr.write(`error: augmentation ${done.id} failed: ${done.error ?? 'no reason given'}\n`);
        process.exitCode = 1;
      }
    });
}
