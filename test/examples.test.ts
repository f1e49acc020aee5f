import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSweepSpec } from '@gantry/shared';
import { describe, expect, it } from 'vitest';

const dir = join(import.meta.dirname, '..', 'examples');

describe('the example sweeps', async () => {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
  it('are there', () => expect(files.length).toBeGreaterThanOrEqual(3));
  for (const file of files) {
    it(`${file} is a valid spec whose name matches its file`, async () => {
      const spec = parseSweepSpec(await readFile(join(dir, file), 'utf8'));
      expect(`${spec.name}.yaml`).toBe(file);
    });
  }
});
