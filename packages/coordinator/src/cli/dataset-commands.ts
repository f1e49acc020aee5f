import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { DatasetManifest } from '@gantry/shared';
import { type Command, InvalidArgumentError } from 'commander';
import type { DatasetSummary } from '../datasets/dataset-store.ts';
import type { PushProgress, PushSummary } from '../datasets/push.ts';
import { type ApiClient, ApiError } from './api-client.ts';
import { folderFiles, tarSize, tarStream } from './tar-stream.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

/** What an archive's first bytes say it is, as the content type the API takes. */
async function archiveType(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(262);
    await fh.read(head, 0, 262, 0);
    if (head[0] === 0x1f && head[1] === 0x8b) return 'application/gzip';
    if (head.subarray(0, 2).toString('latin1') === 'PK') return 'application/zip';
    return 'application/x-tar';
  } finally {
    await fh.close();
  }
}

/** Counts bytes as they go by, for an upload's progress. */
async function* counted(
  src: AsyncIterable<Uint8Array>,
  onBytes: (n: number) => void,
): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const chunk of src) {
    n += chunk.length;
    onBytes(n);
    yield chunk;
  }
}

const mb = (n: number) =>
  n < 1024 ** 2 ? `${(n / 1024).toFixed(0)} KB` : `${(n / 1024 ** 2).toFixed(1)} MB`;

/** One line per version: what `dataset list` and `dataset show` print. */
export function versionLine(m: DatasetManifest): string {
  const kind = m.paired ? 'paired' : m.classes.length > 0 ? `${m.classes.length} classes` : 'unlabelled';
  const bytes = m.shards.reduce((n, s) => n + s.bytes, 0);
  const when = new Date(m.created_at).toISOString().slice(0, 19).replace('T', ' ');
  return `${m.version}  ${m.image.width}x${m.image.height}x${m.image.channels}  ${m.counts.train} train / ${m.counts.test} test  ${kind}  ${mb(bytes)}  ${when}`;
}

/** What a finished push prints. */
export function pushSummaryLines(s: PushSummary): string[] {
  const m = s.manifest;
  const lines = [
    `${s.created ? 'pushed' : 'already there:'} ${m.name}@${m.version}`,
    `  ${versionLine(m)}`,
    `  ${m.source.files} files read, ${m.source.skipped} skipped (not PNG or JPEG)${m.source.resized_to ? `, resized to ${m.source.resized_to}x${m.source.resized_to}` : ''}${m.source.alpha === 'composited' ? ', alpha composited on white' : ''}`,
    `  ${s.seconds.toFixed(1)} s, ${s.imagesPerSec.toFixed(0)} images/s`,
  ];
  if (m.classes.length > 0) {
    const per = m.counts.per_class;
    lines.push(
      `  classes: ${m.classes.map((c, i) => `${c} (${(per?.train[i] ?? 0) + (per?.test[i] ?? 0)})`).join(', ')}`,
    );
  }
  lines.push(
    `  use it in a spec: dataset: {name: ${m.name}, version: ${m.version}}  (or just dataset: ${m.name} for the newest)`,
  );
  return lines;
}

function progressLine(p: PushProgress): string {
  if (p.phase === 'read') return `reading: ${p.files} files, ${p.images} images, ${p.skipped} skipped`;
  if (p.phase === 'pack') return `packing ${p.images} examples`;
  return `writing shards: ${p.shards}/${p.total}`;
}

function size(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 4 || n > 1024)
    throw new InvalidArgumentError('must be an integer from 4 to 1024');
  return n;
}

