import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from './api-client.ts';
import { checkOutputDir, writeExport } from './export-command.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gantry-export-cli-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e) => (e instanceof ApiError ? e.code : String(e)),
  );

describe('gantry export output folder', () => {
  it('takes a new or empty folder, and a used one only with --force; never a file', async () => {
    expect(await codeOf(checkOutputDir(join(work, 'new')))).toBe('ok');
    await mkdir(join(work, 'empty'));
    expect(await codeOf(checkOutputDir(join(work, 'empty')))).toBe('ok');
    await mkdir(join(work, 'used'));
    await writeFile(join(work, 'used', 'a.txt'), 'x');
    expect(await codeOf(checkOutputDir(join(work, 'used')))).toBe('OUTPUT_NOT_EMPTY');
    expect(await codeOf(checkOutputDir(join(work, 'used'), true))).toBe('ok');
    expect(await codeOf(checkOutputDir(join(work, 'used', 'a.txt'), true))).toBe('OUTPUT_IS_FILE');
  });

  it('writes the files the API sent, and none whose name would leave the folder', async () => {
    const dir = join(work, 'out');
    const bytes = await writeExport(dir, {
      trialId: 't',
      step: 1,
      net: 'g',
      files: [{ name: 'model.json', base64: Buffer.from('{}').toString('base64') }],
    });
    expect(bytes).toBe(2);
    expect(await readdir(dir)).toEqual(['model.json']);
    expect(await readFile(join(dir, 'model.json'), 'utf8')).toBe('{}');
    for (const name of ['../x', '.hidden', 'a/b'])
      await expect(
        writeExport(dir, { trialId: 't', step: 1, net: 'g', files: [{ name, base64: '' }] }),
      ).rejects.toThrow(/refusing to write/);
  });
});
