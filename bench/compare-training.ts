/**
 * The bench's training rows: one network trained by Gantry's trainer (wasm, one thread, in a child process
 * of its own: bench/gantry-trainer.ts) and by a PyTorch script of bench/ (CPU, one thread, the contract of
 * bench/torch_bench.py), repeats alternating between the two so that load from elsewhere on the machine
 * hits both alike; images/s, GFLOP/s (Gantry's operation count per step for both), the ratio, and each
 * side's peak resident memory. Both sides count the networks' trainable parameters: a mismatch (not the
 * same network) is printed loudly.
 */
import {
  type JobStage,
  MODEL_PARAMS,
  type ModelName,
  parseTrialJob,
  type TrialJob,
} from '../packages/shared/src/index.ts';
import { startGantryTrainer, writeDatasetVersion } from './gantry-trainer.ts';
import {
  missingScript,
  type PytorchProbe,
  type PytorchRun,
  type PytorchScript,
  startPytorch,
} from './pytorch-run.ts';
import { list, median } from './stats.ts';

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
  /** Untimed steps, once per process on each side. */
  warmup: number;
  /** PyTorch's script in bench/ and its options; `--batch --steps --warmup --threads (--serve)` are added. */
  pytorch: PytorchScript;
}

/** The row's job, every parameter filled (the family's defaults under the row's), validated as a worker does. */
export function benchJob(row: TrainingRow, version: string): TrialJob {
  const defaults = Object.entries(MODEL_PARAMS[row.model]).map(([name, def]) => [name, def.default]);
  return parseTrialJob({
    v: 2,
    sweepId: 'bench',
    trialId: 'bench-t000',
    index: 0,
    model: row.model,
    dataset: {
      name: row.dataset,
      version,
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

/**
 * Gantry against PyTorch on one network, `repeats` times each, alternating; prints the figures with `say`
 * and returns them for latest.json.
 */
export async function compareTraining(
  row: TrainingRow,
  opts: { pt: PytorchProbe; repeats: number; say: (s: string) => void },
) {
  const { repeats, say } = opts;
  const data = await writeDatasetVersion(row.dataset);
  const job = benchJob(row, data.version);
  const batch = batchOf(job);
  say(`bench: ${row.title}; ${repeats} repeats of ${row.steps} steps, ${row.warmup} warm-up`);
  const g = await startGantryTrainer({ job, dataDir: data.dir, steps: row.steps, warmup: row.warmup });
  let skipped = 'skipped' in opts.pt ? opts.pt.skipped : missingScript(row.pytorch.script);
  let pt: PytorchRun | undefined;
  if (skipped === undefined) {
    try {
      pt = await startPytorch({ ...row.pytorch, batch, steps: row.steps, warmup: row.warmup });
    } catch (e) {
      skipped = `failed: ${(e as Error).message}`;
    }
  }
  const gRuns: { imgPerSec: number; gflops: number }[] = [];
  const ptRuns: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const s = await g.repeat();
    gRuns.push({ imgPerSec: (row.steps * batch) / s, gflops: (row.steps * g.flopsPerStep) / s / 1e9 });
    if (!pt) continue;
    try {
      ptRuns.push(await pt.repeat());
    } catch (e) {
      skipped = `failed in repeat ${r + 1}: ${(e as Error).message}`;
      pt = undefined;
      ptRuns.length = 0;
    }
  }
  const ptParams = pt?.params ?? null;
  const sameNetwork = ptParams === null ? null : ptParams === g.params;
  if (sameNetwork === false)
    say(
      `MISMATCH: gantry's networks have ${g.params} parameters, pytorch's ${ptParams}: not the same network, the ratio means nothing`,
    );
  const gRss = await g.end();
  let ptRss: number | null = null;
  if (pt) {
    try {
      ptRss = await pt.end();
    } catch (e) {
      say(`pytorch: no peak RSS: ${(e as Error).message}`);
    }
  }
  const gImg = gRuns.map((x) => x.imgPerSec);
  const gMed = median(gImg);
  const gflopsMed = median(gRuns.map((x) => x.gflops));
  const flopsPerImage = g.flopsPerStep / batch;
  say(
    `gantry  (${g.backend}, ${g.device}, 1 thread): ${gMed.toFixed(1)} img/s  ${gflopsMed.toFixed(1)} GFLOP/s   ${list(gImg)}`,
  );
  let ratio: number | null = null;
  let ratioPerRepeat: number | null = null;
  let ptMed: number | null = null;
  const version = 'version' in opts.pt ? opts.pt.version : null;
  if (ptRuns.length === 0) {
    say(`pytorch: skipped: ${skipped}`);
  } else {
    ptMed = median(ptRuns);
    ratio = gMed / ptMed;
    const perRepeat = gImg.map((x, i) => x / ptRuns[i]!);
    ratioPerRepeat = median(perRepeat);
    say(
      `pytorch (${version}, CPU, 1 thread):      ${ptMed.toFixed(1)} img/s  ${((ptMed * flopsPerImage) / 1e9).toFixed(1)} GFLOP/s   ${list(ptRuns)}`,
    );
    say(
      `ratio gantry/pytorch per core: ${ratio.toFixed(2)}x (medians); per repeat ${perRepeat.map((x) => x.toFixed(2)).join(', ')}, median ${ratioPerRepeat.toFixed(2)}x`,
    );
  }
  say(
    `peak RSS per trainer: gantry ${gRss.toFixed(0)} MB, pytorch ${ptRss === null ? '-' : `${ptRss.toFixed(0)} MB`}; parameters: gantry ${g.params}, pytorch ${ptParams ?? '-'}`,
  );
  const { batch_size: _, ...shape } = row.params;
  return {
    dataset: row.dataset,
    image: row.image,
    batch,
    ...shape,
    ...(row.stage?.phase ? { stage: row.stage.phase } : {}),
    ...(row.stage?.resolution ? { resolution: row.stage.resolution } : {}),
    steps_per_repeat: row.steps,
    warmup_steps: row.warmup,
    gflop_per_step: g.flopsPerStep / 1e9,
    gantry_img_s: gMed,
    gantry_gflops: gflopsMed,
    pytorch_img_s: ptMed,
    pytorch_gflops: ptMed === null ? null : (ptMed * flopsPerImage) / 1e9,
    ratio,
    ratio_per_repeat_median: ratioPerRepeat,
    peak_rss_mb: { gantry: gRss, pytorch: ptRss },
    parameters: { gantry: g.params, pytorch: ptParams, same: sameNetwork },
    repeats: {
      gantry_img_s: gImg,
      gantry_gflops: gRuns.map((x) => x.gflops),
      pytorch_img_s: ptRuns.length > 0 ? ptRuns : null,
    },
    backend: g.device,
    pytorch: ptRuns.length > 0 ? version : null,
    ...(ptRuns.length === 0 ? { pytorch_skipped: skipped } : {}),
  };
}
