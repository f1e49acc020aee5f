/**
 * The scale simulation's trainer: speaks the trainer protocol (packages/worker/src/ipc.ts) in process and
 * on a clock, without training, so that the rest of the worker (BullMQ consumer, fenced reports, lock
 * renewal, heartbeats) runs as it is while a 2-core machine holds 1,000 of them.
 *
 * Time: progress is reported every `progressMs` of wall time, as a real worker reports. A trial lasts
 * `trialSeconds` of wall time (drawn per trial, so completions spread); checkpoints are taken every
 * `checkpointSimS` seconds of simulated time, where one wall second is `timeScale` simulated seconds, and
 * at the last step (as the real trainer does). Checkpoints are committed through the worker's fenced
 * script with a real CheckpointRef, but no object is written to the store.
 */
import { EventEmitter } from 'node:events';
import { objectKeys, Rng, type StepMetrics, type TrialJob } from '../../packages/shared/src/index.ts';
import type {
  ChildMessage,
  ParentMessage,
  TrainerChild,
  TrainerLauncher,
} from '../../packages/worker/src/index.ts';

/** How the fake trainer's clock runs; every field optional. */
export interface FakeTrainerOptions {
  /** Wall milliseconds between progress reports. @default 1000 */
  progressMs?: number;
  /** Simulated seconds per wall second (checkpoint cadence only). @default 6 */
  timeScale?: number;
  /** Simulated seconds between checkpoints. @default 60 */
  checkpointSimS?: number;
  /** A trial's wall seconds: from min to max, spread evenly over trial indexes. @default [20, 60] */
  trialSeconds?: readonly [number, number];
}

/** FakeTrainerOptions with every default filled in. */
export type FakeTrainerDesign = Required<FakeTrainerOptions>;

