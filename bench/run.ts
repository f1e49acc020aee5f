/**
 * `npm run bench`: training throughput of Gantry's trainer against PyTorch on the same DCGAN (28x28 gray on
 * Fashion-MNIST, and the paper's 64x64 RGB network on the emoji set), how fast the emoji set is packed and
 * pushed, and a sweep's throughput on all cores against one trial at a time, measured in one invocation so
 * the ratios compare like with like on a noisy machine. Writes bench/results/latest.json.
 *
 *   npm run bench [-- --repeats 5 --steps 8 --steps-64 2 --sweep-steps 200 --sweep-repeats 2
 *                     --skip-28 --skip-64 --skip-push --skip-sweep]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalStack } from '../packages/coordinator/src/local-stack/index.ts';
import { compileSweepSpec, createLogger, type TrialJob } from '../packages/shared/src/index.ts';
import { initBackend } from '../packages/worker/src/backend.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import { loadBuiltinSplit } from '../scripts/builtin-dataset.ts';
import { benchPush } from './push.ts';
import { list, median } from './stats.ts';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    repeats: { type: 'string', default: '5' },
    steps: { type: 'string', default: '8' },
    'steps-64': { type: 'string', default: '2' },
    'sweep-steps': { type: 'string', default: '200' },
    'sweep-repeats': { type: 'string', default: '2' },
    'skip-28': { type: 'boolean', default: false },
    'skip-64': { type: 'boolean', default: false },
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
const BATCH = 64;
const LATENT = 100;
const FILTERS = 64;
const say = (s: string) => process.stdout.write(`${s}\n`);
/** One network both sides train: the built-in set Gantry reads it from, its shape, steps per timed repeat. */
interface Net {
  dataset: string;
  size: number;
  channels: 1 | 3;
  steps: number;
  /** Untimed steps: Gantry's before its first repeat, PyTorch's in each of its runs (one process each). */
  warmup: { gantry: number; pytorch: number };
}

/** Gantry's trainer on wasm, warmed up; each call of `repeat()` times `net.steps` steps. */
async function gantryDcgan(net: Net) {
  const info = await initBackend('wasm');
  const data = await loadBuiltinSplit(net.dataset, 'train');
  const job: TrialJob = {
    v: 2,
    sweepId: 'bench',
    trialId: 'bench-t000',
    index: 0,
    model: 'dcgan',
    dataset: { name: net.dataset, version: '0123456789abcdef', image_size: net.size, channels: net.channels },
    seed: 1,
    steps: 1_000_000,
    checkpointEvery: 1_000_000,
    params: {
      lr_g: 2e-4,
      lr_d: 2e-4,
      beta1: 0.5,
      beta2: 0.999,
      batch_size: BATCH,
      latent_dim: LATENT,
      base_filters: FILTERS,
    },
  };
  const trainer = familyOf(job.model).createTrainer(job, data);
  for (let i = 0; i < net.warmup.gantry; i++) trainer.trainStep();
  return {
    ...info,
    flopsPerStep: trainer.flopsPerStep(),
    repeat(): { imgPerSec: number; gflops: number } {
      const t0 = performance.now();
      for (let i = 0; i < net.steps; i++) trainer.trainStep();
      const s = (performance.now() - t0) / 1000;
      return { imgPerSec: (net.steps * BATCH) / s, gflops: (net.steps * trainer.flopsPerStep()) / s / 1e9 };
    },
    dispose: () => trainer.dispose(),
  };
}

const PYTHON = '/usr/bin/python3';

/** PyTorch's version, or why the PyTorch rows are skipped. */
function pytorchVersion(): { version: string } | { skipped: string } {
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0)
    return { skipped: `PyTorch not available at ${PYTHON} (node scripts/setup.mjs --bench installs it)` };
  return { version: probe.stdout.trim() };
}

