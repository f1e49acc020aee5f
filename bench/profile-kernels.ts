/**
 * `node --import tsx bench/profile-kernels.ts <row> [steps] [--shapes]`: where one training row's step
 * spends its time, kernel by kernel (tf.profile on wasm, one thread), after one untimed step. Prints the
 * step's wall time and its time in kernels, then each kernel's milliseconds per step, share and calls,
 * widest first (with --shapes, each kernel and input shapes apart).
 */
import { initBackend } from '../packages/worker/src/backend.ts';
import { readDatasetVersion } from '../packages/worker/src/data/datasets.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import { profileKernels } from '../packages/worker/src/kernel-profile.ts';
import { TRAINING_ROWS, type TrainingRowKey } from './args.ts';
import { benchJob } from './compare-training.ts';
import { removeDatasetVersions, writeDatasetVersion } from './gantry-trainer.ts';
import { trainingRow } from './training-rows.ts';

const key = process.argv[2] as TrainingRowKey;
if (!TRAINING_ROWS.includes(key)) {
  console.error(`usage: profile-kernels.ts <${TRAINING_ROWS.join('|')}> [steps] [--shapes]`);
  process.exit(2);
}
const steps = Number(process.argv[3] ?? 1);
const byShape = process.argv.includes('--shapes');
const row = trainingRow({ key, steps, warmup: 1 });
const data = await writeDatasetVersion(row.dataset);
const job = benchJob(row, data.version);
await initBackend('wasm');
const trainer = familyOf(job.model).createTrainer(
  job,
  await readDatasetVersion(data.dir, 'train', job.dataset),
);
trainer.trainStep();
const { wallMs, kernels } = await profileKernels(() => trainer.trainStep(), steps, { byShape });
const inKernels = kernels.reduce((s, k) => s + k.ms, 0);
console.log(`${row.title}\nstep ${wallMs.toFixed(1)} ms (profiled), in kernels ${inKernels.toFixed(1)} ms`);
for (const k of kernels)
  console.log(
    `${k.name.padEnd(byShape ? 70 : 28)} ${k.ms.toFixed(2).padStart(9)} ms ${((100 * k.ms) / wallMs).toFixed(1).padStart(5)}% ${String(Math.round(k.calls)).padStart(6)} calls`,
  );
trainer.dispose();
await removeDatasetVersions();
