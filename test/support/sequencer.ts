import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds the slowest files take on their own on the 2-core dev machine (vitest's duration of the file),
 * for a fresh clone, where vitest has no timings of earlier runs and would order files by size: a small
 * file that runs for minutes could then start last and hold up the end of the run.
 */
const SECONDS: Readonly<Record<string, number>> = {
  'test/faults/store-faults.test.ts': 102,
  'test/faults/worker-faults.test.ts': 91,
  'test/e2e-search.test.ts': 70,
  'test/e2e-image-families.test.ts': 67,
  'packages/worker/src/families/trainer-leak.test.ts': 65,
};

/**
 * Longest first, so that the forks finish together: each file's duration from vitest's cache of the last
 * run where it has one, else from the table above; the files known neither way follow, those of `test/`
 * (real Redis, S3 and processes: tens of seconds each) before the unit tests beside the code, each group
 * in vitest's own order (largest first).
 */
export class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const ordered = await super.sort(files);
    const root = this.ctx.config.root;
    const seconds = (spec: TestSpecification): number | undefined => {
      const path = relative(root, spec.moduleId).split('\\').join('/');
      const cached = this.ctx.cache.getFileTestResults(`${spec.project.name}:${path}`);
      return cached ? cached.duration / 1000 : SECONDS[path];
    };
    const known = ordered.filter((s) => seconds(s) !== undefined);
    known.sort((a, b) => seconds(b)! - seconds(a)!);
    const unknown = ordered.filter((s) => seconds(s) === undefined);
    const inTest = (s: TestSpecification) => relative(root, s.moduleId).startsWith('test');
    return [...known, ...unknown.filter(inTest), ...unknown.filter((s) => !inTest(s))];
  }
}
