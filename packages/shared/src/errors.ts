/** A field-level problem found while validating input. */
export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `parameters.lr_g.min`; empty for the whole document. */
  path: string;
  message: string;
}

/** Base class of every error that crosses a process or HTTP boundary: a stable `code` and an HTTP status. */
export class GantryError extends Error {
  readonly code: string;
  readonly status: number;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: string,
    status: number,
    message: string,
    options: { cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.context = options.context ?? {};
  }

  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Thrown when a sweep spec (YAML/JSON, API or CLI) fails validation; nothing has been queued. */
export class SpecValidationError extends GantryError {
  readonly issues: readonly FieldIssue[];
  constructor(issues: FieldIssue[]) {
    const first = issues[0];
    const head = first ? `${first.path || '(spec)'}: ${first.message}` : 'invalid spec';
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    super('INVALID_SPEC', 400, `invalid sweep spec: ${head}${more}`);
    this.issues = issues;
  }

  override toJSON(): { code: string; message: string; issues: readonly FieldIssue[] } {
    return { code: this.code, message: this.message, issues: this.issues };
  }
}

/** Thrown for a bad request parameter (query string, path); names the parameter. */
export class BadRequestError extends GantryError {
  readonly issues: readonly FieldIssue[];
  constructor(field: string, message: string) {
    super('BAD_REQUEST', 400, `${field}: ${message}`);
    this.issues = [{ path: field, message }];
  }

  override toJSON(): { code: string; message: string; issues: readonly FieldIssue[] } {
    return { code: this.code, message: this.message, issues: this.issues };
  }
}

/** Thrown when a request body or spec exceeds its size limit. */
export class PayloadTooLargeError extends GantryError {
  constructor(what: string, limitBytes: number) {
    super('PAYLOAD_TOO_LARGE', 413, `${what} is larger than ${limitBytes} bytes`, {
      context: { limitBytes },
    });
  }
}

/** Thrown when a sweep, trial or object asked for by id does not exist; `detail` says what there is. */
export class NotFoundError extends GantryError {
  constructor(
    kind: 'sweep' | 'trial' | 'sample' | 'checkpoint' | 'dataset' | 'augmentation',
    id: string,
    detail?: string,
  ) {
    super('NOT_FOUND', 404, `${kind} '${id}' not found${detail ? `: ${detail}` : ''}`, {
      context: { kind, id },
    });
  }
}

/**
 * Thrown when a data set being pushed is refused (a corrupt image, an unreadable archive, mixed sizes, a
 * pair with one side missing, limits exceeded, ...): names the file and the reason. Nothing was written.
 */
export class InvalidDatasetError extends GantryError {
  readonly issues: readonly FieldIssue[];
  constructor(file: string, reason: string, options: { cause?: unknown } = {}) {
    super('INVALID_DATASET', 400, `${file}: ${reason}`, { cause: options.cause, context: { file, reason } });
    this.issues = [{ path: file, message: reason }];
  }

  override toJSON(): { code: string; message: string; issues: readonly FieldIssue[] } {
    return { code: this.code, message: this.message, issues: this.issues };
  }
}

/** Thrown when an operation does not fit the current state (cancelling a finished sweep, say). */
export class ConflictError extends GantryError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('CONFLICT', 409, message, { context });
  }
}

/** Thrown by a worker when a job payload fails validation; the job fails without retries. */
export class InvalidJobPayloadError extends GantryError {
  readonly issues: readonly FieldIssue[];
  constructor(jobId: string | undefined, issues: FieldIssue[]) {
    const first = issues[0];
    super(
      'INVALID_JOB_PAYLOAD',
      400,
      `job ${jobId ?? '?'} has an invalid payload: ${first ? `${first.path}: ${first.message}` : 'unknown'}`,
      { context: { jobId } },
    );
    this.issues = issues;
  }
}

/** Thrown when a checkpoint commit is refused because this worker no longer holds the trial's lock. */
export class CheckpointFencedError extends GantryError {
  constructor(trialId: string, step: number) {
    super(
      'CHECKPOINT_FENCED',
      409,
      `trial ${trialId}: lost the job lock, checkpoint at step ${step} not committed`,
      {
        context: { trialId, step },
      },
    );
  }
}

