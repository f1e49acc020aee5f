/**
 * Entry of the augmentation child process: one augmentation per process, so that the classifiers'
 * synchronous training steps never block the worker's BullMQ lock renewal. Reads the trial's checkpoint,
 * builds its family's trainer (the generator), runs the protocol (protocol.ts) on the trial's own K real
 * images per class against the whole test split, and reports over IPC (messages in ipc.ts).
 */
import '../gradients.ts';
import { GantryError, ObjectStore, parseTrialJob } from '@gantry/shared';
import { initBackend } from '../backend.ts';
import { CheckpointStore } from '../checkpoint-store.ts';
import { readDatasetVersion } from '../data/datasets.ts';
import { familyOf } from '../families/registry.ts';
import type { AugmentChildMessage, AugmentStartMessage } from './ipc.ts';
import { firstPerClass } from './labelled-sets.ts';
import { runAugmentationProtocol } from './protocol.ts';

function send(msg: AugmentChildMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('augmentation process started without an IPC channel'));
    process.send(msg, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

async function run(start: AugmentStartMessage): Promise<void> {
  const { params, checkpoint } = start.job;
  const job = parseTrialJob(start.job.trial);
  const store = new ObjectStore(start.store, {
    retry: { maxElapsedMs: start.storeRetryMs, maxDelayMs: 5000 },
  });
  const info = await initBackend(start.backend, { wasmGemm: start.wasmGemm });
  // The K real images per class the generator was trained on (the job pins subset_per_class = K), and
  // the whole test split (or its first N per class when the request asked for a quick look).
  const train = await readDatasetVersion(start.datasetDir, 'train', job.dataset);
  const wholeTest = await readDatasetVersion(start.datasetDir, 'test', {
    ...job.dataset,
    subset_per_class: undefined,
  });
  const test = params.test_per_class ? firstPerClass(wholeTest, params.test_per_class) : wholeTest;
  const state = await new CheckpointStore(store, job.sweepId, job.trialId).read(checkpoint.manifestKey);
  const trainer = familyOf(job.model).createTrainer(job, train);
  try {
    trainer.importState(state);
    if (!trainer.draw) throw new RangeError(`the ${job.model} trainer cannot draw samples`);
    await send({ type: 'ready', backend: info.backend, device: info.device });
    const result = await runAugmentationProtocol({
      generator: { sampleShape: trainer.sampleShape, draw: (n, o) => trainer.draw!(n, o) },
      train,
      test,
      realPerClass: params.real_per_class,
      syntheticPerClass: [params.synthetic_per_class],
      seeds: params.seeds,
      steps: params.classifier_steps,
      onProgress: (progress) => send({ type: 'progress', progress }),
    });
    await send({ type: 'result', result });
  } finally {
    trainer.dispose();
    await store.close();
  }
}

process.once('message', (m: AugmentStartMessage) => {
  run(m).then(
    () => process.exit(0),
    async (err: unknown) => {
      const e = err as Error & { code?: string };
      // Data that do not fit the protocol, a corrupt checkpoint or payload: the same on every retry.
      const unrecoverable =
        err instanceof RangeError ||
        (err instanceof GantryError && ['CORRUPT_CHECKPOINT', 'INVALID_JOB_PAYLOAD'].includes(err.code)) ||
        e.code === 'CORRUPT_CHECKPOINT';
      await send({ type: 'failed', message: e.message ?? String(err), unrecoverable }).catch(() => {});
      process.exit(1);
    },
  );
});

// The worker going away must not leave an orphan burning a core.
process.on('disconnect', () => process.exit(2));