/** Fills the defaults and checks the options; errors name the field. */
export function compileFakeTrainer(o: FakeTrainerOptions = {}): FakeTrainerDesign {
  const d: FakeTrainerDesign = {
    progressMs: o.progressMs ?? 1000,
    timeScale: o.timeScale ?? 6,
    checkpointSimS: o.checkpointSimS ?? 60,
    trialSeconds: o.trialSeconds ?? [20, 60],
  };
  const positive = (field: string, v: number) => {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${field}: expected a positive number, got ${v}`);
  };
  positive('progressMs', d.progressMs);
  positive('timeScale', d.timeScale);
  positive('checkpointSimS', d.checkpointSimS);
  const [min, max] = d.trialSeconds;
  positive('trialSeconds[0]', min);
  if (!(max >= min))
    throw new Error(`trialSeconds: expected [min, max] with max >= min, got [${min}, ${max}]`);
  if (min * 1000 < d.progressMs)
    throw new Error(`trialSeconds: the shortest trial (${min} s) is shorter than one progress interval`);
  return d;
}

/**
 * A trial's wall seconds: min + (max - min) * frac(index * phi), the golden-ratio sequence, so that any
 * run of consecutive trials covers the range evenly and a retried trial keeps its length.
 */
export function trialSecondsOf(d: FakeTrainerDesign, index: number): number {
  const [min, max] = d.trialSeconds;
  const phi = (Math.sqrt(5) - 1) / 2;
  return min + (max - min) * ((index * phi) % 1);
}

/** One step's metrics as a DCGAN trainer reports them, drifting as a healthy run does. */
function stepMetrics(rng: Rng, step: number, imagesPerSec: number): StepMetrics {
  const noise = () => (rng.uniform() - 0.5) * 0.1;
  return {
    step,
    d_loss: 1.2 + noise(),
    g_loss: 0.9 + noise(),
    d_real: 0.62 + noise() / 2,
    d_fake: 0.38 + noise() / 2,
    images_per_sec: imagesPerSec,
    g_grad_norm: 2.5 + noise() * 5,
    d_grad_norm: 1.8 + noise() * 5,
  };
}

/** An attempt's fake trainer: a TrainerChild on a timer. */
export class FakeTrainer extends EventEmitter implements TrainerChild {
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stopRequest?: { checkpoint: boolean };
  private pendingCommit?: (ok: boolean) => void;
  /** Aborted by kill(): ends the pending sleep. */
  private readonly killed = new AbortController();

  constructor(private readonly design: FakeTrainerDesign) {
    super();
  }

  get connected(): boolean {
    return this.exit === undefined;
  }

  get exitCode(): number | null {
    return this.exit?.code ?? null;
  }

  get signalCode(): NodeJS.Signals | null {
    return this.exit?.signal ?? null;
  }

  /** Delivered on a later turn of the event loop, as IPC delivers. */
  send(m: ParentMessage): boolean {
    if (!this.connected) return false;
    setImmediate(() => this.receive(m));
    return true;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (!this.connected) return false;
    this.finish(null, signal);
    return true;
  }

  private receive(m: ParentMessage): void {
    if (!this.connected) return;
    if (m.type === 'start') {
      this.run(m.job, m.resume[0]?.step ?? 0, m.writer).then(
        () => this.finish(0, null),
        (err: unknown) => {
          this.tell({ type: 'failed', message: String(err), unrecoverable: false });
          this.finish(1, null);
        },
      );
    } else if (m.type === 'stop') {
      this.stopRequest = { checkpoint: m.checkpoint };
    } else {
      const resolve = this.pendingCommit;
      this.pendingCommit = undefined;
      resolve?.(m.ok);
    }
  }

  private tell(m: ChildMessage): void {
    if (this.connected) this.emit('message', m);
  }

  /** Marks the trainer ended and tells the parent on a later turn, after the messages already emitted. */
  private finish(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exit) return;
    this.exit = { code, signal };
    this.killed.abort();
    this.pendingCommit?.(false);
    setImmediate(() => this.emit('exit', code, signal));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.killed.signal.aborted) return resolve();
      const timer = setTimeout(resolve, ms);
      this.killed.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }

  private async run(job: TrialJob, startStep: number, writer: string): Promise<void> {
    const d = this.design;
    this.tell({ type: 'ready', backend: 'fake', device: 'simulated', startStep });
    const steps = job.steps;
    // The trial's wall length; a resumed attempt trains only what is left of it.
    const wallMs = trialSecondsOf(d, job.index) * 1000 * (1 - startStep / steps);
    const batch = job.params.batch_size ?? 64;
    const imagesPerSec = Math.round(((steps - startStep) * batch) / Math.max(wallMs / 1000, 1e-3));
    const rng = new Rng(job.seed);
    const t0 = Date.now();
    let step = startStep;
    let lastCheckpointAt = t0;
    const checkpoint = async (): Promise<boolean> => {
      lastCheckpointAt = Date.now();
      const committed = new Promise<boolean>((resolve) => {
        this.pendingCommit = resolve;
      });
      this.tell({
        type: 'checkpoint',
        step,
        manifestKey: `${objectKeys.checkpointDir(job.sweepId, job.trialId, step, writer)}manifest.json`,
        sampleKey: objectKeys.sample(job.sweepId, job.trialId, step),
        restarts: 0,
        resolution: job.dataset.image_size,
      });
      return committed;
    };
    while (this.connected) {
      // The last report comes at the trial's exact length, not on a whole tick: ends of trials are not in
      // step with the progress clock (nor with a coordinator's timer of the same period).
      await this.sleep(Math.min(d.progressMs, Math.max(0, t0 + wallMs - Date.now())));
      if (!this.connected) return;
      if (this.stopRequest) {
        if (this.stopRequest.checkpoint && step > startStep) await checkpoint();
        this.tell({ type: 'stopped', step });
        return;
      }
      const elapsed = Date.now() - t0;
      step =
        elapsed >= wallMs
          ? steps
          : Math.min(steps - 1, startStep + Math.round(((steps - startStep) * elapsed) / wallMs));
      this.tell({ type: 'progress', ...stepMetrics(rng, step, imagesPerSec) });
      const last = step === steps;
      const simSinceCheckpoint = ((Date.now() - lastCheckpointAt) / 1000) * d.timeScale;
      if ((last || simSinceCheckpoint >= d.checkpointSimS) && !(await checkpoint())) return;
      if (last) {
        const m = stepMetrics(rng, step, imagesPerSec);
        this.tell({
          type: 'done',
          step,
          summary: {
            images_per_sec: imagesPerSec,
            d_loss: m.d_loss,
            g_loss: m.g_loss,
            d_real: m.d_real,
            d_fake: m.d_fake,
          },
        });
        return;
      }
    }
  }
}

/** A TrainerLauncher that starts a {@link FakeTrainer} with `design`. */
export function fakeTrainerLauncher(design: FakeTrainerDesign): TrainerLauncher {
  return () => new FakeTrainer(design);
}