/** Thrown when a checkpoint's manifest or objects are missing or do not match their recorded sizes. */
export class CorruptCheckpointError extends GantryError {
  /** True when the object is not in the store at all (rather than there and wrong). */
  readonly missing: boolean;
  constructor(trialId: string, key: string, why: string, options: { missing?: boolean } = {}) {
    super('CORRUPT_CHECKPOINT', 500, `trial ${trialId}: checkpoint ${key} is corrupt: ${why}`, {
      context: { trialId, key },
    });
    this.missing = options.missing ?? false;
  }
}

/** Thrown when configuration from the environment is invalid. */
export class ConfigError extends GantryError {
  constructor(issues: FieldIssue[]) {
    super(
      'INVALID_CONFIG',
      500,
      `invalid configuration: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    );
  }
}

/** Codes of {@link InferenceError} and their HTTP status. */
export const INFERENCE_ERROR_STATUS = {
  /** The body is not a PNG or JPEG, or is corrupt. */
  INVALID_IMAGE: 400,
  /** The image is not the size the trial's generator takes. */
  WRONG_IMAGE_SIZE: 400,
  /** The image's channels cannot be given to the trial's generator (a colour image to a gray model). */
  WRONG_IMAGE_CHANNELS: 400,
  /** An image to a generative trial, or none to an image-conditioned one. */
  WRONG_INPUT: 400,
  /** The trial's network runs an op that the exported TF.js graph model cannot express (`gantry export`). */
  NOT_EXPORTABLE: 422,
  /** Every inference process is busy and the queue is full; `retryAfterS` says when to try again. */
  INFERENCE_BUSY: 503,
  /** The inference process did not answer in time and was killed. */
  INFERENCE_TIMEOUT: 504,
  /** The inference process failed or exited. */
  INFERENCE_FAILED: 500,
} as const;
export type InferenceErrorCode = keyof typeof INFERENCE_ERROR_STATUS;

/**
 * Thrown when a trial's generator cannot be run on a request (`gantry infer`, `POST /v1/trials/:id/infer`):
 * the input does not suit the trial (400), the inference processes are busy (503) or one hung or failed.
 * An error the inference process sends back keeps its own code and status ({@link InferenceError.fromWire}).
 */
export class InferenceError extends GantryError {
  readonly issues: readonly FieldIssue[];
  constructor(
    code: InferenceErrorCode,
    message: string,
    options: { issues?: FieldIssue[]; retryAfterS?: number; cause?: unknown; status?: number } = {},
  ) {
    super(code, options.status ?? INFERENCE_ERROR_STATUS[code] ?? 500, message, {
      cause: options.cause,
      context: options.retryAfterS !== undefined ? { retryAfterS: options.retryAfterS } : {},
    });
    // The input codes are about the request body; the others about the service.
    const path = INFERENCE_ERROR_STATUS[code] === 400 ? 'body' : '';
    this.issues = options.issues ?? [{ path, message }];
  }

  /** An error as the inference process sent it back: its code, status, message and issues. */
  static fromWire(e: WireError): InferenceError {
    return new InferenceError(e.code as InferenceErrorCode, e.message, {
      status: e.status,
      issues: e.issues ?? [],
    });
  }

  override toJSON(): { code: string; message: string; issues: readonly FieldIssue[] } {
    return { code: this.code, message: this.message, issues: this.issues };
  }
}

/** A GantryError as it crosses a process boundary (the inference child's answers). */
export interface WireError {
  code: string;
  status: number;
  message: string;
  issues?: FieldIssue[];
}

/** The wire form of any error: a GantryError's code, status and issues; anything else a 500 `code`. */
export function toWireError(err: unknown, code = 'INTERNAL'): WireError {
  if (err instanceof GantryError) {
    const issues = (err as { issues?: readonly FieldIssue[] }).issues;
    return {
      code: err.code,
      status: err.status,
      message: err.message,
      ...(issues ? { issues: [...issues] } : {}),
    };
  }
  return { code, status: 500, message: err instanceof Error ? err.message : String(err) };
}
