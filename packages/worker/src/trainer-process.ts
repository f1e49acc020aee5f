/**
 * Entry of the trainer child process: one trial per process, so that synchronous tfjs steps never block
 * the parent's BullMQ lock renewal, and a crash or leak in training cannot take the worker down.
 * Talks to the parent only over the IPC channel (messages in ipc.ts).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import {
  CorruptCheckpointError,
  DEFAULT_HEALTH,
  FAMILIES,
  type HealthAction,
  ObjectStore,
  objectKeys,
  stageEnd,
  type TrialQuality,
} from '@gantry/shared';
import { measureAugGain } from './augmentation/aug-gain.ts';
import { firstPerClass } from './augmentation/labelled-sets.ts';
import { initBackend } from './backend.ts';
import { type Checkpoint, CheckpointStore, type RunTail } from './checkpoint-store.ts';
import { type Dataset, readDatasetVersion } from './data/datasets.ts';
import type { TrainerState } from './families/family.ts';
import { familyOf } from './families/registry.ts';
import { type Finding, HealthMonitor } from './health/monitor.ts';
import type { ChildMessage, CommitResultMessage, ParentMessage, StartMessage } from './ipc.ts';
import { hasImageTask, scoreImageTask } from './quality/image-task.ts';
import { qualityEvaluator } from './quality/quality-source.ts';
import { encodeImageGrid } from './sample-grid.ts';
import { markStartup, startupTimes } from './startup-marks.ts';
import { warmStart } from './warm-start.ts';

markStartup('imported');

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
  // Uploads and reads wait out an outage of the store (up to storeRetryMs) rather than fail the attempt.
  const store = new ObjectStore(start.store, {
    retry: { maxElapsedMs: start.storeRetryMs, maxDelayMs: 5000 },
    onRetry: (r) =>
      void send({
        type: 'note',
        message: `object store: ${r.op} ${r.key} failed (${r.error}); retry ${r.attempt} in ${(r.delayMs / 1000).toFixed(1)} s`,
      }).catch(() => {}),
  });
  const checkpoints = new CheckpointStore(store, job.sweepId, job.trialId);
  const info = await initBackend(start.backend, { wasmGemm: start.wasmGemm });
  markStartup('backend');
  const data = await readDatasetVersion(start.datasetDir, 'train', job.dataset);
  markStartup('data');
  // The held-out split, whole: what image-conditioned families are scored on and show in their grids
  // (read here for them; for the others only if a quality classifier has to be trained).
  const whole = { ...job.dataset, subset_per_class: undefined };
  const readHeldOut = () => readDatasetVersion(start.datasetDir, 'test', whole);
  const heldOut = FAMILIES[job.model].input === 'image' ? await readHeldOut() : undefined;
  // Where a job becomes a training step: its family's trainer (families/).
  const trainer = familyOf(job.model).createTrainer(job, data, {
    faultNanAtStep: start.faultNanAtStep,
    ...(heldOut ? { heldOut } : {}),
  });
  markStartup('trainer');
  // A staged job trains its stage's steps only; the others the whole trial, or up to its segment's end
  // (`until`), where the trial pauses.
  const finish = job.stage ? stageEnd(job.stage) : job.steps;
  const end = job.until === undefined ? finish : Math.min(finish, job.until);
  const pauses = end < finish;
  // Checkpoints this process may rewind to (health restarts), oldest first; a fresh run can go back to
  // its initial weights, kept in memory. A stage's first rewind point is where it started.
  const rewindPoints: { step: number; manifestKey?: string; state?: TrainerState }[] = [];
  const resumed = await readResumePoint(start, checkpoints);
  if (resumed) {
    trainer.importState(resumed.checkpoint);
    rewindPoints.push({ step: trainer.step, manifestKey: resumed.manifestKey });
  } else {
    // No checkpoint of its own: a warm start takes its networks from another trial's (the first stage only).
    if (job.initFrom && (job.stage?.index ?? 0) === 0) {
      await warmStart(trainer, store, job.initFrom);
      const { trialId, step, nets } = job.initFrom;
      await send({ type: 'warm-start', from: { trial: trialId, step, nets } });
    }
    rewindPoints.push({ step: trainer.step, state: trainer.exportState() });
  }
  const health = job.health ?? DEFAULT_HEALTH;
  // The classifier that scores these images: committed, stored beside the version, or trained here first;
  // for a paired set, one of its B side (the domain its translations are judged in).
  const target = (d: Dataset): Dataset => (d.imagesB ? { ...d, images: d.imagesB } : d);
  const evaluator =
    health.eval_every_steps > 0
      ? await qualityEvaluator({
          dataset: job.dataset,
          store,
          splits: async () => ({
            train: target(
              job.dataset.subset_per_class
                ? await readDatasetVersion(start.datasetDir, 'train', whole)
                : data,
            ),
            test: target(heldOut ?? (await readHeldOut())),
          }),
          say: (message) => void send({ type: 'note', message }).catch(() => {}),
        })
      : undefined;
  // A low-resolution stage is judged against real images at its resolution, not against the full data.
  const reference =
    evaluator && trainer.realEvalSamples
      ? evaluator.evaluate({ evalSamples: (n) => trainer.realEvalSamples!(n) }, health.eval_samples)
      : undefined;
  const monitor = new HealthMonitor(health, {
    warmupFrom: job.stage?.start_step ?? 0,
    critic: FAMILIES[job.model].critic,
    reference,
    lossBound: trainer.lossBound,
    judgesD: trainer.adversarial !== false,
  });
  markStartup('ready');
  await send({
    type: 'ready',
    backend: info.backend,
    device: info.device,
    startStep: trainer.step,
    startup: startupTimes(),
  });

  // The tenth of the whole run (not of a segment): a segment hands its tail on in its checkpoint.
  const tail = Math.max(1, Math.floor((finish - (job.stage?.start_step ?? 0)) / 10));
  const { sampleShape } = trainer;
  // Small images are scaled up to about 64 px per tile (at least 2x below 64); 64 px and up are shown as is.
  const gridScale = sampleShape.height >= 64 ? 1 : Math.max(2, Math.floor(64 / sampleShape.height));
  // The losses of the run's last tenth, for the summary; a resumed run goes on from its checkpoint's.
  // (A stage's run begins at its start: the previous stage's losses are not its own.)
  const ownTail =
    resumed && resumed.checkpoint.step > (job.stage?.start_step ?? 0) ? resumed.checkpoint.tail : undefined;
  const recent: RunTail['stats'] = ownTail?.stats.slice(-tail) ?? [];
  let windowStart = performance.now();
  let windowSteps = 0;
  let lastRate = ownTail?.imagesPerSec ?? 0;

  const checkpoint = async (): Promise<boolean> => {
    const { restarts } = trainer.health;
    // Objects are immutable: after a restart the same step is written again under another writer name.
    const writer = restarts > 0 ? `${start.writer}-r${restarts}` : start.writer;
    const manifestKey = await checkpoints.write(trainer.exportState(), writer, {
      stats: recent,
      imagesPerSec: lastRate,
    });
    const sampleKey = objectKeys.sample(job.sweepId, job.trialId, trainer.step);
    const grid = trainer.sampleGrid ?? { count: 64, cols: 8 };
    const png = encodeImageGrid(trainer.sample(grid.count), {
      count: grid.count,
      height: sampleShape.height,
      width: sampleShape.width,
      channels: sampleShape.channels as 1 | 3 | 4,
      cols: grid.cols,
      padding: 2,
      scale: gridScale,
    });
    await store.put(sampleKey, png, 'image/png');
    const committed = new Promise<boolean>((resolve) => {
      pendingCommit = resolve;
    });
    await send({
      type: 'checkpoint',
      step: trainer.step,
      manifestKey,
      sampleKey,
      restarts,
      resolution: sampleShape.height,
    });
    const ok = await committed;
    if (ok) rewindPoints.push({ step: trainer.step, manifestKey });
    return ok;
  };

  /** The quality scores now; at the last evaluation (`final`) also aug_gain when the spec asks for it. */
  const evaluate = async (final: boolean): Promise<TrialQuality | undefined> => {
    if (!evaluator) return undefined;
    if (hasImageTask(trainer) && heldOut)
      return { step: trainer.step, ...scoreImageTask(trainer, heldOut, evaluator, health.eval_samples) };
    const quality: TrialQuality = { step: trainer.step, ...evaluator.evaluate(trainer, health.eval_samples) };
    const { draw } = trainer;
    if (final && job.augGain && draw && job.dataset.subset_per_class) {
      quality.aug_gain = await measureAugGain({
        generator: { sampleShape: trainer.sampleShape, draw: (n, o) => draw.call(trainer, n, o) },
        train: data,
        test: await readHeldOut().then((t) =>
          job.augGain?.test_per_class ? firstPerClass(t, job.augGain.test_per_class) : t,
        ),
        realPerClass: job.dataset.subset_per_class,
        config: job.augGain,
        say: (message) => void send({ type: 'note', message }).catch(() => {}),
      });
    }
    return quality;
  };

  /**
   * Applies a finding's policy. Returns 'stop' when the trial ends here (the parent has been told),
   * 'restart' after rewinding, 'warn' to train on.
   */
  const act = async (f: Finding): Promise<HealthAction> => {
    const rule = health[f.detector];
    let action: HealthAction = rule.policy === 'off' || rule.policy === 'warn' ? 'warn' : rule.policy;
    // Non-finite weights cannot be trained on: stop unless a restart rewinds them.
    if (f.fatal && action === 'warn') action = 'stop';
    if (action === 'restart' && trainer.health.restarts >= health.max_restarts) action = 'stop';
    if (action === 'restart') {
      // The newest checkpoint from before the problem began (the initial weights if none).
      const target = [...rewindPoints].reverse().find((p) => p.step < f.since) ?? rewindPoints[0]!;
      const state = target.state ?? (await checkpoints.read(target.manifestKey!));
      // The weights are the checkpoint's; the restart count and multipliers go on from now.
      trainer.importState({ ...state, health: trainer.health });
      // The abandoned run's later checkpoints are no place to rewind to.
      while (rewindPoints.length > 1 && rewindPoints.at(-1)!.step > target.step) rewindPoints.pop();
      trainer.applyRestart(rule.lr_scale);
      monitor.reset();
      await send({
        type: 'health',
        detection: { detector: f.detector, step: f.step, action, reason: f.reason, restartFrom: target.step },
      });
      return action;
    }
    const reason =
      action === 'stop' && f.detector !== 'divergence'
        ? `stopped by health rule ${f.detector}: ${f.reason}`
        : f.reason;
    await send({
      type: 'health',
      detection: { detector: f.detector, step: f.step, action, reason: f.reason },
    });
    if (action === 'stop') {
      if (f.detector === 'divergence') await send({ type: 'diverged', step: f.step, reason });
      else await send({ type: 'halted', step: f.step, reason });
    }
    return action;
  };
  let lastQuality: TrialQuality | undefined;

  while (trainer.step < end) {
    if (stopRequest) {
      if (stopRequest.checkpoint && trainer.step > rewindPoints[0]!.step) await checkpoint();
      await send({ type: 'stopped', step: trainer.step });
      return;
    }
    const alpha = trainer.alpha;
    const s = trainer.trainStep();
    const last = s.step === end;
    const findings = monitor.observeStep(s);
    if (evaluator && (s.step % health.eval_every_steps === 0 || last) && findings.every((f) => !f.fatal)) {
      lastQuality = await evaluate(s.step === finish);
      if (lastQuality) {
        await send({ type: 'eval', quality: lastQuality });
        findings.push(...monitor.observeEval(s.step, lastQuality));
      }
    }
    let rewound = false;
    for (const f of findings) {
      const action = await act(f);
      if (action === 'stop') return;
      if (action === 'restart') {
        rewound = true;
        break;
      }
    }
    if (rewound) {
      recent.length = 0;
      windowSteps = 0;
      windowStart = performance.now();
      continue;
    }
    recent.push([s.d_loss, s.g_loss, s.d_real, s.d_fake]);
    if (recent.length > tail) recent.shift();
    windowSteps += 1;
    if (s.step % start.progressEvery === 0 || last) {
      const now = performance.now();
      const batch = job.stage?.batch_size ?? job.params.batch_size!;
      lastRate = (windowSteps * batch) / ((now - windowStart) / 1000);
      windowStart = now;
      windowSteps = 0;
      const staged = job.stage ? { resolution: job.stage.resolution, alpha: alpha ?? 1 } : {};
      await send({ type: 'progress', ...s, images_per_sec: lastRate, ...staged });
    }
    if (s.step % job.checkpointEvery === 0 || last) {
      if (!(await checkpoint())) return; // fenced: another worker owns the trial now
    }
    await yieldToEventLoop(); // lets 'stop' messages in
  }
  if (pauses) {
    // Evaluated and checkpointed at `end` above; resumed there already (a retried segment), nothing to do
    // but say so again.
    await send({ type: 'paused', step: trainer.step });
    return;
  }
  // Resumed at the last step (an attempt died between its final checkpoint and `done`): nothing was
  // trained, so evaluate here for the result the sweep ranks by.
  if (evaluator && !lastQuality) {
    lastQuality = await evaluate(true);
    if (lastQuality) await send({ type: 'eval', quality: lastQuality });
  }
  const summary: Record<string, number> = { images_per_sec: lastRate };
  for (const [i, k] of (['d_loss', 'g_loss', 'd_real', 'd_fake'] as const).entries()) {
    summary[k] = recent.reduce((a, r) => a + r[i]!, 0) / Math.max(1, recent.length);
  }
  // The last evaluation is at the last step: the sweep can rank by its scores.
  if (lastQuality) {
    const { step: _step, ...scores } = lastQuality;
    Object.assign(summary, scores);
  }
  await send({ type: 'done', step: trainer.step, summary });
}

