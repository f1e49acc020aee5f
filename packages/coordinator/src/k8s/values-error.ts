import { type FieldIssue, GantryError } from '@gantry/shared';

/**
 * Thrown when `gantry k8s render`'s values (files, `--set`s, the merged result) fail validation; each
 * issue names the field (`worker.gpu.replicas`) or the argument (`--set ...`, a file). Nothing is rendered.
 */
export class ValuesError extends GantryError {
  readonly issues: readonly FieldIssue[];
  constructor(issues: FieldIssue[]) {
    const first = issues[0];
    const head = first ? `${first.path || '(values)'}: ${first.message}` : 'invalid values';
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    super('INVALID_VALUES', 400, `invalid values: ${head}${more}`);
    this.issues = issues;
  }
}
