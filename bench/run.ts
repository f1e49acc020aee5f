/**
 * `npm run bench`: training throughput of Gantry's trainer against PyTorch on the same DCGAN, and a
 * sweep's throughput on all cores against one trial at a time, measured in one invocation so the
 * ratios compare like with like on a noisy machine. Writes bench/results/latest.json.
 *
 *   npm run bench [-- --repeats 5 --steps 8 --sweep-steps 200 --sweep-repeats 2 --skip-sweep]
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
import { GanTrainer } from '../packages/worker/src/trainer.ts';
import { loadBuiltinSplit } from '../scripts/builtin-dataset.ts';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    repeats: { type: 'string', default: '5' },
    steps: { type: 'string', default: '8' },
    'sweep-steps': { type: 'string', default: '200' },
    'sweep-repeats': { type: 'string', default: '2' },
    'skip-sweep': { type: 'boolean', default: false },
  },
});
const REPEATS = Number(args.repeats);
const STEPS = Number(args.steps);
const BATCH = 64;
const LATENT = 100;
const FILTERS = 64;
const say = (s: string) => process.stdout.write(`${s}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Gantry's trainer on wasm, warmed up; each call of `repeat()` times STEPS steps. */
async function gantryDcgan() {
  const info = await initBackend('wasm');
  const data = await loadBuiltinSplit('fashion-mnist', 'train');
  const job: TrialJob = {
    v: 2,
    sweepId: 'bench',
    trialId: 'bench-t000',
    index: 0,
    model: 'dcgan',
    dataset: { name: 'fashion-mnist', version: '0123456789abcdef', image_size: 28, channels: 1 },
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
  const trainer = new GanTrainer(job, data);
  for (let i = 0; i < 2; i++) trainer.trainStep();
  return {
    ...info,
    repeat(): { imgPerSec: number; gflops: number } {
      const t0 = performance.now();
      for (let i = 0; i < STEPS; i++) trainer.trainStep();
      const s = (performance.now() - t0) / 1000;
      return { imgPerSec: (STEPS * BATCH) / s, gflops: (STEPS * trainer.flopsPerStep()) / s / 1e9 };
    },
    dispose: () => trainer.dispose(),
  };
}

const PYTHON = '/usr/bin/python3';

/** PyTorch's version, or why the PyTorch row is skipped. */
function pytorchVersion(): { version: string } | { skipped: string } {
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0)
    return { skipped: `PyTorch not available at ${PYTHON} (apt-get install python3-torch)` };
  return { version: probe.stdout.trim() };
}

/** One PyTorch run of STEPS timed steps (after its own warm-up), in images/s. */
function pytorchRepeat(): number {
  const args = ['--batch', BATCH, '--latent', LATENT, '--filters', FILTERS, '--steps', STEPS, '--threads', 1];
  const res = spawnSync(PYTHON, [join(here, 'dcgan_pytorch.py'), ...args.map(String)], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`PyTorch run failed: ${res.stderr.slice(-500)}`);
  return (JSON.parse(res.stdout.trim().split('\n').at(-1)!) as { images_per_sec: number }).images_per_sec;
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

say(
  `bench: DCGAN 28x28, batch ${BATCH}, base_filters ${FILTERS}, latent ${LATENT}; ${REPEATS} repeats of ${STEPS} steps`,
);
// Repeats alternate between the two, so that load from elsewhere on the machine hits both alike.
const g = await gantryDcgan();
const pt = pytorchVersion();
const gRuns: { imgPerSec: number; gflops: number }[] = [];
const ptRuns: number[] = [];
for (let r = 0; r < REPEATS; r++) {
  gRuns.push(g.repeat());
  if ('version' in pt) ptRuns.push(pytorchRepeat());
}
g.dispose();
const gImg = gRuns.map((x) => x.imgPerSec);
const gMed = median(gImg);
const gflopsMed = median(gRuns.map((x) => x.gflops));
say(
  `gantry  (${g.backend}, ${g.device}, 1 thread): ${gMed.toFixed(1)} img/s  ${gflopsMed.toFixed(1)} GFLOP/s   [${gImg.map((x) => x.toFixed(1)).join(', ')}]`,
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
    `pytorch (${pt.version}, CPU, 1 thread):      ${ptMed.toFixed(1)} img/s   [${ptRuns.map((x) => x.toFixed(1)).join(', ')}]`,
  );
  say(
    `ratio gantry/pytorch per core: ${ratio.toFixed(2)}x (medians); per repeat ${perRepeat.map((x) => x.toFixed(2)).join(', ')}, median ${median(perRepeat).toFixed(2)}x`,
  );
}

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
  dcgan: {
    batch: BATCH,
    base_filters: FILTERS,
    latent_dim: LATENT,
    gantry_img_s: gMed,
    gantry_gflops: gflopsMed,
    pytorch_img_s: ptMed,
    ratio,
    repeats: {
      gantry_img_s: gImg,
      gantry_gflops: gRuns.map((x) => x.gflops),
      pytorch_img_s: 'skipped' in pt ? null : ptRuns,
    },
    backend: g.device,
  },
  sweep,
};
await mkdir(join(here, 'results'), { recursive: true });
await writeFile(join(here, 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
say(`wrote ${join(here, 'results', 'latest.json')}`);
process.exit(0);
