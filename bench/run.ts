/**
 * `npm run bench`: training throughput of Gantry's trainer against PyTorch on the same networks (DCGAN 28x28
 * gray on Fashion-MNIST and the paper's 64x64 RGB one on the emoji set; SRGAN x4, 16 -> 64 px on emoji, its
 * adversarial and its pretraining stage; pix2pix on the 64 px emoji-google2twitter pairs), how fast the
 * emoji set is packed and pushed, and a sweep's throughput on all cores against one trial at a time,
 * measured in one invocation so the ratios compare like with like on a noisy machine. Writes
 * bench/results/latest.json.
 *
 *   npm run bench [-- --repeats 5 --steps 8 --steps-64 2 --steps-srgan 2 --steps-srgan-pretrain 4
 *                     --steps-pix2pix 4 --sweep-steps 200 --sweep-repeats 2
 *                     --skip-28 --skip-64 --skip-srgan --skip-pix2pix --skip-push --skip-sweep]
 *
 *   npm run bench -- search [options]   the adaptive-search bench instead (bench/search.ts)
 *   npm run bench -- scale [options]    the coordinator at 10-1,000 simulated workers (bench/scale.ts)
 *
 * The networks' sizes are the constants DCGAN, SRGAN and PIX2PIX below; the PyTorch scripts
 * (dcgan_pytorch.py, srgan_pytorch.py, pix2pix_pytorch.py) build the same layers from the same numbers.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalStack } from '../packages/coordinator/src/local-stack/index.ts';
import {
  compileSweepSpec,
  createLogger,
  jobStage,
  MODEL_PARAMS,
  type StageSpec,
} from '../packages/shared/src/index.ts';
import { compareTraining, pytorchVersion, type TrainingRow } from './compare-training.ts';
import { benchPush } from './push.ts';
import { median } from './stats.ts';

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
const { values: args } = parseArgs({
  options: {
    repeats: { type: 'string', default: '5' },
    steps: { type: 'string', default: '8' },
    'steps-64': { type: 'string', default: '2' },
    'steps-srgan': { type: 'string', default: '2' },
    'steps-srgan-pretrain': { type: 'string', default: '4' },
    'steps-pix2pix': { type: 'string', default: '4' },
    'sweep-steps': { type: 'string', default: '200' },
    'sweep-repeats': { type: 'string', default: '2' },
    'skip-28': { type: 'boolean', default: false },
    'skip-64': { type: 'boolean', default: false },
    'skip-srgan': { type: 'boolean', default: false },
    'skip-pix2pix': { type: 'boolean', default: false },
    'skip-push': { type: 'boolean', default: false },
    'skip-sweep': { type: 'boolean', default: false },
  },
});
const count = (name: keyof typeof args): number => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name}: expected a positive integer, got ${args[name]}`);
  return n;
};
const REPEATS = count('repeats');
const say = (s: string) => process.stdout.write(`${s}\n`);

/** DCGAN, both networks: the trial's batch, width and latent size. */
const DCGAN = { batch_size: 64, base_filters: 64, latent_dim: 100 };
/**
 * SRGAN x4 at 64 px (16 px inputs), the sizes of the README's SRGAN measurements: 8 residual blocks of 32
 * filters, batch 16 (the paper's 16 blocks of 64 are 4-5x the work per image).
 */
const SRGAN = { side: 64, params: { scale: 4, blocks: 8, base_filters: 32, batch_size: 16 } };
/** pix2pix on 64 px pairs (a U-Net of 6 levels, the 70 px PatchGAN), at half the paper's width; batch 8. */
const PIX2PIX = { side: 64, params: { base_filters: 32, n_layers: 3, batch_size: 8 } };

function dcganRow(net: {
  dataset: string;
  size: number;
  channels: 1 | 3;
  steps: number;
  warmup: TrainingRow['warmup'];
}): TrainingRow {
  const { batch_size, base_filters, latent_dim } = DCGAN;
  return {
    title: `DCGAN ${net.size}x${net.size}x${net.channels} (${net.dataset}), batch ${batch_size}, base_filters ${base_filters}, latent ${latent_dim}`,
    model: 'dcgan',
    dataset: net.dataset,
    image: { size: net.size, channels: net.channels },
    params: DCGAN,
    steps: net.steps,
    warmup: net.warmup,
    pytorch: {
      script: 'dcgan_pytorch.py',
      args: { latent: latent_dim, filters: base_filters, size: net.size, channels: net.channels },
    },
  };
}