export function registerDatasetCommands(program: Command, api: () => ApiClient): void {
  const dataset = program.command('dataset').description('push, list and show data sets');

  dataset
    .command('push')
    .description(
      'push a folder or a .tar, .tar.gz or .zip of PNG/JPEG images as a new version of a data set (class = first sub-folder)',
    )
    .argument('<source>', 'folder or archive')
    .requiredOption('--name <name>', 'data set name (lowercase letters, digits, -)')
    .option('--size <n>', 'centre-crop every image to a square and resize it to n x n', size)
    .option(
      '--paired [layout]',
      'paired set: folders (A/ and B/ with the same file names, the default) or ab (side by side)',
    )
    .option(
      '--channels <n>',
      'store 1 (gray), 3 (RGB) or 4 (RGBA) channels (default: 3 for colour, 1 for gray)',
    )
    .option('--test-fraction <f>', 'share of each class held out for testing', '0.1')
    .action(
      async (
        source: string,
        opts: {
          name: string;
          size?: number;
          paired?: string | boolean;
          channels?: string;
          testFraction: string;
        },
      ) => {
        const info = await stat(source);
        const query = new URLSearchParams({ name: opts.name, test_fraction: opts.testFraction });
        if (opts.size) query.set('size', String(opts.size));
        if (opts.channels) query.set('channels', opts.channels);
        if (opts.paired) query.set('paired', opts.paired === true ? 'folders' : opts.paired);
        let body: AsyncIterable<Uint8Array>;
        let total: number;
        let type: string;
        if (info.isDirectory()) {
          const files = await folderFiles(source);
          if (files.length === 0) throw new ApiError(0, 'INVALID_DATASET', `${source}: holds no files`);
          body = tarStream(files);
          total = tarSize(files);
          type = 'application/x-tar';
        } else {
          body = createReadStream(source);
          total = info.size;
          type = await archiveType(source);
        }
        const tty = process.stderr.isTTY;
        const status = (line: string) =>
          tty ? process.stderr.write(`\r\x1b[K${line}`) : process.stderr.write(`${line}\n`);
        let lastPct = -1;
        const uploaded = counted(body, (n) => {
          const pct = Math.floor((100 * n) / total);
          if (pct !== lastPct && (tty || pct % 25 === 0))
            status(`sending ${basename(source)}: ${pct}% of ${mb(total)}`);
          lastPct = pct;
        });
        let summary: PushSummary | undefined;
        let lastPhase = '';
        for await (const line of api().postStream<{
          progress?: PushProgress;
          done?: PushSummary;
          error?: { code: string; message: string; issues?: { path: string; message: string }[] };
        }>(`/v1/datasets?${query}`, uploaded, type)) {
          if (line.progress && (tty || line.progress.phase !== lastPhase))
            status(progressLine(line.progress));
          if (line.progress) lastPhase = line.progress.phase;
          if (line.done) summary = line.done;
          if (line.error) {
            if (tty) process.stderr.write('\n');
            throw new ApiError(400, line.error.code, line.error.message, line.error.issues ?? []);
          }
        }
        if (tty) process.stderr.write('\n');
        if (!summary)
          throw new ApiError(0, 'INCOMPLETE', 'the coordinator closed the push before it finished');
        for (const l of pushSummaryLines(summary)) say(l);
      },
    );

  dataset
    .command('list')
    .description('data sets in the store and the built-in ones, with their newest version')
    .action(async () => {
      const { datasets } = await api().get<{ datasets: DatasetSummary[] }>('/v1/datasets');
      for (const d of datasets) {
        const newest = d.versions[0];
        const what = newest ? versionLine(newest) : 'built in, pushed on first use';
        say(
          `${d.name.padEnd(24)} ${what}${d.versions.length > 1 ? `  (+${d.versions.length - 1} older)` : ''}`,
        );
      }
    });

  dataset
    .command('show')
    .description("a data set's versions, newest first, and its classes")
    .argument('<name>')
    .action(async (name: string) => {
      const d = await api().get<DatasetSummary>(`/v1/datasets/${encodeURIComponent(name)}`);
      say(`${d.name}${d.builtin ? ` (built in: ${d.description})` : ''}`);
      if (d.versions.length === 0) say('  no version pushed yet: the first sweep that names it pushes it');
      for (const v of d.versions) say(`  ${versionLine(v)}`);
      const newest = d.versions[0];
      if (newest && newest.classes.length > 0) say(`  classes: ${newest.classes.join(', ')}`);
      if (newest)
        say(`  split: ${newest.split.method}, test fraction ${newest.split.test_fraction.toFixed(3)}`);
    });
}
