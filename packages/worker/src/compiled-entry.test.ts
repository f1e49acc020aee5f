import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { compiledEntry } from '../bin/compiled-entry.mjs';

const dirs: string[] = [];
const tmp = async (prefix: string) => {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** Runs a bundle in a process of its own; it prints one JSON line. */
const run = (path: string) => JSON.parse(execFileSync(process.execPath, [path], { encoding: 'utf8' }));

describe('the compiled entry of a child process', () => {
  it('bundles an entry once, keeps its own import.meta.url per source, and rebuilds when a source changes', async () => {
    const src = await tmp('gantry-entry-src-');
    const cacheDir = await tmp('gantry-entry-cache-');
    const entry = join(src, 'entry.ts');
    await writeFile(
      join(src, 'dep.ts'),
      'export const value: number = 1;\nexport const where = import.meta.url;\n',
    );
    await writeFile(
      entry,
      "import { value, where } from './dep.ts';\nconsole.log(JSON.stringify({ value, where }));\n",
    );
    const first = await compiledEntry({ entry, cacheDir });
    expect(first?.built).toBe(true);
    expect(run(first!.path)).toEqual({ value: 1, where: pathToFileURL(join(src, 'dep.ts')).href });
    // Fresh: used as it is.
    expect(await compiledEntry({ entry, cacheDir, build: false })).toEqual({
      path: first!.path,
      built: false,
    });
    // A source changed: stale, so not used; built again on request.
    await writeFile(join(src, 'dep.ts'), 'export const value: number = 2;\nexport const where = "x";\n');
    expect(await compiledEntry({ entry, cacheDir, build: false })).toBeUndefined();
    const second = await compiledEntry({ entry, cacheDir });
    expect(second?.built).toBe(true);
    expect(second!.path).not.toBe(first!.path);
    expect(run(second!.path).value).toBe(2);
  });

  it("bundles the trainer's own sources", async () => {
    const cacheDir = await tmp('gantry-entry-cache-');
    const entry = fileURLToPath(new URL('./trainer-process.ts', import.meta.url));
    const built = await compiledEntry({ entry, cacheDir });
    expect(built?.built).toBe(true);
    expect((await compiledEntry({ entry, cacheDir, build: false }))?.path).toBe(built!.path);
  });
});
