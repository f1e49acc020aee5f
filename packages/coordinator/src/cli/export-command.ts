import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { EXPORT_NETS, type ExportNet } from '@gantry/shared';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type ApiClient, ApiError } from './api-client.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

interface ExportOptions {
  output: string;
  step?: number;
  net: ExportNet;
  force?: boolean;
}

/** What `POST /v1/trials/:id/export` answers. */
export interface ExportAnswer {
  trialId: string;
  step: number;
  net: ExportNet;
  files: { name: string; base64: string }[];
}

function wholeNumber(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('must be a whole number');
  return n;
}

/**
 * Where an export may be written: a folder that does not exist yet (it is made), an empty one, or with
 * `force` one whose files of the same names are replaced.
 * @throws ApiError OUTPUT_IS_FILE, OUTPUT_NOT_EMPTY (checked before anything is asked of the API)
 */
export async function checkOutputDir(dir: string, force = false): Promise<void> {
  const st = await stat(dir).catch(() => undefined);
  if (!st) return;
  if (!st.isDirectory())
    throw new ApiError(0, 'OUTPUT_IS_FILE', `-o ${dir} is a file; an export is a folder of files`, [
      { path: 'output', message: 'must be a folder' },
    ]);
  const entries = await readdir(dir);
  if (entries.length > 0 && !force)
    throw new ApiError(
      0,
      'OUTPUT_NOT_EMPTY',
      `-o ${dir} is not empty (${entries.length} entries); name a new or empty folder, or pass --force to replace the export's files there`,
      [{ path: 'output', message: 'must be a new or empty folder' }],
    );
}

/** Writes the export's files into `dir`; names are the API's, checked to stay inside `dir`. */
export async function writeExport(dir: string, answer: ExportAnswer): Promise<number> {
  await mkdir(dir, { recursive: true });
  let bytes = 0;
  for (const f of answer.files) {
    if (basename(f.name) !== f.name || f.name.startsWith('.'))
      throw new Error(`the API sent a file named ${JSON.stringify(f.name)}; refusing to write it`);
    const data = Buffer.from(f.base64, 'base64');
    bytes += data.length;
    await writeFile(join(dir, f.name), data);
  }
  return bytes;
}

export function registerExportCommand(program: Command, api: () => ApiClient): void {
  program
    .command('export')
    .description(
      "write a trial's generator (or discriminator) of a committed checkpoint as a TensorFlow.js graph model: model.json + weights.bin, which stock @tensorflow/tfjs loads (tf.loadGraphModel) in Node or a browser with no Gantry code",
    )
    .argument('<trialId>', 'the trial (gantry status <sweepId> lists them and names the best)')
    .requiredOption(
      '-o, --output <dir>',
      "a new or empty folder: model.json, weights.bin, example.json (inputs and the trial's outputs for them), gantry-export.json, README.md",
    )
    .option('-s, --step <n>', 'the checkpoint of this step (default: the latest)', wholeNumber)
    .addOption(
      new Option('--net <net>', 'g: the generator, d: the discriminator').choices(EXPORT_NETS).default('g'),
    )
    .option('--force', 'write into a folder that is not empty, replacing files of the same names')
    .addHelpText(
      'after',
      `
Examples:
  gantry export <trialId> -o ./g                 # the latest checkpoint's generator
  gantry export <trialId> --net d --step 2000 -o ./d

In JavaScript (Node or a browser), serving the folder over HTTP:
  const model = await tf.loadGraphModel('http://host/g/model.json');
  const images = model.execute({ z: tf.randomNormal([16, latentDim]) }, 'images');`,
    )
    .action(async (trialId: string, opts: ExportOptions) => {
      await checkOutputDir(opts.output, opts.force);
      const q = new URLSearchParams({ net: opts.net });
      if (opts.step !== undefined) q.set('step', String(opts.step));
      const answer = await api().post<ExportAnswer>(`/v1/trials/${encodeURIComponent(trialId)}/export?${q}`);
      const bytes = await writeExport(opts.output, answer);
      say(
        `wrote ${answer.files.length} files to ${opts.output} (${answer.files.map((f) => f.name).join(', ')}; ${(bytes / 1e6).toFixed(2)} MB): the ${answer.net === 'g' ? 'generator' : 'discriminator'} of ${answer.trialId} at step ${answer.step}`,
      );
    });
}
