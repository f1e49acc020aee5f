/**
 * Entry of the trainer child process: one trial per process, so that synchronous tfjs steps never block
 * the parent's BullMQ lock renewal, and a crash or leak in training cannot take the worker down.
 * Talks to the parent only over the IPC channel (messages in ipc.ts).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { ObjectStore, objectKeys } from '@gantry/shared';
import { initBackend } from './backend.ts';
import { CheckpointStore } from './checkpoint-store.ts';
import { loadDataset } from './data/datasets.ts';
import type { ChildMessage, CommitResultMessage, ParentMessage, StartMessage } from './ipc.ts';
import { encodeImageGrid } from './sample-grid.ts';
import { GanTrainer, type StepStats } from './trainer.ts';

let stopRequest: { checkpoint: boolean } | undefined;
let pendingCommit: ((ok: boolean) => void) | undefined;

function send(msg: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('trainer process started without an IPC channel'));
    process.send(msg, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

async function exit(code: number): Promise<never> {
  process.disconnect?.();
  process.exit(code);
}

async function run(start: StartMessage): Promise<void> {
  const { job } = start;
  const store = new ObjectStore(start.store);
  const checkpoints = new CheckpointStore(store, job.sweepId, job.trialId);
  const info = await initBackend(start.backend, { wasmGemm: start.wasmGemm });
  const data = await loadDataset(job.dataset, 'train', { dir: start.fashionMnistDir });
  const trainer = new GanTrainer(job, data, start.faultNanAtStep);
  if (start.resumeFrom) trainer.importState(await checkpoints.read(start.resumeFrom));
  await send({ type: 'ready', backend: info.backend, device: info.device, startStep: trainer.step });

  const tail = Math.max(1, Math.floor(job.steps / 10));
  const recent: StepStats[] = [];
  let windowStart = performance.now();
  let windowSteps = 0;
  let lastRate = 0;

  const checkpoint = async (): Promise<boolean> => {
    const manifestKey = await checkpoints.write(trainer.exportState(), start.writer);
    const sampleKey = objectKeys.sample(job.sweepId, job.trialId, trainer.step);
    const png = encodeImageGrid(trainer.sample(64), {
      count: 64,
      height: data.height,
      width: data.width,
      channels: data.channels as 1,
      cols: 8,
      padding: 2,
      scale: 2,
    });
    await store.put(sampleKey, png, 'image/png');
    const committed = new Promise<boolean>((resolve) => {
      pendingCommit = resolve;
    });
    await send({ type: 'checkpoint', step: trainer.step, manifestKey, sampleKey });
    return committed;
  };

  while (trainer.step < job.steps) {
    if (stopRequest) {
      if (stopRequest.checkpoint && trainer.step > 0) await checkpoint();
      await send({ type: 'stopped', step: trainer.step });
      return;
    }
    const s = trainer.trainStep();
    const bad = (['d_loss', 'g_loss', 'd_real', 'd_fake'] as const).find((k) => !Number.isFinite(s[k]));
    if (bad) {
      await send({
        type: 'diverged',
        step: s.step,
        reason: `non-finite ${bad} (${s[bad]}) at step ${s.step}`,
      });
      return;
    }
    recent.push(s);
    if (recent.length > tail) recent.shift();
    windowSteps += 1;
    const last = s.step === job.steps;
    if (s.step % start.progressEvery === 0 || last) {
      const now = performance.now();
      lastRate = (windowSteps * job.params.batch_size!) / ((now - windowStart) / 1000);
      windowStart = now;
      windowSteps = 0;
      await send({ type: 'progress', ...s, images_per_sec: lastRate });
    }
    if (s.step % job.checkpointEvery === 0 || last) {
      if (!(await checkpoint())) return; // fenced: another worker owns the trial now
    }
    await yieldToEventLoop(); // lets 'stop' messages in
  }
  const summary: Record<string, number> = { images_per_sec: lastRate };
  for (const k of ['d_loss', 'g_loss', 'd_real', 'd_fake'] as const) {
    summary[k] = recent.reduce((a, r) => a + r[k], 0) / Math.max(1, recent.length);
  }
  await send({ type: 'done', step: trainer.step, summary });
}

process.on('message', (raw: ParentMessage) => {
  if (raw.type === 'start') {
    run(raw).then(
      () => exit(0),
      async (err: unknown) => {
        const e = err as Error & { code?: string };
        const unrecoverable = e.code === 'CORRUPT_CHECKPOINT' || e.code === 'INVALID_JOB_PAYLOAD';
        await send({ type: 'failed', message: e.stack ?? String(err), code: e.code, unrecoverable }).catch(
          () => {},
        );
        await exit(1);
      },
    );
  } else if (raw.type === 'stop') {
    stopRequest = { checkpoint: raw.checkpoint };
  } else if (raw.type === 'commit-result') {
    const resolve = pendingCommit;
    pendingCommit = undefined;
    resolve?.((raw as CommitResultMessage).ok);
  }
});

// The parent going away (SIGKILL of the worker) must not leave an orphan burning a core.
process.on('disconnect', () => process.exit(2));