/** One PyTorch run of `net.steps` timed steps (after its own warm-up), in images/s. */
function pytorchRepeat(net: Net): number {
  const opts = {
    batch: BATCH,
    latent: LATENT,
    filters: FILTERS,
    size: net.size,
    channels: net.channels,
    steps: net.steps,
    warmup: net.warmup.pytorch,
    threads: 1,
  };
  const argv = Object.entries(opts).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const res = spawnSync(PYTHON, [join(here, 'dcgan_pytorch.py'), ...argv], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`PyTorch run failed: ${res.stderr.slice(-500)}`);
  return (JSON.parse(res.stdout.trim().split('\n').at(-1)!) as { images_per_sec: number }).images_per_sec;
}

/**
 * Gantry against PyTorch on one network, repeats alternating between the two so that load from elsewhere
 * on the machine hits both alike. PyTorch's GFLOP/s counts the same operations per step as Gantry's.
 */
async function compareDcgan(net: Net, pt: ReturnType<typeof pytorchVersion>) {
  const shape = `${net.size}x${net.size}x${net.channels}`;
  say(
    `bench: DCGAN ${shape} (${net.dataset}), batch ${BATCH}, base_filters ${FILTERS}, latent ${LATENT}; ${REPEATS} repeats of ${net.steps} steps`,
  );
  const g = await gantryDcgan(net);
  const gRuns: { imgPerSec: number; gflops: number }[] = [];
  const ptRuns: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    gRuns.push(g.repeat());
    if ('version' in pt) ptRuns.push(pytorchRepeat(net));
  }
  g.dispose();
  const gImg = gRuns.map((x) => x.imgPerSec);
  const gMed = median(gImg);
  const gflopsMed = median(gRuns.map((x) => x.gflops));
  const flopsPerImage = g.flopsPerStep / BATCH;
  say(
    `gantry  (${g.backend}, ${g.device}, 1 thread): ${gMed.toFixed(1)} img/s  ${gflopsMed.toFixed(1)} GFLOP/s   ${list(gImg)}`,
  );
  let ratio: number | null = null;
  let ptMed: number | null = null;
  if ('skipped' in pt) {
    say(`pytorch: skipped: ${pt.skipped}`);
  } else {
    ptMed = median(ptRuns);
    ratio = gMed / ptMed;
    const perRepeat = gImg.map((x, i) => x / ptRuns[i]!);
    say(
      `pytorch (${pt.version}, CPU, 1 thread):      ${ptMed.toFixed(1)} img/s  ${((ptMed * flopsPerImage) / 1e9).toFixed(1)} GFLOP/s   ${list(ptRuns)}`,
    );
    say(
      `ratio gantry/pytorch per core: ${ratio.toFixed(2)}x (medians); per repeat ${perRepeat.map((x) => x.toFixed(2)).join(', ')}, median ${median(perRepeat).toFixed(2)}x`,
    );
  }
  return {
    dataset: net.dataset,
    image: { size: net.size, channels: net.channels },
    batch: BATCH,
    base_filters: FILTERS,
    latent_dim: LATENT,
    steps_per_repeat: net.steps,
    gflop_per_step: g.flopsPerStep / 1e9,
    gantry_img_s: gMed,
    gantry_gflops: gflopsMed,
    pytorch_img_s: ptMed,
    pytorch_gflops: ptMed === null ? null : (ptMed * flopsPerImage) / 1e9,
    ratio,
    repeats: {
      gantry_img_s: gImg,
      gantry_gflops: gRuns.map((x) => x.gflops),
      pytorch_img_s: 'skipped' in pt ? null : ptRuns,
    },
    backend: g.device,
    pytorch: 'skipped' in pt ? null : pt.version,
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
const dcgan28 = args['skip-28']
  ? null
  : await compareDcgan(
      {
        dataset: 'fashion-mnist',
        size: 28,
        channels: 1,
        steps: count('steps'),
        warmup: { gantry: 2, pytorch: 3 },
      },
      pt,
    );
const dcgan64 = args['skip-64']
  ? null
  : await compareDcgan(
      {
        dataset: 'emoji',
        size: 64,
        channels: 3,
        steps: count('steps-64'),
        warmup: { gantry: 1, pytorch: 1 },
      },
      pt,
    );
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
  push,
  sweep,
};
await mkdir(join(here, 'results'), { recursive: true });
await writeFile(join(here, 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
say(`wrote ${join(here, 'results', 'latest.json')}`);
process.exit(0);
