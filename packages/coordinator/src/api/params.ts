import { BadRequestError } from '@gantry/shared';

/** Sweep and trial ids as the coordinator makes them (trial-job.ts checks the same in job payloads). */
const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,127}$/;

/** `value` when it can be a sweep's or trial's id; a 400 naming the parameter otherwise. */
export function checkId(param: string, value: string): string {
  if (!ID_PATTERN.test(value)) {
    throw new BadRequestError(
      param,
      `not a valid id (lowercase letters, digits and -, at most 128): ${JSON.stringify(value.slice(0, 80))}`,
    );
  }
  return value;
}
