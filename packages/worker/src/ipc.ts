import type {
  CheckpointRef,
  HealthDetection,
  ObjectStoreConfig,
  StepMetrics,
  TrialEvent,
  TrialJob,
  TrialQuality,
} from '@gantry/shared';
import type { BackendName } from './backend.ts';

/** Parent -> trainer child: what to train. Sent once, right after the fork. */
export interface StartMessage {
  type: 'start';
  job: TrialJob;
  /**
   * Checkpoints to resume from, best first (resume-candidates.ts); the first one that reads back whole is
   * used. Empty: a fresh start.
   */
  resume: CheckpointRef[];
  /** Identifies this attempt's objects in the store (`checkpoints/<step>/<writer>/`). */
  writer: string;
  store: ObjectStoreConfig;
  /** How long object-store operations retry through an outage (GantryConfig.s3RetryMs). */
  storeRetryMs: number;
  backend?: BackendName;
  /** See TrialRunnerDeps.wasmGemm. */
  wasmGemm?: boolean;
  /** The job's data set version on this node's disk (fetched and verified by the parent). */
  datasetDir: string;
  /** Send a progress message every this many steps. */
  progressEvery: number;
  /** Fault injection (tests): real batches become NaN from this step on. */
  faultNanAtStep?: number;
}

/** Parent -> child: stop at the next step boundary; `checkpoint` says whether to save first. */
export interface StopMessage {
  type: 'stop';
  checkpoint: boolean;
}

/** Parent -> child: answer to a checkpoint message. */
export interface CommitResultMessage {
  type: 'commit-result';
  step: number;
  ok: boolean;
}

export type ParentMessage = StartMessage | StopMessage | CommitResultMessage;

export interface ReadyMessage {
  type: 'ready';
  backend: string;
  device: string;
  startStep: number;
  /** Where the start-up went (startup-marks.ts): for bench/startup.ts and the attempt's log. */
  startup?: StartupTimes;
}

/**
 * The trainer's start-up, each phase's end in ms since the process began (`performance.timeOrigin`, the
 * epoch ms it began at, lets the parent add the fork itself): the entry script running, its loader
 * (compiled entry or tsx) ready, every static import evaluated, the start message in, the backend (and within
 * it Gantry's GEMM module) up, the data set read, the trainer built, ready to step.
 */
export interface StartupTimes {
  timeOrigin: number;
  /** `compiled`: the cached bundle of the trainer's sources; `tsx`: transpiled on import. */
  entry: 'compiled' | 'tsx';
  marks: Record<string, number>;
  /** The process's CPU time (user + system, ms) at each mark: what a phase costs on a busy machine too. */
  cpu: Record<string, number>;
}

export interface ProgressMessage extends StepMetrics {
  type: 'progress';
}

/** Child -> parent: a checkpoint's objects are in the store; commit the pointer (fenced). */
export interface CheckpointMessage {
  type: 'checkpoint';
  step: number;
  manifestKey: string;
  sampleKey: string;
  /** Health restarts so far (orders the checkpoint pointer). */
  restarts: number;
  /** Image size of the sample grid. */
  resolution: number;
}

export interface DoneMessage {
  type: 'done';
  step: number;
  summary: Record<string, number>;
}

/**
 * Child -> parent: a segment's job (`until`) trained up to its step, evaluated and checkpointed there
 * (both reported before this), and ends: the parent pauses the trial for the coordinator to go on.
 */
export interface PausedMessage {
  type: 'paused';
  step: number;
}

/** Child -> parent: training produced a non-finite value; retrying cannot help. */
export interface DivergedMessage {
  type: 'diverged';
  step: number;
  reason: string;
}

/** Child -> parent: a quality evaluation's scores. */
export interface EvalMessage {
  type: 'eval';
  quality: TrialQuality;
}

/** Child -> parent: a health detector fired and its policy was applied (`t` is set by the parent). */
export interface HealthMessage {
  type: 'health';
  detection: Omit<HealthDetection, 't'>;
}

/** Child -> parent: a health rule stopped the trial (state `stopped`, not retried). */
export interface HaltedMessage {
  type: 'halted';
  step: number;
  reason: string;
}

/** Child -> parent: something worth a log line (a quality classifier trained on first use, say). */
export interface NoteMessage {
  type: 'note';
  message: string;
}

/**
 * Child -> parent: the checkpoint at step `from` cannot be used (`reason`); the trainer resumes from `to`
 * instead (undefined: from scratch). The parent moves the trial's pointer back before anything else.
 */
export interface FallbackMessage {
  type: 'fallback';
  /** The checkpoint the trial pointed at. */
  from: CheckpointRef;
  to?: CheckpointRef;
  reason: string;
}

/** Child -> parent: a fresh start took the networks `from.nets` of another trial's checkpoint (init_from). */
export interface WarmStartMessage {
  type: 'warm-start';
  from: NonNullable<TrialEvent['initFrom']>;
}

/** Child -> parent: stopped on request (after checkpointing if asked). */
export interface StoppedMessage {
  type: 'stopped';
  step: number;
}

export interface FailedMessage {
  type: 'failed';
  message: string;
  code?: string;
  /** True when retrying cannot succeed (corrupt checkpoint, bad data). */
  unrecoverable: boolean;
}

export type ChildMessage =
  | ReadyMessage
  | ProgressMessage
  | CheckpointMessage
  | DoneMessage
  | PausedMessage
  | DivergedMessage
  | EvalMessage
  | HealthMessage
  | HaltedMessage
  | StoppedMessage
  | NoteMessage
  | FallbackMessage
  | WarmStartMessage
  | FailedMessage;

/**
 * What a trial attempt needs of its trainer: a child process speaking this protocol over IPC. The real one
 * is a forked `gantry-trainer`; the scale simulation (bench/scale) gives an in-process one that reports
 * progress and checkpoints on a clock without training, so that the rest of the worker runs as it is.
 */
export interface TrainerChild {
  readonly connected: boolean;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  send(m: ParentMessage): boolean;
  kill(signal?: NodeJS.Signals): boolean;
  on(event: 'message', listener: (m: ChildMessage) => void): this;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
}

/** Starts an attempt's trainer with the environment it should see (CUDA_VISIBLE_DEVICES for its GPU). */
export type TrainerLauncher = (env: NodeJS.ProcessEnv) => TrainerChild;
