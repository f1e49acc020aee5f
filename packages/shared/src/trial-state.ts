import type { TrialHealth } from './health.ts';
import type { WarmNet } from './init-from.ts';
import type { StagePhase } from './models.ts';

/** Lifecycle of a sweep. */
export const SWEEP_STATES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type SweepState = (typeof SWEEP_STATES)[number];

/** Lifecycle of a trial; `stopped` = ended early by a scheduler or a health rule. */
export const TRIAL_STATES = [
  'queued',
  'running',
  'completed',
  'failed',
  'diverged',
  'stopped',
  'cancelled',
] as const;
export type TrialState = (typeof TRIAL_STATES)[number];

export const TERMINAL_TRIAL_STATES: ReadonlySet<TrialState> = new Set([
  'completed',
  'failed',
  'diverged',
  'stopped',
  'cancelled',
]);

/** The scalars a training step reports. */
export interface StepMetrics {
  step: number;
  d_loss: number;
  g_loss: number;
  /** Mean sigmoid(D(x)) over the batch; for a Wasserstein critic (wgan-gp, progan) its mean raw score. */
  d_real: number;
  /** Mean sigmoid(D(G(z))) over the batch; for a Wasserstein critic its mean raw score. */
  d_fake: number;
  images_per_sec: number;
  /** Global L2 norms of each network's gradient (absent in points from before they were reported). */
  g_grad_norm?: number;
  d_grad_norm?: number;
  /** Staged models: the stage's resolution and fade-in factor at this step. */
  resolution?: number;
  alpha?: number;
  /**
   * DiffAugment (the spec's `augment`): the probability each transform is applied at, and with ADA the
   * last interval's r_t = E[sign(D(x))] that steers it.
   */
  augment_p?: number;
  augment_rt?: number;
}

/** The last quality evaluation of a trial (README, "Quality metrics"). */
export interface TrialQuality {
  step: number;
  fld: number;
  /** Sets with classes only (a label-free feature network has none). */
  class_coverage?: number;
  class_kl?: number;
  diversity_ratio: number;
  /** cGAN only. */
  cond_accuracy?: number;
  /**
   * Image-conditioned families, on the held-out split: PSNR (dB) and SSIM of the outputs against the targets
   * (srgan on the Y channel with `scale` px of border cropped, as BasicSR computes them), and the same for
   * bicubic upsampling of the inputs (srgan's baseline).
   */
  psnr?: number;
  ssim?: number;
  psnr_bicubic?: number;
  ssim_bicubic?: number;
  /** pix2pix: mean |G(A) - B| on the [-1, 1] scale. */
  l1?: number;
  /** pix2pix on a set with classes: the set's classifier's accuracy on G(A), and on B itself. */
  class_accuracy?: number;
  class_accuracy_real?: number;
  /**
   * Conditional families whose spec asks for it, at the last evaluation only: the classifier's test
   * accuracy gain from M generated images per class over K real ones alone (aug-gain.ts).
   */
  aug_gain?: number;
}

/** One point of a trial's step history, as reported by the worker that trains it. */
export interface TrialMetrics extends StepMetrics {
  /** Unix milliseconds. */
  t: number;
  /** Worker that produced the point; a resumed trial's history shows the hand-over. */
  worker?: string;
}

/** Pointer to a complete checkpoint: its step and the key of its manifest (written last). */
export interface CheckpointRef {
  step: number;
  manifestKey: string;
  worker: string;
  t: number;
  /** Health restarts before this checkpoint: a checkpoint after a restart supersedes later steps. */
  restarts?: number;
}

/** Where a staged trial (progressive growing) stands. */
export interface TrialStage {
  /** Stage being trained or next to train, 0-based. */
  index: number;
  count: number;
  /** Progressive growing: image size of the stage (square). */
  resolution?: number;
  /** A family staged by phase (srgan): the stage's phase. */
  phase?: StagePhase;
  /** Fade-in factor of the new layers at the last report: 0 to 1 over the fade steps, then 1. */
  alpha: number;
  /** Stages finished; a finished stage is never trained again. */
  done: number;
}

