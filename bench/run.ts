/**
 * `npm run bench`: training throughput of Gantry's trainer against PyTorch on the same networks, a row per
 * family and size (bench/training-rows.ts: DCGAN 28x28x1 and 64x64x3, WGAN-GP, ProGAN stages at 32 and 64,
 * SRGAN x4's adversarial and pretraining stages, pix2pix 64, TransGAN), each side one thread, one trainer
 * per process (peak RSS per trainer), repeats interleaved; how fast the emoji set is packed and pushed;
 * trainer start-up from fork to first step (bench/startup.ts); and a sweep's throughput on all cores
 * against one trial at a time; measured in one invocation so the ratios compare like with like on a noisy
 * machine. Writes bench/results/latest.json, a key per row.
 *
 *   npm run bench [-- --repeats 5 --only 28,wgan-gp --skip-<block> --steps-<row> N --warmup-<row> N ...]
 *     (bench/args.ts lists the options and their defaults)
 *
 *   npm run bench -- search [options]   the adaptive-search bench instead (bench/search.ts)
 *   npm run bench -- scale [options]    the coordinator at 10-1,000 simulated workers (bench/scale.ts)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalStack } from '../packages/coordinator/src/local-stack/index.ts';
import { compileSweepSpec, createLogger } from '../packages/shared/src/index.ts';
import {
  BenchArgsError,
  type BenchOptions,
  compileBenchArgs,
  TRAINING_ROWS,
  type TrainingRowKey,
} from './args.ts';
import { compareTraining } from './compare-training.ts';
import { removeDatasetVersions } from './gantry-trainer.ts';
import { benchPush } from './push.ts';
import { pytorchVersion } from './pytorch-run.ts';
import { benchStartup } from './startup.ts';
import { median } from './stats.ts';
import { trainingRow } from './training-rows.ts';

const here = dirname(fileURLToPath(import.meta.url));
// `npm run bench -- search [options]`: the adaptive-search bench (bench/search.ts) instead of these.
if (process.argv[2] === 'search') {
  const { runSearchBench } = await import('./search.ts');
  await runSearchBench(process.argv.slice(3));
  process.exit(0);
}
// `npm run bench -- scale [options]`: the scale simulation (bench/scale.ts) instead of these.
if (process.argv[2] === 'scale') {
  const { runScaleBench } = await import('./scale.ts');
  await runScaleBench(process.argv.slice(3));
  process.exit(0);
}
let opts: BenchOptions;
try {
  opts = compileBenchArgs(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof BenchArgsError)) throw e;
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(2);
}
const REPEATS = opts.repeats;
const say = (s: string) => process.stdout.write(`${s}\n`);

/** Wall time of a `trials`-trial sweep on one worker running `concurrency` trials at once. */
async function sweepSeconds(
  trials: number,
  concurrency: number,
  steps: number,
): Promise<{ seconds: number; trialSpans: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GANTRY_PORT: '0',
    GANTRY_WORKER_CONCURRENCY: String(concurrency),
    GANTRY_PREFIX: `bench-${Date.now()}`,
  };
  delete env.REDIS_URL;
  delete env.S3_ENDPOINT;
  const stack = new LocalStack({
    workers: 1,
    persist: false,
    env,
    dataDir: join(here, 'results', 'stack'),
    log: createLogger('bench', 'silent'),
  });
  await stack.start();
  try {
    const c = stack.coordinator!;
    await new Promise<void>((resolve, reject) => {
      const end = Date.now() + 120_000;
      const poll = async () =>
        (await c.workers()).length > 0
          ? resolve()
          : Date.now() > end
            ? reject(new Error('worker did not start'))
            : setTimeout(poll, 200);
      void poll();
    });
    const spec = compileSweepSpec({
      name: 'bench-sweep',
      model: 'dcgan',
      dataset: 'fashion-mnist',
      method: 'random',
      seed: 1,
      budget: { trials, parallel: trials, steps },
      checkpoint: { every_steps: steps },
      parameters: { batch_size: { value: 32 }, base_filters: { value: 32 }, latent_dim: { value: 64 } },
    });
    const t0 = performance.now();
    const submitted = Date.now();
    const { id } = await c.submit(spec);
    for (;;) {
      const s = await c.store.get(id);
      if (s && ['completed', 'failed', 'cancelled'].includes(s.state)) {
        if (s.state !== 'completed') throw new Error(`bench sweep ${s.state}`);
        const seconds = (performance.now() - t0) / 1000;
        // Each trial's attempt, from submission: when it started and ended (trainer start-up included).
        const spans = (await c.store.trials(s.trialIds)).map(
          (t) =>
            `${(((t.startedAt ?? submitted) - submitted) / 1000).toFixed(1)}-${(((t.endedAt ?? submitted) - submitted) / 1000).toFixed(1)} s`,
        );
        return { seconds, trialSpans: spans.join(', ') };
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await stack.close();
  }
}

const pt = pytorchVersion();
if ('skipped' in pt) say(`pytorch: every row's PyTorch side is skipped: ${pt.skipped}`);
const training: Partial<
  Record<TrainingRowKey, Awaited<ReturnType<typeof compareTraining>> | { error: string }>
> = {};
try {
  for (const row of opts.rows) {
    try {
      training[row.key] = await compareTraining(trainingRow(row), { pt, repeats: REPEATS, say });
    } catch (e) {
      // One row's failure (a trainer that cannot start) leaves the others to run.
      say(`bench: ${row.key} failed: ${(e as Error).stack ?? e}`);
      training[row.key] = { error: (e as Error).message };
    }
  }
} finally {
  await removeDatasetVersions();
}
const push = opts.push ? await benchPush(REPEATS, say) : null;
// Trainer start-up, fork to first step (bench/startup.ts); --skip-startup leaves it out.
const startup = opts.startup ? await benchStartup(REPEATS, say) : null;

let sweep: {
  cores: number;
  trials: number;
  sequential_s: number;
  parallel_s: number;
  speedup: number;
  trials_per_hour: number;
  trials_per_hour_sequential: number;
} | null = null;
if (opts.sweep) {
  const cores = availableParallelism();
  const trials = cores;
  const steps = opts.sweep.steps;
  say(`sweep: ${trials} trials x ${steps} steps on one worker: concurrency ${cores} vs 1`);
  // Pairs in ABBA order (all cores, one at a time, one at a time, all cores, ...) so that a drift in the
  // machine's speed hits both alike; the figures are medians, the ratio also per pair.
  const pars: number[] = [];
  const seqs: number[] = [];
  for (let r = 0; r < opts.sweep.repeats; r++) {
    const order = r % 2 === 0 ? [cores, 1] : [1, cores];
    for (const concurrency of order) {
      const run = await sweepSeconds(trials, concurrency, steps);
      (concurrency === 1 ? seqs : pars).push(run.seconds);
      say(
        `sweep: ${concurrency === 1 ? 'one at a time' : 'all cores    '} ${run.seconds.toFixed(1)} s; trial attempts from submission: ${run.trialSpans}`,
      );
    }
  }
  const par = median(pars);
  const seq = median(seqs);
  say(`sweep: time ratio per pair ${pars.map((p, i) => (p / seqs[i]!).toFixed(2)).join(', ')}`);
  sweep = {
    cores,
    trials,
    sequential_s: seq,
    parallel_s: par,
    speedup: seq / par,
    trials_per_hour: (trials / par) * 3600,
    trials_per_hour_sequential: (trials / seq) * 3600,
  };
  say(
    `sweep: one at a time ${seq.toFixed(1)} s (${sweep.trials_per_hour_sequential.toFixed(0)} trials/h), all cores ${par.toFixed(1)} s (${sweep.trials_per_hour.toFixed(0)} trials/h): ${(par / seq).toFixed(2)}x the time, speedup ${sweep.speedup.toFixed(2)}x`,
  );
}

const results = {
  date: new Date().toISOString(),
  machine: { cores: availableParallelism(), node: process.version },
  ...Object.fromEntries(TRAINING_ROWS.map((key) => [key, training[key] ?? null])),
  push,
  startup,
  sweep,
};
await mkdir(join(here, 'results'), { recursive: true });
await writeFile(join(here, 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
say(`wrote ${join(here, 'results', 'latest.json')}`);
const failed = Object.entries(training).filter(([, r]) => r && 'error' in r);
if (failed.length > 0) say(`bench: ${failed.map(([k]) => k).join(', ')} failed (see above)`);
process.exit(failed.length > 0 ? 1 : 0);
