/** Hard limits on what users may submit; exceeding one is a 400 (or 413 for sizes) naming the field. */
export const LIMITS = {
  /** Largest sweep spec, YAML or JSON, in bytes. */
  specBytes: 64 * 1024,
  /** Largest HTTP request body accepted by the API, in bytes. */
  bodyBytes: 256 * 1024,
  /** A 10,000-trial sweep on 1,000 workers is what the scheduler is measured at (`npm run bench -- scale`). */
  maxTrials: 10_000,
  maxParallel: 1000,
  maxSteps: 1_000_000,
  maxValuesPerParameter: 100,
  maxNameLength: 63,
} as const;
