import type {
  AugmentationJob,
  AugmentationProgress,
  AugmentationResult,
  ObjectStoreConfig,
} from '@gantry/shared';
import type { BackendName } from '../backend.ts';

/** Worker -> augmentation child: what to measure. Sent once, right after the fork. */
export interface AugmentStartMessage {
  type: 'start';
  /** Checked by the parent (parseAugmentationJob, parseTrialJob). */
  job: AugmentationJob;
  store: ObjectStoreConfig;
  /** How long object-store reads retry through an outage. */
  storeRetryMs: number;
  backend?: BackendName;
  wasmGemm?: boolean;
  /** The trial's data set version on this node's disk (fetched and verified by the parent). */
  datasetDir: string;
}

/** Child -> worker: the trainer is built from the checkpoint; `progress` before each arm; the end. */
export type AugmentChildMessage =
  | { type: 'ready'; backend: string; device: string }
  | { type: 'progress'; progress: AugmentationProgress }
  | { type: 'result'; result: AugmentationResult }
  /** `unrecoverable`: retrying cannot help (a corrupt checkpoint, data that do not fit the protocol). */
  | { type: 'failed'; message: string; unrecoverable: boolean };
