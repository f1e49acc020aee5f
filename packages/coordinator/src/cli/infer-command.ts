import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, extname, join, sep } from 'node:path';
import { INFER_LIMITS } from '@gantry/shared';
import { type Command, InvalidArgumentError } from 'commander';
import { PNG } from 'pngjs';
import { type ApiClient, ApiError } from './api-client.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

/** What `gantry infer` was asked for. */
interface InferOptions {
  output: string;
  step?: number;
  count?: number;
  class?: number;
  seed?: number;
}

/** Errors about one image of a folder: reported, and the others still sent. */
const PER_IMAGE_CODES = new Set(['INVALID_IMAGE', 'WRONG_IMAGE_SIZE', 'WRONG_IMAGE_CHANNELS']);
/** Busy (503) and rate-limited (429) answers are retried after their Retry-After, this many times. */
const MAX_RETRIES = 20;

function wholeNumber(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('must be a whole number');
  return n;
}

/** The content type of an image by its first bytes; anything else is sent as is (and refused by the API). */
function imageType(bytes: Uint8Array): string | undefined {
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  return undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** POSTs to the infer route, waiting out 503 (busy) and 429 (rate limit) answers as the API says to. */
async function postInfer(
  client: ApiClient,
  trialId: string,
  query: URLSearchParams,
  image?: Uint8Array,
): Promise<{ body: Buffer; headers: Headers }> {
  const q = query.toString();
  const path = `/v1/trials/${encodeURIComponent(trialId)}/infer${q ? `?${q}` : ''}`;
  const body = image && { bytes: image, type: imageType(image) ?? 'application/octet-stream' };
  for (let attempt = 0; ; attempt++) {
    try {
      return await client.postBytes(path, body);
    } catch (err) {
      const retry = err instanceof ApiError && (err.status === 503 || err.status === 429);
      if (!retry || attempt >= MAX_RETRIES) throw err;
      const wait = Math.min(60, Math.max(1, err.retryAfterS ?? 1));
      process.stderr.write(`${err.message}; retrying in ${wait} s\n`);
      await new Promise((r) => setTimeout(r, wait * 1000));
    }
  }
}

/** The tiles of a grid the API drew (its x-gantry-* headers say the layout), each as a PNG. */
export function splitGrid(grid: Buffer, headers: Headers): Buffer[] {
  const count = Number(headers.get('x-gantry-count'));
  const cols = Number(headers.get('x-gantry-cols'));
  const padding = Number(headers.get('x-gantry-padding'));
  const [w, h] = (headers.get('x-gantry-tile') ?? '').split('x').map(Number);
  if (!(count >= 1 && cols >= 1 && padding >= 0 && w! >= 1 && h! >= 1))
    throw new Error('the API did not say how its grid is laid out (x-gantry-* headers)');
  const png = PNG.sync.read(grid);
  const tiles: Buffer[] = [];
  for (let n = 0; n < count; n++) {
    const x0 = padding + (n % cols) * (w! + padding);
    const y0 = padding + Math.floor(n / cols) * (h! + padding);
    const tile = new PNG({ width: w!, height: h! });
    for (let y = 0; y < h!; y++) {
      const from = ((y0 + y) * png.width + x0) * 4;
      png.data.copy(tile.data, y * w! * 4, from, from + w! * 4);
    }
    tiles.push(PNG.sync.write(tile, { colorType: png.colorType }));
  }
  return tiles;
}

/** Generative trials: N samples, as one grid PNG or one PNG each in a folder. */
async function drawSamples(client: ApiClient, trialId: string, opts: InferOptions): Promise<void> {
  const query = new URLSearchParams();
  if (opts.step !== undefined) query.set('step', String(opts.step));
  if (opts.count !== undefined) query.set('count', String(opts.count));
  if (opts.class !== undefined) query.set('class', String(opts.class));
  if (opts.seed !== undefined) query.set('seed', String(opts.seed));
  const { body, headers } = await postInfer(client, trialId, query);
  const what = `${headers.get('x-gantry-count')} samples of ${headers.get('x-gantry-tile')}, step ${headers.get('x-gantry-step')}, seed ${headers.get('x-gantry-seed')}`;
  if (opts.output.endsWith('/') || opts.output.endsWith(sep) || (await isDirectory(opts.output))) {
    await mkdir(opts.output, { recursive: true });
    const tiles = splitGrid(body, headers);
    const width = String(tiles.length - 1).length;
    for (const [i, tile] of tiles.entries())
      await writeFile(join(opts.output, `sample-${String(i).padStart(Math.max(3, width), '0')}.png`), tile);
    say(`wrote ${tiles.length} PNGs to ${opts.output} (${what})`);
    return;
  }
  await writeFile(opts.output, body);
  say(`wrote ${opts.output}: a grid of ${what} (${body.length} bytes)`);
}

/** Image-conditioned trials: one image through the generator, or each image of a folder. */
async function translate(client: ApiClient, trialId: string, input: string, opts: InferOptions) {
  for (const flag of ['count', 'class', 'seed'] as const) {
    if (opts[flag] !== undefined)
      throw new InvalidArgumentError(`--${flag} is for generative trials (no input image)`);
  }
  const query = new URLSearchParams();
  if (opts.step !== undefined) query.set('step', String(opts.step));
  if (!(await isDirectory(input))) {
    const out = (await isDirectory(opts.output))
      ? join(opts.output, `${basename(input, extname(input))}.png`)
      : opts.output;
    const { body, headers } = await postInfer(client, trialId, query, await readFile(input));
    await writeFile(out, body);
    say(`wrote ${out} (${headers.get('x-gantry-tile')}, step ${headers.get('x-gantry-step')})`);
    return;
  }
  // A folder: its PNG and JPEG files (by their bytes), each to <output>/<name>.png.
  const images: { file: string; bytes: Buffer; out: string }[] = [];
  let skipped = 0;
  for (const entry of (await readdir(input, { withFileTypes: true })).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    if (!entry.isFile()) continue;
    const bytes = await readFile(join(input, entry.name));
    if (!imageType(bytes)) {
      skipped += 1;
      continue;
    }
    images.push({ file: entry.name, bytes, out: `${basename(entry.name, extname(entry.name))}.png` });
  }
  if (images.length === 0) throw new Error(`no PNG or JPEG files in ${input}`);
  const clash = images.find((img, i) => images.findIndex((o) => o.out === img.out) !== i);
  if (clash) throw new Error(`two inputs would both be written to ${clash.out}; rename one`);
  await mkdir(opts.output, { recursive: true });
  let failed = 0;
  let step: string | null = null;
  for (const img of images) {
    try {
      const { body, headers } = await postInfer(client, trialId, query, img.bytes);
      step = headers.get('x-gantry-step');
      await writeFile(join(opts.output, img.out), body);
    } catch (err) {
      if (!(err instanceof ApiError && PER_IMAGE_CODES.has(err.code))) throw err;
      failed += 1;
      process.stderr.write(`${img.file}: ${err.message}\n`);
    }
  }
  const notes = [
    ...(failed > 0 ? [`${failed} refused`] : []),
    ...(skipped > 0 ? [`${skipped} skipped (not PNG or JPEG)`] : []),
  ];
  say(
    `wrote ${images.length - failed} PNGs to ${opts.output}${step ? ` (step ${step})` : ''}${notes.length ? `; ${notes.join(', ')}` : ''}`,
  );
  if (failed > 0) process.exitCode = 1;
}

export function registerInferCommand(program: Command, api: () => ApiClient): void {
  program
    .command('infer')
    .description(
      "run a trial's generator from a committed checkpoint: draw samples (dcgan, cgan, wgan-gp, progan, transgan), or send an image or a folder of them through it (srgan super-resolves, pix2pix translates A to B)",
    )
    .argument('<trialId>', 'the trial (gantry status <sweepId> lists them and names the best)')
    .argument(
      '[input]',
      'image-conditioned trials: a PNG or JPEG of the size the trial was trained on, or a folder of them',
    )
    .requiredOption(
      '-o, --output <path>',
      'a PNG; for a folder input a folder (one PNG per image, same names, .png); for samples a grid PNG, or a folder (ending in /, or existing) for one PNG per sample',
    )
    .option('-s, --step <n>', 'the checkpoint of this step (default: the latest)', wholeNumber)
    .option(
      '-n, --count <n>',
      `generative: samples to draw (default ${INFER_LIMITS.defaultCount}, at most ${INFER_LIMITS.maxCount})`,
      wholeNumber,
    )
    .option(
      '-c, --class <k>',
      'conditional (cgan): the class of every sample (default: each in turn)',
      wholeNumber,
    )
    .option(
      '--seed <s>',
      'generative: seed of the noise (default: random, printed); same seed, same samples',
      wholeNumber,
    )
    .addHelpText(
      'after',
      `
Examples:
  gantry infer <trialId> -o samples.png --count 64 --seed 7   # an 8x8 grid
  gantry infer <trialId> -o samples/ --count 10 --class 3     # samples/sample-000.png ... of class 3
  gantry infer <trialId> low-res.png -o high-res.png          # srgan: a (image_size / scale) px image in
  gantry infer <trialId> ./edges -o ./shoes --step 2000       # pix2pix: every image of a folder`,
    )
    .action(async (trialId: string, input: string | undefined, opts: InferOptions) => {
      if (input === undefined) await drawSamples(api(), trialId, opts);
      else await translate(api(), trialId, input, opts);
    });
}