/** SRGAN's stage 0 (G alone on the MSE) or stage 1 (adversarial), each trained from scratch. */
function srganRow(phase: 'pretrain' | 'adversarial', steps: number): TrainingRow {
  const { side, params: p } = SRGAN;
  const stages: StageSpec[] = (['pretrain', 'adversarial'] as const).map((ph) => ({
    phase: ph,
    fade_steps: 0,
    stable_steps: 100_000,
    batch_size: p.batch_size,
  }));
  return {
    title: `SRGAN x${p.scale} ${side / p.scale}->${side}x3 (emoji), ${phase === 'pretrain' ? 'pretrain stage (G alone)' : 'adversarial stage'}, batch ${p.batch_size}, blocks ${p.blocks}, base_filters ${p.base_filters}`,
    model: 'srgan',
    dataset: 'emoji',
    image: { size: side, channels: 3 },
    params: p,
    stage: jobStage(stages, phase === 'pretrain' ? 0 : 1, p),
    steps,
    warmup: { gantry: 1, pytorch: 1 },
    pytorch: {
      script: 'srgan_pytorch.py',
      args: {
        stage: phase,
        size: side,
        scale: p.scale,
        channels: 3,
        blocks: p.blocks,
        filters: p.base_filters,
        'adv-weight': MODEL_PARAMS.srgan.adv_weight!.default,
      },
    },
  };
}

function pix2pixRow(steps: number): TrainingRow {
  const { side, params: p } = PIX2PIX;
  // The family's defaults, passed to PyTorch too.
  const defaults = {
    dropout: MODEL_PARAMS.pix2pix.dropout!.default,
    l1_weight: MODEL_PARAMS.pix2pix.l1_weight!.default,
  };
  return {
    title: `pix2pix ${side}x${side}x3 (emoji-google2twitter), batch ${p.batch_size}, base_filters ${p.base_filters}, n_layers ${p.n_layers}`,
    model: 'pix2pix',
    dataset: 'emoji-google2twitter',
    image: { size: side, channels: 3 },
    params: { ...p, ...defaults },
    steps,
    warmup: { gantry: 1, pytorch: 1 },
    pytorch: {
      script: 'pix2pix_pytorch.py',
      args: {
        size: side,
        channels: 3,
        filters: p.base_filters,
        'n-layers': p.n_layers,
        dropout: defaults.dropout,
        'l1-weight': defaults.l1_weight,
      },
    },
  };
}

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
const compare = (row: TrainingRow) => compareTraining(row, { pt, repeats: REPEATS, say });
const dcgan28 = args['skip-28']
  ? null
  : await compare(
      dcganRow({
        dataset: 'fashion-mnist',
        size: 28,
        channels: 1,
        steps: count('steps'),
        warmup: { gantry: 2, pytorch: 3 },
      }),
    );
const dcgan64 = args['skip-64']
  ? null
  : await compare(
      dcganRow({
        dataset: 'emoji',
        size: 64,
        channels: 3,
        steps: count('steps-64'),
        warmup: { gantry: 1, pytorch: 1 },
      }),
    );
const srganAdversarial = args['skip-srgan']
  ? null
  : await compare(srganRow('adversarial', count('steps-srgan')));
const srganPretrain = args['skip-srgan']
  ? null
  : await compare(srganRow('pretrain', count('steps-srgan-pretrain')));
const pix2pix = args['skip-pix2pix'] ? null : await compare(pix2pixRow(count('steps-pix2pix')));
const push = args['skip-push'] ? null : await benchPush(REPEATS, say);

let sweep: {
  cores: number;
  trials: number;
  sequential_s: number;
  parallel_s: number;
  speedup: number;
  trials_per_hour: number;
  trials_per_hour_sequential: number;
} | null = null;
if (!args['skip-sweep']) {
  const cores = availableParallelism();
  const trials = cores;
  const steps = Number(args['sweep-steps']);
  say(`sweep: ${trials} trials x ${steps} steps on one worker: concurrency ${cores} vs 1`);
  // Pairs in ABBA order (all cores, one at a time, one at a time, all cores, ...) so that a drift in the
  // machine's speed hits both alike; the figures are medians, the ratio also per pair.
  const pars: number[] = [];
  const seqs: number[] = [];
  for (let r = 0; r < Number(args['sweep-repeats']); r++) {
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
  dcgan_28: dcgan28,
  dcgan_64: dcgan64,
  srgan_adversarial: srganAdversarial,
  srgan_pretrain: srganPretrain,
  pix2pix,
  push,
  sweep,
};
await mkdir(join(here, 'results'), { recursive: true });
await writeFile(join(here, 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
say(`wrote ${join(here, 'results', 'latest.json')}`);
process.exit(0);
