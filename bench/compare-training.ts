/**
 * The bench's training rows: one network trained by Gantry's trainer (wasm, one thread) and by a PyTorch
 * script of bench/ (CPU, one thread), repeats alternating between the two so that load from elsewhere on
 * the machine hits both alike; images/s, GFLOP/s (Gantry's operation count per step for both) and the ratio.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type JobStage,
  MODEL_PARAMS,
  type ModelName,
  parseTrialJob,
  type TrialJob,
} from '../packages/shared/src/index.ts';
import { initBackend } from '../packages/worker/src/backend.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import { loadBuiltinSplit } from '../scripts/builtin-dataset.ts';
import { list, median } from './stats.ts';

const here = dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';

/** One network both sides train. */
export interface TrainingRow {
  /** The network, printed before its figures. */
  title: string;
  model: ModelName;
  /** The built-in set Gantry reads, at the side and channels the job asks for. */
  dataset: string;
  image: { size: number; channels: 1 | 3 };
  /** Parameters that differ from the family's defaults. */
  params: Record<string, number>;
  /** A staged family's stage. */
  stage?: JobStage;
  steps: number;
  /** Untimed steps: Gantry's before its first repeat, PyTorch's in each of its runs (one process each). */
  warmup: { gantry: number; pytorch: number };
  /** PyTorch's script in bench/ and its options; `--batch --steps --warmup --threads` are added. */
  pytorch: { script: string; args: Record<string, string | number> };
}

/** PyTorch's version, or why the PyTorch rows are skipped. */
export type PytorchProbe = { version: string } | { skipped: string };

export function pytorchVersion(): PytorchProbe {
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0)
    return { skipped: `PyTorch not available at ${PYTHON} (node scripts/setup.mjs --bench installs it)` };
  return { version: probe.stdout.trim() };
}

/** The row's job, every parameter filled (the family's defaults under the row's), validated as a worker does. */
function benchJob(row: TrainingRow): TrialJob {
  const defaults = Object.entries(MODEL_PARAMS[row.model]).map(([name, def]) => [name, def.default]);
  return parseTrialJob({
    v: 2,
    sweepId: 'bench',
    trialId: 'bench-t000',
    index: 0,
    model: row.model,
    dataset: {
      name: row.dataset,
      version: '0123456789abcdef',
      image_size: row.image.size,
      channels: row.image.channels,
    },
    seed: 1,
    steps: 1_000_000,
    checkpointEvery: 1_000_000,
    params: { ...Object.fromEntries(defaults), ...row.params },
    ...(row.stage ? { stage: row.stage } : {}),
  });
}

/** Images per step: the stage's batch, or the trial's. */
const batchOf = (job: TrialJob) => job.stage?.batch_size ?? job.params.batch_size!;

/** Gantry's trainer on wasm, warmed up; each call of `repeat()` times `row.steps` steps. */
async function gantryTrainer(row: TrainingRow, job: TrialJob) {
  const info = await initBackend('wasm');
  const data = await loadBuiltinSplit(row.dataset, 'train');
  const trainer = familyOf(job.model).createTrainer(job, data);
  const batch = batchOf(job);
  for (let i = 0; i < row.warmup.gantry; i++) trainer.trainStep();
  return {
    ...info,
    flopsPerStep: trainer.flopsPerStep(),
    repeat(): { imgPerSec: number; gflops: number } {
      const t0 = performance.now();
      for (let i = 0; i < row.steps; i++) trainer.trainStep();
      const s = (performance.now() - t0) / 1000;
      return { imgPerSec: (row.steps * batch) / s, gflops: (row.steps * trainer.flopsPerStep()) / s / 1e9 };
    },
    dispose: () => trainer.dispose(),
  };
}

/** One PyTorch run of `row.steps` timed steps (after its own warm-up), in images/s. */
function pytorchRepeat(row: TrainingRow, batch: number): number {
  const opts = { ...row.pytorch.args, batch, steps: row.steps, warmup: row.warmup.pytorch, threads: 1 };
  const argv = Object.entries(opts).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const res = spawnSync(PYTHON, [join(here, row.pytorch.script), ...argv], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`PyTorch run failed: ${res.stderr.slice(-500)}`);
  return (JSON.parse(res.stdout.trim().split('\n').at(-1)!) as { images_per_sec: number }).images_per_sec;
}

/**
 * Gantry against PyTorch on one network, `repeats` times each, alternating; prints the figures with `say`
 * and returns them for latest.json.
 */
export async function compareTraining(
  row: TrainingRow,
  opts: { pt: PytorchProbe; repeats: number; say: (s: string) => void },
) {
  const { pt, repeats, say } = opts;
  const job = benchJob(row);
  const batch = batchOf(job);
  say(`bench: ${row.title}; ${repeats} repeats of ${row.steps} steps`);
  const g = await gantryTrainer(row, job);
  const gRuns: { imgPerSec: number; gflops: number }[] = [];
  const ptRuns: number[] = [];
  for (let r = 0; r < repeats; r++) {
    gRuns.push(g.repeat());
    if ('version' in pt) ptRuns.push(pytorchRepeat(row, batch));
  }
  g.dispose();
  const gImg = gRuns.map((x) => x.imgPerSec);
  const gMed = median(gImg);
  const gflopsMed = median(gRuns.map((x) => x.gflops));
  const flopsPerImage = g.flopsPerStep / batch;
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
  const { batch_size: _, ...shape } = row.params;
  return {
    dataset: row.dataset,
    image: row.image,
    batch,
    ...shape,
    ...(row.stage?.phase ? { stage: row.stage.phase } : {}),
    steps_per_repeat: row.steps,
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