/** One event of a staged trial's life, in the order they happened (API: the trial's `stageEvents`). */
export interface StageEvent {
  stage: number;
  resolution?: number;
  phase?: StagePhase;
  /** `start`: an attempt began the stage (`step` = where it resumed); `done`: the stage finished. */
  event: 'start' | 'done';
  step: number;
  worker: string;
  /** BullMQ attempt of the stage's job, 1-based. */
  attempt: number;
  t: number;
  /** `done`: the quality evaluation at the stage's last step, when this attempt made one. */
  quality?: TrialQuality;
}

/**
 * One event of a trial's attempts, oldest first (API: the trial's `events`): where each attempt began,
 * why one did not resume from the newest checkpoint, why one failed.
 */
export interface TrialEvent {
  /**
   * `start`: an attempt began (`step` = where it resumed); `fallback`: the checkpoint it was to resume from
   * (`from`) could not be used and it resumed from an older one (`step`, 0 = from scratch); `failed`: the
   * attempt ended in an error (`reason`); BullMQ retries it while attempts are left; `gave-back`: a fault of
   * the worker's node (`reason`: a full data set cache) and not of the trial, so the job went back to the
   * queue without using an attempt; `init`: a fresh start took networks from another trial's checkpoint
   * (`initFrom`, the spec's init_from); `done`: the attempt
   * completed the trial (written with the completion itself: a trial has one).
   */
  event: 'start' | 'fallback' | 'failed' | 'gave-back' | 'init' | 'done';
  /** BullMQ attempt of the trial's job, 1-based. */
  attempt: number;
  worker: string;
  step: number;
  t: number;
  reason?: string;
  from?: number;
  /** `init`: the trial and step of the checkpoint, and the networks taken from it. */
  initFrom?: { trial: string; step: number; nets: WarmNet[] };
}

/** A sample grid written with a checkpoint. */
export interface SampleRef {
  step: number;
  key: string;
  t: number;
  /** Image size of the grid's samples (staged models change it per stage). */
  resolution?: number;
}

/** A trial as stored in Redis and served by the API. */
export interface TrialRecord {
  id: string;
  sweepId: string;
  index: number;
  state: TrialState;
  params: Record<string, number>;
  seed: number;
  step: number;
  steps: number;
  reason?: string;
  worker?: string;
  attempts: number;
  /** Step the latest attempt resumed from (0 for a fresh start). */
  resumedFrom?: number;
  metrics?: TrialMetrics;
  /** Averages over the last tenth of the run, reported when the trial completes. */
  summary?: Record<string, number>;
  /** Final value of the sweep's metric (from `summary`), once completed. */
  result?: number;
  latestCheckpoint?: CheckpointRef;
  /** Last quality evaluation. */
  quality?: TrialQuality;
  /** Health restarts and detections (README, "GAN health"). */
  health?: TrialHealth;
  /** Staged models only. */
  stage?: TrialStage;
  /** Staged models: the stage whose job the coordinator queued last. */
  jobStage?: number;
  /**
   * A trial trained in segments (a scheduler that pauses trials: pbt, asha promote; pbt-replay): the
   * segment whose job the coordinator queued last (job id `<trialId>-k<segment>`), and the step that job
   * pauses at. Absent for a trial trained in one job.
   */
  segment?: number;
  until?: number;
  /** Set by the worker when a segment's job paused the trial at this step (with a checkpoint there). */
  pausedAt?: number;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
}

/** A sweep as stored in Redis (spec kept verbatim in compiled form). */
export interface SweepRecord {
  id: string;
  name: string;
  state: SweepState;
  createdAt: number;
  endedAt?: number;
  trialIds: string[];
}

/** A worker's heartbeat, refreshed every few seconds. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  backend: string;
  device: string;
  concurrency: number;
  busyTrials: string[];
  metricsUrl: string;
  lastHeartbeat: number;
  startedAt: number;
  /** Set while the worker takes no jobs after a fault of its node (a full data set cache), with why. */
  fault?: string;
}