/**
 * The first of the start message's checkpoints that reads back whole. Skipping a corrupt one is reported
 * to the parent (which points the trial back) before anything else is sent; with none readable the run
 * starts from scratch, except a later stage of a staged model, which has nothing to start from.
 */
async function readResumePoint(
  start: StartMessage,
  checkpoints: CheckpointStore,
): Promise<{ checkpoint: Checkpoint; manifestKey: string } | undefined> {
  if (start.resume.length === 0) return undefined;
  const reasons: string[] = [];
  let onlyMissing = true;
  for (const ref of start.resume) {
    try {
      const checkpoint = await checkpoints.read(ref.manifestKey);
      if (reasons.length > 0)
        await send({ type: 'fallback', from: start.resume[0]!, to: ref, reason: reasons.join('; ') });
      return { checkpoint, manifestKey: ref.manifestKey };
    } catch (err) {
      if (!(err instanceof CorruptCheckpointError)) throw err;
      onlyMissing &&= err.missing;
      reasons.push(`step ${ref.step}: ${err.message}`);
    }
  }
  // Not one checkpoint there at all: rather a store or bucket other than the one they were written to (a
  // misconfigured worker) than data loss. Retried (on any worker), never a silent start from scratch.
  if (onlyMissing) {
    throw new Error(
      `none of the trial's ${start.resume.length} committed checkpoints is in the object store (${start.store.endpoint ?? 'AWS'} bucket ${start.store.bucket}): ${reasons[0]}`,
    );
  }
  const stage = start.job.stage;
  if (stage && stage.index > 0) {
    throw new CorruptCheckpointError(
      start.job.trialId,
      start.resume[0]!.manifestKey,
      `no readable checkpoint to begin stage ${stage.index} from (${reasons.join('; ')})`,
    );
  }
  await send({ type: 'fallback', from: start.resume[0]!, reason: reasons.join('; ') });
  return undefined;
}

process.on('message', (raw: ParentMessage) => {
  if (raw.type === 'start') {
    markStartup('start-message');
    run(raw).then(
      () => exit(0),
      async (err: unknown) => {
        const e = err as Error & { code?: string };
        const unrecoverable =
          e.code === 'CORRUPT_CHECKPOINT' ||
          e.code === 'INVALID_JOB_PAYLOAD' ||
          e.code === 'INIT_FROM_UNAVAILABLE';
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
